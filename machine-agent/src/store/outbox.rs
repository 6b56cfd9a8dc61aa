//! The receipts outbox, in three column families, one per stage of a receipt's way on-chain:
//!
//! - `outbox`: waiting to be sent;
//! - `outbox_sent`: included in a block that is not final yet (a reorg or a dropped
//!   transaction puts it back in `outbox`);
//! - `dead_letter`: refused by the chain for a reason that retrying cannot change, kept with
//!   the pallet's error for an operator to read.
//!
//! A receipt leaves the store only when the chain's finalized state holds it. Moving between
//! stages is one synced batch, so a crash leaves each receipt in exactly one stage.

use codec::{Decode, Encode};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// Keys: receipt id (32 bytes); values: the receipt, SCALE-encoded.
pub(super) const CF: &str = "outbox";
/// Keys: receipt id; values: [`Sent`], SCALE-encoded.
pub(super) const SENT_CF: &str = "outbox_sent";
/// Keys: receipt id; values: [`DeadLetter`], JSON.
pub(super) const DEAD_CF: &str = "dead_letter";

/// A receipt in a block that is not final yet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Sent {
	/// The block that included it; once the finalized head reaches this height without the
	/// receipt, the block was abandoned and the receipt is sent again.
	pub block_number: u32,
	/// The receipt, SCALE-encoded, to send again if its block is abandoned.
	pub receipt: Vec<u8>,
}

/// A receipt the chain refused for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
	/// The receipt id, hex.
	pub id: String,
	/// The chain's reason, e.g. `SettlementReceipts::RecipientMismatch`.
	pub error: String,
	pub refused_ms: u64,
	/// The receipt, SCALE, hex: enough to inspect it or queue it again by hand.
	pub receipt: String,
}

pub type ReceiptId = [u8; 32];

fn id_of(key: &[u8]) -> Option<ReceiptId> {
	<ReceiptId>::try_from(key).ok()
}

impl Store {
	/// Up to `max` receipts waiting to be sent, oldest key first, skipping those `skip` names
	/// (receipts in backoff).
	pub fn outbox(
		&self,
		max: usize,
		skip: impl Fn(&ReceiptId) -> bool,
	) -> Vec<(ReceiptId, Vec<u8>)> {
		self.scan(CF)
			.filter_map(|(k, v)| Some((id_of(&k)?, v.to_vec())))
			.filter(|(id, _)| !skip(id))
			.take(max)
			.collect()
	}

	/// Receipts waiting to be sent or to become final.
	pub fn outbox_len(&self) -> usize {
		self.tally.lock().expect("tally lock").outbox as usize
	}

	/// Receipts waiting for their block to become final.
	pub fn awaiting_finality(&self) -> Vec<(ReceiptId, Sent)> {
		self.scan(SENT_CF)
			.filter_map(|(k, v)| Some((id_of(&k)?, Sent::decode(&mut &v[..]).ok()?)))
			.collect()
	}

	/// Receipts are in block `block_number` (not final yet): moved from the outbox to the
	/// finality wait.
	pub fn outbox_sent(&self, ids: &[ReceiptId], block_number: u32) -> Result<(), StoreError> {
		let _guard = self.lock.lock().expect("store lock");
		let mut tally = self.tally.lock().expect("tally lock");
		let mut batch = WriteBatch::default();
		let mut moved = 0;
		for id in ids {
			let Some(receipt) = self.read(CF, id)? else { continue };
			batch.delete_cf(self.cf(CF), id);
			batch.put_cf(self.cf(SENT_CF), id, Sent { block_number, receipt }.encode());
			moved += 1;
		}
		self.write(batch)?;
		tally.awaiting_finality += moved;
		Ok(())
	}

	/// Receipts the finalized chain holds: gone from the store.
	pub fn outbox_final(&self, ids: &[ReceiptId]) -> Result<(), StoreError> {
		let _guard = self.lock.lock().expect("store lock");
		let mut tally = self.tally.lock().expect("tally lock");
		let mut batch = WriteBatch::default();
		let (mut present, mut sent) = (0, 0);
		for id in ids {
			for cf in [CF, SENT_CF] {
				if self.read(cf, id)?.is_some() {
					present += 1;
					sent += u64::from(cf == SENT_CF);
					batch.delete_cf(self.cf(cf), id);
				}
			}
		}
		self.write(batch)?;
		tally.outbox = tally.outbox.saturating_sub(present);
		tally.awaiting_finality = tally.awaiting_finality.saturating_sub(sent);
		Ok(())
	}

