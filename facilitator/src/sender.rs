//! The facilitator's transactions: signed here, with a nonce counted here, so that the
//! transaction hash is known **before** anything is broadcast.
//!
//! Two facts of real chains shape this module:
//!
//! - **A broadcast can fail ambiguously.** A timeout or a reset connection after
//!   `eth_sendRawTransaction` left the process says nothing about whether the transaction
//!   reached the pool. Because the hash was computed before sending, such a failure is
//!   reported as [`Broadcast::Uncertain`] with that hash: the caller keeps waiting for a
//!   receipt and, at worst, answers `settlement_pending` with the hash, never "failed" (which
//!   would invite the buyer to sign and pay again).
//! - **Endpoints do not agree on the "pending" nonce.** pallet-revive's eth-rpc answers
//!   `eth_getTransactionCount(…, "pending")` with the latest block's count, so two sends within
//!   one 6 s block got the same nonce (the second refused with "1014: Priority is too low").
//!   The sender counts its own nonces and takes the larger of its count and the endpoint's, so
//!   it never goes backwards and still notices transactions sent by another process.
//!
//! Nonces are handed out and transactions signed one at a time, but broadcasts run
//! concurrently: eth-rpc on an instant-sealing node answers `eth_sendRawTransaction` only once
//! the transaction is in a block, so a broadcast under the lock allowed one settlement per
//! block. The pool takes a nonce that arrives before its predecessor as "future".
//!
//! A send the endpoint refuses outright (a JSON-RPC error) consumed nothing: its nonce goes
//! back to a free list and is handed out again first, so no gap is left that every later
//! transaction would wait behind. A send that failed ambiguously keeps its nonce and its
//! signed bytes, which are broadcast again before the next send, for the same reason.

use std::time::Duration;

use m2m_evm::alloy::{
	network::{eip2718::Encodable2718, EthereumWallet, TransactionBuilder},
	primitives::{Address, Bytes, B256},
	providers::{DynProvider, Provider},
	rpc::types::TransactionRequest,
	signers::local::PrivateKeySigner,
	transports::{RpcError, TransportErrorKind},
};

/// How a signed transaction left the facilitator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Broadcast {
	/// The endpoint took it (or already had it).
	Sent(B256),
	/// The endpoint did not answer usably: the transaction may or may not be in the pool.
	Uncertain { tx: B256, error: String },
}

impl Broadcast {
	pub fn tx(&self) -> B256 {
		match self {
			Broadcast::Sent(tx) | Broadcast::Uncertain { tx, .. } => *tx,
		}
	}
}

/// Why nothing was broadcast. Nothing was consumed either: no nonce, no authorization.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotSent {
	/// Gas estimation failed: the call would revert (or the endpoint cannot tell).
	#[error("the transaction would fail: {0}")]
	WouldFail(String),
	/// The endpoint refused the signed transaction.
	#[error("the chain refused the transaction: {0}")]
	Refused(String),
	/// The nonce, gas price or signature could not be obtained.
	#[error("the transaction could not be prepared: {0}")]
	Unprepared(String),
}

/// A transaction whose broadcast failed ambiguously, kept to be broadcast again.
struct Unconfirmed {
	nonce: u64,
	raw: Bytes,
}

#[derive(Default)]
struct Nonces {
	/// The next fresh nonce this sender hands out, once known.
	next: Option<u64>,
	/// Ask the endpoint for its count before the next nonce is handed out.
	resync: bool,
	/// Nonces handed out whose transaction the endpoint refused: reused first.
	free: std::collections::BTreeSet<u64>,
	unconfirmed: Vec<Unconfirmed>,
}

/// Sends transactions from one key: nonces and signatures one at a time, broadcasts at once.
pub struct Sender {
	provider: DynProvider,
	wallet: EthereumWallet,
	address: Address,
	chain_id: u64,
	nonces: tokio::sync::Mutex<Nonces>,
	gas_price: std::sync::Mutex<Option<(tokio::time::Instant, u128)>>,
}

/// Attempts of one broadcast, including the first, while the endpoint answers ambiguously.
const BROADCAST_ATTEMPTS: u32 = 3;

/// How long a gas price read from the endpoint is used (legacy pricing moves slowly; a
/// settlement priced slightly low waits, it is not lost).
const GAS_PRICE_AGE: Duration = Duration::from_secs(2);

impl Sender {
	pub fn new(provider: DynProvider, signer: PrivateKeySigner, chain_id: u64) -> Self {
		let address = signer.address();
		Self {
			provider,
			wallet: EthereumWallet::from(signer),
			address,
			chain_id,
			nonces: tokio::sync::Mutex::default(),
			gas_price: std::sync::Mutex::default(),
		}
	}

	pub fn address(&self) -> Address {
		self.address
	}

	/// Signs and broadcasts `request` (its `to`, `input` and, if set, gas limit; otherwise gas
	/// is estimated) from this sender.
	pub async fn send(&self, request: TransactionRequest) -> Result<Broadcast, NotSent> {
		let request = request.from(self.address);
		// Estimation and pricing need no nonce: done outside the lock, so concurrent sends
		// only queue for the broadcast itself.
		let gas = match request.gas {
			Some(gas) => gas,
			None => self
				.provider
				.estimate_gas(request.clone())
				.await
				.map_err(|e| NotSent::WouldFail(e.to_string()))?,
		};
		let gas_price = self.gas_price().await?;
		let request = request.with_gas_limit(gas).with_gas_price(gas_price);
		match self.sign_and_broadcast(&request).await {
			// Another process may have used the nonce: count again and sign once more.
			Err(NotSent::Refused(message)) if refers_to_nonce(&message) => {
				tracing::info!(error = %message, "nonce refused; resynchronising with the endpoint");
				self.sign_and_broadcast(&request).await
			},
			outcome => outcome,
		}
	}

