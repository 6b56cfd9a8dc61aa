//! Claims of the vouchers this device holds, in the background.
//!
//! A voucher is money only once claimed on-chain, and a payer can withdraw what is not
//! claimed once its withdraw delay has passed. So the worker claims (through the seller core,
//! [`Seller::claim_channels`], which also settles the claimed tokens to this device):
//! - when a payer starts a withdrawal from a channel that owes this device (read from the
//!   settlement contract's `pendingWithdrawals`), at once, well before the delay ends;
//! - when what all channels owe reaches `[channels] max_unclaimed`;
//! - otherwise every `[channels] claim_interval_secs`, if anything is owed.
//!
//! A claim that fails is retried on the next tick; claims are cumulative, so one that landed
//! unseen is a no-op the next time.
//!
//! Every claim that landed becomes a receipt on the chain (`PaymentProof::Channel`): what the
//! channel's claimed total grew by since its last receipt, and the requests that covers. The
//! receipt and the channel's receipted cursor are written together, so a crash between a claim
//! and its receipt only delays the receipt to the next tick.

use std::{sync::Arc, time::Duration};

use m2m_evm::{
	alloy::providers::DynProvider,
	channels::{BatchSettlement, SETTLEMENT_ADDRESS},
};
use m2m_primitives::{receipt::AssetKey, H256};
use m2m_x402_seller::{ChannelRecord, ChannelStore, Seller};

use crate::{selling::QueuedReceipt, store::Store};

/// The resource a channel receipt names: a channel pays for whatever its payer bought from
/// this device under one offer's terms, so its receipts are accounted per channel, not per
/// service.
pub const CHANNEL_RESOURCE: &str = "/batch-settlement";

/// How often the worker looks; claims themselves follow the rules above.
const TICK: Duration = Duration::from_secs(5);

/// Why a claim is due now, if it is.
fn due(
	owed: &[ChannelRecord],
	withdrawing: bool,
	threshold: u128,
	since_last: Duration,
	interval: Duration,
) -> Option<&'static str> {
	let total: u128 = owed.iter().map(ChannelRecord::unclaimed).sum();
	if total == 0 {
		return None;
	}
	if withdrawing {
		Some("a payer started a withdrawal from a channel that owes this device")
	} else if total >= threshold {
		Some("the unclaimed total reached [channels] max_unclaimed")
	} else if since_last >= interval {
		Some("the claim interval passed")
	} else {
		None
	}
}

/// Queues a receipt for every channel whose claims grew since its last receipt (with the
/// transaction of its last claim). Returns how many were queued.
pub fn receipt_claims(store: &Store, asset: AssetKey) -> Result<usize, String> {
	let mut queued = 0;
	for record in ChannelStore::all(store)? {
		let receipted = store.channel_receipted(&record.channel_id).map_err(|e| e.to_string())?;
		let transaction = record.last_claim.parse::<H256>().unwrap_or_default();
		let Some((id, receipt, after)) =
			QueuedReceipt::channel(asset, &record, receipted, CHANNEL_RESOURCE, transaction)?
		else {
			continue;
		};
		store
			.queue_channel_receipt(&record.channel_id, after, &id, &codec::Encode::encode(&receipt))
			.map_err(|e| e.to_string())?;
		tracing::info!(
			channel = %record.channel_id, claimed_total = record.total_claimed,
			added = record.total_claimed - receipted.amount, "channel claim receipt queued"
		);
		queued += 1;
	}
	Ok(queued)
}

/// What the worker needs besides the seller and the store.
pub struct Claims {
	pub provider: DynProvider,
	pub interval: Duration,
	/// `[channels] max_unclaimed`, base units.
	pub threshold: u128,
	/// The asset the device's receipts are in.
	pub asset: AssetKey,
	/// Wakes the chain worker to submit new receipts.
	pub wake: Arc<tokio::sync::Notify>,
}

