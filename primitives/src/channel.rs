//! The x402 batch-settlement channel digests (the settlement contract's EIP-712 messages), for
//! the chain: a channel id, and the voucher a payer signs. `m2m-x402` computes the same with
//! alloy for devices; both are checked against the scheme's published vectors.
//!
//! A channel id is the full EIP-712 digest of the channel's config under the settlement
//! contract's domain (`"x402 Batch Settlement"`, `"1"`, chain id, contract address).

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_crypto_hashing::keccak_256;

use crate::{
	eip712::{domain_separator, hex32, typed_data_digest},
	H160, H256,
};

/// Where the settlement contract lives, the same on every chain (stock clients hard-code it,
/// and a channel id binds it).
/// `0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003`.
pub const SETTLEMENT_ADDRESS: H160 = H160([
	0x40, 0x20, 0x07, 0x4e, 0x9d, 0xf2, 0xce, 0x1d, 0xee, 0x5a, 0x9c, 0x1b, 0x5c, 0x3f, 0x54, 0x1d,
	0x02, 0xa1, 0x00, 0x03,
]);

/// The settlement contract's EIP-712 domain name and version.
pub const DOMAIN_NAME: &[u8] = b"x402 Batch Settlement";
pub const DOMAIN_VERSION: &[u8] = b"1";

/// `keccak256("ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)")`.
pub const CHANNEL_CONFIG_TYPEHASH: [u8; 32] =
	hex32("1c9a06ceab9b0ebbd3301dc56c9111bb6d9af421356dc9ccb3b7084c755db308");
/// `keccak256("Voucher(bytes32 channelId,uint128 maxClaimableAmount)")`.
pub const VOUCHER_TYPEHASH: [u8; 32] =
	hex32("1e1bd6ff84c3e0d9029a292b212e039c0ca97ec497c55191a4a5874294609a69");

/// A channel's immutable configuration, as the settlement contract hashes it.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct ChannelConfig {
	pub payer: H160,
	/// Signs vouchers; zero means the payer itself (which may be a contract, EIP-1271).
	pub payer_authorizer: H160,
	pub receiver: H160,
	/// Signs claim batches and refunds for the receiver.
	pub receiver_authorizer: H160,
	pub token: H160,
	/// Seconds (a `uint40` on-chain): how long a payer's withdrawal waits for late claims.
	pub withdraw_delay: u64,
	pub salt: H256,
}

impl ChannelConfig {
	/// `hashStruct(config)`.
	pub fn struct_hash(&self) -> H256 {
		let mut buf = [0u8; 32 * 8];
		buf[0..32].copy_from_slice(&CHANNEL_CONFIG_TYPEHASH);
		for (i, address) in
			[self.payer, self.payer_authorizer, self.receiver, self.receiver_authorizer, self.token]
				.iter()
				.enumerate()
		{
			buf[32 * (i + 1) + 12..32 * (i + 2)].copy_from_slice(address.as_bytes());
		}
		buf[32 * 6 + 24..32 * 7].copy_from_slice(&self.withdraw_delay.to_be_bytes());
		buf[32 * 7..].copy_from_slice(self.salt.as_bytes());
		H256(keccak_256(&buf))
	}

	/// The channel id under the settlement contract at `settlement` on `chain_id`.
	pub fn channel_id(&self, chain_id: u64, settlement: H160) -> H256 {
		typed_data_digest(&settlement_domain(chain_id, settlement), &self.struct_hash())
	}
}

/// The settlement contract's domain separator.
pub fn settlement_domain(chain_id: u64, settlement: H160) -> H256 {
	domain_separator(DOMAIN_NAME, DOMAIN_VERSION, chain_id, settlement)
}

/// The digest a payer signs: the receiver may claim up to `max_claimable` from `channel_id`.
pub fn voucher_digest(channel_id: &H256, max_claimable: u128, domain: &H256) -> H256 {
	let mut buf = [0u8; 32 * 3];
	buf[0..32].copy_from_slice(&VOUCHER_TYPEHASH);
	buf[32..64].copy_from_slice(channel_id.as_bytes());
	buf[80..96].copy_from_slice(&max_claimable.to_be_bytes());
	typed_data_digest(domain, &H256(keccak_256(&buf)))
}

#[cfg(test)]
mod tests {
	//! The scheme's published vectors, at the canonical settlement address on chain 84532.

	use hex_literal::hex;

	use super::*;

	const SETTLEMENT: H160 = SETTLEMENT_ADDRESS;

	#[test]
	fn the_settlement_address_is_the_canonical_one() {
		assert_eq!(SETTLEMENT_ADDRESS, H160(hex!("4020074e9dF2ce1deE5A9C1b5c3f541D02a10003")));
	}

	fn config(salt: [u8; 32]) -> ChannelConfig {
		let payer = H160(hex!("70997970C51812dc3A010C7d01b50e0d17dc79C8"));
		ChannelConfig {
			payer,
			payer_authorizer: payer,
			receiver: H160(hex!("19ee5100D3a1e687F85B952bd3FbEc108Ab6A8d7")),
			receiver_authorizer: H160(hex!("d407e409E34E0b9afb99EcCeb609bDbcD5e7f1bf")),
			token: H160(hex!("036CbD53842c5426634e7929541eC2318f3dCF7e")),
			withdraw_delay: 900,
			salt: H256(salt),
		}
	}

	#[test]
	fn type_hashes_match_their_type_strings() {
		assert_eq!(keccak_256(b"ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)"), CHANNEL_CONFIG_TYPEHASH);
		assert_eq!(
			keccak_256(b"Voucher(bytes32 channelId,uint128 maxClaimableAmount)"),
			VOUCHER_TYPEHASH
		);
	}

	#[test]
	fn channel_ids_and_voucher_digests_are_the_published_vectors() {
		let id = config([0; 32]).channel_id(84532, SETTLEMENT);
		assert_eq!(id.0, hex!("5fafb915f0dbee350d7f84d91802dea47e8e3a71929c3cd79da161c291fb28bd"));
		assert_eq!(
			config([0x42; 32]).channel_id(84532, SETTLEMENT).0,
			hex!("7b3bf678a448e1882ab277b789987b5dee3b7cc6fc2c7e91687a74b54b474423")
		);
		assert_eq!(
			config([0; 32]).channel_id(1, SETTLEMENT).0,
			hex!("511b6617e235c4e0c4837f7b51700a3b324110c88225aee727a74536cce36192")
		);
		let domain = settlement_domain(84532, SETTLEMENT);
		assert_eq!(
			voucher_digest(&id, 1000, &domain).0,
			hex!("a2874adbecca0abb1884b4ac1c100e3906d25208ad0c9e6a8fcf9790ccfa2246")
		);
		assert_eq!(
			voucher_digest(&id, 0, &domain).0,
			hex!("4187c22619aeed9d5381a1d0c37c9e936e6dfe666f963f7ccfd524e3b8f55173")
		);
	}
}