	/// A receipt's block was abandoned (reorg, dropped transaction): it goes back to the
	/// outbox to be sent again.
	pub fn outbox_requeue(&self, id: &ReceiptId) -> Result<(), StoreError> {
		let _guard = self.lock.lock().expect("store lock");
		let mut tally = self.tally.lock().expect("tally lock");
		let Some(sent) = self.read(SENT_CF, id)? else { return Ok(()) };
		let sent = Sent::decode(&mut &sent[..])
			.map_err(|e| StoreError::Read(format!("a sent receipt does not decode: {e}")))?;
		let mut batch = WriteBatch::default();
		batch.delete_cf(self.cf(SENT_CF), id);
		batch.put_cf(self.cf(CF), id, sent.receipt);
		self.write(batch)?;
		tally.awaiting_finality = tally.awaiting_finality.saturating_sub(1);
		Ok(())
	}

	/// The chain refused a receipt for good: out of the outbox, into the dead-letter list.
	pub fn outbox_dead(&self, id: &ReceiptId, error: &str) -> Result<(), StoreError> {
		let _guard = self.lock.lock().expect("store lock");
		let mut tally = self.tally.lock().expect("tally lock");
		let Some(receipt) = self.read(CF, id)? else { return Ok(()) };
		let letter = DeadLetter {
			id: hex::encode(id),
			error: error.to_string(),
			refused_ms: super::now_ms(),
			receipt: hex::encode(&receipt),
		};
		let mut batch = WriteBatch::default();
		batch.delete_cf(self.cf(CF), id);
		batch.put_cf(
			self.cf(DEAD_CF),
			id,
			serde_json::to_vec(&letter).expect("a dead letter serializes"),
		);
		self.write(batch)?;
		tally.outbox = tally.outbox.saturating_sub(1);
		tally.dead_letters += 1;
		Ok(())
	}

	/// Every receipt the chain refused for good, oldest key first.
	pub fn dead_letters(&self) -> Vec<DeadLetter> {
		self.scan(DEAD_CF).filter_map(|(_, v)| serde_json::from_slice(&v).ok()).collect()
	}

	/// (waiting to be sent or final, of which awaiting finality, dead letters), counted once
	/// when the store opens.
	pub(super) fn count_outbox(&self) -> (u64, u64, u64) {
		let sent = self.scan(SENT_CF).count() as u64;
		(self.scan(CF).count() as u64 + sent, sent, self.scan(DEAD_CF).count() as u64)
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::store::tests::dir;

	fn queue(store: &Store, id: u8) -> ReceiptId {
		let id = [id; 32];
		let mut batch = WriteBatch::default();
		batch.put_cf(store.cf(CF), id, [id[0]; 3]);
		store.write(batch).unwrap();
		store.tally.lock().unwrap().outbox += 1;
		id
	}

	/// Every stage survives a restart, and a receipt is in exactly one of them.
	#[test]
	fn a_receipt_moves_through_sent_and_final_or_back_or_dead_across_restarts() {
		let d = dir("outbox-stages");
		let (a, b, c) = {
			let store = Store::open(&d, "0xAA").unwrap();
			let (a, b, c) = (queue(&store, 1), queue(&store, 2), queue(&store, 3));
			store.outbox_sent(&[a, b], 40).unwrap();
			store.outbox_dead(&c, "SettlementReceipts::RecipientMismatch").unwrap();
			(a, b, c)
		};
		let store = Store::open(&d, "0xAA").unwrap();
		assert_eq!(store.outbox(10, |_| false), vec![]);
		let sent = store.awaiting_finality();
		assert_eq!(
			sent.iter().map(|(id, s)| (*id, s.block_number)).collect::<Vec<_>>(),
			[(a, 40), (b, 40)]
		);
		assert_eq!(store.outbox_len(), 2, "sent but not final still counts as waiting");
		assert_eq!(store.tally().awaiting_finality, 2);
		let dead = store.dead_letters();
		assert_eq!(dead.len(), 1);
		assert_eq!(
			(dead[0].id.clone(), dead[0].error.as_str()),
			(hex::encode(c), "SettlementReceipts::RecipientMismatch")
		);
		assert_eq!(store.tally().dead_letters, 1);

		// Block 40 was abandoned for `b`; `a` became final.
		store.outbox_requeue(&b).unwrap();
		store.outbox_final(&[a]).unwrap();
		assert_eq!(store.outbox(10, |_| false), vec![(b, vec![2, 2, 2])]);
		assert_eq!(store.outbox(10, |id| *id == b), vec![], "receipts in backoff are skipped");
		assert!(store.awaiting_finality().is_empty());
		assert_eq!((store.outbox_len(), store.tally().awaiting_finality), (1, 0));
		drop(store);
		std::fs::remove_dir_all(&d).unwrap();
	}
}
