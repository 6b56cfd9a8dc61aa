//! Selling over x402.
//!
//! [`Seller`] is the transport-neutral core: it checks a payment against what was offered
//! (the rules of [`m2m_x402::paywall`]), deduplicates by the buyer's idempotency key, has a
//! facilitator verify it, and, once the resource is ready, settle it. HTTP ([`layer`]) and,
//! later, libp2p wrap the same core, so both transports verify and settle identically.
//!
//! A sale goes: [`Seller::verify`] → produce the resource → [`Seller::settle`] →
//! [`Seller::complete`] (or [`Seller::abandon`] if the resource could not be produced).
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use axum::{routing::get, Router};
//! use m2m_facilitator::RemoteFacilitator;
//! use m2m_x402::exact;
//! use m2m_x402_seller::{layer::PaymentLayer, Seller};
//!
//! # fn app(usdt: m2m_x402::Address, me: m2m_x402::Address) -> Router {
//! let facilitator = RemoteFacilitator::new("http://127.0.0.1:4020", Duration::from_secs(40));
//! let seller = Arc::new(Seller::new(Arc::new(facilitator)));
//! // 0.01 USDT (6 decimals) on chain 33380, paid to `me` within 60 s.
//! let price = exact::requirements(33380, usdt, ("Tether USD", "1"), me, m2m_x402::U256::from(10_000u64), 60);
//! Router::new().route(
//!     "/reading",
//!     get(|| async { "21.5 °C" }).layer(PaymentLayer::new(seller, price)),
//! )
//! # }
//! ```

pub mod idempotency;
pub mod layer;

use std::sync::Arc;

use m2m_facilitator::Facilitate;
use m2m_x402::{
	paywall::{self, Accepted, IncomingPayment, Rejection},
	v2::{PaymentRequirements, SettleResponse},
	ErrorReason,
};

pub use idempotency::{CachedResponse, Claim, IdempotencyStore, MemoryIdempotency};

/// Why a payment did not lead to a sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
	/// The payment is not acceptable (HTTP 402): ask again, saying why.
	Payment(Rejection),
	/// The idempotency key was used for a different payment, or is in use right now (409).
	Conflict(String),
	/// The facilitator (or the chain behind it) could not answer (HTTP 502). The buyer did
	/// nothing wrong, and nothing was taken.
	Unavailable(String),
}

impl std::fmt::Display for Refused {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		match self {
			Refused::Payment(r) => write!(f, "{r}"),
			Refused::Conflict(m) => write!(f, "payment id conflict: {m}"),
			Refused::Unavailable(m) => write!(f, "{m}"),
		}
	}
}

/// A verified payment whose resource may now be produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Sale {
	pub accepted: Accepted,
	/// The payer's address, as the facilitator recovered it.
	pub payer: String,
	/// Set when this sale was already settled by a previous run (a crash between settling and
	/// answering): the resource is produced again, and nothing is settled twice.
	pub recovered: Option<SettleResponse>,
	idempotency: Option<(String, m2m_x402::B256)>,
}

/// Told about each settled sale **before** its resource is released, so that a sale is on
/// disk before the buyer has what it paid for. An error withholds the resource (503).
pub trait SaleRecorder: Send + Sync {
	fn settled(
		&self,
		sale: &Sale,
		settlement: &SettleResponse,
		resource: &str,
	) -> Result<(), String>;
}

/// Finds, on-chain, the settlement of a payment that a crashed run of this seller may have
/// submitted: the transaction hash, if the authorization was used to pay exactly this.
#[async_trait::async_trait]
pub trait SettlementLookup: Send + Sync {
	async fn find(&self, accepted: &Accepted) -> Result<Option<String>, String>;
}

/// How a payment begins.
#[derive(Clone, Debug, PartialEq)]
pub enum Begin {
	/// A new sale: produce the resource, then settle.
	Fresh(Box<Sale>),
	/// The same payment was already served under its idempotency key: answer this again,
	/// without verifying or settling anything.
	Replay(CachedResponse),
}

/// The seller's core, shared by every route and transport.
pub struct Seller {
	facilitator: Arc<dyn Facilitate>,
	idempotency: Arc<dyn IdempotencyStore>,
	recorder: Option<Arc<dyn SaleRecorder>>,
	lookup: Option<Arc<dyn SettlementLookup>>,
}

impl Seller {
	/// A seller that verifies and settles through `facilitator`, with an in-memory
	/// idempotency cache of [`MemoryIdempotency::DEFAULT_CAPACITY`] entries.
	pub fn new(facilitator: Arc<dyn Facilitate>) -> Self {
		Self {
			facilitator,
			idempotency: Arc::new(MemoryIdempotency::default()),
			recorder: None,
			lookup: None,
		}
	}

	/// Records every settled sale with `recorder` before its resource is released.
	pub fn with_recorder(mut self, recorder: Arc<dyn SaleRecorder>) -> Self {
		self.recorder = Some(recorder);
		self
	}

	/// Recovers sales that a crashed run settled but did not answer, using `lookup` (needs a
	/// persistent idempotency store, which reports such payments as [`Claim::Stale`]).
	pub fn with_settlement_lookup(mut self, lookup: Arc<dyn SettlementLookup>) -> Self {
		self.lookup = Some(lookup);
		self
	}

