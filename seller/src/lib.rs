//! Selling over x402.
//!
//! [`Seller`] is the transport-neutral core, and it owns the whole sale. A transport (HTTP in
//! [`layer`]; libp2p messages in [`messages`]) reads the buyer's payment, hands it to [`Seller::sell`] with the
//! offers and a producer of the resource, and maps the [`SaleOutcome`] to its own answers.
//! The sequence that protects money is written once, here:
//!
//! 1. match the payment to an offer (the rules of [`m2m_x402::paywall`]);
//! 2. deduplicate by the buyer's `payment-identifier` (and by authorization: one sale of an
//!    authorization at a time);
//! 3. have the facilitator verify it;
//! 4. produce the resource (not released yet);
//! 5. settle;
//! 6. record the sale (on disk, with its receipt queued) **before** the resource leaves;
//! 7. remember the answer under the payment id, or forget the claim on every failure path.
//!
//! When settlement is uncertain (the facilitator timed out, the receipt came late, a third
//! party submitted the buyer's authorization first, a previous run crashed mid-sale), the
//! payment is never treated as "not paid": its claim stays pending, and the next presentation
//! resolves it from the chain ([`SettlementLookup`]), serving the buyer whose money moved.
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use axum::{routing::get, Router};
//! use m2m_facilitator::RemoteFacilitator;
//! use m2m_x402::schemes::exact;
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

pub mod channels;
pub mod idempotency;
pub mod layer;
pub mod messages;
pub mod sales;

use std::{collections::HashSet, future::Future, sync::Arc, sync::Mutex};

use alloy_signer_local::PrivateKeySigner;
use m2m_facilitator::Facilitate;
use m2m_x402::{
	clock::unix_now,
	paywall::{self, Accepted, IncomingPayment},
	schemes::{
		self,
		batch_settlement::{
			self,
			payload::{ChannelPayload, ChargeExtra},
		},
		Payload, Scheme,
	},
	v2::{
		PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo, SettleResponse,
		VerifyResponse,
	},
	ErrorReason, Problem, B256,
};

pub use channels::{
	ChannelRecord, ChannelStore, ClaimReport, ClaimedChannel, MemoryChannels, RefundedChannel,
};

pub use idempotency::{Answered, Claim, Delivery, IdempotencyStore, MemoryIdempotency};
pub use sales::{MemorySales, SaleKey, SaleRecorder};

/// A request as pricing sees it, whatever the transport carried it: what is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceRequest<'a> {
	/// The resource's path (`/energy`).
	pub path: &'a str,
	/// Its query, without `?` (`kwh=3`), if any.
	pub query: Option<&'a str>,
}

/// What a transport hands the seller for one paid request.
#[derive(Clone, Debug, PartialEq)]
pub struct SaleRequest {
	/// The buyer's payment: none, unreadable (with why), or read.
	pub payment: Option<Result<IncomingPayment, Problem>>,
	/// What the resource costs (one of these must be paid, echoed verbatim).
	pub offers: Vec<PaymentRequirements>,
	pub resource: ResourceInfo,
	/// Who the transport proved the buyer to be: over libp2p its PeerId (proven by Noise) and
	/// the device that key belongs to. `None` over HTTP, where buyers are not authenticated.
	pub buyer: Option<ProvenBuyer>,
}

/// A buyer whose key the transport authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenBuyer {
	/// The transport's name for its key (a libp2p PeerId). It scopes the buyer's payment ids:
	/// they are the buyer's own, so one buyer's id can neither collide with nor replay
	/// another's.
	pub peer: String,
	/// The on-chain device that key belongs to, if it is one: kept with the sale's record.
	pub device: Option<u64>,
}

/// The verified payment behind a request, for the producer of the resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Paid {
	pub payer: String,
	pub requirement: PaymentRequirements,
}

/// A verified payment whose resource is being produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Sale {
	pub accepted: Accepted,
	/// The payer's address, as the facilitator recovered it.
	pub payer: String,
	/// Which authorization pays for it (unique per payment).
	pub key: SaleKey,
	/// Who presented it, when the transport proved it.
	pub buyer: Option<ProvenBuyer>,
}

