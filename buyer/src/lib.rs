//! Buying over x402.
//!
//! [`Buyer`] is the transport-neutral core, and it owns the purchase: given what a seller asks
//! for, it picks the first offer its [`SpendingPolicy`] allows, counts it against today's
//! budget, signs an EIP-3009 authorization for exactly that offer, journals it before it can
//! leave, and turns the seller's answer into an [`Outcome`] ([`purchase`]).
//! [`client::X402Client`] is the HTTP adapter, [`messages::MessageClient`] the libp2p one,
//! over the same core.
//!
//! The budget counts every authorization signed, settled or not: an authorization can be
//! submitted by whoever holds it until it expires, so that is what the device is exposed to.
//!
//! ```no_run
//! use m2m_x402::policy::{AssetAllowance, SpendingPolicy};
//! use m2m_x402_buyer::{client::X402Client, Buyer};
//!
//! # async fn buy(key: alloy_signer_local::PrivateKeySigner, usdt: m2m_x402::Address)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! let policy = SpendingPolicy {
//!     assets: vec![AssetAllowance {
//!         network: "eip155:33380".into(),
//!         asset: usdt,
//!         symbol: "USDT".into(),
//!         decimals: 6,
//!         max_per_request: m2m_x402::U256::from(100_000u64), // 0.10 USDT
//!         daily_budget: m2m_x402::U256::from(5_000_000u64),  // 5.00 USDT
//!     }],
//!     payees: vec![], // any payee
//! };
//! let client = X402Client::new(Buyer::new(key, policy));
//! let paid = client.get("http://127.0.0.1:8080/reading").await?;
//! println!("{} (tx {:?})", paid.response.text().await?, paid.settlement.map(|s| s.transaction));
//! # Ok(()) }
//! ```

pub mod channels;
pub mod client;
pub mod ledger;
pub mod messages;
pub mod purchase;

use std::{
	collections::HashSet,
	sync::{Arc, Mutex},
};

use alloy_signer_local::PrivateKeySigner;
use m2m_x402::{
	paywall,
	policy::{self, NothingPayable, SpendingPolicy},
	schemes::{
		batch_settlement::{
			digest::ChannelConfig,
			payload::{ChannelPayload, ChannelStateWire},
			rules as channel_rules,
		},
		exact, Payload, Scheme,
	},
	v2::{PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse},
	Address, B256, U256,
};

pub use channels::{BuyerChannel, BuyerChannelStore, ChannelFunding, MemoryBuyerChannels};
pub use ledger::{LedgerError, MemoryLedger, SpendLedger};
pub use purchase::{classify, AnswerKind, InFlight, Locator, Outcome, SellerAnswer};

/// Where a buyer keeps its payments in flight. `signed` must be durable when it returns: it
/// runs before the payment can leave the device. Every answer is told to `finished`; a
/// payment whose outcome is not final stays in flight, to be resumed (sent again as signed).
pub trait PaymentJournal: Send + Sync {
	fn signed(&self, flight: &InFlight) -> Result<(), LedgerError>;
	/// The payment is about to be sent (again): from now on the seller may have it.
	fn submitted(&self, _key: &str) {}
	fn finished(&self, key: &str, outcome: &Outcome);
}