	/// Hands a settled sale to the recorder, if there is one.
	pub fn record(
		&self,
		sale: &Sale,
		settlement: &SettleResponse,
		resource: &str,
	) -> Result<(), String> {
		match &self.recorder {
			Some(r) => r.settled(sale, settlement, resource),
			None => Ok(()),
		}
	}

	/// Keeps idempotency records in `store` (a device keeps them on disk).
	pub fn with_idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
		self.idempotency = store;
		self
	}

	/// Checks `incoming` against `offers`, deduplicates it, and has the facilitator verify it.
	pub async fn verify(
		&self,
		incoming: IncomingPayment,
		offers: &[PaymentRequirements],
	) -> Result<Begin, Refused> {
		let accepted = paywall::accept(incoming, offers).map_err(Refused::Payment)?;
		let mut stale = false;
		let idempotency = match paywall::payment_id(&accepted.payment).map_err(Refused::Payment)? {
			Some(id) => {
				let fingerprint = paywall::fingerprint(&accepted.payment);
				match self.idempotency.claim(&id, fingerprint) {
					Claim::New => Some((id, fingerprint)),
					Claim::Stale => {
						stale = true;
						Some((id, fingerprint))
					},
					Claim::Replay(cached) => return Ok(Begin::Replay(cached)),
					Claim::Conflict => {
						return Err(Refused::Conflict(format!(
							"payment id {id:?} was already used for a different payment"
						)))
					},
					Claim::InProgress => {
						return Err(Refused::Conflict(format!(
							"a payment with id {id:?} is being processed; retry when it is done"
						)))
					},
				}
			},
			None => None,
		};
		let release = |refused: Refused| {
			self.release(&idempotency);
			refused
		};
		let verdict = self
			.facilitator
			.verify(&accepted.payment, &accepted.requirement)
			.await
			.map_err(|e| release(Refused::Unavailable(e.to_string())))?;
		if !verdict.is_valid {
			let reason = verdict.invalid_reason.unwrap_or(ErrorReason::UnexpectedVerifyError);
			let message = verdict.invalid_message.unwrap_or_default();
			if stale && reason == ErrorReason::InvalidTransactionState {
				if let Some(sale) = self.recover(&accepted, &idempotency).await {
					return Ok(Begin::Fresh(Box::new(sale)));
				}
			}
			// The facilitator could not check (its chain is down, …): not the buyer's fault.
			if reason == ErrorReason::UnexpectedVerifyError {
				return Err(release(Refused::Unavailable(format!(
					"the facilitator could not verify the payment: {message}"
				))));
			}
			return Err(release(Refused::Payment(Rejection { reason, message })));
		}
		let payer = verdict.payer.unwrap_or_default();
		Ok(Begin::Fresh(Box::new(Sale { accepted, payer, recovered: None, idempotency })))
	}

	/// A sale that a previous run settled, if the chain shows this payment's authorization
	/// paying exactly what was offered.
	async fn recover(
		&self,
		accepted: &Accepted,
		idempotency: &Option<(String, m2m_x402::B256)>,
	) -> Option<Sale> {
		let tx = match self.lookup.as_ref()?.find(accepted).await {
			Ok(Some(tx)) => tx,
			Ok(None) => return None,
			Err(e) => {
				tracing::warn!(error = %e, "cannot look up a possibly settled payment");
				return None;
			},
		};
		let payer = accepted.payment.payer().unwrap_or_default().to_string();
		tracing::info!(%tx, %payer, "recovered a sale settled before a restart");
		let settlement = SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: tx,
			network: accepted.requirement.network.clone(),
			payer: Some(payer.clone()),
			amount: Some(accepted.requirement.amount.clone()),
			extensions: None,
		};
		Some(Sale {
			accepted: accepted.clone(),
			payer,
			recovered: Some(settlement),
			idempotency: idempotency.clone(),
		})
	}

	/// Settles a sale whose resource is ready. A `success: false` answer is returned as is:
	/// the buyer must see it (with the transaction hash when it is `settlement_pending`).
	pub async fn settle(&self, sale: &Sale) -> Result<SettleResponse, Refused> {
		if let Some(settled) = &sale.recovered {
			return Ok(settled.clone());
		}
		self.facilitator
			.settle(&sale.accepted.payment, &sale.accepted.requirement)
			.await
			.map_err(|e| Refused::Unavailable(e.to_string()))
	}

	/// Records what the buyer was answered after a successful settlement, so that the same
	/// payment presented again gets the same answer.
	pub fn complete(&self, sale: &Sale, response: CachedResponse) {
		if let Some((id, fingerprint)) = &sale.idempotency {
			self.idempotency.complete(id, *fingerprint, response);
		}
	}

	/// Forgets a sale that was not settled, so that its idempotency key may be retried.
	pub fn abandon(&self, sale: &Sale) {
		self.release(&sale.idempotency);
	}

	fn release(&self, idempotency: &Option<(String, m2m_x402::B256)>) {
		if let Some((id, _)) = idempotency {
			self.idempotency.release(id);
		}
	}
}