/// How one sale ended, for the transport to answer with. `X` is what the producer keeps for
/// the live answer (HTTP: the handler's response head); `E` is the producer's own failure,
/// returned untouched.
#[derive(Debug)]
pub enum SaleOutcome<X, E> {
	/// No payment was attached: what to pay (HTTP 402).
	PaymentRequired(Box<PaymentRequired>),
	/// The payment is not acceptable: what to pay, with the problem in `error` (402).
	Refused { required: Box<PaymentRequired>, problem: Problem },
	/// The payment id belongs to another payment, or this payment is being processed (409).
	Conflict(String),
	/// The facilitator (or the chain behind it) could not be asked. Nothing was taken (502).
	Unavailable(String),
	/// The producer failed: nothing was settled, and its failure is answered as it is.
	NotServed(E),
	/// Settlement failed (the authorization was not used) or is pending (it may still land,
	/// with the transaction when known): 402 with the settlement attached.
	NotSettled { settlement: Box<SettleResponse>, version: u32 },
	/// Settled, but the sale could not be recorded, so the resource is withheld (503). The
	/// payment stays claimed: the buyer's retry is served without a second charge.
	NotRecorded { settlement: Box<SettleResponse>, version: u32, error: String },
	/// Sold: release the resource with its settlement.
	Sold { delivery: Delivery, kept: X, settlement: Box<SettleResponse>, version: u32 },
	/// The same payment was served before: the same answer again, nothing settled.
	Replayed(Box<Answered>),
	/// A payer's cooperative refund was granted: no resource, the seller's acknowledgement
	/// with the refund's settlement.
	Refunded(Box<Answered>),
}

/// Finds, on-chain, the settlement of a payment whose outcome this seller does not know (a
/// crash, a timeout, a late receipt, a front-run): the transaction hash, if the authorization
/// was used and moved exactly the offered value from the payer to the payee.
#[async_trait::async_trait]
pub trait SettlementLookup: Send + Sync {
	async fn find(&self, accepted: &Accepted) -> Result<Option<String>, String>;
}

#[async_trait::async_trait]
impl SettlementLookup for m2m_facilitator::ChainLookup {
	async fn find(&self, accepted: &Accepted) -> Result<Option<String>, String> {
		m2m_facilitator::ChainLookup::find(self, &accepted.payment, &accepted.requirement).await
	}
}

/// The seller's core, shared by every route and transport.
pub struct Seller {
	facilitator: Arc<dyn Facilitate>,
	idempotency: Arc<dyn IdempotencyStore>,
	recorder: Arc<dyn SaleRecorder>,
	lookup: Option<Arc<dyn SettlementLookup>>,
	channels: Arc<dyn ChannelStore>,
	/// A channel's charged-but-unclaimed bound (base units): at it, the channel is claimed
	/// before it serves more. `None`: no bound (claims run only when asked).
	max_unclaimed: Option<u128>,
	/// The receiver's key (the offers' `payTo`): it signs the payers' refunds it grants, which
	/// is what lets a facilitator that authorizes this receiver's channels settle them.
	receiver_key: Option<PrivateKeySigner>,
	/// Authorizations (and channels) being sold right now: a second presentation waits its
	/// turn.
	selling: Mutex<HashSet<SaleKey>>,
}

impl Seller {
	/// A seller that verifies and settles through `facilitator`, with in-memory idempotency
	/// records and sales (bounded: [`MemoryIdempotency::DEFAULT_CAPACITY`],
	/// [`MemorySales::DEFAULT_CAPACITY`]).
	pub fn new(facilitator: Arc<dyn Facilitate>) -> Self {
		Self {
			facilitator,
			idempotency: Arc::new(MemoryIdempotency::default()),
			recorder: Arc::new(MemorySales::default()),
			lookup: None,
			channels: Arc::new(MemoryChannels::default()),
			max_unclaimed: None,
			receiver_key: None,
			selling: Mutex::default(),
		}
	}

	/// Bounds what one channel may owe unclaimed: a request that would take it past
	/// `max_unclaimed` (base units) waits for a claim of what it owes first, so a payer's
	/// withdrawal can never take more than that.
	pub fn with_max_unclaimed(mut self, max_unclaimed: u128) -> Self {
		self.max_unclaimed = Some(max_unclaimed);
		self
	}

	/// Grants payers' cooperative refunds with `key`, the key of the offers' `payTo`. Without
	/// it, a refund is settled only by a facilitator that is itself the receiver.
	pub fn with_receiver_key(mut self, key: PrivateKeySigner) -> Self {
		self.receiver_key = Some(key);
		self
	}

	/// Keeps payment channels' state in `store` (a device keeps it on disk: its vouchers are
	/// its money).
	pub fn with_channels(mut self, store: Arc<dyn ChannelStore>) -> Self {
		self.channels = store;
		self
	}

	/// Records every settled sale with `recorder` before its resource is released.
	pub fn with_recorder(mut self, recorder: Arc<dyn SaleRecorder>) -> Self {
		self.recorder = recorder;
		self
	}

	/// Resolves uncertain settlements on-chain with `lookup`.
	pub fn with_settlement_lookup(mut self, lookup: Arc<dyn SettlementLookup>) -> Self {
		self.lookup = Some(lookup);
		self
	}

