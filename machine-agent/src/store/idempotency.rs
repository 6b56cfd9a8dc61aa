//! The `idempotency` column family: the seller's record of each payment id (its fingerprint, a
//! settlement left pending, the answer once sent), kept until the payment's authorization expires.

use m2m_x402_seller::{idempotency, Answered, Claim, Delivery, IdempotencyStore};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::{now_ms, Store, StoreError};

/// Keys: payment id; values: [`IdempotencyEntry`] (JSON).
pub(super) const CF: &str = "idempotency";

/// One payment id's record.
#[derive(Serialize, Deserialize)]
pub(super) struct IdempotencyEntry {
	pub(super) fingerprint: String,
	pub(super) boot: String,
	/// The settlement was left uncertain (with its transaction, or empty).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub(super) pending: Option<String>,
	/// When the payment's authorization expires (Unix seconds): the record may go then.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub(super) expires_at: Option<u64>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub(super) answered: Option<StoredAnswer>,
}

/// An [`Answered`] on disk.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredAnswer {
	pub(super) body_hex: String,
	pub(super) metadata: Vec<(String, String)>,
	pub(super) settlement: m2m_x402::v2::SettleResponse,
	pub(super) version: u32,
}

impl From<Answered> for StoredAnswer {
	fn from(a: Answered) -> Self {
		Self {
			body_hex: hex::encode(a.delivery.body),
			metadata: a.delivery.metadata,
			settlement: a.settlement,
			version: a.version,
		}
	}
}

impl StoredAnswer {
	fn answered(self) -> Answered {
		Answered {
			delivery: Delivery {
				body: hex::decode(self.body_hex).unwrap_or_default(),
				metadata: self.metadata,
				charge: None,
			},
			settlement: self.settlement,
			version: self.version,
		}
	}
}

impl Store {
	fn idempotency_entry(&self, id: &str) -> Result<Option<IdempotencyEntry>, StoreError> {
		match self.read(CF, id.as_bytes())? {
			None => Ok(None),
			Some(v) => serde_json::from_slice(&v)
				.map(Some)
				.map_err(|e| StoreError::Read(format!("idempotency record {id:?}: {e}"))),
		}
	}

	fn put_idempotency(&self, id: &str, entry: &IdempotencyEntry) -> Result<(), StoreError> {
		self.put(CF, id.as_bytes(), &serde_json::to_vec(entry).expect("json"))
	}

	/// [`put_idempotency`](Self::put_idempotency) without a sync of its own: durable with the
	/// store's next synced write.
	fn put_idempotency_unsynced(
		&self,
		id: &str,
		entry: &IdempotencyEntry,
	) -> Result<(), StoreError> {
		let mut batch = WriteBatch::default();
		batch.put_cf(self.cf(CF), id.as_bytes(), serde_json::to_vec(entry).expect("json"));
		self.write_unsynced(batch)
	}

	/// The record of a payment's answer.
	fn answered_entry(
		&self,
		id: &str,
		fingerprint: m2m_x402::B256,
		answered: Answered,
	) -> IdempotencyEntry {
		IdempotencyEntry {
			fingerprint: fingerprint.to_string(),
			boot: self.boot.clone(),
			pending: None,
			expires_at: self.expiry_of(id),
			answered: Some(answered.into()),
		}
	}

	fn expiry_of(&self, id: &str) -> Option<u64> {
		self.idempotency_entry(id).ok().flatten().and_then(|e| e.expires_at)
	}

	/// Deletes the idempotency records of payments that expired (past the grace period), so
	/// the column family holds only payments that can still settle. Returns how many went.
	pub fn prune_idempotency(&self, now_secs: u64) -> Result<usize, StoreError> {
		let _guard = self.lock.lock().expect("store lock");
		let mut batch = WriteBatch::default();
		let mut pruned = 0;
		for (key, value) in self.scan(CF) {
			let expires =
				serde_json::from_slice::<IdempotencyEntry>(&value).ok().and_then(|e| e.expires_at);
			if expires.is_some_and(|t| idempotency::expired(t, now_secs)) {
				batch.delete_cf(self.cf(CF), &key);
				pruned += 1;
			}
		}
		if pruned > 0 {
			self.write(batch)?;
		}
		Ok(pruned)
	}
}

impl IdempotencyStore for Store {
	fn claim(&self, id: &str, fingerprint: m2m_x402::B256, expires_at: u64) -> Claim {
		let _guard = self.lock.lock().expect("store lock");
		let fp = fingerprint.to_string();
		let now = now_ms() / 1000;
		let entry = match self.idempotency_entry(id) {
			// An expired payment cannot settle any more: its record is as good as absent.
			Ok(Some(e)) if e.expires_at.is_some_and(|t| idempotency::expired(t, now)) => None,
			Ok(e) => e,
			// Unreadable: refuse rather than risk serving one payment twice.
			Err(e) => {
				tracing::error!(error = %e, "cannot read a payment id");
				return Claim::InProgress;
			},
		};
		let claim = match entry {
			Some(e) if e.fingerprint != fp => return Claim::Conflict,
			Some(IdempotencyEntry { answered: Some(a), .. }) => {
				return Claim::Replay(Box::new(a.answered()))
			},
			Some(IdempotencyEntry { pending: Some(tx), .. }) => {
				Claim::Unresolved { transaction: (!tx.is_empty()).then_some(tx) }
			},
			Some(e) if e.boot == self.boot => return Claim::InProgress,
			// A previous run held it and stopped without answering: it may have settled.
			Some(_) => Claim::Unresolved { transaction: None },
			None => Claim::New,
		};
		let entry = IdempotencyEntry {
			fingerprint: fp,
			boot: self.boot.clone(),
			pending: None,
			expires_at: Some(expires_at),
			answered: None,
		};
		// Not synced: a claim protects nothing by itself. Whatever a sale does next that
		// matters (a channel's voucher, a settled sale, a pending settlement) is a synced
		// write, which makes this one durable too; a crash before it loses a claim that led
		// to nothing, and an exact authorization settled in that window is found on-chain.
		match self.put_idempotency_unsynced(id, &entry) {
			Ok(()) => claim,
			// Not durable: refuse rather than risk serving one payment twice.
			Err(e) => {
				tracing::error!(error = %e, "cannot record a payment id");
				Claim::InProgress
			},
		}
	}

