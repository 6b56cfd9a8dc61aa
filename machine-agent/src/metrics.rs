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
	channels(store, &mut out);
	out
}

/// Channel gauges, summed over the channels of each role (a handful per device: read from
/// their records, which are state, not history).
fn channels(store: &Store, out: &mut String) {
	use m2m_x402_buyer::BuyerChannelStore;
	use m2m_x402_seller::ChannelStore;
	let sold = ChannelStore::all(store).unwrap_or_default();
	let bought = BuyerChannelStore::all(store).unwrap_or_default();
	let sell = |f: fn(&m2m_x402_seller::ChannelRecord) -> u128| sold.iter().map(f).sum::<u128>();
	let buy = |f: fn(&m2m_x402_buyer::BuyerChannel) -> u128| bought.iter().map(f).sum::<u128>();
	let rows: [(&str, &str, u128, u128); 5] = [
		("m2m_channels", "Payment channels, by role.", sold.len() as u128, bought.len() as u128),
		(
			"m2m_channel_balance_base_units",
			"Deposits held in the channels.",
			sell(|c| c.balance),
			buy(|c| c.balance),
		),
		(
			"m2m_channel_charged_base_units",
			"Charged from the channels, in total.",
			sell(|c| c.charged),
			buy(|c| c.charged),
		),
		(
			"m2m_channel_claimed_base_units",
			"Claimed on-chain from the channels.",
			sell(|c| c.total_claimed),
			buy(|c| c.total_claimed),
		),
		(
			"m2m_channel_unclaimed_base_units",
			"Charged but not claimed yet: the seller's exposure to a withdrawal.",
			sell(|c| c.unclaimed()),
			buy(|c| c.charged.saturating_sub(c.total_claimed)),
		),
	];
	for (name, help, sell, buy) in rows {
		let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
		let _ = writeln!(out, "{name}{{role=\"sell\"}} {sell}\n{name}{{role=\"buy\"}} {buy}");
	}
}
