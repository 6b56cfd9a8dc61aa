//! The agent's durable state in RocksDB, one column family per concern:
//!
//! | column family | key | value |
//! | --- | --- | --- |
//! | `meta` | `schema_version`, `device` | schema version; the EVM address of the device that owns the store |
//! | `payments` | `buy/<nonce>`, `sell/<nonce>` | [`PaymentRecord`] (JSON), with its lifecycle [`State`] |
//! | `spend` | `<day>/<network>/<asset>` | base units committed that UTC day |
//! | `idempotency` | payment id | the payment's fingerprint, and its answer once sent |
//! | `outbox` | receipt id | a receipt (SCALE) waiting to be recorded on-chain |
//! | `channels` | | reserved for payment channels |
//!
//! Every write that protects money is synced before it returns: a signed authorization is on
//! disk before it leaves the device, and a sale before its resource is released.

use std::{path::Path, sync::Mutex};

use m2m_x402::{Address, U256};
use m2m_x402_buyer::{
	client::{InFlight, Outcome, PaymentJournal},
	LedgerError, Payment, SpendLedger,
};
use m2m_x402_seller::{CachedResponse, Claim, IdempotencyStore};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

/// The layout this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
const COLUMN_FAMILIES: [&str; 6] =
	["meta", "payments", "spend", "idempotency", "outbox", "channels"];
/// One schema upgrade.
type Migration = fn(&DB) -> Result<(), rocksdb::Error>;
/// `MIGRATIONS[i]` upgrades version `i + 1` to `i + 2`; none yet.
const MIGRATIONS: &[Migration] = &[];

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
}

/// Who a payment record speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
	Buy,
	Sell,
}

/// A payment's lifecycle: required → signed → submitted → settled / pending / failed /
/// refunded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
	Required,
	Signed,
	Submitted,
	Settled,
	Pending,
	Failed,
	Refunded,
}

impl State {
	pub const ALL: [State; 7] = [
		State::Required,
		State::Signed,
		State::Submitted,
		State::Settled,
		State::Pending,
		State::Failed,
		State::Refunded,
	];

	pub fn name(self) -> &'static str {
		match self {
			State::Required => "required",
			State::Signed => "signed",
			State::Submitted => "submitted",
			State::Settled => "settled",
			State::Pending => "pending",
			State::Failed => "failed",
			State::Refunded => "refunded",
		}
	}

	/// Signed or submitted: the answer never came, so it is resumed, never re-signed.
	pub fn in_flight(self) -> bool {
		matches!(self, State::Signed | State::Submitted)
	}
}

/// One payment, bought or sold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
	pub role: Role,
	pub state: State,
	pub url: String,
	/// `0.01 USDT`.
	pub price: String,
	/// Base units.
	pub amount: String,
	pub network: String,
	pub asset: String,
	/// The payee (buying) or the payer (selling).
	pub counterparty: String,
	#[serde(default)]
	pub payment_id: Option<String>,
	/// Buying: the request to send again if the answer never came.
	#[serde(default)]
	pub method: String,
	#[serde(default)]
	pub header_name: String,
	#[serde(default)]
	pub header_value: String,
	#[serde(default)]
	pub transaction: String,
	#[serde(default)]
	pub reason: String,
	pub created_ms: u64,
	pub updated_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct IdempotencyEntry {
	fingerprint: String,
	boot: String,
	#[serde(default)]
	response: Option<StoredResponse>,
}

#[derive(Serialize, Deserialize)]
struct StoredResponse {
	status: u16,
	headers: Vec<(String, String)>,
	body_hex: String,
}