	/// Keeps idempotency records in `store` (a device keeps them on disk).
	pub fn with_idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
		self.idempotency = store;
		self
	}

	/// Runs one sale from the buyer's payment to the answer. `produce` makes the resource
	/// once the payment is verified; it is settled only if that succeeds.
	///
	/// The sale runs on its own task: a transport that drops this future (a buyer that
	/// disconnects or crashes) cannot stop it between settling and recording, nor leave its
	/// payment id held forever.
	pub async fn sell<X, E, F, Fut>(
		self: &Arc<Self>,
		request: SaleRequest,
		produce: F,
	) -> SaleOutcome<X, E>
	where
		F: FnOnce(Paid) -> Fut + Send + 'static,
		Fut: Future<Output = Result<(Delivery, X), E>> + Send + 'static,
		X: Send + 'static,
		E: Send + 'static,
	{
		let seller = self.clone();
		match tokio::spawn(async move { seller.run(request, produce).await }).await {
			Ok(outcome) => outcome,
			Err(e) => {
				tracing::error!(error = %e, "a sale's task failed");
				SaleOutcome::Unavailable(format!("the sale failed: {e}"))
			},
		}
	}

	async fn run<X, E, F, Fut>(&self, request: SaleRequest, produce: F) -> SaleOutcome<X, E>
	where
		F: FnOnce(Paid) -> Fut,
		Fut: Future<Output = Result<(Delivery, X), E>>,
	{
		let SaleRequest { payment, offers, resource, buyer } = request;
		let url = resource.url.clone();
		let refuse = |problem: Problem| {
			tracing::warn!(%url, %problem, "payment refused");
			let error = format!("{}: {}", problem.reason, problem.message);
			SaleOutcome::Refused {
				required: Box::new(paywall::payment_required(
					resource.clone(),
					offers.clone(),
					Some(error),
				)),
				problem,
			}
		};
		let incoming = match payment {
			None => {
				return SaleOutcome::PaymentRequired(Box::new(paywall::payment_required(
					resource.clone(),
					offers.clone(),
					None,
				)))
			},
			Some(Err(problem)) => return refuse(problem),
			Some(Ok(incoming)) => incoming,
		};
		let accepted = match paywall::accept(incoming, &offers) {
			Ok(a) => a,
			Err(problem) => return refuse(problem),
		};
		let key = match SaleKey::of(&accepted) {
			Ok(k) => k,
			Err(problem) => return refuse(problem),
		};
		let version = accepted.version;
		let scheme = Scheme::of(&accepted.requirement).expect("an accepted offer's scheme parses");

		// 2. One answer per payment id, one sale per authorization at a time.
		let claim = match paywall::payment_id(&accepted.payment) {
			Err(problem) => return refuse(problem),
			Ok(None) => None,
			Ok(Some(id)) => {
				let id = match &buyer {
					Some(buyer) => format!("{}/{id}", buyer.peer),
					None => id,
				};
				let fingerprint = paywall::fingerprint(&accepted.payment);
				match self.idempotency.claim(&id, fingerprint, expiry(&accepted)) {
					Claim::New => Some(Held { id, fingerprint, unresolved: None }),
					Claim::Unresolved { transaction } => Some(Held {
						id,
						fingerprint,
						unresolved: Some(transaction.unwrap_or_default()),
					}),
					Claim::Replay(answered) => {
						tracing::info!(%url, payment_id = %id, "idempotent replay of a settled payment");
						return SaleOutcome::Replayed(answered);
					},
					Claim::Conflict => {
						return SaleOutcome::Conflict(format!(
							"payment id {id:?} was already used for a different payment"
						))
					},
					Claim::InProgress => {
						return SaleOutcome::Conflict(format!(
							"a payment with id {id:?} is being processed; retry when it is done"
						))
					},
				}
			},
		};
		let Some(_selling) = Selling::begin(&self.selling, &key) else {
			self.release(&claim);
			return refuse(match scheme {
				Scheme::Exact => Problem::new(
					ErrorReason::InvalidTransactionState,
					"this authorization is being settled right now; retry when it is done",
				),
				Scheme::BatchSettlement => Problem::new(
					ErrorReason::ChannelBusy,
					"another request on this channel is being served; retry when it is answered",
				),
			});
		};
		let payment_id = claim.as_ref().map(|c| c.id.as_str()).unwrap_or_default().to_string();

		let retry = claim.as_ref().is_some_and(|c| c.unresolved.is_some());

		// 3. Verify, as the payment's scheme does.
		let checked = match scheme {
			Scheme::Exact => self.verify_exact(&accepted, &key, retry).await,
			Scheme::BatchSettlement => self.verify_channel(&accepted, retry).await,
		};
		let checked = match checked {
			Ok(c) => c,
			Err(stop) => {
				self.release(&claim);
				return match stop {
					Stop::Refused(problem) => refuse(problem),
					Stop::Corrected(problem, corrected) => {
						tracing::info!(%url, %problem, "stale channel voucher; corrective 402");
						let error = format!("{}: {}", problem.reason, problem.message);
						let offers = offers
							.iter()
							.map(|o| {
								if *o == accepted.requirement {
									(*corrected).clone()
								} else {
									o.clone()
								}
							})
							.collect();
						SaleOutcome::Refused {
							required: Box::new(paywall::payment_required(
								resource.clone(),
								offers,
								Some(error),
							)),
							problem,
						}
					},
					Stop::Unavailable(message) => {
						tracing::warn!(%url, %message, "payment not verified");
						SaleOutcome::Unavailable(message)
					},
				};
			},
		};
		let sale = Sale { accepted, payer: checked.payer(), key, buyer };
		let checked = match checked {
			// A refund produces nothing: it settles, and the seller answers it.
			Checked::Refund(refund) => return self.refund(&sale, *refund, &claim, &url).await,
			checked => checked,
		};

		// 4. Produce, not released yet.
		let paid =
			Paid { payer: sale.payer.clone(), requirement: sale.accepted.requirement.clone() };
		let (delivery, kept) = match produce(paid).await {
			Ok(produced) => produced,
			Err(failure) => {
				// A payment the chain shows settled was paid: its claim stays, so the retry
				// is served. Anything else was not taken: a voucher is charged only when its
				// answer leaves.
				match checked.settled_already() {
					Some(tx) => self.keep_pending(&claim, Some(tx)),
					None => self.release(&claim),
				}
				tracing::warn!(%url, payer = %sale.payer, "the resource was not produced; not settled");
				return SaleOutcome::NotServed(failure);
			},
		};

		// 5. Settle: the exact authorization, or a channel's deposit (a voucher settles later,
		// in a claim).
		let mut channel_record = None;
		let settlement = match &checked {
			Checked::Exact { recovered: Some(settled), .. } => (**settled).clone(),
			Checked::Exact { recovered: None, .. } => {
				match self.settle_on_chain(&sale, &sale.accepted.payment, &claim, &url).await {
					Ok(s) => s,
					Err(outcome) => return outcome,
				}
			},
			Checked::Refund(_) => unreachable!("answered above"),
			Checked::Channel(channel) => {
				let deposited = if channel.deposit > 0 && !channel.repeat {
					let payment = &sale.accepted.payment;
					match self.settle_on_chain(&sale, payment, &claim, &url).await {
						Ok(s) => Some(s),
						Err(outcome) => return outcome,
					}
				} else {
					None
				};
				let charge = match delivery.charge {
					Some(charge) if charge > channel.price => {
						// A producer's bug: never charge above the voucher's interval.
						tracing::error!(%url, charge, price = channel.price, "a delivery's charge is above its price; charging the price");
						channel.price
					},
					Some(charge) => charge,
					None => channel.price,
				};
				let (settlement, record) = channel_settlement(&sale, channel, charge, deposited);
				channel_record = Some(record);
				settlement
			},
		};

		// 6. Record before release: the sale (and its receipt), or the channel's new voucher
		// and charge.
		let recorded = match &channel_record {
			None => self.recorder.settled(&sale, &settlement, &url),
			Some(record) => self.channels.save(record),
		};
		if let Err(error) = recorded {
			self.keep_pending(&claim, Some(&settlement.transaction));
			tracing::error!(%url, tx = %settlement.transaction, %error, "settled but not recorded; resource withheld");
			return SaleOutcome::NotRecorded { settlement: Box::new(settlement), version, error };
		}
		if channel_record.is_some() && settlement.transaction.is_empty() {
			// A bare voucher, thousands an hour on a metered stream: the claims that turn
			// them into money are logged, each voucher only at debug.
			tracing::debug!(%url, payer = %sale.payer, %payment_id, "sold for a channel voucher");
		} else {
			tracing::info!(
				%url, payer = %sale.payer, %payment_id, scheme = %sale.accepted.requirement.scheme,
				amount = %sale.accepted.requirement.amount, asset = %sale.accepted.requirement.asset,
				tx = %settlement.transaction, "sold"
			);
		}

		// 7. The same payment presented again gets the same answer. A channel's voucher
		// answers its own retry (its record, synced above, holds the charge), so its answer's
		// record need not be synced on its own.
		if let Some(held) = &claim {
			let answered =
				Answered { delivery: delivery.clone(), settlement: settlement.clone(), version };
			match channel_record {
				Some(_) => {
					self.idempotency.complete_resolvable(&held.id, held.fingerprint, answered)
				},
				None => self.idempotency.complete(&held.id, held.fingerprint, answered),
			}
		}
		SaleOutcome::Sold { delivery, kept, settlement: Box::new(settlement), version }
	}

	/// Step 3 for `exact`: the facilitator verifies; an authorization already used may be
	/// this very sale, settled earlier, which the chain then shows.
	async fn verify_exact(
		&self,
		accepted: &Accepted,
		key: &SaleKey,
		retry: bool,
	) -> Result<Checked, Stop> {
		let problem = match self.ask_verify(&accepted.payment, &accepted.requirement).await? {
			Ok(verdict) => {
				let payer = verdict.payer.unwrap_or_default();
				return Ok(Checked::Exact { payer, recovered: None });
			},
			Err(problem) => problem,
		};
		if problem.reason == ErrorReason::InvalidTransactionState {
			if let Some(settled) = self.resolve(accepted, key, retry).await {
				let payer = schemes::payer(&accepted.payment).unwrap_or_default();
				return Ok(Checked::Exact { payer, recovered: Some(Box::new(settled)) });
			}
		}
		Err(Stop::Refused(problem))
	}

	/// Step 3 for a channel: the voucher's own checks, then against what this seller holds of
	/// the channel. The chain is read (through the facilitator) only for a channel seen for
	/// the first time or a payment bringing a deposit.
	async fn verify_channel(&self, accepted: &Accepted, retry: bool) -> Result<Checked, Stop> {
		let (payment, requirement) = (&accepted.payment, &accepted.requirement);
		let verified =
			batch_settlement::rules::verify(payment, requirement).map_err(Stop::Refused)?;
		let stored = self.channels.load(&verified.channel_id).map_err(|e| {
			Stop::Unavailable(format!("the channel's state cannot be read from disk: {e}"))
		})?;
		if matches!(verified.payload, ChannelPayload::Refund { .. }) {
			return self.verify_refund(accepted, verified, stored, retry).await;
		}
		let mut deposit = channels::deposit_amount(&verified).map_err(Stop::Refused)?;
		let mut chain = None;
		if stored.is_none() || deposit > 0 {
			let verdict = self.verify_on_chain(payment, requirement).await?;
			let verdict = match verdict {
				Ok(state) => state,
				// A deposit that cannot pass may have landed already (its authorization is then
				// used): if the channel covers the voucher without it, it is a voucher.
				Err(refused) if deposit > 0 => {
					let Some(bare) = channels::without_deposit(payment) else {
						return Err(Stop::Refused(refused));
					};
					match self.verify_on_chain(&bare, requirement).await? {
						Ok(state) => {
							tracing::info!(channel = %verified.channel_id, "the deposit landed earlier; paying with its voucher");
							deposit = 0;
							state
						},
						Err(_) => return Err(Stop::Refused(refused)),
					}
				},
				Err(refused) => return Err(Stop::Refused(refused)),
			};
			chain = Some(verdict);
		}
		let mut known = channels::known(stored, &verified, requirement, chain.as_ref());
		if let Some(bound) = self.max_unclaimed {
			let price = requirement.amount.parse::<u128>().unwrap_or(0);
			if known.unclaimed() > 0 && known.unclaimed().saturating_add(price) > bound {
				self.claim_before_serving(&mut known).await.map_err(|e| {
					Stop::Unavailable(format!(
						"the channel's unclaimed charges are at this seller's bound and the \
						 claim did not land ({e}); retry shortly"
					))
				})?;
			}
		}
		let sale = channels::check(verified, requirement, known, deposit, retry).map_err(
			|stop| match stop {
				channels::ChannelStop::Refused(p) => Stop::Refused(p),
				channels::ChannelStop::Corrective(p, corrected) => Stop::Corrected(p, corrected),
			},
		)?;
		Ok(Checked::Channel(Box::new(sale)))
	}

	/// Step 3 for a payer's refund request: a channel this seller holds, whose state is read
	/// from the chain (its balance and refund nonce move without the seller).
	async fn verify_refund(
		&self,
		accepted: &Accepted,
		verified: batch_settlement::rules::VerifiedVoucher,
		stored: Option<ChannelRecord>,
		retry: bool,
	) -> Result<Checked, Stop> {
		let (payment, requirement) = (&accepted.payment, &accepted.requirement);
		let Some(stored) = stored else {
			return Err(Stop::Refused(Problem::new(
				ErrorReason::ChannelMissing,
				format!(
					"this seller holds no record of channel {}: nothing was bought here to \
					 refund (withdraw through the settlement contract instead)",
					verified.channel_id
				),
			)));
		};
		let chain = self.verify_on_chain(payment, requirement).await?.map_err(Stop::Refused)?;
		let before = stored.refund_nonce.clone();
		let known = channels::known(Some(stored), &verified, requirement, Some(&chain));
		let refund = channels::check_refund(verified, requirement, known, &before, retry).map_err(
			|stop| match stop {
				channels::ChannelStop::Refused(p) => Stop::Refused(p),
				channels::ChannelStop::Corrective(p, corrected) => Stop::Corrected(p, corrected),
			},
		)?;
		Ok(Checked::Refund(Box::new(refund)))
	}

	/// Steps 5 to 7 for a refund: the facilitator claims what was charged and refunds the
	/// rest in one transaction; the channel's record takes the state after it before the
	/// acknowledgement leaves.
	async fn refund<X, E>(
		&self,
		sale: &Sale,
		refund: channels::ChannelRefund,
		claim: &Option<Held>,
		url: &str,
	) -> SaleOutcome<X, E> {
		let version = sale.accepted.version;
		let requirement = &sale.accepted.requirement;
		let channel_id = refund.verified.channel_id;
		let settlement = if refund.landed {
			let transaction = claim.as_ref().and_then(|c| c.unresolved.clone()).unwrap_or_default();
			tracing::info!(%url, channel = %channel_id, tx = %transaction, "the chain shows this refund landed; answering it");
			SettleResponse {
				success: true,
				error_reason: None,
				error_message: None,
				transaction,
				network: requirement.network.clone(),
				payer: Some(sale.payer.clone()),
				amount: Some(String::new()),
				extensions: None,
				extra: None,
			}
		} else {
			let payment = match self.refund_payment(requirement, &refund) {
				Ok(payment) => payment,
				Err(problem) => {
					self.release(claim);
					return SaleOutcome::Unavailable(problem.message);
				},
			};
			match self.settle_on_chain(sale, &payment, claim, url).await {
				Ok(settled) => settled,
				Err(outcome) => return outcome,
			}
		};
		let state = channels::OnChain::from_extra(settlement.extra.as_ref()).ok();
		let record = refund.refunded(state.as_ref(), &settlement.transaction);
		if let Err(error) = self.channels.save(&record) {
			self.keep_pending(claim, Some(&settlement.transaction));
			tracing::error!(%url, channel = %channel_id, tx = %settlement.transaction, %error, "refunded but not recorded");
			return SaleOutcome::NotRecorded { settlement: Box::new(settlement), version, error };
		}
		let mut settlement = settlement;
		settlement.extra = Some(serde_json::json!({ "channelState": record.state() }));
		tracing::info!(
			%url, payer = %sale.payer, channel = %channel_id,
			amount = settlement.amount.as_deref().unwrap_or(""), tx = %settlement.transaction,
			"refunded"
		);
		let body = serde_json::json!({ "message": "Refund acknowledged", "channelId": channel_id });
		let answered = Answered {
			delivery: Delivery {
				body: body.to_string().into_bytes(),
				metadata: vec![("content-type".into(), "application/json".into())],
				charge: None,
			},
			settlement,
			version,
		};
		if let Some(held) = claim {
			self.idempotency.complete(&held.id, held.fingerprint, answered.clone());
		}
		SaleOutcome::Refunded(Box::new(answered))
	}

	/// The facilitator's verdict on a channel payment: the channel's confirmed state, or the
	/// buyer's problem.
	async fn verify_on_chain(
		&self,
		payment: &PaymentPayload,
		requirement: &PaymentRequirements,
	) -> Result<Result<channels::OnChain, Problem>, Stop> {
		match self.ask_verify(payment, requirement).await? {
			Ok(verdict) => channels::OnChain::from_extra(verdict.extra.as_ref())
				.map(Ok)
				.map_err(Stop::Unavailable),
			Err(problem) => Ok(Err(problem)),
		}
	}

	/// Asks the facilitator to verify: a valid verdict, or the buyer's problem. A facilitator
	/// that cannot be asked, or could not check (its chain down), stops the sale without
	/// blaming the buyer.
	async fn ask_verify(
		&self,
		payment: &PaymentPayload,
		requirement: &PaymentRequirements,
	) -> Result<Result<VerifyResponse, Problem>, Stop> {
		let verdict = self
			.facilitator
			.verify(payment, requirement)
			.await
			.map_err(|e| Stop::Unavailable(e.to_string()))?;
		if verdict.is_valid {
			return Ok(Ok(verdict));
		}
		let reason = verdict.invalid_reason.unwrap_or(ErrorReason::UnexpectedVerifyError);
		let message = verdict.invalid_message.unwrap_or_default();
		match reason {
			ErrorReason::UnexpectedVerifyError | ErrorReason::ChannelRpcReadFailed => {
				Err(Stop::Unavailable(format!(
					"the facilitator could not verify the payment: {message}"
				)))
			},
			reason => Ok(Err(Problem { reason, message })),
		}
	}

	/// Has the facilitator settle `payment` for the sale (its exact authorization, a
	/// channel's deposit, a refund). Every failure is answered, and the claim kept while the
	/// payment may land.
	async fn settle_on_chain<X, E>(
		&self,
		sale: &Sale,
		payment: &PaymentPayload,
		claim: &Option<Held>,
		url: &str,
	) -> Result<SettleResponse, SaleOutcome<X, E>> {
		let version = sale.accepted.version;
		let payment_id = claim.as_ref().map(|c| c.id.as_str()).unwrap_or_default();
		let settlement = match self.facilitator.settle(payment, &sale.accepted.requirement).await {
			Ok(s) => s,
			Err(e) if e.maybe_sent => {
				// The facilitator may be settling it: pending, resolved on the next try.
				self.keep_pending(claim, None);
				tracing::warn!(%url, payer = %sale.payer, %payment_id, error = %e, "settlement uncertain; the payment stays pending");
				let pending = pending_settlement(sale, format!(
						"the facilitator gave no answer ({}); the payment may still settle: retry it, do not pay again",
						e.message
					));
				return Err(SaleOutcome::NotSettled { settlement: Box::new(pending), version });
			},
			Err(e) => {
				self.release(claim);
				tracing::warn!(%url, error = %e, "not settled: facilitator unavailable");
				return Err(SaleOutcome::Unavailable(e.to_string()));
			},
		};
		if !settlement.success {
			if settlement.error_reason == Some(ErrorReason::SettlementPending) {
				self.keep_pending(claim, Some(&settlement.transaction));
			} else {
				self.release(claim);
			}
			tracing::warn!(
				%url, payer = %sale.payer, %payment_id,
				reason = ?settlement.error_reason, tx = %settlement.transaction,
				message = settlement.error_message.as_deref().unwrap_or(""),
				"settlement failed or pending; resource withheld"
			);
			return Err(SaleOutcome::NotSettled { settlement: Box::new(settlement), version });
		}
		Ok(settlement)
	}

	/// The settlement of a payment whose authorization is already used, if the chain shows
	/// it paying exactly this offer and it was never served (or this is the buyer retrying the
	/// very sale that was left unanswered).
	async fn resolve(
		&self,
		accepted: &Accepted,
		key: &SaleKey,
		retry_of_this_sale: bool,
	) -> Option<SettleResponse> {
		let lookup = self.lookup.as_ref()?;
		if !retry_of_this_sale {
			match self.recorder.sold(key) {
				// Served before: presenting the payment again buys nothing more.
				Ok(true) => return None,
				Ok(false) => {},
				Err(e) => {
					tracing::warn!(error = %e, "cannot tell whether a payment was served; not serving it");
					return None;
				},
			}
		}
		let tx = match lookup.find(accepted).await {
			Ok(Some(tx)) => tx,
			Ok(None) => return None,
			Err(e) => {
				tracing::warn!(error = %e, "cannot look up a possibly settled payment");
				return None;
			},
		};
		let payer = schemes::payer(&accepted.payment).unwrap_or_default();
		tracing::info!(%tx, %payer, "the chain shows this payment settled; serving it");
		Some(SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: tx,
			network: accepted.requirement.network.clone(),
			payer: Some(payer),
			amount: Some(accepted.requirement.amount.clone()),
			extensions: None,
			extra: None,
		})
	}

	fn release(&self, claim: &Option<Held>) {
		if let Some(held) = claim {
			self.idempotency.release(&held.id);
		}
	}

	fn keep_pending(&self, claim: &Option<Held>, transaction: Option<&str>) {
		if let Some(held) = claim {
			self.idempotency.pending(&held.id, held.fingerprint, transaction.unwrap_or_default());
		}
	}
}

