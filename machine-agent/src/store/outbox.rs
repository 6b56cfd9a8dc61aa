//! The `outbox` column family: receipts (SCALE) waiting to be recorded on-chain, keyed by
//! receipt id and removed once the chain has recorded them.

use rocksdb::WriteBatch;

use super::{Store, StoreError};

/// Keys: receipt id (32 bytes); values: the receipt, SCALE-encoded.
pub(super) const CF: &str = "outbox";

impl Store {
	/// Up to `max` receipts waiting for the chain, oldest key first.
	pub fn outbox(&self, max: usize) -> Vec<([u8; 32], Vec<u8>)> {
		self.scan(CF)
			.filter_map(|(k, v)| Some((<[u8; 32]>::try_from(&k[..]).ok()?, v.to_vec())))
			.take(max)
			.collect()
	}

	pub fn outbox_len(&self) -> usize {
		self.tally.lock().expect("tally lock").outbox as usize
	}

	/// Removes receipts the chain has recorded.
	pub fn outbox_done(&self, ids: &[[u8; 32]]) -> Result<(), StoreError> {
		let mut tally = self.tally.lock().expect("tally lock");
		let mut batch = WriteBatch::default();
		let mut present = 0;
		for id in ids {
			if self.read(CF, id)?.is_some() {
				present += 1;
			}
			batch.delete_cf(self.cf(CF), id);
		}
		self.write(batch)?;
		tally.outbox = tally.outbox.saturating_sub(present);
		Ok(())
	}
}
