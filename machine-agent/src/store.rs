//! The agent's durable state in RocksDB, one column family per concern:
//!
//! | column family | key | value |
//! | --- | --- | --- |
//! | `meta` | `schema_version`, `device` | schema version; the EVM address of the device that owns the store |
//! | `payments` | `buy/<nonce>`, `sell/<scheme>/<payer>/<nonce>` | [`PaymentRecord`] (JSON), with its lifecycle [`State`] |
//! | `spend` | `<day>/<network>/<asset>` | base units committed that UTC day |
//! | `idempotency` | payment id | the payment's fingerprint, whether its settlement is pending, and its answer once sent |
//! | `outbox` | receipt id | a receipt (SCALE) waiting to be recorded on-chain |
//! | `channels` | | reserved for payment channels |
//!
//! Every write that protects money is synced before it returns: a signed authorization is on
//! disk before it leaves the device, and a sale before its resource is released. Reads that
//! protect money fail closed: a spend total that cannot be read refuses the payment.
//!
//! Schema history: v1 kept a purchase as the HTTP header it was sent in, sales by nonce alone
//! and idempotency answers as HTTP responses; v2 (this build) keeps the signed payment and a
//! transport-neutral locator, sales by (payer, nonce), and transport-neutral answers.
//! [`migrate_v1_to_v2`] rewrites a v1 store in one synced batch.

use std::{path::Path, sync::Mutex};

use m2m_x402::{v2::PaymentPayload, Address, U256};
use m2m_x402_buyer::{
	InFlight, LedgerError, Locator, Outcome, Payment, PaymentJournal, SpendLedger,
};
use m2m_x402_seller::{idempotency, Answered, Claim, Delivery, IdempotencyStore, SaleKey};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use crate::tally::Tally;
use serde::{Deserialize, Serialize};

/// The layout this build reads and writes.
pub const SCHEMA_VERSION: u32 = 2;
const COLUMN_FAMILIES: [&str; 6] =
	["meta", "payments", "spend", "idempotency", "outbox", "channels"];
/// One schema upgrade.
type Migration = fn(&DB) -> Result<(), rocksdb::Error>;
/// `MIGRATIONS[i]` upgrades version `i + 1` to `i + 2`.
const MIGRATIONS: &[Migration] = &[migrate_v1_to_v2];

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

/// Who a payment record speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
	Buy,
	Sell,
}

/// A payment's lifecycle: required → signed → submitted → settled / unserved / pending /
/// failed / refunded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
	Required,
	Signed,
	Submitted,
	Settled,
	/// Settled on-chain, but the resource was not delivered yet.
	Unserved,
	Pending,
	Failed,
	Refunded,
}

impl State {
	pub const ALL: [State; 8] = [
		State::Required,
		State::Signed,
		State::Submitted,
		State::Settled,
		State::Unserved,
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
			State::Unserved => "unserved",
			State::Pending => "pending",
			State::Failed => "failed",
			State::Refunded => "refunded",
		}
	}

	/// Signed, submitted, unserved or pending: the money may have moved without the purchase
	/// completing, so it is resumed (sent again as signed), never re-signed.
	pub fn in_flight(self) -> bool {
		matches!(self, State::Signed | State::Submitted | State::Unserved | State::Pending)
	}
}

/// One payment, bought or sold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
	/// Buying: where the payment goes, to send it again if the answer never came.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub locator: Option<Locator>,
	/// Buying: the protocol version the seller spoke (1 or 2).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub version: Option<u32>,
	/// Buying: the payment as signed (v2 form).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payload: Option<PaymentPayload>,
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
	/// The settlement was left uncertain (with its transaction, or empty).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pending: Option<String>,
	/// When the payment's authorization expires (Unix seconds): the record may go then.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	expires_at: Option<u64>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	answered: Option<StoredAnswer>,
}

