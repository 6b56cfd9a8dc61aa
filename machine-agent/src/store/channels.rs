//! The `channels` column family: the payment channels this device sells from, one
//! [`ChannelRecord`] each, and the ones it pays from, one [`BuyerChannel`] each.
//!
//! A seller's record holds the highest voucher it accepted, the only claim it has to the
//! money; a buyer's holds the highest voucher it signed, so that it never signs the same
//! cumulative amount for a different request. Both are written synced, before the voucher's
//! answer leaves (seller) or the voucher itself leaves (buyer).

use m2m_x402::B256;
use m2m_x402_buyer::channels::{BuyerChannel, BuyerChannelStore};
use m2m_x402_seller::channels::{ChannelRecord, ChannelStore};

use super::{Store, StoreError};

/// Keys: `sell/<channel id>` ([`ChannelRecord`], JSON), `buy/<channel id>`
/// ([`BuyerChannel`], JSON) and `receipted/<channel id>` ([`ChannelReceipted`], JSON). Schema
/// v4 is the first to write them: an older build refuses the store instead of ignoring the
/// money held in a channel.
pub(super) const CF: &str = "channels";

const SELL: &str = "sell/";
const BUY: &str = "buy/";
const RECEIPTED: &str = "receipted/";

/// How much of a channel's claims is in receipts already: the claimed total and the requests
/// they cover. The next receipt covers what the channel's claims added since.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelReceipted {
	#[serde(with = "m2m_x402::schemes::batch_settlement::payload::decimal")]
	pub amount: u128,
	pub requests: u64,
}

fn key(prefix: &str, channel_id: &B256) -> String {
	format!("{prefix}{channel_id}")
}

impl Store {
	fn channel_value<T: serde::de::DeserializeOwned>(
		&self,
		key: &str,
	) -> Result<Option<T>, StoreError> {
		match self.read(CF, key.as_bytes())? {
			None => Ok(None),
			Some(v) => serde_json::from_slice(&v)
				.map(Some)
				.map_err(|e| StoreError::Read(format!("channel record {key}: {e}"))),
		}
	}

	/// Every record under `prefix`; one that does not parse fails the whole read (a channel
	/// that cannot be read must not pass for one that does not exist).
	fn channel_values<T: serde::de::DeserializeOwned>(
		&self,
		prefix: &str,
	) -> Result<Vec<T>, StoreError> {
		let mut out = Vec::new();
		for item in self.db.prefix_iterator_cf(self.cf(CF), prefix.as_bytes()) {
			let (k, v) = item.map_err(|e| StoreError::Read(e.to_string()))?;
			if !k.starts_with(prefix.as_bytes()) {
				break;
			}
			out.push(serde_json::from_slice(&v).map_err(|e| {
				StoreError::Read(format!("channel record {}: {e}", String::from_utf8_lossy(&k)))
			})?);
		}
		Ok(out)
	}
}

impl Store {
	/// What of `channel_id`'s claims is in receipts already.
	pub fn channel_receipted(&self, channel_id: &B256) -> Result<ChannelReceipted, StoreError> {
		Ok(self.channel_value(&key(RECEIPTED, channel_id))?.unwrap_or_default())
	}

	/// Queues the receipt of a channel's new claims and moves its receipted cursor to `after`,
	/// in one synced write: a crash leaves both or neither, so no claim is receipted twice or
	/// never.
	pub fn queue_channel_receipt(
		&self,
		channel_id: &B256,
		after: ChannelReceipted,
		receipt_id: &[u8; 32],
		receipt: &[u8],
	) -> Result<(), StoreError> {
		let _guard = self.lock.lock().expect("store lock");
		let mut tally = self.tally.lock().expect("tally lock");
		let queued = self.read(super::outbox::CF, receipt_id)?.is_some()
			|| self.read(super::outbox::SENT_CF, receipt_id)?.is_some();
		let mut batch = rocksdb::WriteBatch::default();
		let cursor = serde_json::to_vec(&after).expect("plain data");
		batch.put_cf(self.cf(CF), key(RECEIPTED, channel_id), cursor);
		if !queued {
			batch.put_cf(self.cf(super::outbox::CF), receipt_id, receipt);
		}
		self.write(batch)?;
		if !queued {
			tally.outbox += 1;
		}
		Ok(())
	}
}