/// The open store.
pub struct Store {
	db: DB,
	/// Distinguishes this run's idempotency claims from a crashed run's.
	boot: String,
	// Read-modify-write sequences (claims, counters) run one at a time.
	lock: Mutex<()>,
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
		let store = Store { db, boot: hex::encode(boot), lock: Mutex::new(()) };
		store.check_schema(&shown, existed, device)?;
		Ok(store)
	}

	fn check_schema(&self, path: &str, existed: bool, device: &str) -> Result<(), StoreError> {
		let version = self
			.get("meta", b"schema_version")
			.map(|v| String::from_utf8_lossy(&v).parse::<u32>().unwrap_or(u32::MAX));
		let stored_device =
			self.get("meta", b"device").map(|v| String::from_utf8_lossy(&v).into_owned());
		match version {
			None if existed => {
				return Err(StoreError::Foreign {
					path: path.into(),
					why: "a RocksDB database without a machine-agent schema version".into(),
				})
			},
			None => {
				let mut batch = WriteBatch::default();
				batch.put_cf(self.cf("meta"), b"schema_version", SCHEMA_VERSION.to_string());
				batch.put_cf(self.cf("meta"), b"device", device);
				self.write(batch)?;
			},
			Some(found) if found > SCHEMA_VERSION => {
				return Err(StoreError::Newer { path: path.into(), found })
			},
			Some(found) => {
				for (i, migrate) in MIGRATIONS.iter().enumerate().skip(found as usize - 1) {
					migrate(&self.db).map_err(|e| StoreError::Write(e.to_string()))?;
					self.db
						.put_cf(self.cf("meta"), b"schema_version", (i as u32 + 2).to_string())
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

	fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
		self.db.cf_handle(name).expect("column families are created on open")
	}

	fn get(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
		self.db.get_cf(self.cf(cf), key).ok().flatten()
	}

	/// A synced write: on disk when this returns.
	fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
		let mut options = WriteOptions::default();
		options.set_sync(true);
		self.db.write_opt(batch, &options).map_err(|e| StoreError::Write(e.to_string()))
	}

	fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
		let mut batch = WriteBatch::default();
		batch.put_cf(self.cf(cf), key, value);
		self.write(batch)
	}

	fn scan(&self, cf: &str) -> impl Iterator<Item = (Box<[u8]>, Box<[u8]>)> + '_ {
		self.db.iterator_cf(self.cf(cf), rocksdb::IteratorMode::Start).map_while(Result::ok)
	}

	// --- payments

	pub fn put_payment(&self, key: &str, record: &PaymentRecord) -> Result<(), StoreError> {
		self.put("payments", key.as_bytes(), &serde_json::to_vec(record).expect("serializable"))
	}

	pub fn payment(&self, key: &str) -> Option<PaymentRecord> {
		serde_json::from_slice(&self.get("payments", key.as_bytes())?).ok()
	}

	/// Every payment record, by key.
	pub fn payments(&self) -> Vec<(String, PaymentRecord)> {
		self.payments_under("")
	}

	/// The payment records whose key starts with `prefix` (`buy/`, `sell/`).
	fn payments_under(&self, prefix: &str) -> Vec<(String, PaymentRecord)> {
		let from = rocksdb::IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward);
		self.db
			.iterator_cf(self.cf("payments"), from)
			.map_while(Result::ok)
			.take_while(|(k, _)| k.starts_with(prefix.as_bytes()))
			.filter_map(|(k, v)| {
				Some((String::from_utf8(k.to_vec()).ok()?, serde_json::from_slice(&v).ok()?))
			})
			.collect()
	}

	/// Purchases whose answer never came, to be sent again as they were signed.
	pub fn purchases_in_flight(&self) -> Vec<InFlight> {
		self.payments_under("buy/")
			.into_iter()
			.filter(|(_, r)| r.state.in_flight())
			.filter_map(|(key, r)| {
				Some(InFlight {
					key: key.strip_prefix("buy/")?.to_string(),
					method: r.method.clone(),
					url: r.url.clone(),
					header_name: r.header_name.clone(),
					header_value: r.header_value.clone(),
					payment: Payment {
						payload: payload_of(&r.header_value)?,
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

	/// Records a settled sale and queues its receipt, in one synced write.
	pub fn record_sale(
		&self,
		nonce: &str,
		record: &PaymentRecord,
		receipt_id: &[u8; 32],
		receipt: &[u8],
	) -> Result<(), StoreError> {
		let mut batch = WriteBatch::default();
		batch.put_cf(
			self.cf("payments"),
			format!("sell/{nonce}"),
			serde_json::to_vec(record).expect("serializable"),
		);
		batch.put_cf(self.cf("outbox"), receipt_id, receipt);
		self.write(batch)
	}

	// --- outbox

	/// Up to `max` receipts waiting for the chain, oldest key first.
	pub fn outbox(&self, max: usize) -> Vec<([u8; 32], Vec<u8>)> {
		self.scan("outbox")
			.filter_map(|(k, v)| Some((<[u8; 32]>::try_from(&k[..]).ok()?, v.to_vec())))
			.take(max)
			.collect()
	}

	pub fn outbox_len(&self) -> usize {
		self.scan("outbox").count()
	}

	/// Removes receipts the chain has recorded.
	pub fn outbox_done(&self, ids: &[[u8; 32]]) -> Result<(), StoreError> {
		let mut batch = WriteBatch::default();
		for id in ids {
			batch.delete_cf(self.cf("outbox"), id);
		}
		self.write(batch)
	}
}

fn payload_of(header_value: &str) -> Option<m2m_x402::v2::PaymentPayload> {
	match m2m_x402::http::read_payment(Some(header_value), None).ok()?? {
		m2m_x402::paywall::IncomingPayment::V2(p) => Some(p),
		m2m_x402::paywall::IncomingPayment::V1(_) => None,
	}
}

pub fn now_ms() -> u64 {
	std::time::SystemTime::now()
		.duration_since(std::time::UNIX_EPOCH)
		.expect("clock after 1970")
		.as_millis() as u64
}

fn spend_key(day: u64, network: &str, asset: Address) -> Vec<u8> {
	format!("{day}/{network}/{asset:?}").into_bytes()
}

impl SpendLedger for Store {
	fn spent(&self, day: u64, network: &str, asset: Address) -> Result<U256, LedgerError> {
		Ok(self
			.get("spend", &spend_key(day, network, asset))
			.and_then(|v| U256::from_str_radix(std::str::from_utf8(&v).ok()?, 10).ok())
			.unwrap_or_default())
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
		self.put("spend", &spend_key(day, network, asset), total.to_string().as_bytes())
			.map_err(|e| LedgerError(e.to_string()))
	}
}

impl PaymentJournal for Store {
	fn signed(&self, flight: &InFlight) -> Result<(), LedgerError> {
		let p = &flight.payment;
		let now = now_ms();
		let record = PaymentRecord {
			role: Role::Buy,
			state: State::Signed,
			url: flight.url.clone(),
			price: p.price.clone(),
			amount: p.amount.to_string(),
			network: p.network.clone(),
			asset: p.asset.to_checksum(None),
			counterparty: p.pay_to.clone(),
			payment_id: p.payment_id.clone(),
			method: flight.method.clone(),
			header_name: flight.header_name.clone(),
			header_value: flight.header_value.clone(),
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
			Outcome::Pending { transaction } => {
				(State::Pending, transaction.clone(), String::new())
			},
			Outcome::Failed { reason } => (State::Failed, String::new(), reason.clone()),
			Outcome::Unsettled { status } => {
				(State::Failed, String::new(), format!("the seller answered {status}; not settled"))
			},
		};
		record.updated_ms = now_ms();
		if let Err(e) = self.put_payment(&key, &record) {
			tracing::error!(error = %e, "cannot record a payment's outcome; it will be resumed");
		}
	}
}

impl IdempotencyStore for Store {
	fn claim(&self, id: &str, fingerprint: m2m_x402::B256) -> Claim {
		let _guard = self.lock.lock().expect("store lock");
		let fp = fingerprint.to_string();
		let entry: Option<IdempotencyEntry> =
			self.get("idempotency", id.as_bytes()).and_then(|v| serde_json::from_slice(&v).ok());
		let claim = match entry {
			Some(e) if e.fingerprint != fp => return Claim::Conflict,
			Some(IdempotencyEntry { response: Some(r), .. }) => {
				return Claim::Replay(CachedResponse {
					status: r.status,
					headers: r.headers,
					body: hex::decode(r.body_hex).unwrap_or_default(),
				})
			},
			Some(e) if e.boot == self.boot => return Claim::InProgress,
			Some(_) => Claim::Stale,
			None => Claim::New,
		};
		let entry = IdempotencyEntry { fingerprint: fp, boot: self.boot.clone(), response: None };
		match self.put("idempotency", id.as_bytes(), &serde_json::to_vec(&entry).expect("json")) {
			Ok(()) => claim,
			// Not durable: refuse rather than risk serving one payment twice.
			Err(e) => {
				tracing::error!(error = %e, "cannot record a payment id");
				Claim::InProgress
			},
		}
	}

	fn complete(&self, id: &str, fingerprint: m2m_x402::B256, response: CachedResponse) {
		let entry = IdempotencyEntry {
			fingerprint: fingerprint.to_string(),
			boot: self.boot.clone(),
			response: Some(StoredResponse {
				status: response.status,
				headers: response.headers,
				body_hex: hex::encode(response.body),
			}),
		};
		if let Err(e) =
			self.put("idempotency", id.as_bytes(), &serde_json::to_vec(&entry).expect("json"))
		{
			tracing::error!(error = %e, "cannot record a payment's answer");
		}
	}

	fn release(&self, id: &str) {
		let _guard = self.lock.lock().expect("store lock");
		let done = self
			.get("idempotency", id.as_bytes())
			.and_then(|v| serde_json::from_slice::<IdempotencyEntry>(&v).ok())
			.is_some_and(|e| e.response.is_some());
		if !done {
			let mut batch = WriteBatch::default();
			batch.delete_cf(self.cf("idempotency"), id.as_bytes());
			let _ = self.write(batch);
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn dir(name: &str) -> std::path::PathBuf {
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

	#[test]
	fn a_claim_from_a_previous_run_is_stale_and_answers_replay() {
		let d = dir("claims");
		let fp = m2m_x402::B256::repeat_byte(1);
		{
			let s = Store::open(&d, "0xAA").unwrap();
			assert_eq!(s.claim("pay_0123456789abcdef", fp), Claim::New);
			assert_eq!(s.claim("pay_0123456789abcdef", fp), Claim::InProgress);
		}
		let s = Store::open(&d, "0xAA").unwrap();
		assert_eq!(s.claim("pay_0123456789abcdef", fp), Claim::Stale, "the crashed run's claim");
		let r = CachedResponse {
			status: 200,
			headers: vec![("a".into(), "b".into())],
			body: b"x".to_vec(),
		};
		s.complete("pay_0123456789abcdef", fp, r.clone());
		assert_eq!(s.claim("pay_0123456789abcdef", fp), Claim::Replay(r));
		assert_eq!(s.claim("pay_0123456789abcdef", m2m_x402::B256::ZERO), Claim::Conflict);

		let asset = Address::repeat_byte(7);
		s.add(5, "eip155:1", asset, U256::from(10)).unwrap();
		s.add(5, "eip155:1", asset, U256::from(5)).unwrap();
		assert_eq!(s.spent(5, "eip155:1", asset).unwrap(), U256::from(15));
		assert_eq!(s.spent(6, "eip155:1", asset).unwrap(), U256::ZERO);
		std::fs::remove_dir_all(&d).unwrap();
	}
}
