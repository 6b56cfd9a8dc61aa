//! Idempotency by the buyer's `payment-identifier`: the same id with the same payment gets the
//! same answer without being charged again; the same id with a different payment is a
//! conflict.

use std::{collections::HashMap, collections::VecDeque, sync::Mutex};

use m2m_x402::B256;

/// A response as it was sent, to be sent again verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedResponse {
	pub status: u16,
	pub headers: Vec<(String, String)>,
	pub body: Vec<u8>,
}

/// What an idempotency key says about a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
	/// First use: the key is now held by this payment until completed or released.
	New,
	/// This payment was served before: here is its answer.
	Replay(CachedResponse),
	/// The key belongs to a different payment.
	Conflict,
	/// The same payment is being processed right now.
	InProgress,
	/// The same payment was being processed by a previous run of this seller, which stopped
	/// before answering (a crash): it may have been settled. The key is now held again.
	Stale,
}

/// Where idempotency records live. Implementations must make `claim` atomic.
pub trait IdempotencyStore: Send + Sync {
	fn claim(&self, id: &str, fingerprint: B256) -> Claim;
	fn complete(&self, id: &str, fingerprint: B256, response: CachedResponse);
	fn release(&self, id: &str);
}

enum Entry {
	InProgress(B256),
	Done(B256, CachedResponse),
}

/// Idempotency records in memory, the oldest forgotten beyond a capacity.
pub struct MemoryIdempotency {
	capacity: usize,
	state: Mutex<(HashMap<String, Entry>, VecDeque<String>)>,
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
	fn claim(&self, id: &str, fingerprint: B256) -> Claim {
		let mut guard = self.state.lock().expect("idempotency lock");
		let (entries, order) = &mut *guard;
		match entries.get(id) {
			Some(Entry::InProgress(f)) if *f == fingerprint => Claim::InProgress,
			Some(Entry::Done(f, response)) if *f == fingerprint => Claim::Replay(response.clone()),
			Some(_) => Claim::Conflict,
			None => {
				while entries.len() >= self.capacity {
					match order.pop_front() {
						Some(old) => entries.remove(&old),
						None => break,
					};
				}
				entries.insert(id.to_string(), Entry::InProgress(fingerprint));
				order.push_back(id.to_string());
				Claim::New
			},
		}
	}

	fn complete(&self, id: &str, fingerprint: B256, response: CachedResponse) {
		let mut guard = self.state.lock().expect("idempotency lock");
		if let Some(entry) = guard.0.get_mut(id) {
			*entry = Entry::Done(fingerprint, response);
		}
	}

	fn release(&self, id: &str) {
		let mut guard = self.state.lock().expect("idempotency lock");
		if matches!(guard.0.get(id), Some(Entry::InProgress(_))) {
			guard.0.remove(id);
			guard.1.retain(|k| k != id);
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn response(body: &str) -> CachedResponse {
		CachedResponse { status: 200, headers: vec![], body: body.into() }
	}

	#[test]
	fn one_key_serves_one_payment() {
		let store = MemoryIdempotency::default();
		let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
		assert_eq!(store.claim("k", a), Claim::New);
		assert_eq!(store.claim("k", a), Claim::InProgress);
		assert_eq!(store.claim("k", b), Claim::Conflict);
		store.complete("k", a, response("x"));
		assert_eq!(store.claim("k", a), Claim::Replay(response("x")));
		assert_eq!(store.claim("k", b), Claim::Conflict);
		store.release("k");
		assert_eq!(store.claim("k", a), Claim::Replay(response("x")), "completed keys stay");
	}

	#[test]
	fn a_released_key_can_be_retried_and_capacity_is_bounded() {
		let store = MemoryIdempotency::with_capacity(2);
		let a = B256::repeat_byte(1);
		assert_eq!(store.claim("k", a), Claim::New);
		store.release("k");
		assert_eq!(store.claim("k", a), Claim::New);
		store.complete("k", a, response("1"));
		assert_eq!(store.claim("l", a), Claim::New);
		assert_eq!(store.claim("m", a), Claim::New);
		assert_eq!(store.claim("k", a), Claim::New, "the oldest record was forgotten");
	}
}
