//! x402 over HTTP for buyers: a reqwest client that answers 402 by itself.
//!
//! A request goes out as is. On a 402 the client reads `PAYMENT-REQUIRED` (or a v1 body),
//! lets the [`Buyer`] choose, count and sign, retries **once** with the payment, and returns
//! the response with its settlement. It never signs twice for one request: whatever the
//! retry answers (a refusal, a pending settlement, a failure), that is the result.

use std::sync::Arc;

use m2m_x402::{
	http::{self as x402_http, ReadError},
	v2::SettleResponse,
	ErrorReason,
};
use reqwest::{header::HeaderMap, Method, Request, Response, StatusCode};

use crate::{unix_now, BuyError, Buyer, Payment};

/// A response, and what was paid for it (nothing, if the resource was free).
#[derive(Debug)]
pub struct Paid {
	pub response: Response,
	pub payment: Option<Payment>,
	/// The seller's `PAYMENT-RESPONSE`, when it sent one.
	pub settlement: Option<SettleResponse>,
}

/// Why a request did not end in a paid response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
	#[error("request failed: {0}")]
	Http(#[from] reqwest::Error),
	#[error("the request body is a stream, so it cannot be sent again with a payment")]
	NotReplayable,
	#[error("cannot read the seller's payment requirements: {0}")]
	Unreadable(#[from] ReadError),
	#[error("not paying: {0}")]
	NotPaying(#[from] BuyError),
	#[error("the payment cannot be expressed in x402 v1 (no v1 name for {0})")]
	NoV1Network(String),
	#[error("the seller refused the payment of {price}: {reason}")]
	Refused {
		price: String,
		reason: String,
		/// The seller's settlement result, when the refusal came from settling.
		settlement: Option<SettleResponse>,
	},
	#[error(
		"the payment of {price} was sent for settlement in transaction {transaction}, which is \
		 not confirmed yet; not paying again"
	)]
	SettlementPending { price: String, transaction: String },
	#[error("the seller's payment id {0} conflicts (409): {1}")]
	Conflict(String, String),
	#[error("the seller cannot reach its facilitator ({status}): {message}; nothing was taken")]
	SellerUnavailable { status: StatusCode, message: String },
}

/// An HTTP client that pays for what it fetches, within its buyer's policy.
#[derive(Clone)]
pub struct X402Client {
	http: reqwest::Client,
	buyer: Arc<Buyer>,
	journal: Option<Arc<dyn PaymentJournal>>,
}

/// A signed payment on its way to the seller: everything needed to send it again after a
/// crash, so that it is re-sent and never re-signed.
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
	/// Unique per signed payment: the authorization's nonce (0x + 64 hex).
	pub key: String,
	pub method: String,
	pub url: String,
	pub header_name: String,
	pub header_value: String,
	pub payment: Payment,
}

/// How a payment ended, as far as the buyer can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
	/// Settled on-chain in `transaction`.
	Settled { transaction: String },
	/// Sent for settlement, not confirmed yet: it may still land.
	Pending { transaction: String },
	/// Refused or failed; the authorization was not used (it stays counted until it expires).
	Failed { reason: String },
	/// The seller served an error (status ≥ 400) and did not settle.
	Unsettled { status: u16 },
}

/// Where a buyer keeps its payments in flight. `signed` must be durable when it returns:
/// it runs before the payment leaves the device. A payment whose answer never came (the
/// connection broke) gets no `finished` and stays in flight, to be resumed.
pub trait PaymentJournal: Send + Sync {
	fn signed(&self, flight: &InFlight) -> Result<(), crate::LedgerError>;
	/// The payment is about to be sent (again): from now on the seller may have it.
	fn submitted(&self, _key: &str) {}
	fn finished(&self, key: &str, outcome: &Outcome);
}

impl X402Client {
	pub fn new(buyer: Buyer) -> Self {
		Self::with_http(reqwest::Client::new(), Arc::new(buyer))
	}

	/// Uses `http` (timeouts, proxies, TLS as configured there) for every request.
	pub fn with_http(http: reqwest::Client, buyer: Arc<Buyer>) -> Self {
		Self { http, buyer, journal: None }
	}

	/// Records every payment in `journal` before it leaves, and its outcome after.
	pub fn with_journal(mut self, journal: Arc<dyn PaymentJournal>) -> Self {
		self.journal = Some(journal);
		self
	}

	pub fn buyer(&self) -> &Buyer {
		&self.buyer
	}

	/// `GET url`, paying if asked to.
	pub async fn get(&self, url: &str) -> Result<Paid, ClientError> {
		self.execute(self.http.request(Method::GET, url).build()?).await
	}

