//! Running totals of the store, for `/metrics` and `status`: counted once when the store
//! opens, then kept up to date by every write, so a scrape costs nothing however long the
//! device's history (a scan per scrape grew with every payment ever made).

use std::collections::BTreeMap;

use m2m_x402::U256;

use crate::records::{PaymentRecord, Role, State};

/// Payments by role and state, settled amounts by asset, and the outbox depth.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
	pub payments: BTreeMap<(Role, State), u64>,
	/// Settled sales, by asset, in base units.
	pub revenue: BTreeMap<String, U256>,
	/// Settled purchases, by asset, in base units.
	pub spend: BTreeMap<String, U256>,
	/// Receipts waiting to be sent or to become final.
	pub outbox: u64,
	/// Of those, receipts in a block that is not final yet.
	pub awaiting_finality: u64,
	/// Receipts the chain refused for good.
	pub dead_letters: u64,
}

impl Tally {
	/// Accounts for a record replacing `old` (absent for a new one).
	pub fn replace(&mut self, old: Option<&PaymentRecord>, new: &PaymentRecord) {
		if let Some(old) = old {
			self.apply(old, false);
		}
		self.apply(new, true);
	}

	fn apply(&mut self, record: &PaymentRecord, add: bool) {
		let count = self.payments.entry((record.role, record.state)).or_default();
		*count = if add { *count + 1 } else { count.saturating_sub(1) };
		if record.state == State::Settled {
			let amount = U256::from_str_radix(&record.amount, 10).unwrap_or_default();
			let sums = if record.role == Role::Buy { &mut self.spend } else { &mut self.revenue };
			let total = sums.entry(record.asset.clone()).or_default();
			*total = if add { total.saturating_add(amount) } else { total.saturating_sub(amount) };
		}
	}

	pub fn count(&self, role: Role, state: State) -> u64 {
		self.payments.get(&(role, state)).copied().unwrap_or(0)
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn record(role: Role, state: State, amount: &str) -> PaymentRecord {
		PaymentRecord {
			role,
			state,
			url: "http://x/r".into(),
			price: String::new(),
			amount: amount.into(),
			network: "eip155:1".into(),
			asset: "0xA".into(),
			counterparty: String::new(),
			counterparty_peer: None,
			counterparty_device: None,
			payment_id: None,
			locator: None,
			version: None,
			payload: None,
			transaction: String::new(),
			reason: String::new(),
			created_ms: 0,
			updated_ms: 0,
		}
	}

	#[test]
	fn a_payment_moves_between_states_and_is_summed_once_settled() {
		let mut t = Tally::default();
		let signed = record(Role::Buy, State::Signed, "10");
		t.replace(None, &signed);
		assert_eq!(t.count(Role::Buy, State::Signed), 1);
		let settled = record(Role::Buy, State::Settled, "10");
		t.replace(Some(&signed), &settled);
		assert_eq!(t.count(Role::Buy, State::Signed), 0);
		assert_eq!(t.count(Role::Buy, State::Settled), 1);
		assert_eq!(t.spend["0xA"], U256::from(10));
		// Recording the same sale twice (a recovered sale) counts it once.
		let sale = record(Role::Sell, State::Settled, "7");
		t.replace(None, &sale);
		t.replace(Some(&sale), &sale);
		assert_eq!(t.count(Role::Sell, State::Settled), 1);
		assert_eq!(t.revenue["0xA"], U256::from(7));
	}
}
