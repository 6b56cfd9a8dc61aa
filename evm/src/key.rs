//! Loading an EVM private key from where secrets live: a file only its owner can read, or an
//! environment variable (for containers). The key itself never appears in errors or logs.

use std::{fs, path::Path};

use alloy::signers::local::PrivateKeySigner;

/// Why a key could not be loaded. Messages name the source, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
	#[error("cannot read key file {path}: {error}")]
	Read { path: String, error: std::io::Error },
	#[error(
		"key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}` so that \
		 only its owner can read it"
	)]
	Permissions { path: String, mode: u32 },
	#[error("{source_name} does not hold a secp256k1 private key (expected 0x + 64 hex digits)")]
	Malformed { source_name: String },
	#[error("no key: pass a key file or set {env}")]
	Missing { env: String },
}

/// The key in `file` if given, else in the environment variable `env`.
pub fn load(file: Option<&Path>, env: &str) -> Result<PrivateKeySigner, KeyError> {
	if let Some(path) = file {
		return from_file(path);
	}
	match std::env::var(env) {
		Ok(value) => parse(&value, env),
		Err(_) => Err(KeyError::Missing { env: env.to_string() }),
	}
}

/// The key in `path`, which must have mode 0600 (or stricter).
pub fn from_file(path: &Path) -> Result<PrivateKeySigner, KeyError> {
	parse(&read_private(path)?, &path.display().to_string())
}

/// The text of a secret file, refused unless only its owner can read it (mode 0600 or
/// stricter). For any kind of key.
pub fn read_private(path: &Path) -> Result<String, KeyError> {
	use std::os::unix::fs::PermissionsExt;
	let shown = path.display().to_string();
	let meta = fs::metadata(path).map_err(|error| KeyError::Read { path: shown.clone(), error })?;
	let mode = meta.permissions().mode() & 0o777;
	if mode & 0o077 != 0 {
		return Err(KeyError::Permissions { path: shown, mode });
	}
	fs::read_to_string(path).map_err(|error| KeyError::Read { path: shown, error })
}

/// Writes `signer`'s key to `path` with mode 0600, creating it so that it is never readable
/// by others, not even for an instant.
pub fn write(path: &Path, signer: &PrivateKeySigner) -> std::io::Result<()> {
	write_private(path, &format!("0x{}", alloy::hex::encode(signer.to_bytes())))
}

/// Creates `path` with mode 0600 and writes `secret` (plus a newline) to it, synced. Never
/// overwrites an existing file.
pub fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
	use std::{io::Write, os::unix::fs::OpenOptionsExt};
	let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
	writeln!(file, "{secret}")?;
	file.sync_all()
}

fn parse(text: &str, source_name: &str) -> Result<PrivateKeySigner, KeyError> {
	text.trim().parse().map_err(|_| KeyError::Malformed { source_name: source_name.to_string() })
}

#[cfg(test)]
mod tests {
	use super::*;
	use std::os::unix::fs::PermissionsExt;

	#[test]
	fn a_key_file_must_be_private_and_well_formed() {
		let dir = std::env::temp_dir().join(format!("m2m-key-test-{}", std::process::id()));
		fs::create_dir_all(&dir).unwrap();
		let path = dir.join("key");
		let _ = fs::remove_file(&path);
		let signer = PrivateKeySigner::random();
		write(&path, &signer).unwrap();
		assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
		assert_eq!(from_file(&path).unwrap().address(), signer.address());
		assert!(write(&path, &signer).is_err(), "an existing key is never overwritten");

		fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
		let e = from_file(&path).unwrap_err().to_string();
		assert!(e.contains("readable by others (mode 644)"), "{e}");

		fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
		fs::write(&path, "0x1234").unwrap();
		let e = from_file(&path).unwrap_err().to_string();
		assert!(e.contains("does not hold a secp256k1 private key"), "{e}");
		assert!(!e.contains("1234"), "the secret is never echoed");
		fs::remove_dir_all(&dir).unwrap();

		let e = load(None, "M2M_TEST_KEY_THAT_IS_NOT_SET").unwrap_err().to_string();
		assert_eq!(e, "no key: pass a key file or set M2M_TEST_KEY_THAT_IS_NOT_SET");
	}
}
