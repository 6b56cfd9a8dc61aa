//! A device's three keys and the signatures the chain checks.

use k256::ecdsa::SigningKey;
use m2m_primitives::{
	device::{peer_id_bytes, registration_challenge, rotation_challenge, KeyKind},
	eip712::{
		address_from_public_key, personal_message_digest, EcdsaSignature, TransferWithAuthorization,
	},
	H160, H256,
};
use subxt_signer::sr25519;

use crate::runtime::runtime_types::{
	bounded_collections::bounded_vec::BoundedVec,
	pallet_device_identity::{NewKey, RegistrationProof},
	sp_runtime::MultiSignature,
};

/// An EVM (secp256k1) signing key.
#[derive(Clone)]
pub struct EvmSigner(SigningKey);

impl EvmSigner {
	/// From a 32-byte secret. Fails for zero or out-of-range secrets.
	pub fn from_secret(secret: &[u8; 32]) -> Result<Self, k256::ecdsa::Error> {
		SigningKey::from_slice(secret).map(Self)
	}

	/// The 32-byte secret, to hand the same key to an EVM wallet (alloy). Never log it.
	pub fn secret(&self) -> [u8; 32] {
		self.0.to_bytes().into()
	}

	/// The Ethereum address of this key.
	pub fn address(&self) -> H160 {
		let point = self.0.verifying_key().to_encoded_point(false);
		let mut uncompressed = [0u8; 64];
		uncompressed.copy_from_slice(&point.as_bytes()[1..]);
		address_from_public_key(&uncompressed)
	}

	/// Signs a 32-byte digest: low-s, `r ‖ s ‖ v` with `v` in {27, 28}.
	pub fn sign_digest(&self, digest: &H256) -> EcdsaSignature {
		let (signature, recovery) = self
			.0
			.sign_prehash_recoverable(digest.as_bytes())
			.expect("a 32-byte prehash always signs");
		let (signature, flip) = match signature.normalize_s() {
			Some(low) => (low, true),
			None => (signature, false),
		};
		let mut out = [0u8; 65];
		out[..64].copy_from_slice(&signature.to_bytes());
		out[64] = 27 + (recovery.to_byte() ^ flip as u8);
		EcdsaSignature(out)
	}

	/// EIP-191 `personal_sign` of a 32-byte message.
	pub fn sign_message(&self, message: &[u8; 32]) -> EcdsaSignature {
		self.sign_digest(&personal_message_digest(message))
	}

	/// Signs an EIP-3009 authorization under a token's EIP-712 domain separator.
	pub fn sign_authorization(
		&self,
		authorization: &TransferWithAuthorization,
		domain_separator: &H256,
	) -> EcdsaSignature {
		self.sign_digest(&authorization.signing_digest(domain_separator))
	}
}

/// The three keys of one device.
#[derive(Clone)]
pub struct DeviceKeys {
	pub account: sr25519::Keypair,
	pub evm: EvmSigner,
	pub peer: ed25519_dalek::SigningKey,
}

impl DeviceKeys {
	/// From three 32-byte secrets.
	pub fn from_secrets(account: [u8; 32], evm: [u8; 32], peer: [u8; 32]) -> Result<Self, String> {
		Ok(Self {
			account: sr25519::Keypair::from_secret_key(account).map_err(|e| e.to_string())?,
			evm: EvmSigner::from_secret(&evm).map_err(|e| e.to_string())?,
			peer: ed25519_dalek::SigningKey::from_bytes(&peer),
		})
	}

	/// DEV KEYS ONLY: deterministic keys derived from a public label. Anyone who knows the label
	/// knows the keys; use them on local testnets and in tests, never with real funds.
	pub fn dev(label: &str) -> Self {
		let [account, evm, peer] = Self::dev_secrets(label);
		Self::from_secrets(account, evm, peer).expect("blake2 outputs are valid secrets")
	}

	/// DEV KEYS ONLY: the three secrets behind [`DeviceKeys::dev`] (account, EVM, peer), for
	/// writing a dev device's keystore.
	pub fn dev_secrets(label: &str) -> [[u8; 32]; 3] {
		let seed = |kind: &str| {
			m2m_primitives::blake2_256(format!("m2m-pay dev key/{kind}/{label}").as_bytes())
		};
		[seed("account"), seed("evm"), seed("peer")]
	}

