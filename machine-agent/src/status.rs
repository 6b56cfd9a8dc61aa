//! `machine-agent status` and `/status`: who the device is and how its payments stand.

use std::sync::atomic::Ordering;

use m2m_chain_client::DeviceKeys;
use serde_json::{json, Value};

use crate::{
	chain::Health,
	config::Config,
	store::{Role, State, Store},
};

pub fn of(config: &Config, keys: &DeviceKeys, store: &Store, health: Option<&Health>) -> Value {
	let tally = store.tally();
	let count = |role: Role, pred: fn(State) -> bool| -> u64 {
		State::ALL.into_iter().filter(|s| pred(*s)).map(|s| tally.count(role, s)).sum()
	};
	json!({
		"device": config.device.name,
		"account": keys.account_id().to_string(),
		"evm_address": m2m_x402::Address::from(keys.evm_address().0).to_checksum(None),
		"device_id": health.and_then(|h| h.device_id()),
		"peer_id": crate::p2p::keypair(keys).public().to_peer_id().to_string(),
		"chain_connected": health.map(|h| h.chain_connected.load(Ordering::Relaxed)),
		"evm_connected": health.map(|h| h.evm_connected.load(Ordering::Relaxed)),
		"services": config.services.iter().map(|s| json!({"path": s.path, "price": format!("{} USDT", s.price)})).collect::<Vec<_>>(),
		"sales_settled": count(Role::Sell, |s| s == State::Settled),
		"purchases_settled": count(Role::Buy, |s| s == State::Settled),
		"purchases_in_flight": count(Role::Buy, State::in_flight),
		"purchases_failed": count(Role::Buy, |s| s == State::Failed),
		"outbox_depth": tally.outbox,
		"receipts_awaiting_finality": tally.awaiting_finality,
		"dead_letters": store.dead_letters(),
		"channels": crate::channels::list(store).unwrap_or_else(|e| json!({"error": e.to_string()})),
	})
}

/// `machine-agent payments` and `/payments`: the `limit` most recently updated payment records,
/// newest first. Over libp2p a sale names the buyer's PeerId and, if it is one, its device.
pub fn recent_payments(store: &Store, limit: usize) -> Value {
	let mut records: Vec<_> = store.payments().into_iter().map(|(_, r)| r).collect();
	records.sort_by_key(|r| std::cmp::Reverse(r.updated_ms));
	records.truncate(limit);
	Value::Array(
		records
			.into_iter()
			.map(|r| {
				json!({
					"role": r.role,
					"state": r.state.name(),
					"resource": r.url,
					"price": r.price,
					"amount": r.amount,
					"counterparty": r.counterparty,
					"counterparty_peer": r.counterparty_peer,
					"counterparty_device": r.counterparty_device,
					"transaction": r.transaction,
					"reason": r.reason,
					"updated_ms": r.updated_ms,
				})
			})
			.collect(),
	)
}
