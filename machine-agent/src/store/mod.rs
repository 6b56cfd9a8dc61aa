//! The agent's durable state in RocksDB, one column family per concern, each in its own
//! module:
//!
//! | column family | key | value |
//! | --- | --- | --- |
//! | `meta` | `schema_version`, `device` | schema version; the EVM address of the device that owns the store |
//! | [`payments`] | `buy/<nonce>`, `sell/<scheme>/<payer>/<nonce>` | [`PaymentRecord`] (JSON), with its lifecycle [`State`] |
//! | [`spend`] | `<day>/<network>/<asset>` | base units committed that UTC day |
//! | [`idempotency`] | payment id | the payment's fingerprint, whether its settlement is pending, and its answer once sent |
//! | [`outbox`] `outbox` | receipt id | a receipt (SCALE) waiting to be sent to the chain |
//! | [`outbox`] `outbox_sent` | receipt id | a receipt in a block that is not final yet, with the block's height |
//! | [`outbox`] `dead_letter` | receipt id | a receipt the chain refused for good, with its error (JSON) |
//! | [`channels`] | `sell/<channel id>`, `buy/<channel id>` | a channel sold from ([`ChannelRecord`](m2m_x402_seller::channels::ChannelRecord)) or paid from ([`BuyerChannel`](m2m_x402_buyer::channels::BuyerChannel)), JSON |
//!
//! Every write that protects money is synced before it returns: a signed authorization is on
//! disk before it leaves the device, and a sale before its resource is released. Reads that
//! protect money fail closed: a spend total that cannot be read refuses the payment.
//!
//! Schema history: v1 kept a purchase as the HTTP header it was sent in, sales by nonce alone
//! and idempotency answers as HTTP responses; v2 keeps the signed payment and a
//! transport-neutral locator, sales by (payer, nonce), and transport-neutral answers; v3 (this
//! build) adds the `outbox_sent` and `dead_letter` column families, so that a receipt leaves
//! the store only once final and a refused one no longer blocks the others; v4 writes payment
//! channels in `channels` (empty before), so that a v3 build refuses a store holding money in
//! a channel. [`migrate`] rewrites a v1 store in one synced batch; later versions need no
//! rewrite.

pub mod channels;
mod idempotency;
mod migrate;
pub mod outbox;
mod payments;
mod spend;

use std::{path::Path, sync::Mutex};

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use self::migrate::MIGRATIONS;
pub use crate::records::{PaymentRecord, Role, State};
use crate::tally::Tally;

/// The layout this build reads and writes.
pub const SCHEMA_VERSION: u32 = 4;
/// Keys: `schema_version`, `device`; values: UTF-8 text.
const META: &str = "meta";
const COLUMN_FAMILIES: [&str; 8] = [
	META,
	payments::CF,
	spend::CF,
	idempotency::CF,
	outbox::CF,
	outbox::SENT_CF,
	outbox::DEAD_CF,
	channels::CF,
];

/// Why the store cannot be used. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
	#[error(
		"cannot open the agent's database at {path}: {reason}. If it is damaged, move it aside \
		 (the agent will create a new one) and keep the old one for recovery"
	)]
	Open { path: String, reason: String },
	#[error(
		"{path} is not a machine-agent store ({why}); point data_dir at the agent's own directory"
	)]
	Foreign { path: String, why: String },
	#[error("{path} was written by a newer machine-agent (schema {found}, this one reads {SCHEMA_VERSION})")]
	Newer { path: String, found: u32 },
	#[error("{path} belongs to device {found}, not to this device {expected}")]
	OtherDevice { path: String, found: String, expected: String },
	#[error("database write failed: {0}")]
	Write(String),
	#[error("database read failed: {0}")]
	Read(String),
}

/// The open store.
pub struct Store {
	db: DB,
	/// Distinguishes this run's idempotency claims from a crashed run's.
	boot: String,
	// Read-modify-write sequences (claims, counters) run one at a time.
	lock: Mutex<()>,
	tally: Mutex<Tally>,
}