/// Why the buyer did not pay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuyError {
	#[error("{0}")]
	Policy(#[from] NothingPayable),
	#[error("cannot sign for the chosen offer: {0}")]
	Signing(String),
	#[error(transparent)]
	Ledger(#[from] LedgerError),
	#[error("cannot journal the signed payment, so it is not sent: {0}")]
	Journal(LedgerError),
	#[error("cannot read or save the payment channel, so nothing is signed: {0}")]
	Channels(String),
	/// One request at a time per channel: its next voucher depends on this one's answer.
	#[error("a request paid from channel {0} is in flight; the next waits for its answer")]
	ChannelBusy(B256),
	#[error("nothing to refund: {0}")]
	NothingToRefund(String),
}

/// A signed cooperative-refund request, ready to send: the channel's `refund` payload, with a
/// voucher of exactly what was charged (it commits nothing new).
#[derive(Clone, Debug, PartialEq)]
pub struct RefundRequest {
	pub payload: PaymentPayload,
	pub channel_id: B256,
	/// What the buyer expects back: the channel's balance beyond what was charged, as the
	/// seller last reported them.
	pub expected: u128,
}

/// A signed payment, ready to send, and what it commits.
#[derive(Clone, Debug, PartialEq)]
pub struct Payment {
	pub payload: PaymentPayload,
	pub network: String,
	pub asset: Address,
	pub pay_to: String,
	pub amount: U256,
	/// `0.01 USDT`.
	pub price: String,
	pub payment_id: Option<String>,
}

impl Payment {
	/// A channel payment's deposit, in base units (0 for `exact` and bare vouchers): what
	/// the budget counted for it.
	pub fn deposit(&self) -> u128 {
		match Payload::parse(&self.payload) {
			Ok(Payload::BatchSettlement(p)) => match *p {
				ChannelPayload::Deposit { deposit, .. } => deposit.amount.parse().unwrap_or(0),
				_ => 0,
			},
			_ => 0,
		}
	}
}

/// A device's buying side: its EVM key, its policy, its spend ledger.
pub struct Buyer {
	signer: PrivateKeySigner,
	policy: SpendingPolicy,
	ledger: Arc<dyn SpendLedger>,
	journal: Option<Arc<dyn PaymentJournal>>,
	channels: Arc<dyn BuyerChannelStore>,
	funding: ChannelFunding,
	// Channels with a voucher in flight, and the wake-up for purchases waiting on one.
	busy: Mutex<HashSet<B256>>,
	turn: tokio::sync::Notify,
	// Choosing and counting happen together, so concurrent purchases cannot overrun a budget.
	committing: Mutex<()>,
}

impl Buyer {
	/// A buyer that counts its spend in memory.
	pub fn new(signer: PrivateKeySigner, policy: SpendingPolicy) -> Self {
		Self::with_ledger(signer, policy, Arc::new(MemoryLedger::default()))
	}

	pub fn with_ledger(
		signer: PrivateKeySigner,
		policy: SpendingPolicy,
		ledger: Arc<dyn SpendLedger>,
	) -> Self {
		Self {
			signer,
			policy,
			ledger,
			journal: None,
			channels: Arc::new(MemoryBuyerChannels::default()),
			funding: ChannelFunding::default(),
			busy: Mutex::default(),
			turn: tokio::sync::Notify::new(),
			committing: Mutex::new(()),
		}
	}

	/// Keeps the channels it pays from in `store` (durable, for a device), funding each
	/// deposit as `funding` says.
	pub fn with_channels(
		mut self,
		store: Arc<dyn BuyerChannelStore>,
		funding: ChannelFunding,
	) -> Self {
		self.channels = store;
		self.funding = funding;
		self
	}

	/// The channels this buyer pays from.
	pub fn channels(&self) -> Result<Vec<BuyerChannel>, String> {
		self.channels.all()
	}

	/// Journals every payment before it leaves, and its outcome after.
	pub fn with_journal(mut self, journal: Arc<dyn PaymentJournal>) -> Self {
		self.journal = Some(journal);
		self
	}

	pub fn address(&self) -> Address {
		self.signer.address()
	}

	pub fn policy(&self) -> &SpendingPolicy {
		&self.policy
	}

	/// Starts a purchase at `locator`: chooses an offer of `required` (which the seller sent
	/// in protocol `version`), counts it, signs it at Unix time `now`, and journals it. The
	/// payment may leave the device only after this returns.
	pub fn begin(
		&self,
		required: &PaymentRequired,
		version: u32,
		locator: Locator,
		now: u64,
	) -> Result<InFlight, BuyError> {
		let payment = self.pay(required, now)?;
		let key = match Payload::parse(&payment.payload) {
			Ok(Payload::Exact(p)) => p.authorization.nonce,
			Ok(Payload::BatchSettlement(p)) => {
				let v = p.voucher();
				format!("{}/{}", v.channel_id, v.max_claimable_amount)
			},
			Err(problem) => return Err(BuyError::Signing(problem.to_string())),
		};
		let flight = InFlight { key, locator, version, payment };
		if let Some(journal) = &self.journal {
			if let Err(e) = journal.signed(&flight) {
				self.release(&flight);
				return Err(BuyError::Journal(e));
			}
		}
		tracing::info!(
			to = %flight.locator.describe(), price = %flight.payment.price,
			pay_to = %flight.payment.pay_to,
			payment_id = flight.payment.payment_id.as_deref().unwrap_or(""), "paying"
		);
		Ok(flight)
	}

	/// The payment is about to be sent (or sent again).
	pub fn sending(&self, flight: &InFlight) {
		if let Some(journal) = &self.journal {
			journal.submitted(&flight.key);
		}
	}

	/// The seller answered: the outcome, journaled.
	pub fn answered(&self, flight: &InFlight, answer: &SellerAnswer) -> Outcome {
		let outcome = classify(answer);
		if let (Outcome::Settled { .. }, Some(Ok(settlement))) = (&outcome, &answer.settlement) {
			self.channel_charged(flight, settlement);
		}
		self.conclude(flight, &outcome);
		outcome
	}

	/// A 402 answered to `flight` is a channel's corrective one: it carries the state of the
	/// channel the flight paid from, and the next [`begin`](Self::begin) with it resumes
	/// from that state (once the voucher it shows checks out).
	pub fn is_corrective(&self, flight: &InFlight, required: &PaymentRequired) -> bool {
		let Ok(Payload::BatchSettlement(p)) = Payload::parse(&flight.payment.payload) else {
			return false;
		};
		let id = &p.voucher().channel_id;
		required.accepts.iter().any(|offer| {
			offer
				.extra
				.as_ref()
				.and_then(|e| e.get("channelState"))
				.and_then(|s| s.get("channelId"))
				.and_then(|v| v.as_str())
				.is_some_and(|v| v.eq_ignore_ascii_case(id))
		})
	}

	/// Waits until a channel with a voucher in flight may be busy no more (a purchase that
	/// got [`BuyError::ChannelBusy`] then begins again).
	/// (The wait counts from this call, not from the first poll: take it before trying.)
	pub fn channel_turn(&self) -> tokio::sync::futures::Notified<'_> {
		self.turn.notified()
	}

	/// A delivered channel answer: the charge it reports is checked against the voucher and
	/// recorded; a charge that does not add up stops the channel.
	fn channel_charged(&self, flight: &InFlight, settlement: &m2m_x402::v2::SettleResponse) {
		let Ok(Payload::BatchSettlement(p)) = Payload::parse(&flight.payment.payload) else {
			return;
		};
		let Ok(id) = p.voucher().channel_id.parse::<B256>() else { return };
		let voucher = p.voucher().max_claimable_amount.parse::<u128>().unwrap_or(0);
		let price = flight.payment.amount.to::<u128>();
		let mut channel = match self.channels.load(&id) {
			Ok(Some(c)) => c,
			Ok(None) => return,
			Err(e) => {
				tracing::error!(channel = %id, error = %e, "cannot read the channel to record a charge");
				return;
			},
		};
		match channels::check_charge(&channel, voucher, price, settlement) {
			Ok(charge) => {
				let state = &charge.channel_state;
				let cumulative =
					state.charged_cumulative_amount.as_deref().unwrap_or("0").parse().unwrap_or(0);
				channel.charged = channel.charged.max(cumulative);
				channel.balance = state.balance.parse().unwrap_or(channel.balance);
				channel.total_claimed = state.total_claimed.parse().unwrap_or(0);
				channel.withdraw_requested_at = state.withdraw_requested_at;
				channel.requests += 1;
				if matches!(*p, ChannelPayload::Deposit { .. })
					&& !settlement.transaction.is_empty()
				{
					channel.deposited += flight.payment.deposit();
				}
			},
			Err(why) => {
				tracing::error!(channel = %id, %why, "the seller's channel state does not add up; no more vouchers on this channel");
				channel.stopped = Some(why);
			},
		}
		if let Err(e) = self.channels.save(&channel) {
			tracing::error!(channel = %id, error = %e, "cannot save the channel's charge");
		}
	}

	/// Pays no more from the channel `flight` paid from: its seller broke a rule that the
	/// transport checks (a metered stream charged other than the units it delivered).
	pub fn stop_channel(&self, flight: &InFlight, why: String) {
		let Ok(Payload::BatchSettlement(p)) = Payload::parse(&flight.payment.payload) else {
			return;
		};
		let Ok(id) = p.voucher().channel_id.parse::<B256>() else { return };
		match self.channels.load(&id) {
			Ok(Some(mut channel)) => {
				tracing::error!(channel = %id, %why, "no more vouchers on this channel");
				channel.stopped = Some(why);
				if let Err(e) = self.channels.save(&channel) {
					tracing::error!(channel = %id, error = %e, "cannot save the stopped channel");
				}
			},
			Ok(None) => {},
			Err(e) => {
				tracing::error!(channel = %id, error = %e, "cannot read the channel to stop it")
			},
		}
	}

	/// The flight's channel, if any, is free for its next voucher.
	fn release(&self, flight: &InFlight) {
		if let Ok(Payload::BatchSettlement(p)) = Payload::parse(&flight.payment.payload) {
			if let Ok(id) = p.voucher().channel_id.parse::<B256>() {
				self.release_channel(&id);
			}
		}
	}

	/// Journals `outcome` for `flight` (also for a payment that never left: `Failed`).
	pub fn conclude(&self, flight: &InFlight, outcome: &Outcome) {
		match outcome {
			Outcome::Settled { transaction } => {
				tracing::info!(price = %flight.payment.price, tx = %transaction, "paid")
			},
			Outcome::Failed { reason } => {
				tracing::warn!(price = %flight.payment.price, %reason, "payment not taken")
			},
			other => tracing::warn!(
				price = %flight.payment.price, outcome = ?other,
				"payment in flight; it will be resumed, never signed again"
			),
		}
		if let Some(journal) = &self.journal {
			journal.finished(&flight.key, outcome);
		}
		// Whatever the outcome, the next voucher may be signed: if this one was charged
		// unseen, the seller's corrective 402 says so, and it is adopted.
		self.release(flight);
	}

	/// Asks for what the channel paying `required`'s channel offer holds beyond what was
	/// charged, back at once (a cooperative refund, instead of a withdrawal that waits out the
	/// withdraw delay). The channel takes no voucher until [`refund_answered`] is told the
	/// answer. A corrective 402 in `required` is adopted first, as for a purchase.
	///
	/// [`refund_answered`]: Self::refund_answered
	pub fn refund(&self, required: &PaymentRequired) -> Result<RefundRequest, BuyError> {
		let requirement = required
			.accepts
			.iter()
			.find(|r| Scheme::of(r) == Ok(Scheme::BatchSettlement))
			.ok_or_else(|| {
				BuyError::NothingToRefund("the seller offers no payment channel here".into())
			})?;
		let (offer, channel, config) = self.channel_paying(requirement)?;
		if channel.balance <= channel.charged {
			return Err(BuyError::NothingToRefund(format!(
				"channel {} holds {} and {} of it was charged",
				channel.channel_id, channel.balance, channel.charged
			)));
		}
		if !self.busy.lock().expect("busy channels").insert(channel.channel_id) {
			return Err(BuyError::ChannelBusy(channel.channel_id));
		}
		let voucher =
			channel_rules::sign_voucher(&self.signer, &config, channel.charged, offer.chain_id)
				.map_err(|p| {
					self.release_channel(&channel.channel_id);
					BuyError::Signing(p.to_string())
				})?;
		let payload = ChannelPayload::Refund {
			channel_config: channel_rules::config_wire(&config),
			voucher,
			amount: None,
		};
		let mut payment =
			channel_rules::payment(&channel_rules::without_state(requirement.clone()), &payload);
		payment.resource = Some(required.resource.clone());
		tracing::info!(channel = %channel.channel_id, expected = channel.balance - channel.charged, "asking for a refund");
		Ok(RefundRequest {
			payload: payment,
			channel_id: channel.channel_id,
			expected: channel.balance - channel.charged,
		})
	}

	/// The seller answered `refund` (`settlement`: its refund's settlement, if it granted
	/// it): the channel takes the state after it, and is free again.
	pub fn refund_answered(&self, refund: &RefundRequest, settlement: Option<&SettleResponse>) {
		let state = settlement
			.filter(|s| s.success)
			.and_then(|s| s.extra.as_ref())
			.and_then(|e| e.get("channelState"))
			.and_then(|s| serde_json::from_value::<ChannelStateWire>(s.clone()).ok());
		if let Some(state) = state {
			match self.channels.load(&refund.channel_id) {
				Ok(Some(mut channel)) => {
					channel.balance = state.balance.parse().unwrap_or(channel.balance);
					channel.total_claimed =
						state.total_claimed.parse().unwrap_or(channel.total_claimed);
					if let Err(e) = self.channels.save(&channel) {
						tracing::error!(channel = %refund.channel_id, error = %e, "cannot save the refunded channel");
					}
				},
				Ok(None) => {},
				Err(e) => {
					tracing::error!(channel = %refund.channel_id, error = %e, "cannot read the refunded channel")
				},
			}
			tracing::info!(channel = %refund.channel_id, balance = %state.balance, "refunded");
		}
		self.release_channel(&refund.channel_id);
	}

	/// The channel that pays `requirement`'s offer (found, or a new one), with a corrective
	/// 402's state adopted once it checks out.
	fn channel_paying(
		&self,
		requirement: &PaymentRequirements,
	) -> Result<(channel_rules::Offer, BuyerChannel, ChannelConfig), BuyError> {
		let offer =
			channel_rules::offer(requirement).map_err(|p| BuyError::Signing(p.to_string()))?;
		let known = self.channels.all().map_err(BuyError::Channels)?;
		let (mut channel, config) =
			channels::channel_for(&known, &offer, requirement, self.signer.clone());
		channels::adopt(&mut channel, &config, &offer, requirement).map_err(|p| {
			BuyError::Signing(format!("the seller's corrective 402 is not acceptable: {p}"))
		})?;
		Ok((offer, channel, config))
	}

	fn release_channel(&self, channel_id: &B256) {
		self.busy.lock().expect("busy channels").remove(channel_id);
		self.turn.notify_waiters();
	}

	/// Chooses an offer of `required`, counts it, and signs it, at Unix time `now`.
	pub fn pay(&self, required: &PaymentRequired, now: u64) -> Result<Payment, BuyError> {
		let _guard = self.committing.lock().expect("buyer lock");
		let day = policy::day_of(now);
		let mut spent = Vec::new();
		for a in &self.policy.assets {
			spent.push((a.network.as_str(), a.asset, self.ledger.spent(day, &a.network, a.asset)?));
		}
		let choice = self.policy.choose(&required.accepts, |network, asset| {
			spent
				.iter()
				.find(|(n, a, _)| *n == network && *a == asset)
				.map(|(_, _, s)| *s)
				.unwrap_or_default()
		})?;
		let allowance = choice.allowance;
		let spent_now = spent
			.iter()
			.find(|(n, a, _)| *n == allowance.network && *a == allowance.asset)
			.map(|(_, _, s)| *s)
			.unwrap_or_default();
		let (mut payload, deposit) = match Scheme::of(choice.requirement) {
			Ok(Scheme::BatchSettlement) => {
				let (payload, deposit) =
					self.sign_channel(choice.requirement, allowance, spent_now, now)?;
				(payload, U256::from(deposit))
			},
			_ => {
				let signed = exact::sign(&self.signer, choice.requirement, now, random_b256())
					.map_err(|e| BuyError::Signing(e.to_string()))?;
				(exact::payment(choice.requirement.clone(), &signed), U256::ZERO)
			},
		};
		payload.resource = Some(required.resource.clone());
		let advertised = required
			.extensions
			.as_ref()
			.is_some_and(|e| e.get(paywall::PAYMENT_IDENTIFIER).is_some());
		let payment_id = advertised.then(|| format!("pay_{}", hex32(random_b256())));
		if let Some(id) = &payment_id {
			paywall::set_payment_id(&mut payload, id);
		}
		// What is at stake: the price for exact; a channel's deposit (its vouchers spend it).
		let counted = match Scheme::of(choice.requirement) {
			Ok(Scheme::BatchSettlement) => deposit,
			_ => choice.amount,
		};
		if !counted.is_zero() {
			self.ledger.add(day, &allowance.network, allowance.asset, counted)?;
		}
		Ok(Payment {
			network: choice.requirement.network.clone(),
			asset: allowance.asset,
			pay_to: choice.requirement.pay_to.clone(),
			amount: choice.amount,
			price: policy::format_units(choice.amount, allowance.decimals, &allowance.symbol),
			payment_id,
			payload,
		})
	}

	/// Signs the next voucher of the channel for `requirement` (opening or topping it up
	/// with a deposit the budget allows), and saves the channel with it before returning.
	/// Returns the payment and its deposit.
	fn sign_channel(
		&self,
		requirement: &PaymentRequirements,
		allowance: &policy::AssetAllowance,
		spent: U256,
		now: u64,
	) -> Result<(PaymentPayload, u128), BuyError> {
		let (offer, mut channel, config) = self.channel_paying(requirement)?;
		if !self.busy.lock().expect("busy channels").insert(channel.channel_id) {
			return Err(BuyError::ChannelBusy(channel.channel_id));
		}
		let signed = (|| {
			let price = offer.max_price;
			let voucher = channel.charged.checked_add(price).ok_or_else(|| {
				BuyError::Signing("the channel's cumulative amount would overflow".into())
			})?;
			let left = allowance.budget_left(spent).saturating_to::<u128>();
			let deposit =
				channels::deposit_needed(voucher, channel.balance, price, self.funding, left)
					.map_err(|shortfall| {
						BuyError::Policy(NothingPayable(vec![allowance
							.fits_budget(spent, U256::from(shortfall))
							.expect_err("the shortfall exceeds what is left")]))
					})?;
			let terms = channels::DepositTerms { amount: deposit, now, salt: random_b256() };
			let payload = channels::sign(&self.signer, &offer, &config, &mut channel, price, terms)
				.map_err(|p| BuyError::Signing(p.to_string()))?;
			// On disk before the voucher can leave: never the same amount for two requests.
			self.channels.save(&channel).map_err(BuyError::Channels)?;
			Ok((payload, deposit))
		})();
		match signed {
			Ok((payload, deposit)) => {
				if deposit > 0 {
					tracing::info!(channel = %channel.channel_id, deposit, "depositing into the channel");
				}
				// The offer is echoed as first made: a corrective 402's state only annotated it.
				let offer = channel_rules::without_state(requirement.clone());
				Ok((channel_rules::payment(&offer, &payload), deposit))
			},
			Err(e) => {
				self.release_channel(&channel.channel_id);
				Err(e)
			},
		}
	}
}