/// An [`Answered`] on disk.
#[derive(Serialize, Deserialize)]
struct StoredAnswer {
	body_hex: String,
	metadata: Vec<(String, String)>,
	settlement: m2m_x402::v2::SettleResponse,
	version: u32,
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
			},
			settlement: self.settlement,
			version: self.version,
		}
	}
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
		tally.outbox = store.scan("outbox").count() as u64;
		*store.tally.lock().expect("tally lock") = tally;
		let pruned = store.prune_idempotency(now_ms() / 1000)?;
		if pruned > 0 {
			tracing::info!(pruned, "forgot the payment ids of expired authorizations");
		}
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

	fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
		let mut batch = WriteBatch::default();
		batch.put_cf(self.cf(cf), key, value);
		self.write(batch)
	}

	fn scan(&self, cf: &str) -> impl Iterator<Item = (Box<[u8]>, Box<[u8]>)> + '_ {
		self.db.iterator_cf(self.cf(cf), rocksdb::IteratorMode::Start).map_while(Result::ok)
	}

	// --- payments

	/// Writes a payment record (replacing any at `key`), keeping the totals.
	pub fn put_payment(&self, key: &str, record: &PaymentRecord) -> Result<(), StoreError> {
		// Held across read and write, so concurrent writers of one key count it once.
		let mut tally = self.tally.lock().expect("tally lock");
		let old = self.payment(key);
		self.put("payments", key.as_bytes(), &serde_json::to_vec(record).expect("serializable"))?;
		tally.replace(old.as_ref(), record);
		Ok(())
	}

	/// The running totals (no scan).
	pub fn tally(&self) -> Tally {
		self.tally.lock().expect("tally lock").clone()
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
		let queued = self.read("outbox", receipt_id)?.is_some();
		let mut batch = WriteBatch::default();
		batch.put_cf(self.cf("payments"), &key, serde_json::to_vec(record).expect("serializable"));
		batch.put_cf(self.cf("outbox"), receipt_id, receipt);
		self.write(batch)?;
		tally.replace(old.as_ref(), record);
		if !queued {
			tally.outbox += 1;
		}
		Ok(())
	}

	/// Whether a sale of this authorization was recorded.
	pub fn sale_recorded(&self, sale: &SaleKey) -> Result<bool, StoreError> {
		Ok(self.read("payments", sale_key(sale).as_bytes())?.is_some())
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
		self.tally.lock().expect("tally lock").outbox as usize
	}

	/// Removes receipts the chain has recorded.
	pub fn outbox_done(&self, ids: &[[u8; 32]]) -> Result<(), StoreError> {
		let mut tally = self.tally.lock().expect("tally lock");
		let mut batch = WriteBatch::default();
		let mut present = 0;
		for id in ids {
			if self.read("outbox", id)?.is_some() {
				present += 1;
			}
			batch.delete_cf(self.cf("outbox"), id);
		}
		self.write(batch)?;
		tally.outbox = tally.outbox.saturating_sub(present);
		Ok(())
	}
}

