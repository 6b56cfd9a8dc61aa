//! Idempotency by the buyer's `payment-identifier`: the same id with the same payment gets the
//! same answer without being charged again; the same id with a different payment is a
//! conflict.
//!
//! Records hold a transport-neutral [`Answered`] (the delivered resource and its settlement),
//! so a payment made over HTTP and presented again over another transport gets the same
//! answer. A record whose settlement was left uncertain stays claimed as **pending**: the next
//! presentation resolves it from the chain instead of settling or refusing it.

use std::{collections::HashMap, collections::VecDeque, sync::Mutex};

use m2m_x402::{v2::SettleResponse, B256};

/// The resource as it was produced, whatever the transport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
	pub body: Vec<u8>,
	/// Metadata the transport carries with the body (HTTP: the handler's headers, such as
	/// `content-type`).
	pub metadata: Vec<(String, String)>,
	/// What this delivery costs, when less than the offer's `amount` (its maximum): a metered
	/// interval cut short. Channels only (an `exact` payment is always its whole amount);
	/// `None` charges the offer's amount.
	pub charge: Option<u128>,
}

/// What a buyer got for a payment: the resource, and the settlement that paid for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answered {
	pub delivery: Delivery,
	pub settlement: SettleResponse,
	/// The protocol version the buyer spoke (1 or 2), so the answer is given in kind.
	pub version: u32,
}

/// What an idempotency key says about a payment.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
	/// First use: the key is now held by this payment until completed or released.
	New,
	/// This payment was served before: here is its answer.
	Replay(Box<Answered>),
	/// The key belongs to a different payment.
	Conflict,
	/// The same payment is being processed right now.
	InProgress,
	/// The same payment may have been settled without being answered: a previous run stopped
	/// mid-sale (a crash), or its settlement was left pending (`transaction`, when known). The
	/// key is now held again, and the payment must be resolved from the chain.
	Unresolved { transaction: Option<String> },
}

/// Where idempotency records live.
///
/// `claim` must be atomic. `pending` and `complete` must be durable when they return for a
/// store that survives restarts: they are what lets a restarted seller answer a paid retry
/// instead of charging again.
///
/// A record may be forgotten once its payment's authorization has expired (`expires_at`,
/// Unix seconds): from then on the payment cannot settle, so presenting it again is refused
/// by verification whatever the record said.
pub trait IdempotencyStore: Send + Sync {
	fn claim(&self, id: &str, fingerprint: B256, expires_at: u64) -> Claim;
	/// The payment's settlement is uncertain (sent, not confirmed, or the facilitator gave no
	/// answer): keep the key held by it, with the transaction if known.
	fn pending(&self, id: &str, fingerprint: B256, transaction: &str);
	fn complete(&self, id: &str, fingerprint: B256, answered: Answered);
	/// [`complete`](Self::complete) for a sale whose own durable state already answers a retry
	/// without a second charge (a channel's voucher, synced with its charge: the retry of a
	/// claim left unresolved is served again, charged nothing). Need not be durable when it
	/// returns: a store may let the next synced write carry it.
	fn complete_resolvable(&self, id: &str, fingerprint: B256, answered: Answered) {
		self.complete(id, fingerprint, answered)
	}
	/// Forgets a claim that led to nothing (no settlement): the id may be used again.
	fn release(&self, id: &str);
}

#[derive(Clone)]
enum Entry {
	InProgress(B256),
	Pending(B256, String),
	Done(B256, Box<Answered>),
}

/// Each id's entry with its expiry, and the ids oldest first.
type Records = (HashMap<String, (Entry, u64)>, VecDeque<String>);

/// Idempotency records in memory, the oldest forgotten beyond a capacity, and any forgotten
/// once its authorization has expired.
pub struct MemoryIdempotency {
	capacity: usize,
	state: Mutex<Records>,
}

impl MemoryIdempotency {
	/// Records kept by [`Default`].
	pub const DEFAULT_CAPACITY: usize = 10_000;

	pub fn with_capacity(capacity: usize) -> Self {
		Self { capacity: capacity.max(1), state: Mutex::default() }
	}
}

impl Default for MemoryIdempotency {
	fn default() -> Self {
		Self::with_capacity(Self::DEFAULT_CAPACITY)
	}
}