	/// The device's chain account.
	pub fn account_id(&self) -> subxt::utils::AccountId32 {
		self.account.public_key().into()
	}

	pub fn evm_address(&self) -> H160 {
		self.evm.address()
	}

	/// The binary PeerId of the libp2p ed25519 key.
	pub fn peer_id(&self) -> Vec<u8> {
		peer_id_bytes(self.peer.verifying_key().as_bytes())
	}

	/// The registration proof for `owner`, whose current proof nonce is `nonce`, on the chain
	/// with `genesis_hash`.
	pub fn registration_proof(
		&self,
		genesis_hash: &H256,
		owner: &subxt::utils::AccountId32,
		nonce: u64,
	) -> RegistrationProof<MultiSignature> {
		use ed25519_dalek::Signer;
		let challenge = registration_challenge(
			genesis_hash,
			&owner.0,
			&self.account_id().0,
			&self.evm_address(),
			&self.peer_id(),
			nonce,
		);
		RegistrationProof {
			account_signature: MultiSignature::Sr25519(self.account.sign(&challenge).0),
			evm_signature: subxt::utils::Static(self.evm.sign_message(&challenge)),
			peer_signature: self.peer.sign(&challenge).to_bytes(),
		}
	}

	/// The proof that these keys hold the `kind` key that replaces a key of `device`, for
	/// `owner`, whose current proof nonce is `nonce`, on the chain with `genesis_hash`.
	pub fn rotation_proof(
		&self,
		kind: KeyKind,
		genesis_hash: &H256,
		owner: &subxt::utils::AccountId32,
		device: u64,
		nonce: u64,
	) -> NewKey<subxt::utils::AccountId32, MultiSignature> {
		use codec::Encode;
		use ed25519_dalek::Signer;
		let challenge =
			|key: &[u8]| rotation_challenge(genesis_hash, &owner.0, device, &kind, key, nonce);
		match kind {
			KeyKind::Account => {
				let account = self.account_id();
				let c = challenge(&account.0.encode());
				NewKey::Account {
					account,
					signature: MultiSignature::Sr25519(self.account.sign(&c).0),
				}
			},
			KeyKind::Evm => {
				let address = self.evm_address();
				let c = challenge(&address.encode());
				NewKey::Evm { address, signature: subxt::utils::Static(self.evm.sign_message(&c)) }
			},
			KeyKind::Peer => {
				let c = challenge(&self.peer_id().encode());
				NewKey::Peer {
					peer_id: self.peer_id_bounded(),
					signature: self.peer.sign(&c).to_bytes(),
				}
			},
		}
	}

	/// The PeerId in the chain's bounded form.
	pub fn peer_id_bounded(&self) -> BoundedVec<u8> {
		BoundedVec(self.peer_id())
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use m2m_primitives::eip712::domain_separator;

	/// Foundry/Hardhat account #0: a published key/address pair, so the derivation is checked
	/// against an independent implementation.
	#[test]
	fn evm_address_matches_a_known_key() {
		let secret: [u8; 32] =
			hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
				.unwrap()
				.try_into()
				.unwrap();
		let signer = EvmSigner::from_secret(&secret).unwrap();
		assert_eq!(format!("{:?}", signer.address()), "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
	}

	#[test]
	fn authorization_signatures_are_low_s_with_ethereum_v() {
		let keys = DeviceKeys::dev("signer");
		let ds = domain_separator(b"Tether USD", b"1", 9990, H160::repeat_byte(1));
		for n in 0..16u8 {
			let auth = TransferWithAuthorization {
				from: keys.evm_address(),
				to: H160::repeat_byte(2),
				value: n.into(),
				valid_after: 0.into(),
				valid_before: 1.into(),
				nonce: H256::repeat_byte(n),
			};
			let sig = keys.evm.sign_authorization(&auth, &ds);
			assert!(sig.0[64] == 27 || sig.0[64] == 28);
			assert!(sig.to_recoverable().is_ok(), "high-s or malformed signature");
		}
	}

	#[test]
	fn dev_keys_are_deterministic_and_distinct() {
		let a = DeviceKeys::dev("a");
		assert_eq!(a.evm_address(), DeviceKeys::dev("a").evm_address());
		assert_ne!(a.evm_address(), DeviceKeys::dev("b").evm_address());
		assert_eq!(a.peer_id().len(), 38);
	}
}
