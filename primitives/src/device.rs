//! Device identifiers and key-possession challenges.
//!
//! A device is bound to three keys: its chain account (sr25519), its EVM address (secp256k1)
//! and its libp2p PeerId (ed25519). Binding a key requires a signature by that key over a
//! challenge that names the chain (genesis hash), the owner, the whole key set and a nonce, so a
//! signature can be used once, on one chain, for one owner: nobody can register or squat a key
//! they do not control, and a captured proof cannot be replayed.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_crypto_hashing::blake2_256;

use crate::{H160, H256};

/// Stable identifier of a registered device. Assigned by the chain at registration and kept
/// across key rotations and ownership transfers.
pub type DeviceId = u64;

/// Domain tag of registration challenges.
pub const REGISTRATION_DOMAIN: &[u8] = b"m2m-pay/device-registration/v1";
/// Domain tag of key-rotation challenges.
pub const ROTATION_DOMAIN: &[u8] = b"m2m-pay/device-key-rotation/v1";

/// Multihash prefix of an ed25519 libp2p PeerId: identity hash (0x00), length 36 (0x24), then the
/// protobuf `PublicKey { Type: Ed25519 (0x08 0x01), Data: 32 bytes (0x12 0x20) }`.
pub const ED25519_PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
/// Length in bytes of an ed25519 PeerId.
pub const ED25519_PEER_ID_LEN: usize = 38;

/// The challenge that the chain key, the EVM key and the libp2p key of a new device each sign.
///
/// - chain key: a `MultiSignature` over these 32 bytes;
/// - EVM key: EIP-191 `personal_sign` of these 32 bytes ([`crate::eip712::personal_message_digest`]);
/// - libp2p key: an ed25519 signature over these 32 bytes.
pub fn registration_challenge<AccountId: Encode>(
	genesis_hash: &H256,
	owner: &AccountId,
	device_key: &AccountId,
	evm_address: &H160,
	peer_id: &[u8],
	nonce: u64,
) -> [u8; 32] {
	blake2_256(
		&(REGISTRATION_DOMAIN, genesis_hash, owner, device_key, evm_address, peer_id, nonce)
			.encode(),
	)
}

/// One of the three keys bound to a device, as named in a rotation.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub enum KeyKind {
	/// The device's chain account.
	Account,
	/// The device's EVM address.
	Evm,
	/// The device's libp2p PeerId.
	Peer,
}

/// The challenge that a *new* key signs when the owner rotates one key of an existing device.
/// `new_key` is the SCALE encoding of the key (account id, H160, or PeerId bytes).
pub fn rotation_challenge<AccountId: Encode>(
	genesis_hash: &H256,
	owner: &AccountId,
	device: DeviceId,
	kind: &KeyKind,
	new_key: &[u8],
	nonce: u64,
) -> [u8; 32] {
	blake2_256(&(ROTATION_DOMAIN, genesis_hash, owner, device, kind, new_key, nonce).encode())
}

/// The PeerId (multihash bytes) of an ed25519 libp2p public key.
pub fn peer_id_from_ed25519(public_key: &[u8; 32]) -> [u8; ED25519_PEER_ID_LEN] {
	let mut out = [0u8; ED25519_PEER_ID_LEN];
	out[..6].copy_from_slice(&ED25519_PEER_ID_PREFIX);
	out[6..].copy_from_slice(public_key);
	out
}

/// The ed25519 public key inside a PeerId, or `None` when the PeerId is not an inlined ed25519
/// key (RSA and other hashed keys cannot prove possession on-chain).
pub fn ed25519_from_peer_id(peer_id: &[u8]) -> Option<[u8; 32]> {
	if peer_id.len() != ED25519_PEER_ID_LEN || peer_id[..6] != ED25519_PEER_ID_PREFIX {
		return None;
	}
	let mut key = [0u8; 32];
	key.copy_from_slice(&peer_id[6..]);
	Some(key)
}

/// Convenience for callers that hold a PeerId as a `Vec`.
pub fn peer_id_bytes(public_key: &[u8; 32]) -> Vec<u8> {
	peer_id_from_ed25519(public_key).to_vec()
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn peer_id_round_trips_an_ed25519_key() {
		let key = [7u8; 32];
		let peer = peer_id_from_ed25519(&key);
		assert_eq!(ed25519_from_peer_id(&peer), Some(key));
	}

	#[test]
	fn hashed_or_truncated_peer_ids_are_not_ed25519() {
		let mut peer = peer_id_from_ed25519(&[7u8; 32]);
		assert_eq!(ed25519_from_peer_id(&peer[..37]), None);
		peer[3] = 0x02; // secp256k1 key type
		assert_eq!(ed25519_from_peer_id(&peer), None);
		// A sha2-256 multihash (RSA keys) starts with 0x12 0x20.
		let mut rsa = [0u8; 34];
		rsa[0] = 0x12;
		rsa[1] = 0x20;
		assert_eq!(ed25519_from_peer_id(&rsa), None);
	}

	#[test]
	fn challenges_bind_every_field() {
		let g = H256::repeat_byte(1);
		let base =
			registration_challenge(&g, &[1u8; 32], &[2u8; 32], &H160::repeat_byte(3), &[4], 0);
		assert_ne!(
			base,
			registration_challenge(
				&H256::repeat_byte(9),
				&[1u8; 32],
				&[2u8; 32],
				&H160::repeat_byte(3),
				&[4],
				0
			)
		);
		assert_ne!(
			base,
			registration_challenge(&g, &[9u8; 32], &[2u8; 32], &H160::repeat_byte(3), &[4], 0)
		);
		assert_ne!(
			base,
			registration_challenge(&g, &[1u8; 32], &[9u8; 32], &H160::repeat_byte(3), &[4], 0)
		);
		assert_ne!(
			base,
			registration_challenge(&g, &[1u8; 32], &[2u8; 32], &H160::repeat_byte(9), &[4], 0)
		);
		assert_ne!(
			base,
			registration_challenge(&g, &[1u8; 32], &[2u8; 32], &H160::repeat_byte(3), &[9], 0)
		);
		assert_ne!(
			base,
			registration_challenge(&g, &[1u8; 32], &[2u8; 32], &H160::repeat_byte(3), &[4], 1)
		);
		let rot = rotation_challenge(&g, &[1u8; 32], 0, &KeyKind::Evm, &[3u8; 20], 0);
		assert_ne!(rot, rotation_challenge(&g, &[1u8; 32], 0, &KeyKind::Account, &[3u8; 20], 0));
	}
}