impl IdempotencyStore for MemoryIdempotency {
	fn claim(&self, id: &str, fingerprint: B256, expires_at: u64) -> Claim {
		let now = m2m_x402::clock::unix_now();
		let mut guard = self.state.lock().expect("idempotency lock");
		let (entries, order) = &mut *guard;
		let live =
			entries.get(id).filter(|(_, expiry)| !expired(*expiry, now)).map(|(e, _)| e.clone());
		match live {
			Some(Entry::InProgress(f)) if f == fingerprint => Claim::InProgress,
			Some(Entry::Done(f, answered)) if f == fingerprint => Claim::Replay(answered),
			Some(Entry::Pending(f, tx)) if f == fingerprint => {
				entries.insert(id.to_string(), (Entry::InProgress(f), expires_at));
				Claim::Unresolved { transaction: (!tx.is_empty()).then_some(tx) }
			},
			Some(_) => Claim::Conflict,
			None => {
				if entries.remove(id).is_some() {
					order.retain(|k| k != id);
				}
				while entries.len() >= self.capacity {
					match order.pop_front() {
						Some(old) => entries.remove(&old),
						None => break,
					};
				}
				entries.insert(id.to_string(), (Entry::InProgress(fingerprint), expires_at));
				order.push_back(id.to_string());
				Claim::New
			},
		}
	}

	fn pending(&self, id: &str, fingerprint: B256, transaction: &str) {
		let mut guard = self.state.lock().expect("idempotency lock");
		if let Some((entry, _)) = guard.0.get_mut(id) {
			*entry = Entry::Pending(fingerprint, transaction.to_string());
		}
	}

	fn complete(&self, id: &str, fingerprint: B256, answered: Answered) {
		let mut guard = self.state.lock().expect("idempotency lock");
		if let Some((entry, _)) = guard.0.get_mut(id) {
			*entry = Entry::Done(fingerprint, Box::new(answered));
		}
	}

	fn release(&self, id: &str) {
		let mut guard = self.state.lock().expect("idempotency lock");
		if matches!(guard.0.get(id), Some((Entry::InProgress(_), _))) {
			guard.0.remove(id);
			guard.1.retain(|k| k != id);
		}
	}
}

/// Kept this long past an authorization's expiry, against clock skew between seller and
/// chain.
pub const EXPIRY_GRACE_SECS: u64 = 3600;

/// Whether a record of a payment expiring at `expires_at` may be forgotten at `now`.
pub fn expired(expires_at: u64, now: u64) -> bool {
	expires_at.saturating_add(EXPIRY_GRACE_SECS) < now
}

#[cfg(test)]
mod tests {
	use super::*;

	/// An expiry far in the future.
	const FAR: u64 = u64::MAX;

	fn answered(body: &str) -> Answered {
		Answered {
			delivery: Delivery { body: body.into(), metadata: vec![], charge: None },
			settlement: SettleResponse {
				success: true,
				error_reason: None,
				error_message: None,
				transaction: "0x01".into(),
				network: "eip155:1".into(),
				payer: None,
				amount: None,
				extensions: None,
				extra: None,
			},
			version: 2,
		}
	}

	#[test]
	fn one_key_serves_one_payment() {
		let store = MemoryIdempotency::default();
		let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
		assert_eq!(store.claim("k", a, FAR), Claim::New);
		assert_eq!(store.claim("k", a, FAR), Claim::InProgress);
		assert_eq!(store.claim("k", b, FAR), Claim::Conflict);
		store.complete("k", a, answered("x"));
		assert_eq!(store.claim("k", a, FAR), Claim::Replay(Box::new(answered("x"))));
		assert_eq!(store.claim("k", b, FAR), Claim::Conflict);
		store.release("k");
		assert_eq!(
			store.claim("k", a, FAR),
			Claim::Replay(Box::new(answered("x"))),
			"completed keys stay"
		);
	}

	#[test]
	fn a_pending_payment_keeps_its_key_and_is_resolved_next_time() {
		let store = MemoryIdempotency::default();
		let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
		assert_eq!(store.claim("k", a, FAR), Claim::New);
		store.pending("k", a, "0xabc");
		store.release("k");
		assert_eq!(store.claim("k", b, FAR), Claim::Conflict, "a pending key is still held");
		assert_eq!(
			store.claim("k", a, FAR),
			Claim::Unresolved { transaction: Some("0xabc".into()) }
		);
		assert_eq!(store.claim("k", a, FAR), Claim::InProgress, "being resolved now");
	}

	#[test]
	fn a_released_key_can_be_retried_and_capacity_is_bounded() {
		let store = MemoryIdempotency::with_capacity(2);
		let a = B256::repeat_byte(1);
		assert_eq!(store.claim("k", a, FAR), Claim::New);
		store.release("k");
		assert_eq!(store.claim("k", a, FAR), Claim::New);
		store.complete("k", a, answered("1"));
		assert_eq!(store.claim("l", a, FAR), Claim::New);
		assert_eq!(store.claim("m", a, FAR), Claim::New);
		assert_eq!(store.claim("k", a, FAR), Claim::New, "the oldest record was forgotten");
	}

	#[test]
	fn a_record_is_forgotten_once_its_authorization_expired() {
		let store = MemoryIdempotency::default();
		let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
		assert_eq!(store.claim("k", a, 1), Claim::New);
		store.complete("k", a, answered("x"));
		assert_eq!(store.claim("k", b, FAR), Claim::New, "expired in 1970: the id is free again");
	}
}