impl Store {
	/// Opens (or creates) the store at `path` for the device with EVM address `device`.
	pub fn open(path: &Path, device: &str) -> Result<Store, StoreError> {
		let shown = path.display().to_string();
		let existed = path.join("CURRENT").exists();
		if !existed && path.read_dir().is_ok_and(|mut d| d.next().is_some()) {
			return Err(StoreError::Foreign {
				path: shown,
				why: "the directory has files but no RocksDB database".into(),
			});
		}
		let mut options = Options::default();
		options.create_if_missing(true);
		options.create_missing_column_families(true);
		let cfs =
			COLUMN_FAMILIES.iter().map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
		let db = DB::open_cf_descriptors(&options, path, cfs)
			.map_err(|e| StoreError::Open { path: shown.clone(), reason: e.to_string() })?;
		let mut boot = [0u8; 16];
		getrandom::getrandom(&mut boot).expect("the OS provides randomness");
		let store =
			Store { db, boot: hex::encode(boot), lock: Mutex::new(()), tally: Mutex::default() };
		store.check_schema(&shown, existed, device)?;
		// The one scan: from here on every write keeps the totals.
		let mut tally = Tally::default();
		for (_, record) in store.payments() {
			tally.replace(None, &record);
		}
		(tally.outbox, tally.awaiting_finality, tally.dead_letters) = store.count_outbox();
		*store.tally.lock().expect("tally lock") = tally;
		let pruned = store.prune_idempotency(now_ms() / 1000)?;
		if pruned > 0 {
			tracing::info!(pruned, "forgot the payment ids of expired authorizations");
		}
		Ok(store)
	}

	fn check_schema(&self, path: &str, existed: bool, device: &str) -> Result<(), StoreError> {
		let version = self
			.get(META, b"schema_version")
			.map(|v| String::from_utf8_lossy(&v).parse::<u32>().unwrap_or(u32::MAX));
		let stored_device =
			self.get(META, b"device").map(|v| String::from_utf8_lossy(&v).into_owned());
		match version {
			None if existed => {
				return Err(StoreError::Foreign {
					path: path.into(),
					why: "a RocksDB database without a machine-agent schema version".into(),
				})
			},
			None => {
				let mut batch = WriteBatch::default();
				batch.put_cf(self.cf(META), b"schema_version", SCHEMA_VERSION.to_string());
				batch.put_cf(self.cf(META), b"device", device);
				self.write(batch)?;
			},
			Some(found) if found > SCHEMA_VERSION => {
				return Err(StoreError::Newer { path: path.into(), found })
			},
			Some(found) => {
				for (i, migrate) in MIGRATIONS.iter().enumerate().skip(found as usize - 1) {
					migrate(&self.db).map_err(|e| StoreError::Write(e.to_string()))?;
					self.db
						.put_cf(self.cf(META), b"schema_version", (i as u32 + 2).to_string())
						.map_err(|e| StoreError::Write(e.to_string()))?;
				}
			},
		}
		match stored_device {
			Some(found) if !found.eq_ignore_ascii_case(device) => {
				Err(StoreError::OtherDevice { path: path.into(), found, expected: device.into() })
			},
			_ => Ok(()),
		}
	}

	/// The running totals (no scan).
	pub fn tally(&self) -> Tally {
		self.tally.lock().expect("tally lock").clone()
	}

	fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
		self.db.cf_handle(name).expect("column families are created on open")
	}

	fn get(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
		self.db.get_cf(self.cf(cf), key).ok().flatten()
	}

	/// A read whose failure must not pass for "absent".
	fn read(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
		self.db.get_cf(self.cf(cf), key).map_err(|e| StoreError::Read(e.to_string()))
	}

	/// A synced write: on disk when this returns.
	fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
		let mut options = WriteOptions::default();
		options.set_sync(true);
		self.db.write_opt(batch, &options).map_err(|e| StoreError::Write(e.to_string()))
	}

	/// A write to the log that is not synced by itself: it becomes durable with the next
	/// synced write (the log is one sequence, and a sync covers everything before it), or is
	/// lost in a crash before one. Only for state whose loss in that window is harmless.
	fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
		self.db.write(batch).map_err(|e| StoreError::Write(e.to_string()))
	}

	fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
		let mut batch = WriteBatch::default();
		batch.put_cf(self.cf(cf), key, value);
		self.write(batch)
	}

	fn scan(&self, cf: &str) -> impl Iterator<Item = (Box<[u8]>, Box<[u8]>)> + '_ {
		self.db.iterator_cf(self.cf(cf), rocksdb::IteratorMode::Start).map_while(Result::ok)
	}
}

/// Milliseconds since the Unix epoch, as records are stamped: the one clock.
pub use m2m_x402::clock::unix_now_ms as now_ms;

#[cfg(test)]
mod tests {
	use m2m_x402_seller::{Answered, Delivery};

	use super::*;

	/// A fresh directory for one test's store; the column family modules' tests share it.
	pub(super) fn dir(name: &str) -> std::path::PathBuf {
		let d = std::env::temp_dir().join(format!("m2m-store-{name}-{}", std::process::id()));
		let _ = std::fs::remove_dir_all(&d);
		d
	}

	#[test]
	fn a_store_is_created_reopened_and_guards_its_identity() {
		let d = dir("identity");
		drop(Store::open(&d, "0xAA").unwrap());
		drop(Store::open(&d, "0xaa").unwrap());
		let e = Store::open(&d, "0xBB").err().unwrap().to_string();
		assert!(e.contains("belongs to device 0xAA, not to this device 0xBB"), "{e}");
		std::fs::remove_dir_all(&d).unwrap();
	}

	#[test]
	fn corrupted_and_foreign_directories_are_refused_clearly() {
		let d = dir("foreign");
		std::fs::create_dir_all(&d).unwrap();
		std::fs::write(d.join("notes.txt"), "hello").unwrap();
		let e = Store::open(&d, "0xAA").err().unwrap().to_string();
		assert!(e.contains("is not a machine-agent store"), "{e}");
		std::fs::remove_dir_all(&d).unwrap();

		// A RocksDB database that is not ours.
		let d = dir("other-db");
		{
			let mut o = Options::default();
			o.create_if_missing(true);
			DB::open(&o, &d).unwrap().put(b"k", b"v").unwrap();
		}
		let e = Store::open(&d, "0xAA").err().unwrap().to_string();
		assert!(e.contains("without a machine-agent schema version"), "{e}");
		std::fs::remove_dir_all(&d).unwrap();

		// Ours, damaged.
		let d = dir("corrupt");
		drop(Store::open(&d, "0xAA").unwrap());
		let current = std::fs::read_to_string(d.join("CURRENT")).unwrap();
		std::fs::write(d.join(current.trim()), b"garbage, not a manifest").unwrap();
		let e = Store::open(&d, "0xAA").err().unwrap().to_string();
		assert!(e.contains("cannot open the agent's database"), "{e}");
		assert!(e.contains("move it aside"), "{e}");
		std::fs::remove_dir_all(&d).unwrap();
	}

	pub(super) fn answered(body: &str) -> Answered {
		Answered {
			delivery: Delivery {
				body: body.as_bytes().to_vec(),
				metadata: vec![("content-type".into(), "text/plain".into())],
				charge: None,
			},
			settlement: settlement("0x01"),
			version: 2,
		}
	}

	pub(super) fn settlement(tx: &str) -> m2m_x402::v2::SettleResponse {
		m2m_x402::v2::SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: tx.into(),
			network: "eip155:33380".into(),
			payer: Some("0x00000000000000000000000000000000000000aa".into()),
			amount: Some("10000".into()),
			extensions: None,
			extra: None,
		}
	}
}