impl ChannelStore for Store {
	fn load(&self, channel_id: &B256) -> Result<Option<ChannelRecord>, String> {
		self.channel_value(&key(SELL, channel_id)).map_err(|e| e.to_string())
	}

	fn save(&self, record: &ChannelRecord) -> Result<(), String> {
		let value = serde_json::to_vec(record).expect("a channel record serializes");
		self.put(CF, key(SELL, &record.channel_id).as_bytes(), &value).map_err(|e| e.to_string())
	}

	fn all(&self) -> Result<Vec<ChannelRecord>, String> {
		self.channel_values(SELL).map_err(|e| e.to_string())
	}
}

impl BuyerChannelStore for Store {
	fn load(&self, channel_id: &B256) -> Result<Option<BuyerChannel>, String> {
		self.channel_value(&key(BUY, channel_id)).map_err(|e| e.to_string())
	}

	fn save(&self, channel: &BuyerChannel) -> Result<(), String> {
		let value = serde_json::to_vec(channel).expect("a buyer channel serializes");
		self.put(CF, key(BUY, &channel.channel_id).as_bytes(), &value).map_err(|e| e.to_string())
	}

	fn all(&self) -> Result<Vec<BuyerChannel>, String> {
		self.channel_values(BUY).map_err(|e| e.to_string())
	}
}

#[cfg(test)]
mod tests {
	use m2m_x402::{
		schemes::batch_settlement::rules::{self, Offer},
		Address,
	};

	use super::*;
	use crate::store::tests::dir;

	fn offer() -> Offer {
		Offer {
			chain_id: 33380,
			asset: Address::repeat_byte(0x11),
			token_domain: ("Tether USD".into(), "1".into()),
			pay_to: Address::repeat_byte(0x22),
			receiver_authorizer: Address::repeat_byte(0x33),
			withdraw_delay: 900,
			max_price: 10_000,
			max_timeout_seconds: 60,
		}
	}

	fn seller_record(id: u8) -> ChannelRecord {
		let offer = offer();
		let config = rules::config_for(&offer, Address::repeat_byte(0x44), B256::repeat_byte(id));
		ChannelRecord {
			channel_id: B256::repeat_byte(id),
			config: rules::config_wire(&config),
			requirements: rules::requirements(&offer),
			charged: 30_000,
			signed: 30_000,
			signature: format!("0x{}", "ab".repeat(65)),
			balance: 1_000_000,
			total_claimed: 10_000,
			withdraw_requested_at: 0,
			refund_nonce: "0".into(),
			requests: 3,
			unclaimed_requests: 2,
			last_claim: String::new(),
		}
	}

	#[test]
	fn channel_records_survive_a_reopen_and_the_two_roles_stay_apart() {
		let d = dir("channels");
		let record = seller_record(1);
		let bought = BuyerChannel::open(
			B256::repeat_byte(9),
			rules::config_wire(&rules::config_for(
				&offer(),
				Address::repeat_byte(0x55),
				B256::repeat_byte(9),
			)),
			rules::requirements(&offer()),
		);
		{
			let s = Store::open(&d, "0xAA").unwrap();
			assert_eq!(ChannelStore::load(&s, &record.channel_id).unwrap(), None);
			ChannelStore::save(&s, &record).unwrap();
			ChannelStore::save(&s, &seller_record(2)).unwrap();
			BuyerChannelStore::save(&s, &bought).unwrap();
		}
		// Reopened, as after a restart: every write was synced.
		let s = Store::open(&d, "0xAA").unwrap();
		assert_eq!(ChannelStore::load(&s, &record.channel_id).unwrap(), Some(record.clone()));
		assert_eq!(ChannelStore::all(&s).unwrap().len(), 2, "both sold-from channels");
		assert_eq!(BuyerChannelStore::all(&s).unwrap(), vec![bought.clone()]);
		assert_eq!(
			BuyerChannelStore::load(&s, &record.channel_id).unwrap(),
			None,
			"a channel sold from is not one paid from"
		);

		// A record that does not parse is an error, never "no channel".
		s.put(CF, key(SELL, &B256::repeat_byte(3)).as_bytes(), b"{not json").unwrap();
		let e = ChannelStore::load(&s, &B256::repeat_byte(3)).unwrap_err();
		assert!(e.contains("channel record sell/0x0303"), "{e}");
		assert!(ChannelStore::all(&s).is_err(), "a listing with an unreadable channel fails");
		drop(s);
		std::fs::remove_dir_all(&d).unwrap();
	}
}