/// Runs forever: see the module's rules.
pub async fn worker(seller: Arc<Seller>, store: Arc<Store>, claims: Claims) {
	let Claims { provider, interval, threshold, asset, wake } = claims;
	let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, provider);
	let mut last = tokio::time::Instant::now();
	loop {
		tokio::time::sleep(TICK.min(interval)).await;
		// Claims made (by an earlier tick, a sale at its bound, or a previous run) that have no
		// receipt yet.
		match receipt_claims(&store, asset) {
			Ok(0) => {},
			Ok(_) => wake.notify_one(),
			Err(e) => tracing::error!(error = %e, "cannot queue channel receipts"),
		}
		let owed: Vec<ChannelRecord> = match ChannelStore::all(&*store) {
			Ok(all) => all.into_iter().filter(|c| c.unclaimed() > 0).collect(),
			Err(e) => {
				tracing::error!(error = %e, "cannot read the channels to claim them");
				continue;
			},
		};
		if owed.is_empty() {
			last = tokio::time::Instant::now();
			continue;
		}
		let mut withdrawing = false;
		for channel in &owed {
			match contract.pendingWithdrawals(channel.channel_id).call().await {
				Ok(w) if w.initiatedAt.to::<u64>() != 0 => {
					tracing::warn!(channel = %channel.channel_id, owed = channel.unclaimed(), "the payer started a withdrawal; claiming now");
					withdrawing = true;
				},
				Ok(_) => {},
				Err(e) => {
					tracing::warn!(channel = %channel.channel_id, error = %e, "cannot read the channel's withdrawal state")
				},
			}
		}
		let Some(why) = due(&owed, withdrawing, threshold, last.elapsed(), interval) else {
			continue;
		};
		tracing::info!(channels = owed.len(), %why, "claiming channel vouchers");
		match seller.claim_channels().await {
			Ok(report) => {
				let amount: u128 = report.claimed.iter().map(|c| c.amount).sum();
				tracing::info!(
					claimed = report.claimed.len(),
					amount,
					failed = report.failed.len(),
					settled = report.settled.len(),
					"channel claims done"
				);
			},
			Err(e) => tracing::warn!(error = %e, "channel claims failed; retried on the next tick"),
		}
		last = tokio::time::Instant::now();
	}
}

#[cfg(test)]
mod tests {
	use m2m_x402::{
		schemes::batch_settlement::rules::{self, Offer},
		Address, B256,
	};

	use super::*;

	fn owing(charged: u128, claimed: u128) -> ChannelRecord {
		let offer = Offer {
			chain_id: 33380,
			asset: Address::repeat_byte(0x11),
			token_domain: ("Tether USD".into(), "1".into()),
			pay_to: Address::repeat_byte(0x22),
			receiver_authorizer: Address::repeat_byte(0x33),
			withdraw_delay: 900,
			max_price: 10_000,
			max_timeout_seconds: 60,
		};
		let config = rules::config_for(&offer, Address::repeat_byte(0x44), B256::ZERO);
		ChannelRecord {
			channel_id: B256::repeat_byte(1),
			config: rules::config_wire(&config),
			requirements: rules::requirements(&offer),
			charged,
			signed: charged,
			signature: "0x".into(),
			balance: 1_000_000,
			total_claimed: claimed,
			withdraw_requested_at: 0,
			refund_nonce: "0".into(),
			requests: 1,
			unclaimed_requests: 1,
			last_claim: String::new(),
		}
	}

	#[test]
	fn claims_are_due_on_a_withdrawal_at_the_threshold_or_after_the_interval() {
		let minute = Duration::from_secs(60);
		let soon = Duration::from_secs(5);
		assert_eq!(due(&[owing(10, 10)], true, 100, minute, minute), None, "nothing owed");
		assert!(due(&[owing(50, 0)], true, 100, soon, minute).unwrap().contains("withdrawal"));
		assert!(due(&[owing(60, 0), owing(40, 0)], false, 100, soon, minute)
			.unwrap()
			.contains("max_unclaimed"));
		assert_eq!(due(&[owing(50, 0)], false, 100, soon, minute), None, "not yet");
		assert!(due(&[owing(50, 0)], false, 100, minute, minute).unwrap().contains("interval"));
	}
}
