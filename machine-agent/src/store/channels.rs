//! The `channels` column family, created empty and reserved for payment channels: the typed
//! state of one channel, as the channel issue will persist it.

use m2m_x402::{Address, B256, U256};
use serde::{Deserialize, Serialize};

/// Every store already has this column family (it is in the list [`Store::open`] creates), so
/// the channel issue adds none; it bumps the schema when it starts writing [`ChannelRecord`]s,
/// so that an older build, which cannot see a channel, refuses the store instead of ignoring
/// the money held in one.
///
/// [`Store::open`]: super::Store::open
pub(super) const CF: &str = "channels";

/// One payment channel, as the channel issue will persist it (JSON, keyed by channel id):
/// what the payer deposited, and the best voucher the payee holds, which is what it can claim.
// Nothing writes one until the channel issue; only the test builds one meanwhile.
#[allow(dead_code)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
	pub channel_id: B256,
	pub payer: Address,
	pub payee: Address,
	/// What the payer locked in the channel, in the asset's base units.
	pub deposit: U256,
	/// The highest cumulative amount a voucher authorized so far, in base units: vouchers are
	/// cumulative, so only the highest one counts.
	pub cumulative_amount: U256,
	/// The signature of that voucher (0x-hex); `None` before the first voucher.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub voucher_signature: Option<String>,
	pub status: ChannelStatus,
}

/// Where a channel is in its life.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelStatus {
	/// Deposited; vouchers are being exchanged.
	Open,
	/// A close was requested on-chain and has not completed yet.
	Closing,
	/// Closed on-chain: no voucher can be claimed any more.
	Closed,
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn a_channel_record_survives_a_round_trip_through_json() {
		let record = ChannelRecord {
			channel_id: B256::repeat_byte(1),
			payer: Address::repeat_byte(2),
			payee: Address::repeat_byte(3),
			deposit: U256::from(1_000_000u64),
			cumulative_amount: U256::from(30_000u64),
			voucher_signature: Some(format!("0x{}", "ab".repeat(65))),
			status: ChannelStatus::Open,
		};
		let json = serde_json::to_vec(&record).expect("serializable");
		assert_eq!(serde_json::from_slice::<ChannelRecord>(&json).unwrap(), record);

		// Before the first voucher the signature is left out, and reads back as absent.
		let fresh =
			ChannelRecord { voucher_signature: None, cumulative_amount: U256::ZERO, ..record };
		let json = serde_json::to_string(&fresh).expect("serializable");
		assert!(!json.contains("voucher_signature"), "{json}");
		assert!(json.contains(r#""status":"open""#), "{json}");
		assert_eq!(serde_json::from_str::<ChannelRecord>(&json).unwrap(), fresh);
	}
}
