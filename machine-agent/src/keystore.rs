//! The device's three keys: sr25519 for the chain, secp256k1 for the EVM (payments), ed25519
//! for libp2p. Each lives in its own file in the keystore directory (mode 0600, directory
//! 0700), as 0x + 64 hex digits, or comes from the environment (`M2M_DEVICE_KEY`,
//! `M2M_EVM_KEY`, `M2M_LIBP2P_KEY`) for containers. Keys are never logged.

use std::path::Path;

use anyhow::{bail, Context, Result};
use m2m_chain_client::DeviceKeys;

/// File name and environment variable of each key, in `DeviceKeys::from_secrets` order.
pub const KEYS: [(&str, &str); 3] = [
	("device.sr25519", "M2M_DEVICE_KEY"),
	("evm.secp256k1", "M2M_EVM_KEY"),
	("libp2p.ed25519", "M2M_LIBP2P_KEY"),
];

/// Creates the keystore with fresh random keys, or with `secrets` (dev keys). Refuses to
/// overwrite an existing key.
pub fn create(dir: &Path, secrets: Option<[[u8; 32]; 3]>) -> Result<()> {
	use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
	std::fs::DirBuilder::new()
		.recursive(true)
		.mode(0o700)
		.create(dir)
		.with_context(|| format!("cannot create keystore {}", dir.display()))?;
	std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
	for (i, (file, _)) in KEYS.iter().enumerate() {
		let path = dir.join(file);
		if path.exists() {
			bail!("{} exists; keys are never overwritten", path.display());
		}
		let secret = match secrets {
			Some(s) => s[i],
			None => random(),
		};
		m2m_evm::key::write_private(&path, &format!("0x{}", hex::encode(secret)))
			.with_context(|| format!("cannot write {}", path.display()))?;
	}
	Ok(())
}

/// The device's keys, from the environment where set, else from the keystore.
pub fn load(dir: &Path) -> Result<DeviceKeys> {
	let [account, evm, peer] = secrets(dir)?;
	DeviceKeys::from_secrets(account, evm, peer)
		.map_err(|e| anyhow::anyhow!("the keystore's keys are not valid: {e}"))
}

/// Replaces key `index` (in [`KEYS`] order) with a fresh one, in two steps around the
/// on-chain rotation: [`Rotation::begin`] writes the new key next to the old one
/// (`<file>.next`, 0600) and returns the keys to prove with; [`Rotation::commit`] swaps the
/// files once the chain took the new key, keeping the old one as `<file>.old-<ms>`.
pub struct Rotation {
	current: std::path::PathBuf,
	next: std::path::PathBuf,
	pub new_keys: DeviceKeys,
}

impl Rotation {
	pub fn begin(dir: &Path, index: usize) -> Result<Rotation> {
		let (file, env) = KEYS[index];
		if std::env::var(env).is_ok() {
			bail!("{env} provides this key; rotate it where the environment is set");
		}
		let current = dir.join(file);
		let next = dir.join(format!("{file}.next"));
		if next.exists() {
			bail!(
				"{} exists: a previous rotation did not finish. If the chain shows the new key, \
				 move it over {}; otherwise delete it",
				next.display(),
				current.display()
			);
		}
		let mut all = secrets(dir)?;
		all[index] = random();
		m2m_evm::key::write_private(&next, &format!("0x{}", hex::encode(all[index])))
			.with_context(|| format!("cannot write {}", next.display()))?;
		let [account, evm, peer] = all;
		let new_keys =
			DeviceKeys::from_secrets(account, evm, peer).map_err(|e| anyhow::anyhow!(e))?;
		Ok(Rotation { current, next, new_keys })
	}

	pub fn commit(self) -> Result<()> {
		let old = self.current.with_extension(format!(
			"{}.old-{}",
			self.current.extension().and_then(|e| e.to_str()).unwrap_or(""),
			crate::store::now_ms()
		));
		std::fs::rename(&self.current, &old)?;
		std::fs::rename(&self.next, &self.current)?;
		Ok(())
	}

	pub fn abort(self) {
		let _ = std::fs::remove_file(&self.next);
	}
}

fn secrets(dir: &Path) -> Result<[[u8; 32]; 3]> {
	let mut secrets = [[0u8; 32]; 3];
	for (i, (file, env)) in KEYS.iter().enumerate() {
		let (text, source) = match std::env::var(env) {
			Ok(v) => (v, env.to_string()),
			Err(_) => {
				let path = dir.join(file);
				(m2m_evm::key::read_private(&path)?, path.display().to_string())
			},
		};
		let bytes = hex::decode(text.trim().trim_start_matches("0x"))
			.ok()
			.filter(|b| b.len() == 32)
			.with_context(|| {
				format!("{source} does not hold a 32-byte key (0x + 64 hex digits)")
			})?;
		secrets[i].copy_from_slice(&bytes);
	}
	Ok(secrets)
}

fn random() -> [u8; 32] {
	let mut b = [0u8; 32];
	getrandom::getrandom(&mut b).expect("the OS provides randomness");
	b
}

#[cfg(test)]
mod tests {
	use super::*;
	use std::os::unix::fs::PermissionsExt;

	#[test]
	fn keys_are_private_files_that_load_back() {
		let dir = std::env::temp_dir().join(format!("m2m-keystore-{}", std::process::id()));
		let _ = std::fs::remove_dir_all(&dir);
		create(&dir, Some(DeviceKeys::dev_secrets("keystore-test"))).unwrap();
		let keys = load(&dir).unwrap();
		assert_eq!(keys.evm_address(), DeviceKeys::dev("keystore-test").evm_address());
		for (file, _) in KEYS {
			let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
			assert_eq!(mode, 0o600, "{file}");
		}
		assert!(create(&dir, None).is_err(), "never overwritten");
		std::fs::set_permissions(dir.join(KEYS[1].0), std::fs::Permissions::from_mode(0o644))
			.unwrap();
		let e = load(&dir).err().unwrap().to_string();
		assert!(e.contains("readable by others"), "{e}");
		std::fs::remove_dir_all(&dir).unwrap();
	}
}