	/// Sends `request`, paying if asked to. A body, if any, must be in memory.
	pub async fn execute(&self, request: Request) -> Result<Paid, ClientError> {
		let retry = request.try_clone().ok_or(ClientError::NotReplayable)?;
		let first = self.http.execute(request).await?;
		if first.status() != StatusCode::PAYMENT_REQUIRED {
			return Ok(Paid { response: first, payment: None, settlement: None });
		}
		let header = text(first.headers(), x402_http::PAYMENT_REQUIRED).map(str::to_owned);
		let body = first.bytes().await?;
		let required = x402_http::read_payment_required(header.as_deref(), &body)?;

		let payment = self.buyer.pay(&required.required, unix_now())?;
		let (name, value) = x402_http::payment_header(required.version, &payment.payload)
			.ok_or_else(|| ClientError::NoV1Network(payment.network.clone()))?;
		tracing::info!(
			url = %retry.url(), price = %payment.price, pay_to = %payment.pay_to,
			payment_id = payment.payment_id.as_deref().unwrap_or(""), "paying"
		);
		let flight = InFlight {
			key: payment
				.payload
				.exact_evm()
				.map(|p| p.authorization.nonce.clone())
				.unwrap_or_default(),
			method: retry.method().to_string(),
			url: retry.url().to_string(),
			header_name: name.to_string(),
			header_value: value.clone(),
			payment,
		};
		if let Some(journal) = &self.journal {
			journal.signed(&flight).map_err(|e| ClientError::NotPaying(e.into()))?;
		}
		let mut retry = retry;
		retry.headers_mut().insert(name, value.parse().expect("base64 is a valid header value"));
		self.send(retry, flight).await
	}

	/// Sends a payment in flight again, exactly as it was signed (after a crash, typically).
	/// Its `payment-identifier` lets the seller answer again without charging again.
	pub async fn resume(&self, flight: InFlight) -> Result<Paid, ClientError> {
		let method = Method::from_bytes(flight.method.as_bytes()).unwrap_or(Method::GET);
		let request = self
			.http
			.request(method, &flight.url)
			.header(&flight.header_name, &flight.header_value)
			.build()?;
		tracing::info!(url = %flight.url, price = %flight.payment.price, "resuming a payment in flight");
		self.send(request, flight).await
	}

	async fn send(&self, request: Request, flight: InFlight) -> Result<Paid, ClientError> {
		if let Some(journal) = &self.journal {
			journal.submitted(&flight.key);
		}
		// A broken connection leaves the payment in flight (no `finished`): it may have been
		// settled, so only a resume, never a new signature, may follow.
		let response = self.http.execute(request).await?;
		let key = flight.key.clone();
		let result = self.outcome(response, flight.payment).await;
		// A 409 means the seller is still working on this very payment: it stays in flight.
		let still_in_flight = matches!(result, Err(ClientError::Conflict(..)));
		if let (Some(journal), false) = (&self.journal, still_in_flight) {
			journal.finished(&key, &outcome_of(&result));
		}
		result
	}

	async fn outcome(&self, response: Response, payment: Payment) -> Result<Paid, ClientError> {
		let settlement = x402_http::read_settlement(
			text(response.headers(), x402_http::PAYMENT_RESPONSE),
			text(response.headers(), x402_http::X_PAYMENT_RESPONSE),
		)
		.and_then(Result::ok);
		let status = response.status();
		let price = payment.price.clone();
		if let Some(s) = settlement.as_ref().filter(|s| !s.success) {
			if s.error_reason == Some(ErrorReason::SettlementPending) {
				return Err(ClientError::SettlementPending {
					price,
					transaction: s.transaction.clone(),
				});
			}
			let reason = match (&s.error_reason, &s.error_message) {
				(Some(r), Some(m)) => format!("{r}: {m}"),
				(Some(r), None) => r.to_string(),
				(None, m) => m.clone().unwrap_or_else(|| "settlement failed".into()),
			};
			return Err(ClientError::Refused { price, reason, settlement });
		}
		match status {
			StatusCode::PAYMENT_REQUIRED => {
				let header =
					text(response.headers(), x402_http::PAYMENT_REQUIRED).map(str::to_owned);
				let body = response.bytes().await?;
				let reason = x402_http::read_payment_required(header.as_deref(), &body)
					.ok()
					.and_then(|r| r.required.error)
					.unwrap_or_else(|| "the seller asked for payment again".into());
				Err(ClientError::Refused { price, reason, settlement: None })
			},
			StatusCode::CONFLICT => Err(ClientError::Conflict(
				payment.payment_id.unwrap_or_default(),
				message(response).await,
			)),
			StatusCode::BAD_GATEWAY
			| StatusCode::SERVICE_UNAVAILABLE
			| StatusCode::GATEWAY_TIMEOUT => {
				Err(ClientError::SellerUnavailable { status, message: message(response).await })
			},
			_ => {
				if let Some(s) = &settlement {
					tracing::info!(price = %payment.price, tx = %s.transaction, "paid");
				}
				Ok(Paid { response, payment: Some(payment), settlement })
			},
		}
	}
}

fn outcome_of(result: &Result<Paid, ClientError>) -> Outcome {
	match result {
		Ok(Paid { settlement: Some(s), .. }) if s.success => {
			Outcome::Settled { transaction: s.transaction.clone() }
		},
		Ok(Paid { response, .. }) => Outcome::Unsettled { status: response.status().as_u16() },
		Err(ClientError::SettlementPending { transaction, .. }) => {
			Outcome::Pending { transaction: transaction.clone() }
		},
		Err(e) => Outcome::Failed { reason: e.to_string() },
	}
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
	headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `message` of a JSON error body, or the body itself.
async fn message(response: Response) -> String {
	let body = response.text().await.unwrap_or_default();
	serde_json::from_str::<serde_json::Value>(&body)
		.ok()
		.and_then(|v| v.get("message")?.as_str().map(str::to_owned))
		.unwrap_or(body)
}
