//! The `payments` column family: every purchase and sale as a [`PaymentRecord`], the buyer's
//! journal of purchases in flight, and sales keyed by the authorization that paid.

use m2m_x402::U256;
use m2m_x402_buyer::{InFlight, LedgerError, Outcome, Payment, PaymentJournal};
use m2m_x402_seller::SaleKey;
use rocksdb::WriteBatch;

use super::{now_ms, outbox, PaymentRecord, Role, State, Store, StoreError};

/// Keys: `buy/<nonce>`, `sell/<scheme>/<payer>/<nonce>`; values: [`PaymentRecord`] (JSON).
pub(super) const CF: &str = "payments";

impl Store {
	/// Writes a payment record (replacing any at `key`), keeping the totals.
	pub fn put_payment(&self, key: &str, record: &PaymentRecord) -> Result<(), StoreError> {
		// Held across read and write, so concurrent writers of one key count it once.
		let mut tally = self.tally.lock().expect("tally lock");
		let old = self.payment(key);
		self.put(CF, key.as_bytes(), &serde_json::to_vec(record).expect("serializable"))?;
		tally.replace(old.as_ref(), record);
		Ok(())
	}

	pub fn payment(&self, key: &str) -> Option<PaymentRecord> {
		serde_json::from_slice(&self.get(CF, key.as_bytes())?).ok()
	}

	/// Every payment record, by key.
	pub fn payments(&self) -> Vec<(String, PaymentRecord)> {
		self.payments_under("")
	}

	/// The payment records whose key starts with `prefix` (`buy/`, `sell/`).
	fn payments_under(&self, prefix: &str) -> Vec<(String, PaymentRecord)> {
		let from = rocksdb::IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward);
		self.db
			.iterator_cf(self.cf(CF), from)
			.map_while(Result::ok)
			.take_while(|(k, _)| k.starts_with(prefix.as_bytes()))
			.filter_map(|(k, v)| {
				Some((String::from_utf8(k.to_vec()).ok()?, serde_json::from_slice(&v).ok()?))
			})
			.collect()
	}

	/// Purchases whose outcome is not final, to be sent again as they were signed.
	pub fn purchases_in_flight(&self) -> Vec<InFlight> {
		self.payments_under("buy/")
			.into_iter()
			.filter(|(_, r)| r.state.in_flight())
			.filter_map(|(key, r)| {
				let key = key.strip_prefix("buy/")?.to_string();
				let (Some(locator), Some(payload)) = (r.locator.clone(), r.payload.clone()) else {
					tracing::warn!(
						%key, url = %r.url,
						"a purchase in flight cannot be resumed: it has no signed payment on record \
						 (a v1 X-PAYMENT purchase from schema 1); check its transaction by hand"
					);
					return None;
				};
				Some(InFlight {
					key,
					locator,
					version: r.version.unwrap_or(2),
					payment: Payment {
						payload,
						network: r.network.clone(),
						asset: r.asset.parse().ok()?,
						pay_to: r.counterparty.clone(),
						amount: U256::from_str_radix(&r.amount, 10).ok()?,
						price: r.price.clone(),
						payment_id: r.payment_id.clone(),
					},
				})
			})
			.collect()
	}

	/// Records a settled sale and queues its receipt, in one synced write. Sales are keyed by
	/// the authorization that paid ([`SaleKey`]), so recording one twice is harmless.
	pub fn record_sale(
		&self,
		sale: &SaleKey,
		record: &PaymentRecord,
		receipt_id: &[u8; 32],
		receipt: &[u8],
	) -> Result<(), StoreError> {
		let key = sale_key(sale);
		let mut tally = self.tally.lock().expect("tally lock");
		let old = self.payment(&key);
		// Already waiting (to be sent, or to become final): one receipt, one place.
		let queued = self.read(outbox::CF, receipt_id)?.is_some()
			|| self.read(outbox::SENT_CF, receipt_id)?.is_some();
		let mut batch = WriteBatch::default();
		batch.put_cf(self.cf(CF), &key, serde_json::to_vec(record).expect("serializable"));
		if !queued {
			batch.put_cf(self.cf(outbox::CF), receipt_id, receipt);
		}
		self.write(batch)?;
		tally.replace(old.as_ref(), record);
		if !queued {
			tally.outbox += 1;
		}
		Ok(())
	}

	/// Whether a sale of this authorization was recorded.
	pub fn sale_recorded(&self, sale: &SaleKey) -> Result<bool, StoreError> {
		Ok(self.read(CF, sale_key(sale).as_bytes())?.is_some())
	}
}

fn sale_key(sale: &SaleKey) -> String {
	format!("sell/{}", sale.as_str())
}

impl PaymentJournal for Store {
	fn signed(&self, flight: &InFlight) -> Result<(), LedgerError> {
		let p = &flight.payment;
		let now = now_ms();
		let record = PaymentRecord {
			role: Role::Buy,
			state: State::Signed,
			url: flight.locator.resource().to_string(),
			price: p.price.clone(),
			amount: p.amount.to_string(),
			network: p.network.clone(),
			asset: p.asset.to_checksum(None),
			counterparty: p.pay_to.clone(),
			counterparty_peer: None,
			counterparty_device: None,
			payment_id: p.payment_id.clone(),
			locator: Some(flight.locator.clone()),
			version: Some(flight.version),
			payload: Some(p.payload.clone()),
			transaction: String::new(),
			reason: String::new(),
			created_ms: now,
			updated_ms: now,
		};
		self.put_payment(&format!("buy/{}", flight.key), &record)
			.map_err(|e| LedgerError(e.to_string()))
	}

	fn submitted(&self, key: &str) {
		let key = format!("buy/{key}");
		let Some(mut record) = self.payment(&key) else { return };
		if record.state == State::Signed {
			record.state = State::Submitted;
			record.updated_ms = now_ms();
			// Best effort: signed and submitted are both resumed the same way.
			let _ = self.put_payment(&key, &record);
		}
	}

	fn finished(&self, key: &str, outcome: &Outcome) {
		let key = format!("buy/{key}");
		let Some(mut record) = self.payment(&key) else { return };
		(record.state, record.transaction, record.reason) = match outcome {
			Outcome::Settled { transaction } => {
				(State::Settled, transaction.clone(), String::new())
			},
			Outcome::Unserved { transaction } => {
				(State::Unserved, transaction.clone(), String::new())
			},
			Outcome::Pending { transaction } => {
				(State::Pending, transaction.clone(), String::new())
			},
			Outcome::Failed { reason } => (State::Failed, String::new(), reason.clone()),
			// Still in flight: resumed as it was signed.
			Outcome::Unknown { reason } => (State::Submitted, String::new(), reason.clone()),
		};
		record.updated_ms = now_ms();
		if let Err(e) = self.put_payment(&key, &record) {
			tracing::error!(error = %e, "cannot record a payment's outcome; it will be resumed");
		}
	}
}
