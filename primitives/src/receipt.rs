//! Receipt identity, assets and the accounting calendar.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_crypto_hashing::blake2_256;

use crate::{H160, H256};

/// Identifier of a settlement receipt.
pub type ReceiptId = H256;

/// Domain tag of receipt ids.
pub const RECEIPT_ID_DOMAIN: &[u8] = b"m2m-pay/receipt/v1";

/// Milliseconds in an accounting day (UTC).
pub const MILLIS_PER_DAY: u64 = 86_400_000;

/// A token on some EVM chain: the key of the accepted-asset registry and of every total.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	PartialOrd,
	Ord,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	serde::Serialize,
	serde::Deserialize,
)]
pub struct AssetKey {
	/// EVM chain id (`eip155:<chain_id>` in x402 terms).
	pub chain_id: u64,
	/// The token contract.
	pub token: H160,
}

/// The id of a receipt for an `exact` (EIP-3009) payment.
///
/// A token accepts each `(payer, nonce)` authorization once, so the payment itself is unique
/// per (chain, token, payer, nonce); deriving the id from exactly that makes a second record of
/// the same payment collide, whoever submits it and however often it is retried.
pub fn exact_receipt_id(asset: &AssetKey, payer: &H160, authorization_nonce: &H256) -> ReceiptId {
	H256(blake2_256(
		&(RECEIPT_ID_DOMAIN, b"exact", asset.chain_id, asset.token, payer, authorization_nonce)
			.encode(),
	))
}

/// The id of a receipt for a payment-channel claim: a channel's claimed total only grows, so
/// (chain, token, channel, total claimed after the claim) names one claim, whoever records it.
pub fn channel_receipt_id(asset: &AssetKey, channel_id: &H256, total_claimed: u128) -> ReceiptId {
	H256(blake2_256(
		&(RECEIPT_ID_DOMAIN, b"channel", asset.chain_id, asset.token, channel_id, total_claimed)
			.encode(),
	))
}

/// The UTC day number (days since 1970-01-01) of a Unix time in milliseconds.
pub fn day_of(unix_millis: u64) -> u32 {
	(unix_millis / MILLIS_PER_DAY) as u32
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn receipt_id_depends_on_every_component() {
		let asset = AssetKey { chain_id: 3338, token: H160::repeat_byte(1) };
		let id = exact_receipt_id(&asset, &H160::repeat_byte(2), &H256::repeat_byte(3));
		assert_eq!(id, exact_receipt_id(&asset, &H160::repeat_byte(2), &H256::repeat_byte(3)));
		let other_chain = AssetKey { chain_id: 9990, ..asset };
		assert_ne!(
			id,
			exact_receipt_id(&other_chain, &H160::repeat_byte(2), &H256::repeat_byte(3))
		);
		let other_token = AssetKey { token: H160::repeat_byte(9), ..asset };
		assert_ne!(
			id,
			exact_receipt_id(&other_token, &H160::repeat_byte(2), &H256::repeat_byte(3))
		);
		assert_ne!(id, exact_receipt_id(&asset, &H160::repeat_byte(9), &H256::repeat_byte(3)));
		assert_ne!(id, exact_receipt_id(&asset, &H160::repeat_byte(2), &H256::repeat_byte(9)));
	}

	#[test]
	fn days_split_at_utc_midnight() {
		assert_eq!(day_of(0), 0);
		assert_eq!(day_of(MILLIS_PER_DAY - 1), 0);
		assert_eq!(day_of(MILLIS_PER_DAY), 1);
		// 2026-11-21T00:00:00Z
		assert_eq!(day_of(1_795_219_200_000), 20_778);
	}
}
