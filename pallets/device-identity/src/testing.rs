//! Key material for tests of this pallet and of pallets built on it: real sr25519, secp256k1
//! and ed25519 keys that produce the registration proofs the pallet checks.

use sp_core::{ecdsa, ed25519, sr25519, Pair, H160};
use sp_runtime::{AccountId32, MultiSignature};

use crate::{Config, Pallet, PeerId, ProofNonces, RegistrationProof};
use m2m_primitives::{
	device::{peer_id_bytes, registration_challenge},
	eip712::{address_from_public_key, personal_message_digest, EcdsaSignature},
};

/// The three keys of one test device, derived from a seed byte.
pub struct DeviceKeys {
	pub account: sr25519::Pair,
	pub evm: ecdsa::Pair,
	pub peer: ed25519::Pair,
}

impl DeviceKeys {
	pub fn new(seed: u8) -> Self {
		Self {
			account: sr25519::Pair::from_seed(&[100u8.wrapping_add(seed); 32]),
			evm: ecdsa::Pair::from_seed(&[150u8.wrapping_add(seed); 32]),
			peer: ed25519::Pair::from_seed(&[200u8.wrapping_add(seed); 32]),
		}
	}

	pub fn account_id(&self) -> AccountId32 {
		self.account.public().into()
	}

	pub fn evm_address(&self) -> H160 {
		evm_address_of(&self.evm)
	}

	pub fn peer_id(&self) -> PeerId {
		peer_id_bytes(&self.peer.public().0).try_into().expect("38 bytes fit")
	}

	/// A registration proof for `owner` at the owner's current nonce on this chain.
	pub fn proof<T: Config<AccountId = AccountId32>>(
		&self,
		owner: &AccountId32,
	) -> RegistrationProof<MultiSignature> {
		let challenge = registration_challenge(
			&Pallet::<T>::genesis_hash(),
			owner,
			&self.account_id(),
			&self.evm_address(),
			&self.peer_id(),
			ProofNonces::<T>::get(owner),
		);
		self.sign(&challenge)
	}

	/// All three signatures over one challenge.
	pub fn sign(&self, challenge: &[u8; 32]) -> RegistrationProof<MultiSignature> {
		RegistrationProof {
			account_signature: self.account.sign(challenge).into(),
			evm_signature: evm_sign(&self.evm, &personal_message_digest(challenge).0),
			peer_signature: self.peer.sign(challenge).0,
		}
	}
}

/// Signs a 32-byte digest with a secp256k1 key, `r ‖ s ‖ v` with `v` in {0, 1}.
pub fn evm_sign(pair: &ecdsa::Pair, digest: &[u8; 32]) -> EcdsaSignature {
	EcdsaSignature(pair.sign_prehashed(digest).0)
}

/// The Ethereum address of a secp256k1 key.
pub fn evm_address_of(pair: &ecdsa::Pair) -> H160 {
	let digest = [7u8; 32];
	let sig = pair.sign_prehashed(&digest);
	let public = sp_io::crypto::secp256k1_ecdsa_recover(&sig.0, &digest)
		.ok()
		.expect("a fresh signature recovers");
	address_from_public_key(&public)
}
