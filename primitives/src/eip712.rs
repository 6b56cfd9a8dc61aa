//! EIP-712 typed data for EIP-3009 `TransferWithAuthorization`, and the secp256k1 signature
//! rules around it.
//!
//! This is the message that an x402 `exact` payment on an EVM chain signs. The chain recomputes
//! it to prove that a settlement receipt was authorised by the payer; the agent computes it to
//! sign and to verify payments. Recovery of the signer is left to the caller (`sp_io` in the
//! runtime, a secp256k1 library on devices), so this module stays free of crypto back-ends.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_crypto_hashing::keccak_256;

use crate::{H160, H256, U256};

/// `keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")`.
pub const EIP712_DOMAIN_TYPEHASH: [u8; 32] =
	hex32("8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f");

/// `keccak256("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")`.
pub const TRANSFER_WITH_AUTHORIZATION_TYPEHASH: [u8; 32] =
	hex32("7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267");

/// Half the order of secp256k1. Signatures with a larger `s` are malleable twins of a valid
/// signature; OpenZeppelin-style tokens reject them, so we do too.
const SECP256K1_HALF_ORDER: [u8; 32] =
	hex32("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0");

/// The EIP-712 domain separator of a token: `{name, version, chainId, verifyingContract}`,
/// without salt, exactly as x402's `exact` scheme and EIP-3009 tokens define it.
///
/// `name` is hashed as raw UTF-8 bytes: a token named `USD₮0` must be passed with its
/// multi-byte `₮`, never a lookalike.
pub fn domain_separator(
	name: &[u8],
	version: &[u8],
	chain_id: u64,
	verifying_contract: H160,
) -> H256 {
	let mut buf = [0u8; 32 * 5];
	buf[0..32].copy_from_slice(&EIP712_DOMAIN_TYPEHASH);
	buf[32..64].copy_from_slice(&keccak_256(name));
	buf[64..96].copy_from_slice(&keccak_256(version));
	buf[96..128].copy_from_slice(&U256::from(chain_id).to_big_endian());
	buf[140..160].copy_from_slice(verifying_contract.as_bytes());
	H256(keccak_256(&buf))
}

/// The six fields of an EIP-3009 `TransferWithAuthorization`.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct TransferWithAuthorization {
	pub from: H160,
	pub to: H160,
	/// Amount in token base units.
	pub value: U256,
	/// Unix seconds; the authorization is usable strictly after this time.
	pub valid_after: U256,
	/// Unix seconds; the authorization is usable strictly before this time.
	pub valid_before: U256,
	/// 32 random bytes chosen by the payer. A token accepts each (from, nonce) once.
	pub nonce: H256,
}

impl TransferWithAuthorization {
	/// `hashStruct(message)` per EIP-712.
	pub fn struct_hash(&self) -> H256 {
		let mut buf = [0u8; 32 * 7];
		buf[0..32].copy_from_slice(&TRANSFER_WITH_AUTHORIZATION_TYPEHASH);
		buf[44..64].copy_from_slice(self.from.as_bytes());
		buf[76..96].copy_from_slice(self.to.as_bytes());
		buf[96..128].copy_from_slice(&self.value.to_big_endian());
		buf[128..160].copy_from_slice(&self.valid_after.to_big_endian());
		buf[160..192].copy_from_slice(&self.valid_before.to_big_endian());
		buf[192..224].copy_from_slice(self.nonce.as_bytes());
		H256(keccak_256(&buf))
	}

	/// The digest the payer signs: `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))`.
	pub fn signing_digest(&self, domain_separator: &H256) -> H256 {
		typed_data_digest(domain_separator, &self.struct_hash())
	}
}

/// `keccak256(0x1901 ‖ domainSeparator ‖ structHash)`.
pub fn typed_data_digest(domain_separator: &H256, struct_hash: &H256) -> H256 {
	let mut buf = [0u8; 66];
	buf[0] = 0x19;
	buf[1] = 0x01;
	buf[2..34].copy_from_slice(domain_separator.as_bytes());
	buf[34..66].copy_from_slice(struct_hash.as_bytes());
	H256(keccak_256(&buf))
}

/// EIP-191 `personal_sign` digest of a 32-byte message, as every Ethereum wallet computes it for
/// `signMessage(bytes32)`. Devices prove control of their EVM address this way.
pub fn personal_message_digest(message: &[u8; 32]) -> H256 {
	let mut buf = [0u8; 28 + 32];
	buf[..28].copy_from_slice(b"\x19Ethereum Signed Message:\n32");
	buf[28..].copy_from_slice(message);
	H256(keccak_256(&buf))
}

/// The Ethereum address of an uncompressed secp256k1 public key (64 bytes, without the 0x04 tag).
pub fn address_from_public_key(uncompressed: &[u8; 64]) -> H160 {
	H160::from_slice(&keccak_256(uncompressed)[12..])
}

/// Why a 65-byte `r ‖ s ‖ v` signature was refused before any recovery was attempted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SignatureError {
	/// `v` is not one of 0, 1, 27 or 28.
	InvalidRecoveryId,
	/// `s` is in the upper half of the curve order (a malleable signature).
	HighS,
	/// `r` or `s` is zero.
	ZeroComponent,
}

/// A 65-byte secp256k1 signature in Ethereum's `r ‖ s ‖ v` layout.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
)]
pub struct EcdsaSignature(pub [u8; 65]);