/// A payment id this sale holds.
struct Held {
	id: String,
	fingerprint: B256,
	/// Set when a previous attempt's settlement was left uncertain (with its transaction, or
	/// empty when unknown).
	unresolved: Option<String>,
}

/// Marks an authorization as being sold until dropped.
struct Selling<'a> {
	set: &'a Mutex<HashSet<SaleKey>>,
	key: SaleKey,
}

impl<'a> Selling<'a> {
	fn begin(set: &'a Mutex<HashSet<SaleKey>>, key: &SaleKey) -> Option<Self> {
		set.lock()
			.expect("selling set")
			.insert(key.clone())
			.then(|| Selling { set, key: key.clone() })
	}
}

impl Drop for Selling<'_> {
	fn drop(&mut self) {
		self.set.lock().expect("selling set").remove(&self.key);
	}
}

/// `settlement_pending` for a sale whose transaction is not known.
fn pending_settlement(sale: &Sale, message: String) -> SettleResponse {
	SettleResponse {
		success: false,
		error_reason: Some(ErrorReason::SettlementPending),
		error_message: Some(message),
		transaction: String::new(),
		network: sale.accepted.requirement.network.clone(),
		payer: Some(sale.payer.clone()),
		amount: None,
		extensions: None,
		extra: None,
	}
}

