//! Buying over x402.
//!
//! [`Buyer`] is the transport-neutral core, and it owns the purchase: given what a seller asks
//! for, it picks the first offer its [`SpendingPolicy`] allows, counts it against today's
//! budget, signs an EIP-3009 authorization for exactly that offer, journals it before it can
//! leave, and turns the seller's answer into an [`Outcome`] ([`purchase`]).
//! [`client::X402Client`] is the HTTP adapter; libp2p will be another over the same core.
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

pub mod client;
pub mod ledger;
pub mod purchase;

use std::sync::{Arc, Mutex};

use alloy_signer_local::PrivateKeySigner;
use m2m_x402::{
	paywall,
	policy::{self, NothingPayable, SpendingPolicy},
	schemes::{exact, Payload},
	v2::{PaymentPayload, PaymentRequired},
	Address, B256, U256,
};

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

/// A device's buying side: its EVM key, its policy, its spend ledger.
pub struct Buyer {
	signer: PrivateKeySigner,
	policy: SpendingPolicy,
	ledger: Arc<dyn SpendLedger>,
	journal: Option<Arc<dyn PaymentJournal>>,
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
		Self { signer, policy, ledger, journal: None, committing: Mutex::new(()) }
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
			// The spending policy refuses channel offers, so none is ever signed here.
			Ok(Payload::BatchSettlement(_)) => {
				return Err(BuyError::Signing("this buyer does not pay from channels yet".into()))
			},
			Err(problem) => return Err(BuyError::Signing(problem.to_string())),
		};
		let flight = InFlight { key, locator, version, payment };
		if let Some(journal) = &self.journal {
			journal.signed(&flight).map_err(BuyError::Journal)?;
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
		self.conclude(flight, &outcome);
		outcome
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
		let signed = exact::sign(&self.signer, choice.requirement, now, random_b256())
			.map_err(|e| BuyError::Signing(e.to_string()))?;
		let mut payload = exact::payment(choice.requirement.clone(), &signed);
		payload.resource = Some(required.resource.clone());
		let advertised = required
			.extensions
			.as_ref()
			.is_some_and(|e| e.get(paywall::PAYMENT_IDENTIFIER).is_some());
		let payment_id = advertised.then(|| format!("pay_{}", hex32(random_b256())));
		if let Some(id) = &payment_id {
			paywall::set_payment_id(&mut payload, id);
		}
		let allowance = choice.allowance;
		self.ledger.add(day, &allowance.network, allowance.asset, choice.amount)?;
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