impl EcdsaSignature {
	/// The signature with `v` normalised to a recovery id of 0 or 1, as secp256k1 recovery
	/// functions expect. Wallets emit `v` in {27, 28}; some libraries emit {0, 1}; both are valid.
	pub fn to_recoverable(&self) -> Result<[u8; 65], SignatureError> {
		let mut sig = self.0;
		sig[64] = match sig[64] {
			0 | 27 => 0,
			1 | 28 => 1,
			_ => return Err(SignatureError::InvalidRecoveryId),
		};
		let (r, s) = (&sig[0..32], &sig[32..64]);
		if r.iter().all(|b| *b == 0) || s.iter().all(|b| *b == 0) {
			return Err(SignatureError::ZeroComponent);
		}
		if s > &SECP256K1_HALF_ORDER[..] {
			return Err(SignatureError::HighS);
		}
		Ok(sig)
	}

	/// The signature with `v` in {27, 28}: the form Solidity's `ecrecover` and x402 headers use.
	pub fn to_ethereum(&self) -> Result<[u8; 65], SignatureError> {
		let mut sig = self.to_recoverable()?;
		sig[64] += 27;
		Ok(sig)
	}
}

/// Decodes a 64-digit hex literal at compile time.
pub(crate) const fn hex32(s: &str) -> [u8; 32] {
	const fn nibble(c: u8) -> u8 {
		match c {
			b'0'..=b'9' => c - b'0',
			b'a'..=b'f' => c - b'a' + 10,
			b'A'..=b'F' => c - b'A' + 10,
			_ => panic!("not a hex digit"),
		}
	}
	let bytes = s.as_bytes();
	assert!(bytes.len() == 64, "expected 64 hex digits");
	let mut out = [0u8; 32];
	let mut i = 0;
	while i < 32 {
		out[i] = (nibble(bytes[2 * i]) << 4) | nibble(bytes[2 * i + 1]);
		i += 1;
	}
	out
}

#[cfg(test)]
mod tests {
	use super::*;
	use hex_literal::hex;

	#[test]
	fn type_hashes_match_their_type_strings() {
		assert_eq!(
			keccak_256(
				b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
			),
			EIP712_DOMAIN_TYPEHASH
		);
		assert_eq!(
			keccak_256(b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"),
			TRANSFER_WITH_AUTHORIZATION_TYPEHASH
		);
	}

	/// Published x402 vector: USDC on Base Sepolia.
	#[test]
	fn usdc_base_sepolia_domain_separator() {
		let ds = domain_separator(
			b"USDC",
			b"2",
			84532,
			H160(hex!("036CbD53842c5426634e7929541eC2318f3dCF7e")),
		);
		assert_eq!(
			ds,
			H256(hex!("71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818"))
		);
	}

	/// The x402 v2 `PAYMENT-SIGNATURE` example: its authorization hashes to the published digest.
	#[test]
	fn x402_example_authorization_digest() {
		let auth = TransferWithAuthorization {
			from: H160(hex!("857b06519E91e3A54538791bDbb0E22373e36b66")),
			to: H160(hex!("209693Bc6afc0C5328bA36FaF03C514EF312287C")),
			value: U256::from(10_000u64),
			valid_after: U256::from(1_740_672_089u64),
			valid_before: U256::from(1_740_672_154u64),
			nonce: H256(hex!("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480")),
		};
		let ds = domain_separator(
			b"USDC",
			b"2",
			84532,
			H160(hex!("036CbD53842c5426634e7929541eC2318f3dCF7e")),
		);
		assert_eq!(
			auth.signing_digest(&ds),
			H256(hex!("f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6"))
		);
		// The same message under another name hashes elsewhere: a wrong domain never verifies.
		let wrong = domain_separator(
			b"USD Coin",
			b"2",
			84532,
			H160(hex!("036CbD53842c5426634e7929541eC2318f3dCF7e")),
		);
		assert_ne!(auth.signing_digest(&wrong), auth.signing_digest(&ds));
	}

	/// Published vector: USDT0 on Arbitrum, whose name carries the multi-byte `₮`.
	#[test]
	fn usdt0_arbitrum_domain_separator_hashes_utf8_name() {
		let ds = domain_separator(
			"USD₮0".as_bytes(),
			b"1",
			42161,
			H160(hex!("Fd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9")),
		);
		assert_eq!(
			ds,
			H256(hex!("566af68fb471b22d6421762f84aa7bd761c670a2e4d5c8a47d4085d5957b127c"))
		);
	}

	#[test]
	fn recovery_id_is_normalised_and_malleable_signatures_are_refused() {
		let mut sig = [1u8; 65];
		sig[64] = 28;
		assert_eq!(EcdsaSignature(sig).to_recoverable().unwrap()[64], 1);
		sig[64] = 0;
		assert_eq!(EcdsaSignature(sig).to_ethereum().unwrap()[64], 27);
		sig[64] = 29;
		assert_eq!(EcdsaSignature(sig).to_recoverable(), Err(SignatureError::InvalidRecoveryId));
		sig[64] = 27;
		sig[32..64].copy_from_slice(&[0xff; 32]);
		assert_eq!(EcdsaSignature(sig).to_recoverable(), Err(SignatureError::HighS));
		sig[32..64].copy_from_slice(&[0; 32]);
		assert_eq!(EcdsaSignature(sig).to_recoverable(), Err(SignatureError::ZeroComponent));
	}
}
