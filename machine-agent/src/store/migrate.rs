//! Schema upgrades, which [`Store::open`](super::Store::open) runs on a store an older build
//! wrote: each rewrites the store in one synced batch, so a crash leaves the old version whole.

use m2m_x402_buyer::Locator;
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::Deserialize;

use super::idempotency::{IdempotencyEntry, StoredAnswer};

/// One schema upgrade.
pub(super) type Migration = fn(&DB) -> Result<(), rocksdb::Error>;
/// `MIGRATIONS[i]` upgrades version `i + 1` to `i + 2`.
pub(super) const MIGRATIONS: &[Migration] = &[migrate_v1_to_v2, migrate_v2_to_v3, migrate_v3_to_v4];

/// Schema 3 → 4: queued receipts gain a proof by scheme (exact or channel) and a request
/// count; the `channels` column family, empty before, starts holding channels. One synced
/// batch over the three outbox stages, so a crash leaves the store at schema 3.
fn migrate_v3_to_v4(db: &DB) -> Result<(), rocksdb::Error> {
	use codec::{Decode, Encode};
	use m2m_primitives::{
		eip712::{EcdsaSignature, TransferWithAuthorization},
		receipt::AssetKey,
		H256,
	};

	use crate::selling::{QueuedProof, QueuedReceipt};

	/// Schema 3's queued receipt, field for field: exact only, one request.
	#[derive(Decode)]
	struct V3Receipt {
		asset: AssetKey,
		authorization: TransferWithAuthorization,
		signature: EcdsaSignature,
		settlement_tx: H256,
		resource: H256,
		period_start: u64,
		period_end: u64,
	}
	/// Rewrites one receipt; one that does not decode is left for the outbox's own handling
	/// (the dead-letter list, with its error).
	fn upgrade(bytes: &[u8]) -> Option<Vec<u8>> {
		let old = V3Receipt::decode(&mut &bytes[..]).ok()?;
		let new = QueuedReceipt {
			asset: old.asset,
			proof: QueuedProof::Exact {
				authorization: old.authorization,
				signature: old.signature,
			},
			settlement_tx: old.settlement_tx,
			resource: old.resource,
			request_count: 1,
			period_start: old.period_start,
			period_end: old.period_end,
		};
		Some(new.encode())
	}
	#[derive(Encode, Decode)]
	struct Sent {
		block_number: u32,
		receipt: Vec<u8>,
	}

	let mut batch = WriteBatch::default();
	let outbox = db.cf_handle("outbox").expect("column family");
	for item in db.iterator_cf(outbox, rocksdb::IteratorMode::Start) {
		let (key, value) = item?;
		if let Some(new) = upgrade(&value) {
			batch.put_cf(outbox, &key, new);
		}
	}
	let sent = db.cf_handle("outbox_sent").expect("column family");
	for item in db.iterator_cf(sent, rocksdb::IteratorMode::Start) {
		let (key, value) = item?;
		let Ok(mut entry) = Sent::decode(&mut &value[..]) else { continue };
		if let Some(new) = upgrade(&entry.receipt) {
			entry.receipt = new;
			batch.put_cf(sent, &key, entry.encode());
		}
	}
	let dead = db.cf_handle("dead_letter").expect("column family");
	for item in db.iterator_cf(dead, rocksdb::IteratorMode::Start) {
		let (key, value) = item?;
		let Ok(mut letter) = serde_json::from_slice::<serde_json::Value>(&value) else { continue };
		let old = letter.get("receipt").and_then(|r| r.as_str()).and_then(|h| hex::decode(h).ok());
		if let Some(new) = old.as_deref().and_then(upgrade) {
			letter["receipt"] = hex::encode(new).into();
			batch.put_cf(dead, &key, serde_json::to_vec(&letter).expect("json"));
		}
	}
	batch.put_cf(db.cf_handle("meta").expect("column family"), b"schema_version", "4");
	let mut options = WriteOptions::default();
	options.set_sync(true);
	db.write_opt(batch, &options)
}

/// v3 only adds column families (`outbox_sent`, `dead_letter`), which opening creates.
fn migrate_v2_to_v3(_: &DB) -> Result<(), rocksdb::Error> {
	Ok(())
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

	// Schema 1's names, spelled out: a later rename must not change what this migration reads.
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
	use m2m_x402::{Address, U256};
	use m2m_x402_seller::{Claim, IdempotencyStore, SaleKey};
	use rocksdb::{ColumnFamilyDescriptor, Options};

	use super::*;
	use crate::store::{
		tests::{answered, dir, settlement},
		Store, COLUMN_FAMILIES,
	};

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
		assert_eq!(
			s.get("meta", b"schema_version").unwrap(),
			crate::store::SCHEMA_VERSION.to_string().as_bytes()
		);
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
			Claim::Replay(Box::new(answered("x"))),
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

	/// A store as schema 3 wrote it: an exact receipt waiting in the outbox, one awaiting
	/// finality, in schema 3's layout (no proof enum, no request count).
	#[test]
	fn a_schema_3_outbox_is_migrated_and_its_receipts_decode() {
		use codec::{Decode, Encode};
		use m2m_primitives::{
			eip712::{EcdsaSignature, TransferWithAuthorization},
			receipt::AssetKey,
			H160, H256, U256 as PU256,
		};

		use crate::selling::{QueuedProof, QueuedReceipt};
		#[derive(Encode)]
		struct V3Receipt {
			asset: AssetKey,
			authorization: TransferWithAuthorization,
			signature: EcdsaSignature,
			settlement_tx: H256,
			resource: H256,
			period_start: u64,
			period_end: u64,
		}
		let authorization = TransferWithAuthorization {
			from: H160::repeat_byte(1),
			to: H160::repeat_byte(2),
			value: PU256::from(10_000u64),
			valid_after: PU256::zero(),
			valid_before: PU256::from(u64::MAX),
			nonce: H256::repeat_byte(3),
		};
		let asset = AssetKey { chain_id: 33380, token: H160::repeat_byte(4) };
		let old = V3Receipt {
			asset,
			authorization: authorization.clone(),
			signature: EcdsaSignature([7; 65]),
			settlement_tx: H256::repeat_byte(5),
			resource: H256::repeat_byte(6),
			period_start: 1,
			period_end: 2,
		}
		.encode();
		let d = dir("v3");
		{
			let mut options = Options::default();
			options.create_if_missing(true);
			options.create_missing_column_families(true);
			let cfs =
				COLUMN_FAMILIES.iter().map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
			let db = DB::open_cf_descriptors(&options, &d, cfs).unwrap();
			let put = |cf: &str, k: &[u8], v: &[u8]| {
				db.put_cf(db.cf_handle(cf).unwrap(), k, v).unwrap();
			};
			put("meta", b"schema_version", b"3");
			put("meta", b"device", b"0xAA");
			put("outbox", &[1; 32], &old);
			put("outbox_sent", &[2; 32], &(9u32, old.clone()).encode());
		}
		let s = Store::open(&d, "0xAA").unwrap();
		let queued = s.outbox(10, |_| false);
		assert_eq!(queued.len(), 1);
		let receipt = QueuedReceipt::decode(&mut &queued[0].1[..]).expect("the new layout");
		assert_eq!(
			receipt.proof,
			QueuedProof::Exact { authorization, signature: EcdsaSignature([7; 65]) }
		);
		assert_eq!((receipt.request_count, receipt.period_end), (1, 2));
		let sent = s.awaiting_finality();
		assert_eq!(sent[0].1.block_number, 9);
		assert_eq!(QueuedReceipt::decode(&mut &sent[0].1.receipt[..]).unwrap(), receipt);
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
