//! Where a buyer counts what it committed today, per network and asset.

use std::{collections::HashMap, sync::Mutex};

use m2m_x402::{Address, U256};

/// The ledger could not be read or written. The buyer then refuses to pay: paying without
/// counting could overrun the budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("spend ledger: {0}")]
pub struct LedgerError(pub String);

/// Daily spend counters. `add` must be durable when it returns: the buyer calls it before a
/// signed authorization leaves the device.
pub trait SpendLedger: Send + Sync {
	fn spent(&self, day: u64, network: &str, asset: Address) -> Result<U256, LedgerError>;
	fn add(&self, day: u64, network: &str, asset: Address, amount: U256)
		-> Result<(), LedgerError>;
}

/// Counters in memory (they restart at zero with the process).
#[derive(Default)]
pub struct MemoryLedger(Mutex<HashMap<(u64, String, Address), U256>>);

impl SpendLedger for MemoryLedger {
	fn spent(&self, day: u64, network: &str, asset: Address) -> Result<U256, LedgerError> {
		let map = self.0.lock().map_err(|e| LedgerError(e.to_string()))?;
		Ok(map.get(&(day, network.to_string(), asset)).copied().unwrap_or_default())
	}

	fn add(
		&self,
		day: u64,
		network: &str,
		asset: Address,
		amount: U256,
	) -> Result<(), LedgerError> {
		let mut map = self.0.lock().map_err(|e| LedgerError(e.to_string()))?;
		let total = map.entry((day, network.to_string(), asset)).or_default();
		*total = total.saturating_add(amount);
		Ok(())
	}
}