/// How long a payment id is remembered (Unix seconds): until an exact authorization's
/// `validBefore`, after which it can no longer settle; a day for a channel's voucher.
fn expiry(accepted: &Accepted) -> u64 {
	match Payload::parse(&accepted.payment) {
		Ok(Payload::Exact(p)) => p.authorization.valid_before.parse::<u64>().unwrap_or(u64::MAX),
		Ok(Payload::BatchSettlement(_)) => unix_now().saturating_add(CHANNEL_ANSWER_KEPT_SECS),
		Err(_) => u64::MAX,
	}
}

/// How long the answer to a voucher-paid request is kept for the buyer's retry.
const CHANNEL_ANSWER_KEPT_SECS: u64 = 24 * 3600;

/// A payment that passed step 3, as its scheme checked it.
enum Checked {
	Exact {
		payer: String,
		/// The chain shows it settled already (a retry, a front-run, a late receipt).
		recovered: Option<Box<SettleResponse>>,
	},
	Channel(Box<channels::ChannelSale>),
	Refund(Box<channels::ChannelRefund>),
}

impl Checked {
	fn payer(&self) -> String {
		match self {
			Checked::Exact { payer, .. } => payer.clone(),
			Checked::Channel(c) => c.verified.config.payer.to_checksum(None),
			Checked::Refund(r) => r.verified.config.payer.to_checksum(None),
		}
	}

