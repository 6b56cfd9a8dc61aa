//! Settled sales, keyed by the authorization that paid for them.

use std::{
	collections::{HashSet, VecDeque},
	sync::Mutex,
};

use m2m_x402::{paywall::Accepted, schemes::Payload, v2::SettleResponse, Problem};

use crate::Sale;

/// Which authorization pays for a sale: unique per payment, whoever presents it.
///
/// For `exact` it is `(payer, nonce)`. A nonce alone is not enough: nonces are public once a
/// payment is seen, and another payer may sign an authorization under the same nonce. For a
/// channel it is the channel: its requests are served one at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaleKey(String);

impl SaleKey {
	/// The key of a matched payment, or why it has none.
	pub fn of(accepted: &Accepted) -> Result<Self, Problem> {
		let payment = &accepted.payment;
		// One sale per authorization: what identifies it is the scheme's business.
		match Payload::parse(payment)? {
			Payload::Exact(wire) => {
				let a = &wire.authorization;
				Ok(SaleKey(format!(
					"{}/{}/{}",
					payment.accepted.scheme,
					a.from.to_ascii_lowercase(),
					a.nonce.to_ascii_lowercase()
				)))
			},
			// The id the voucher names; a mismatch with its config is refused right after.
			Payload::BatchSettlement(channel) => Ok(SaleKey(format!(
				"{}/{}",
				payment.accepted.scheme,
				channel.voucher().channel_id.to_ascii_lowercase()
			))),
		}
	}

	/// The key of the sales of one channel.
	pub fn channel(channel_id: &m2m_x402::B256) -> Self {
		SaleKey(format!("{}/{channel_id}", m2m_x402::schemes::batch_settlement::SCHEME))
	}

	/// `exact/<payer>/<nonce>` or `batch-settlement/<channel id>`, lower case.
	pub fn as_str(&self) -> &str {
		&self.0
	}
}

/// Where settled sales go. `settled` runs **before** the resource is released and must be
/// durable when it returns (an error withholds the resource). `sold` answers whether a sale
/// of that authorization was recorded, so that a payment presented again after it was served
/// buys nothing more.
pub trait SaleRecorder: Send + Sync {
	fn settled(
		&self,
		sale: &Sale,
		settlement: &SettleResponse,
		resource: &str,
	) -> Result<(), String>;
	fn sold(&self, key: &SaleKey) -> Result<bool, String>;
}

/// Sales remembered in memory (keys only), the oldest forgotten beyond a capacity. Enough
/// for a seller without a disk; a device records its sales durably.
pub struct MemorySales {
	capacity: usize,
	state: Mutex<(HashSet<SaleKey>, VecDeque<SaleKey>)>,
}

impl MemorySales {
	pub const DEFAULT_CAPACITY: usize = 100_000;

	pub fn with_capacity(capacity: usize) -> Self {
		Self { capacity: capacity.max(1), state: Mutex::default() }
	}
}

impl Default for MemorySales {
	fn default() -> Self {
		Self::with_capacity(Self::DEFAULT_CAPACITY)
	}
}

impl SaleRecorder for MemorySales {
	fn settled(&self, sale: &Sale, _: &SettleResponse, _: &str) -> Result<(), String> {
		let mut guard = self.state.lock().expect("sales lock");
		let (keys, order) = &mut *guard;
		if keys.insert(sale.key.clone()) {
			order.push_back(sale.key.clone());
			while order.len() > self.capacity {
				if let Some(old) = order.pop_front() {
					keys.remove(&old);
				}
			}
		}
		Ok(())
	}

	fn sold(&self, key: &SaleKey) -> Result<bool, String> {
		Ok(self.state.lock().expect("sales lock").0.contains(key))
	}
}
