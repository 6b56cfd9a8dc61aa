//! The `spend` column family: the base units committed per UTC day, network and asset, which
//! the buyer's spending policy reads before it signs, failing closed.

use m2m_x402::{Address, U256};
use m2m_x402_buyer::{LedgerError, SpendLedger};

use super::Store;

/// Keys: `<day>/<network>/<asset>`; values: the day's total in base units, decimal.
pub(super) const CF: &str = "spend";

fn spend_key(day: u64, network: &str, asset: Address) -> Vec<u8> {
	format!("{day}/{network}/{asset:?}").into_bytes()
}

impl SpendLedger for Store {
	/// Fails closed: a total that cannot be read or parsed refuses the payment, since
	/// counting it as 0 would let the device overspend its budget.
	fn spent(&self, day: u64, network: &str, asset: Address) -> Result<U256, LedgerError> {
		let key = spend_key(day, network, asset);
		let refuse = |why: String| {
			LedgerError(format!(
				"cannot read today's spend ({why}), so nothing is paid; check the data directory"
			))
		};
		match self.read(CF, &key).map_err(|e| refuse(e.to_string()))? {
			None => Ok(U256::ZERO),
			Some(v) => std::str::from_utf8(&v)
				.ok()
				.and_then(|t| U256::from_str_radix(t, 10).ok())
				.ok_or_else(|| {
					refuse(format!("the record {:?} is damaged", String::from_utf8_lossy(&key)))
				}),
		}
	}

	fn add(
		&self,
		day: u64,
		network: &str,
		asset: Address,
		amount: U256,
	) -> Result<(), LedgerError> {
		let _guard = self.lock.lock().expect("store lock");
		let total = self.spent(day, network, asset)?.saturating_add(amount);
		self.put(CF, &spend_key(day, network, asset), total.to_string().as_bytes())
			.map_err(|e| LedgerError(e.to_string()))
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::store::tests::dir;

	#[test]
	fn a_damaged_spend_total_refuses_to_pay() {
		let d = dir("spend");
		let s = Store::open(&d, "0xAA").unwrap();
		let asset = Address::repeat_byte(7);
		s.put("spend", &spend_key(5, "eip155:1", asset), b"not a number").unwrap();
		let e = s.spent(5, "eip155:1", asset).unwrap_err().to_string();
		assert!(e.contains("cannot read today's spend"), "{e}");
		assert!(e.contains("nothing is paid"), "{e}");
		drop(s);
		std::fs::remove_dir_all(&d).unwrap();
	}
}