	/// The transaction that paid already, if the chain shows one.
	fn settled_already(&self) -> Option<&str> {
		match self {
			Checked::Exact { recovered: Some(s), .. } => Some(&s.transaction),
			Checked::Exact { recovered: None, .. } | Checked::Channel(_) | Checked::Refund(_) => {
				None
			},
		}
	}
}

/// Why step 3 stops a sale.
enum Stop {
	/// Not acceptable: a 402 with the problem.
	Refused(Problem),
	/// A stale channel voucher: a 402 whose offer carries the channel's state.
	Corrected(Problem, Box<PaymentRequirements>),
	/// The facilitator or the store could not tell; nothing was taken.
	Unavailable(String),
}

impl Stop {
	/// Why, in a sentence, for a caller that is not a transport.
	fn describe(self) -> String {
		match self {
			Stop::Refused(problem) | Stop::Corrected(problem, _) => problem.to_string(),
			Stop::Unavailable(message) => message,
		}
	}
}

/// What a voucher-paid answer carries: no transaction of its own (its deposit's, if it
/// brought one), the price charged (`charge`, at most the offer's amount) and the channel's
/// state after it.
/// Returns it with the channel's record once charged.
fn channel_settlement(
	sale: &Sale,
	channel: &channels::ChannelSale,
	charge: u128,
	deposited: Option<SettleResponse>,
) -> (SettleResponse, ChannelRecord) {
	let on_chain =
		deposited.as_ref().and_then(|d| channels::OnChain::from_extra(d.extra.as_ref()).ok());
	let after = channel.charged(charge, deposited.is_some(), on_chain.as_ref());
	// What this voucher paid: the charged total above the one it was signed on (a repeat's
	// was charged by the answer the buyer lost).
	let before = channel.verified.max_claimable.saturating_sub(channel.price);
	let charged_now = after.charged.saturating_sub(before);
	let extra =
		ChargeExtra { charged_amount: charged_now.to_string(), channel_state: after.state() };
	let settlement = SettleResponse {
		success: true,
		error_reason: None,
		error_message: None,
		transaction: deposited.map(|d| d.transaction).unwrap_or_default(),
		network: sale.accepted.requirement.network.clone(),
		payer: Some(sale.payer.clone()),
		amount: Some(String::new()),
		extensions: None,
		extra: Some(serde_json::to_value(extra).expect("plain data serializes")),
	};
	(settlement, after)
}
