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