fn random_b256() -> B256 {
	let mut bytes = [0u8; 32];
	getrandom::getrandom(&mut bytes).expect("the OS provides randomness");
	B256::from(bytes)
}

fn hex32(b: B256) -> String {
	b.0[..16].iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
	use super::*;
	use m2m_x402::{paywall::payment_id, policy::AssetAllowance, v2::ResourceInfo};

	fn setup() -> (Buyer, PaymentRequired) {
		let usdt = Address::repeat_byte(0x11);
		let policy = SpendingPolicy {
			assets: vec![AssetAllowance {
				network: "eip155:33380".into(),
				asset: usdt,
				symbol: "USDT".into(),
				decimals: 6,
				max_per_request: U256::from(100_000u64),
				daily_budget: U256::from(250_000u64),
			}],
			payees: vec![],
		};
		let offer = exact::requirements(
			33380,
			usdt,
			("Tether USD", "1"),
			Address::repeat_byte(0x22),
			U256::from(100_000u64),
			60,
		);
		let resource =
			ResourceInfo { url: "http://x/r".into(), description: None, mime_type: None };
		let required = paywall::payment_required(resource, vec![offer], None);
		(Buyer::new(PrivateKeySigner::random(), policy), required)
	}

	#[test]
	fn a_payment_is_signed_for_the_offer_and_counted() {
		let (buyer, required) = setup();
		let now = 1_800_000_000;
		let p = buyer.pay(&required, now).unwrap();
		assert_eq!(p.price, "0.10 USDT");
		assert_eq!(p.payload.accepted, required.accepts[0], "the offer is echoed verbatim");
		let verified = exact::verify(&p.payload, &required.accepts[0], now).unwrap();
		assert_eq!(verified.payer, buyer.address());
		assert_eq!(payment_id(&p.payload).unwrap(), p.payment_id);
		assert!(p.payment_id.is_some(), "the seller advertised payment-identifier");

		let again = buyer.pay(&required, now).unwrap();
		assert_ne!(again.payload, p.payload, "a fresh nonce and id every time");
		assert_eq!(
			buyer.pay(&required, now).unwrap_err().to_string(),
			"price 0.10 USDT exceeds the rest of today's budget: 0.20 USDT of 0.25 USDT spent"
		);
		assert!(buyer.pay(&required, now + policy::DAY_SECS).is_ok(), "a new day, a new budget");
	}
}
