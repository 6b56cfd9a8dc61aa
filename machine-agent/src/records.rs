//! The typed payment records the store keeps, as plain serde types with no RocksDB in them, so
//! that the running totals and the reports read them without depending on the store.

use m2m_x402::v2::PaymentPayload;
use m2m_x402_buyer::Locator;
use serde::{Deserialize, Serialize};

/// Who a payment record speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
	Buy,
	Sell,
}

/// A payment's lifecycle: required → signed → submitted → settled / unserved / pending /
/// failed / refunded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
	Required,
	Signed,
	Submitted,
	Settled,
	/// Settled on-chain, but the resource was not delivered yet.
	Unserved,
	Pending,
	Failed,
	Refunded,
}

impl State {
	pub const ALL: [State; 8] = [
		State::Required,
		State::Signed,
		State::Submitted,
		State::Settled,
		State::Unserved,
		State::Pending,
		State::Failed,
		State::Refunded,
	];

	pub fn name(self) -> &'static str {
		match self {
			State::Required => "required",
			State::Signed => "signed",
			State::Submitted => "submitted",
			State::Settled => "settled",
			State::Unserved => "unserved",
			State::Pending => "pending",
			State::Failed => "failed",
			State::Refunded => "refunded",
		}
	}

	/// Signed, submitted, unserved or pending: the money may have moved without the purchase
	/// completing, so it is resumed (sent again as signed), never re-signed.
	pub fn in_flight(self) -> bool {
		matches!(self, State::Signed | State::Submitted | State::Unserved | State::Pending)
	}
}

/// One payment, bought or sold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentRecord {
	pub role: Role,
	pub state: State,
	pub url: String,
	/// `0.01 USDT`.
	pub price: String,
	/// Base units.
	pub amount: String,
	pub network: String,
	pub asset: String,
	/// The payee (buying) or the payer (selling).
	pub counterparty: String,
	/// Selling over libp2p: the buyer's PeerId, proven by Noise.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub counterparty_peer: Option<String>,
	/// Selling over libp2p: the on-chain device of that PeerId, if it is one.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub counterparty_device: Option<u64>,
	#[serde(default)]
	pub payment_id: Option<String>,
	/// Buying: where the payment goes, to send it again if the answer never came.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub locator: Option<Locator>,
	/// Buying: the protocol version the seller spoke (1 or 2).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub version: Option<u32>,
	/// Buying: the payment as signed (v2 form).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payload: Option<PaymentPayload>,
	#[serde(default)]
	pub transaction: String,
	#[serde(default)]
	pub reason: String,
	pub created_ms: u64,
	pub updated_ms: u64,
}
