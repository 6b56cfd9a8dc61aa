//! `/metrics` in the Prometheus text format: payments by role and state, revenue and spend,
//! outbox depth, chain and EVM connectivity.

use std::{collections::BTreeMap, fmt::Write, sync::atomic::Ordering};

use crate::{
	chain::Health,
	store::{Role, State, Store},
};

pub fn render(store: &Store, health: &Health) -> String {
	// Running totals: a scrape reads counters, never the payment history.
	let tally = store.tally();
	let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
	for (role, name) in [(Role::Buy, "buy"), (Role::Sell, "sell")] {
		for state in State::ALL {
			counts.insert((name, state.name()), tally.count(role, state));
		}
	}
	let (revenue, spend) = (&tally.revenue, &tally.spend);
	let mut out = String::new();
	let _ = writeln!(out, "# HELP m2m_payments Payments by role (buy, sell) and lifecycle state.");
	let _ = writeln!(out, "# TYPE m2m_payments gauge");
	for ((role, state), n) in &counts {
		let _ = writeln!(out, "m2m_payments{{role=\"{role}\",state=\"{state}\"}} {n}");
	}
	for (name, help, sums) in [
		("m2m_revenue_base_units", "Settled sales, in token base units.", revenue),
		("m2m_spend_base_units", "Settled purchases, in token base units.", spend),
	] {
		let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
		for (asset, total) in sums {
			let _ = writeln!(out, "{name}{{asset=\"{asset}\"}} {total}");
		}
	}
	let gauges = [
		(
			"m2m_outbox_depth",
			"Receipts waiting to be sent or to become final on-chain.",
			store.outbox_len() as u64,
		),
		(
			"m2m_receipts_awaiting_finality",
			"Receipts in a block that is not final yet (they stay on the device until it is).",
			tally.awaiting_finality,
		),
		(
			"m2m_receipts_dead_letter",
			"Receipts the chain refused for good (see `machine-agent outbox`).",
			tally.dead_letters,
		),
		(
			"m2m_receipts_recorded_total",
			"Receipts this run saw become final on-chain.",
			health.receipts_recorded.load(Ordering::Relaxed),
		),
		(
			"m2m_chain_connected",
			"1 while the chain RPC is connected.",
			health.chain_connected.load(Ordering::Relaxed) as u64,
		),
		(
			"m2m_evm_connected",
			"1 while the EVM RPC answers.",
			health.evm_connected.load(Ordering::Relaxed) as u64,
		),
	];
	for (name, help, value) in gauges {
		let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
	}
	out
}