	fn pending(&self, id: &str, fingerprint: m2m_x402::B256, transaction: &str) {
		let entry = IdempotencyEntry {
			fingerprint: fingerprint.to_string(),
			boot: self.boot.clone(),
			pending: Some(transaction.to_string()),
			expires_at: self.expiry_of(id),
			answered: None,
		};
		if let Err(e) = self.put_idempotency(id, &entry) {
			tracing::error!(error = %e, "cannot record a pending payment id");
		}
	}

	fn complete(&self, id: &str, fingerprint: m2m_x402::B256, answered: Answered) {
		let entry = self.answered_entry(id, fingerprint, answered);
		if let Err(e) = self.put_idempotency(id, &entry) {
			tracing::error!(error = %e, "cannot record a payment's answer");
		}
	}

	fn complete_resolvable(&self, id: &str, fingerprint: m2m_x402::B256, answered: Answered) {
		let entry = self.answered_entry(id, fingerprint, answered);
		// Unsynced: see the trait. Lost in a power cut, the claim (made durable by the
		// channel's synced save) is found unresolved, and the voucher's retry is served
		// again without a second charge.
		if let Err(e) = self.put_idempotency_unsynced(id, &entry) {
			tracing::error!(error = %e, "cannot record a payment's answer");
		}
	}

	fn release(&self, id: &str) {
		let _guard = self.lock.lock().expect("store lock");
		// Only a claim that led to nothing is forgotten; answers and pending ones stay.
		let Ok(Some(entry)) = self.idempotency_entry(id) else { return };
		if entry.answered.is_none() && entry.pending.is_none() {
			let mut batch = WriteBatch::default();
			batch.delete_cf(self.cf(CF), id.as_bytes());
			let _ = self.write(batch);
		}
	}
}

#[cfg(test)]
mod tests {
	use m2m_x402::{Address, U256};
	use m2m_x402_buyer::SpendLedger;

	use super::*;
	use crate::store::tests::{answered, dir};

	#[test]
	fn a_claim_from_a_previous_run_is_unresolved_and_answers_replay() {
		let d = dir("claims");
		let fp = m2m_x402::B256::repeat_byte(1);
		let id = "pay_0123456789abcdef";
		{
			let s = Store::open(&d, "0xAA").unwrap();
			assert_eq!(s.claim(id, fp, u64::MAX), Claim::New);
			assert_eq!(s.claim(id, fp, u64::MAX), Claim::InProgress);
		}
		let s = Store::open(&d, "0xAA").unwrap();
		assert_eq!(
			s.claim(id, fp, u64::MAX),
			Claim::Unresolved { transaction: None },
			"the crashed run's"
		);
		s.complete(id, fp, answered("x"));
		assert_eq!(s.claim(id, fp, u64::MAX), Claim::Replay(Box::new(answered("x"))));
		assert_eq!(s.claim(id, m2m_x402::B256::ZERO, u64::MAX), Claim::Conflict);

		// A pending settlement keeps its id across restarts, with its transaction.
		let other = "pay_fedcba9876543210";
		assert_eq!(s.claim(other, fp, u64::MAX), Claim::New);
		s.pending(other, fp, "0xbeef");
		s.release(other);
		drop(s);
		let s = Store::open(&d, "0xAA").unwrap();
		assert_eq!(
			s.claim(other, fp, u64::MAX),
			Claim::Unresolved { transaction: Some("0xbeef".into()) }
		);

		// Records of expired authorizations are pruned; live ones stay.
		let old = "pay_00000000000000expired";
		assert_eq!(s.claim(old, fp, 1), Claim::New);
		s.complete(old, fp, answered("old"));
		assert_eq!(s.prune_idempotency(now_ms() / 1000).unwrap(), 1);
		assert_eq!(s.claim(old, m2m_x402::B256::ZERO, u64::MAX), Claim::New, "forgotten");
		assert_eq!(s.claim(id, fp, u64::MAX), Claim::Replay(Box::new(answered("x"))), "kept");

		// The spend ledger shares the store (and this test's directory) with the claims.
		let asset = Address::repeat_byte(7);
		s.add(5, "eip155:1", asset, U256::from(10)).unwrap();
		s.add(5, "eip155:1", asset, U256::from(5)).unwrap();
		assert_eq!(s.spent(5, "eip155:1", asset).unwrap(), U256::from(15));
		assert_eq!(s.spent(6, "eip155:1", asset).unwrap(), U256::ZERO);
		std::fs::remove_dir_all(&d).unwrap();
	}
}
