//! The EIP-712 messages of the batch-settlement contract: the channel id, the voucher a payer
//! signs, the cooperative refund and the claim batch a receiver authorizer signs.
//!
//! The domain is the settlement contract's: `{"x402 Batch Settlement", "1", chainId,
//! verifyingContract}`. A channel id is the *full* EIP-712 digest of its config (`0x1901 ‖
//! domainSeparator ‖ hashStruct(config)`), so it binds the chain and the contract address as
//! well as every field of the config: the same config on another chain, or under another
//! settlement contract, is another channel.

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::{sol, Eip712Domain, SolStruct};

/// The settlement contract's EIP-712 domain name.
pub const DOMAIN_NAME: &str = "x402 Batch Settlement";
/// The settlement contract's EIP-712 domain version.
pub const DOMAIN_VERSION: &str = "1";

sol! {
	/// A channel's immutable configuration. Its EIP-712 digest is the channel id.
	#[derive(Debug, PartialEq, Eq, Default)]
	struct ChannelConfig {
		address payer;
		address payerAuthorizer;
		address receiver;
		address receiverAuthorizer;
		address token;
		uint40 withdrawDelay;
		bytes32 salt;
	}

	/// What a payer signs: the receiver may claim up to `maxClaimableAmount` in total from
	/// the channel (cumulative, not per request).
	#[derive(Debug, PartialEq, Eq)]
	struct Voucher {
		bytes32 channelId;
		uint128 maxClaimableAmount;
	}

	/// What a receiver authorizer signs to refund `amount` to the payer, once per `nonce`.
	#[derive(Debug, PartialEq, Eq)]
	struct Refund {
		bytes32 channelId;
		uint256 nonce;
		uint128 amount;
	}

	/// One row of a claim batch: the voucher's channel and bound, and the new total claimed.
	#[derive(Debug, PartialEq, Eq)]
	struct ClaimEntry {
		bytes32 channelId;
		uint128 maxClaimableAmount;
		uint128 totalClaimed;
	}

	/// What a receiver authorizer signs so that anyone may submit a batch of claims.
	#[derive(Debug, PartialEq, Eq)]
	struct ClaimBatch {
		ClaimEntry[] claims;
	}
}

/// The settlement contract's domain on `chain_id` at `settlement`.
pub fn domain(chain_id: u64, settlement: Address) -> Eip712Domain {
	Eip712Domain::new(
		Some(DOMAIN_NAME.into()),
		Some(DOMAIN_VERSION.into()),
		Some(U256::from(chain_id)),
		Some(settlement),
		None,
	)
}

/// The channel id of `config`: its full EIP-712 digest under `domain`.
pub fn channel_id(config: &ChannelConfig, domain: &Eip712Domain) -> B256 {
	config.eip712_signing_hash(domain)
}

/// The digest a payer (authorizer) signs for a voucher of `max_claimable` on `channel_id`.
pub fn voucher_digest(channel_id: B256, max_claimable: u128, domain: &Eip712Domain) -> B256 {
	Voucher { channelId: channel_id, maxClaimableAmount: max_claimable }.eip712_signing_hash(domain)
}

/// The digest a receiver authorizer signs to refund `amount` under refund `nonce`.
pub fn refund_digest(channel_id: B256, nonce: U256, amount: u128, domain: &Eip712Domain) -> B256 {
	Refund { channelId: channel_id, nonce, amount }.eip712_signing_hash(domain)
}

/// The digest a receiver authorizer signs for a batch of claims.
pub fn claim_batch_digest(claims: &[ClaimEntry], domain: &Eip712Domain) -> B256 {
	ClaimBatch { claims: claims.to_vec() }.eip712_signing_hash(domain)
}

#[cfg(test)]
mod tests {
	//! The vectors published with the scheme (viem `hashTypedData`, reproduced by several
	//! implementations), at the canonical settlement address on Base Sepolia (84532).

	use alloy_primitives::{address, b256, hex, Signature};

	use super::*;
	use crate::schemes::{batch_settlement::SETTLEMENT_ADDRESS, exact::recover_signer};

	const PAYER: Address = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");

	fn vector_config(salt: B256) -> ChannelConfig {
		ChannelConfig {
			payer: PAYER,
			payerAuthorizer: PAYER,
			receiver: address!("19ee5100D3a1e687F85B952bd3FbEc108Ab6A8d7"),
			receiverAuthorizer: address!("d407e409E34E0b9afb99EcCeb609bDbcD5e7f1bf"),
			token: address!("036CbD53842c5426634e7929541eC2318f3dCF7e"),
			withdrawDelay: alloy_primitives::aliases::U40::from(900u64),
			salt,
		}
	}

	#[test]
	fn the_channel_id_is_the_published_vector_and_binds_salt_and_chain() {
		let base_sepolia = domain(84532, SETTLEMENT_ADDRESS);
		assert_eq!(
			channel_id(&vector_config(B256::ZERO), &base_sepolia),
			b256!("5fafb915f0dbee350d7f84d91802dea47e8e3a71929c3cd79da161c291fb28bd")
		);
		assert_eq!(
			channel_id(&vector_config(B256::repeat_byte(0x42)), &base_sepolia),
			b256!("7b3bf678a448e1882ab277b789987b5dee3b7cc6fc2c7e91687a74b54b474423")
		);
		assert_eq!(
			channel_id(&vector_config(B256::ZERO), &domain(1, SETTLEMENT_ADDRESS)),
			b256!("511b6617e235c4e0c4837f7b51700a3b324110c88225aee727a74536cce36192")
		);
	}

	#[test]
	fn the_type_strings_are_the_contracts() {
		assert_eq!(
			ChannelConfig::eip712_encode_type(),
			"ChannelConfig(address payer,address payerAuthorizer,address receiver,address \
			 receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)"
		);
		assert_eq!(
			Voucher::eip712_encode_type(),
			"Voucher(bytes32 channelId,uint128 maxClaimableAmount)"
		);
		assert_eq!(
			Refund::eip712_encode_type(),
			"Refund(bytes32 channelId,uint256 nonce,uint128 amount)"
		);
		assert_eq!(
			ClaimBatch::eip712_encode_type(),
			"ClaimBatch(ClaimEntry[] claims)ClaimEntry(bytes32 channelId,uint128 \
			 maxClaimableAmount,uint128 totalClaimed)"
		);
	}

	#[test]
	fn the_voucher_digests_and_the_payers_signature_are_the_published_vectors() {
		let base_sepolia = domain(84532, SETTLEMENT_ADDRESS);
		let id = channel_id(&vector_config(B256::ZERO), &base_sepolia);
		let digest = voucher_digest(id, 1000, &base_sepolia);
		assert_eq!(
			digest,
			b256!("a2874adbecca0abb1884b4ac1c100e3906d25208ad0c9e6a8fcf9790ccfa2246")
		);
		assert_eq!(
			voucher_digest(id, 0, &base_sepolia),
			b256!("4187c22619aeed9d5381a1d0c37c9e936e6dfe666f963f7ccfd524e3b8f55173")
		);
		let bytes = hex!(
			"6ad7a9c0cd0172b09704c56dd22de6d2877cf912de007dcdc7757a68756b84af2d2767327e6b84836fe2b48fd1b09675957c2fa4ec6c33a146dddd0e823cf1341c"
		);
		let signature = Signature::from_raw(&bytes).unwrap();
		assert_eq!(recover_signer(&signature, &digest).unwrap(), PAYER);
	}
}