fn sale_key(sale: &SaleKey) -> String {
	format!("sell/{}", sale.as_str())
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
	/// Fails closed: a total that cannot be read or parsed refuses the payment, since
	/// counting it as 0 would let the device overspend its budget.
	fn spent(&self, day: u64, network: &str, asset: Address) -> Result<U256, LedgerError> {
		let key = spend_key(day, network, asset);
		let refuse = |why: String| {
			LedgerError(format!(
				"cannot read today's spend ({why}), so nothing is paid; check the data directory"
			))
		};
		match self.read("spend", &key).map_err(|e| refuse(e.to_string()))? {
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
			url: flight.locator.resource().to_string(),
			price: p.price.clone(),
			amount: p.amount.to_string(),
			network: p.network.clone(),
			asset: p.asset.to_checksum(None),
			counterparty: p.pay_to.clone(),
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

impl Store {
	fn idempotency_entry(&self, id: &str) -> Result<Option<IdempotencyEntry>, StoreError> {
		match self.read("idempotency", id.as_bytes())? {
			None => Ok(None),
			Some(v) => serde_json::from_slice(&v)
				.map(Some)
				.map_err(|e| StoreError::Read(format!("idempotency record {id:?}: {e}"))),
		}
	}

	fn put_idempotency(&self, id: &str, entry: &IdempotencyEntry) -> Result<(), StoreError> {
		self.put("idempotency", id.as_bytes(), &serde_json::to_vec(entry).expect("json"))
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
		for (key, value) in self.scan("idempotency") {
			let expires =
				serde_json::from_slice::<IdempotencyEntry>(&value).ok().and_then(|e| e.expires_at);
			if expires.is_some_and(|t| idempotency::expired(t, now_secs)) {
				batch.delete_cf(self.cf("idempotency"), &key);
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
			Some(IdempotencyEntry { answered: Some(a), .. }) => return Claim::Replay(a.answered()),
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
		match self.put_idempotency(id, &entry) {
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
		let entry = IdempotencyEntry {
			fingerprint: fingerprint.to_string(),
			boot: self.boot.clone(),
			pending: None,
			expires_at: self.expiry_of(id),
			answered: Some(answered.into()),
		};
		if let Err(e) = self.put_idempotency(id, &entry) {
			tracing::error!(error = %e, "cannot record a payment's answer");
		}
	}

	fn release(&self, id: &str) {
		let _guard = self.lock.lock().expect("store lock");
		// Only a claim that led to nothing is forgotten; answers and pending ones stay.
		let Ok(Some(entry)) = self.idempotency_entry(id) else { return };
		if entry.answered.is_none() && entry.pending.is_none() {
			let mut batch = WriteBatch::default();
			batch.delete_cf(self.cf("idempotency"), id.as_bytes());
			let _ = self.write(batch);
		}
	}
}

/// Schema 1 → 2: purchases keep their signed payment and a locator instead of an HTTP header;
/// sales are keyed by (payer, nonce); idempotency answers become transport-neutral. One
/// synced batch, so a crash leaves the store at schema 1, to be migrated again.
fn migrate_v1_to_v2(db: &DB) -> Result<(), rocksdb::Error> {
	#[derive(Deserialize)]
	struct V1Payment {
		#[serde(flatten)]
		record: serde_json::Map<String, serde_json::Value>,
		#[serde(default)]
		method: String,
		#[serde(default)]
		header_name: String,
		#[serde(default)]
		header_value: String,
	}
	#[derive(Deserialize)]
	struct V1Idempotency {
		fingerprint: String,
		boot: String,
		#[serde(default)]
		response: Option<V1Response>,
	}
	#[derive(Deserialize)]
	struct V1Response {
		headers: Vec<(String, String)>,
		body_hex: String,
	}

	let payments = db.cf_handle("payments").expect("column family");
	let idempotency = db.cf_handle("idempotency").expect("column family");
	let mut batch = WriteBatch::default();
	for item in db.iterator_cf(payments, rocksdb::IteratorMode::Start) {
		let (key, value) = item?;
		let Ok(old) = serde_json::from_slice::<V1Payment>(&value) else { continue };
		let mut record = old.record;
		let key_text = String::from_utf8_lossy(&key).into_owned();
		if let Some(nonce) = key_text.strip_prefix("sell/") {
			// v1 keyed sales by nonce alone; another payer may use the same nonce.
			let payer = record.get("counterparty").and_then(|v| v.as_str()).unwrap_or_default();
			let new_key =
				format!("sell/exact/{}/{}", payer.to_ascii_lowercase(), nonce.to_ascii_lowercase());
			batch.delete_cf(payments, &key);
			batch.put_cf(payments, new_key, serde_json::to_vec(&record).expect("json"));
			continue;
		}
		if key_text.starts_with("buy/") {
			let url = record.get("url").and_then(|v| v.as_str()).unwrap_or_default().to_string();
			let method = if old.method.is_empty() { "GET".to_string() } else { old.method };
			let locator = Locator::Http { method, url };
			record.insert("locator".into(), serde_json::to_value(&locator).expect("json"));
			let read = match old.header_name.to_ascii_uppercase().as_str() {
				"PAYMENT-SIGNATURE" => m2m_x402::http::read_payment(Some(&old.header_value), None),
				_ => Ok(None),
			};
			if let Ok(Some(m2m_x402::paywall::IncomingPayment::V2(payload))) = read {
				record.insert("version".into(), 2.into());
				record.insert("payload".into(), serde_json::to_value(&payload).expect("json"));
			}
			batch.put_cf(payments, &key, serde_json::to_vec(&record).expect("json"));
		}
	}
	for item in db.iterator_cf(idempotency, rocksdb::IteratorMode::Start) {
		let (key, value) = item?;
		let Ok(old) = serde_json::from_slice::<V1Idempotency>(&value) else { continue };
		let answered = old.response.and_then(|r| {
			let header = |name: &str| {
				r.headers
					.iter()
					.find(|(k, _)| k.eq_ignore_ascii_case(name))
					.map(|(_, v)| v.as_str())
			};
			let v2 = header(m2m_x402::http::PAYMENT_RESPONSE);
			let v1 = header(m2m_x402::http::X_PAYMENT_RESPONSE);
			let settlement = m2m_x402::http::read_settlement(v2, v1)?.ok()?;
			let x402 = [
				m2m_x402::http::PAYMENT_RESPONSE,
				m2m_x402::http::X_PAYMENT_RESPONSE,
				"access-control-expose-headers",
			];
			let metadata = r
				.headers
				.iter()
				.filter(|(k, _)| !x402.iter().any(|x| k.eq_ignore_ascii_case(x)))
				.cloned()
				.collect();
			Some(StoredAnswer {
				body_hex: r.body_hex,
				metadata,
				settlement,
				version: if v2.is_some() { 2 } else { 1 },
			})
		});
		// A v1 answer without a readable settlement becomes a claim of a stopped run, which
		// the next presentation resolves from the chain.
		let entry = IdempotencyEntry {
			fingerprint: old.fingerprint,
			boot: old.boot,
			pending: None,
			expires_at: None,
			answered,
		};
		batch.put_cf(idempotency, &key, serde_json::to_vec(&entry).expect("json"));
	}
	// The new version goes in the same batch: a crash cannot leave v2 data marked v1.
	batch.put_cf(db.cf_handle("meta").expect("column family"), b"schema_version", "2");
	let mut options = WriteOptions::default();
	options.set_sync(true);
	db.write_opt(batch, &options)
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

	fn answered(body: &str) -> Answered {
		Answered {
			delivery: Delivery {
				body: body.as_bytes().to_vec(),
				metadata: vec![("content-type".into(), "text/plain".into())],
			},
			settlement: settlement("0x01"),
			version: 2,
		}
	}

	fn settlement(tx: &str) -> m2m_x402::v2::SettleResponse {
		m2m_x402::v2::SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: tx.into(),
			network: "eip155:33380".into(),
			payer: Some("0x00000000000000000000000000000000000000aa".into()),
			amount: Some("10000".into()),
			extensions: None,
		}
	}

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
		assert_eq!(s.claim(id, fp, u64::MAX), Claim::Replay(answered("x")));
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
		assert_eq!(s.claim(id, fp, u64::MAX), Claim::Replay(answered("x")), "kept");

		let asset = Address::repeat_byte(7);
		s.add(5, "eip155:1", asset, U256::from(10)).unwrap();
		s.add(5, "eip155:1", asset, U256::from(5)).unwrap();
		assert_eq!(s.spent(5, "eip155:1", asset).unwrap(), U256::from(15));
		assert_eq!(s.spent(6, "eip155:1", asset).unwrap(), U256::ZERO);
		std::fs::remove_dir_all(&d).unwrap();
	}

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

	/// A store as schema 1 wrote it (the layout of the previous release, byte for byte in
	/// its JSON): a purchase in flight kept as its HTTP header, a sale keyed by nonce, and an
	/// answered payment id kept as an HTTP response.
	#[test]
	fn a_schema_1_store_is_migrated_and_its_purchase_resumes() {
		use m2m_x402::{codec, http as x402_http, schemes::exact};
		let d = dir("v1");
		let signer = alloy_signer_local_for_tests();
		let usdt = Address::repeat_byte(0x11);
		let offer = exact::requirements(
			33380,
			usdt,
			("Tether USD", "1"),
			Address::repeat_byte(0x22),
			U256::from(10_000u64),
			300,
		);
		let nonce = m2m_x402::B256::repeat_byte(9);
		let wire = exact::sign(&signer, &offer, 1_800_000_000, nonce).unwrap();
		let payload = exact::payment(offer.clone(), &wire);
		let (header_name, header_value) = x402_http::payment_header(2, &payload).unwrap();
		let payer = signer.address().to_checksum(None);
		{
			let mut options = Options::default();
			options.create_if_missing(true);
			options.create_missing_column_families(true);
			let cfs =
				COLUMN_FAMILIES.iter().map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
			let db = DB::open_cf_descriptors(&options, &d, cfs).unwrap();
			let put = |cf: &str, k: &str, v: String| {
				db.put_cf(db.cf_handle(cf).unwrap(), k, v).unwrap();
			};
			put("meta", "schema_version", "1".into());
			put("meta", "device", "0xAA".into());
			let buy = serde_json::json!({
				"role": "buy", "state": "submitted", "url": "http://127.0.0.1:8080/reading",
				"price": "0.01 USDT", "amount": "10000", "network": "eip155:33380",
				"asset": usdt.to_checksum(None), "counterparty": offer.pay_to,
				"payment_id": null, "method": "GET", "header_name": header_name,
				"header_value": header_value, "transaction": "", "reason": "",
				"created_ms": 1, "updated_ms": 2
			});
			put("payments", &format!("buy/{nonce}"), buy.to_string());
			let sell = serde_json::json!({
				"role": "sell", "state": "settled", "url": "http://x/reading",
				"price": "10000 base units", "amount": "10000", "network": "eip155:33380",
				"asset": usdt.to_checksum(None), "counterparty": payer, "payment_id": null,
				"method": "", "header_name": "", "header_value": "", "transaction": "0x01",
				"reason": "", "created_ms": 1, "updated_ms": 1
			});
			put("payments", &format!("sell/{nonce}"), sell.to_string());
			let answered = serde_json::json!({
				"fingerprint": m2m_x402::B256::repeat_byte(1).to_string(), "boot": "old",
				"response": {
					"status": 200,
					"headers": [["content-type", "text/plain"],
						["payment-response", codec::encode(&settlement("0x01"))]],
					"body_hex": hex::encode("x"),
				}
			});
			put("idempotency", "pay_0123456789abcdef", answered.to_string());
		}

		let s = Store::open(&d, "0xAA").unwrap();
		assert_eq!(s.get("meta", b"schema_version").unwrap(), b"2");
		let flights = s.purchases_in_flight();
		assert_eq!(flights.len(), 1, "the purchase in flight is resumable");
		assert_eq!(flights[0].payment.payload, payload, "the same signed payment");
		assert_eq!(flights[0].version, 2);
		assert_eq!(
			flights[0].locator,
			Locator::Http { method: "GET".into(), url: "http://127.0.0.1:8080/reading".into() }
		);
		let key = SaleKey::of(&m2m_x402::paywall::Accepted {
			version: 2,
			payment: payload.clone(),
			requirement: offer,
		})
		.unwrap();
		assert!(s.sale_recorded(&key).unwrap(), "the sale is keyed by (payer, nonce) now");
		assert!(s.payment(&format!("sell/{nonce}")).is_none(), "the nonce-only key is gone");
		assert_eq!(
			s.claim("pay_0123456789abcdef", m2m_x402::B256::repeat_byte(1), u64::MAX),
			Claim::Replay(answered("x")),
			"the answer replays, transport-neutral"
		);
		drop(s);
		// Opening again migrates nothing twice.
		let s = Store::open(&d, "0xAA").unwrap();
		assert_eq!(s.purchases_in_flight().len(), 1);
		assert!(s.sale_recorded(&key).unwrap());
		drop(s);
		std::fs::remove_dir_all(&d).unwrap();
	}

	fn alloy_signer_local_for_tests() -> m2m_evm::alloy::signers::local::PrivateKeySigner {
		m2m_evm::alloy::signers::local::PrivateKeySigner::from_bytes(&m2m_x402::B256::repeat_byte(
			0x42,
		))
		.unwrap()
	}
}