	/// The endpoint's gas price, read at most every [`GAS_PRICE_AGE`].
	async fn gas_price(&self) -> Result<u128, NotSent> {
		let now = tokio::time::Instant::now();
		if let Some((at, price)) = *self.gas_price.lock().expect("gas price") {
			if now.duration_since(at) < GAS_PRICE_AGE {
				return Ok(price);
			}
		}
		let price = self
			.provider
			.get_gas_price()
			.await
			.map_err(|e| NotSent::Unprepared(format!("gas price: {e}")))?;
		*self.gas_price.lock().expect("gas price") = Some((now, price));
		Ok(price)
	}

	/// Takes a nonce, signs `request` (gas and price set) and broadcasts it.
	async fn sign_and_broadcast(&self, request: &TransactionRequest) -> Result<Broadcast, NotSent> {
		let (nonce, tx, raw) = {
			let mut nonces = self.nonces.lock().await;
			self.rebroadcast(&mut nonces).await;
			if nonces.next.is_none() || nonces.resync {
				let on_chain = self
					.provider
					.get_transaction_count(self.address)
					.pending()
					.await
					.map_err(|e| NotSent::Unprepared(format!("nonce: {e}")))?;
				// A freed nonce below the endpoint's count was used after all (by us or
				// another process): it is gone.
				nonces.free.retain(|n| *n >= on_chain);
				nonces.next = Some(nonces.next.map_or(on_chain, |next| next.max(on_chain)));
				nonces.resync = false;
			}
			let nonce = match nonces.free.pop_first() {
				Some(n) => n,
				None => {
					let n = nonces.next.expect("counted above");
					nonces.next = Some(n + 1);
					n
				},
			};
			let signed = request
				.clone()
				.with_nonce(nonce)
				.with_chain_id(self.chain_id)
				.build(&self.wallet)
				.await;
			match signed {
				Ok(envelope) => (nonce, *envelope.tx_hash(), Bytes::from(envelope.encoded_2718())),
				Err(e) => {
					nonces.free.insert(nonce);
					return Err(NotSent::Unprepared(format!("signing: {e}")));
				},
			}
		};

		let mut last_error = String::new();
		for attempt in 0..BROADCAST_ATTEMPTS {
			if attempt > 0 {
				tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
			}
			match self.provider.send_raw_transaction(&raw).await {
				Ok(_) => return Ok(Broadcast::Sent(tx)),
				Err(e) => match classify(&e) {
					Answer::AlreadyKnown => return Ok(Broadcast::Sent(tx)),
					// A refusal of a retry may be the first attempt's effect (its nonce now
					// used): only a refusal of the first attempt proves nothing went out.
					Answer::Refused(message) if attempt == 0 => {
						let mut nonces = self.nonces.lock().await;
						nonces.free.insert(nonce);
						nonces.resync = true;
						tracing::warn!(%tx, nonce, error = %message, "the chain refused a settlement");
						return Err(NotSent::Refused(message));
					},
					Answer::Refused(message) | Answer::Unknown(message) => last_error = message,
				},
			}
		}
		tracing::warn!(%tx, nonce, error = %last_error, "broadcast unconfirmed; it may still land");
		let mut nonces = self.nonces.lock().await;
		nonces.unconfirmed.push(Unconfirmed { nonce, raw });
		nonces.resync = true;
		Ok(Broadcast::Uncertain { tx, error: last_error })
	}

	/// Broadcasts again every transaction whose broadcast failed ambiguously, until the
	/// endpoint gives a definite answer for it (taken, known, or refused because its nonce is
	/// used: it landed, or another transaction took the nonce; either way no gap is left).
	async fn rebroadcast(&self, nonces: &mut Nonces) {
		let mut still = Vec::new();
		for u in std::mem::take(&mut nonces.unconfirmed) {
			match self.provider.send_raw_transaction(&u.raw).await {
				Ok(_) => tracing::info!(nonce = u.nonce, "an unconfirmed broadcast went through"),
				Err(e) => match classify(&e) {
					Answer::AlreadyKnown | Answer::Refused(_) => {},
					Answer::Unknown(_) => still.push(u),
				},
			}
		}
		nonces.unconfirmed = still;
	}
}

/// Whether a refusal is about the nonce (geth/anvil: "nonce too low"; Substrate's pool:
/// "1010: Invalid Transaction" with a stale nonce, "1014: Priority is too low" for a nonce
/// already in the pool).
fn refers_to_nonce(message: &str) -> bool {
	let message = message.to_lowercase();
	["nonce", "1010", "1014", "priority is too low"].iter().any(|m| message.contains(m))
}

enum Answer {
	/// The endpoint has the transaction already.
	AlreadyKnown,
	/// The endpoint answered with an error: it did not take the transaction.
	Refused(String),
	/// No usable answer: a timeout, a reset connection, a body that is not JSON-RPC.
	Unknown(String),
}

fn classify(e: &RpcError<TransportErrorKind>) -> Answer {
	match e.as_error_resp() {
		Some(payload) => {
			let message = payload.message.to_lowercase();
			// geth/anvil: "already known"; Substrate's pool: "1013: Transaction Already
			// Imported".
			if message.contains("already known") || message.contains("already imported") {
				Answer::AlreadyKnown
			} else {
				Answer::Refused(format!("{} (code {})", payload.message, payload.code))
			}
		},
		None => Answer::Unknown(e.to_string()),
	}
}
