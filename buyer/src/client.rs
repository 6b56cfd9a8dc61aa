//! x402 over HTTP for buyers: a reqwest client that answers 402 by itself.
//!
//! A request goes out as is. On a 402 the client reads `PAYMENT-REQUIRED` (or a v1 body),
//! has the [`Buyer`] begin a purchase (choose, count, sign, journal), retries **once** with the
//! payment, and hands the answer back to the buyer, which decides the outcome. This module
//! only maps between HTTP and the buyer core ([`crate::purchase`]): headers and statuses in,
//! a [`SellerAnswer`] out; an [`Outcome`] in, a [`Paid`] or a [`ClientError`] out.

use std::sync::Arc;

use m2m_x402::{
	http::{self as x402_http, ReadError},
	v2::SettleResponse,
};
use reqwest::{header::HeaderMap, Method, Request, Response, StatusCode};

pub use crate::{
	purchase::{InFlight, Locator, Outcome},
	PaymentJournal,
};
use m2m_x402::clock::unix_now;

use crate::{purchase::answer_kind, AnswerKind, BuyError, Buyer, Payment, SellerAnswer};

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
	#[error(
		"the seller asks to be paid to {offered:?}, not to {expected}, the device this buyer \
		 means to pay; not paying"
	)]
	WrongPayee { expected: String, offered: Vec<String> },
	/// A libp2p request failed (no answer); a payment it carried stays in flight.
	#[error("{0}")]
	Transport(String),
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
	#[error(
		"the payment of {price} was settled in transaction {transaction}, but the resource was \
		 not delivered ({message}); it stays in flight and will be resumed, not paid again"
	)]
	Unserved { price: String, transaction: String, message: String },
	#[error(
		"the seller's answer does not say what happened to the payment of {price} ({reason}); \
		 it stays in flight and will be resumed, not paid again"
	)]
	InFlight { price: String, reason: String },
	/// A metered stream's seller charged other than the units it delivered, or miscounted
	/// them: its channel is paid from no more.
	#[error("the seller's metered stream does not add up: {0}; not paying from its channel again")]
	MeterMismatch(String),
	#[error("the seller's payment id {0} conflicts (409): {1}")]
	Conflict(String, String),
	#[error("the seller cannot reach its facilitator ({status}): {message}; nothing was taken")]
	SellerUnavailable { status: StatusCode, message: String },
	#[error(
		"the seller corrected the channel's state twice in a row ({reason}); not paying from it \
		 again for this request"
	)]
	ChannelOutOfStep {
		reason: String,
		/// The seller's corrected requirements, to begin again with.
		required: Box<m2m_x402::v2::PaymentRequired>,
	},
}

/// How long a purchase waits for its channel's previous request to be answered.
const CHANNEL_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// An HTTP client that pays for what it fetches, within its buyer's policy.
#[derive(Clone)]
pub struct X402Client {
	http: reqwest::Client,
	buyer: Arc<Buyer>,
}

impl X402Client {
	pub fn new(buyer: Buyer) -> Self {
		Self::with_http(reqwest::Client::new(), Arc::new(buyer))
	}

	/// Uses `http` (timeouts, proxies, TLS as configured there) for every request.
	pub fn with_http(http: reqwest::Client, buyer: Arc<Buyer>) -> Self {
		Self { http, buyer }
	}

	pub fn buyer(&self) -> &Buyer {
		&self.buyer
	}

	/// The buyer core itself, to share with another transport's client (one budget, one
	/// journal, one channel state).
	pub fn shared_buyer(&self) -> Arc<Buyer> {
		self.buyer.clone()
	}

	/// `GET url`, paying if asked to.
	pub async fn get(&self, url: &str) -> Result<Paid, ClientError> {
		self.execute(self.http.request(Method::GET, url).build()?).await
	}

	/// Sends `request`, paying if asked to. A body, if any, must be in memory.
	///
	/// A channel's corrective 402 (the seller's state differs from the buyer's) is answered
	/// once more, from the corrected state, after the buyer checked it.
	pub async fn execute(&self, request: Request) -> Result<Paid, ClientError> {
		let unpaid = request.try_clone().ok_or(ClientError::NotReplayable)?;
		let first = self.http.execute(request).await?;
		if first.status() != StatusCode::PAYMENT_REQUIRED {
			return Ok(Paid { response: first, payment: None, settlement: None });
		}
		let header = text(first.headers(), x402_http::PAYMENT_REQUIRED).map(str::to_owned);
		let body = first.bytes().await?;
		let required = x402_http::read_payment_required(header.as_deref(), &body)?;
		let version = required.version;
		paying_corrected(required.required, |required| {
			let request = unpaid.try_clone().ok_or(ClientError::NotReplayable);
			async move { self.pay_with(request?, &required, version).await }
		})
		.await
	}

	/// Asks the seller at `url` for a cooperative refund of what the channel paying its offer
	/// holds beyond what was charged: the refund's settlement (its `amount` is what came
	/// back). A corrective 402 (the seller charged more than this buyer knew) is adopted and
	/// the refund asked once more.
	pub async fn refund(&self, url: &str) -> Result<SettleResponse, ClientError> {
		let probe = self.http.get(url).send().await?;
		if probe.status() != StatusCode::PAYMENT_REQUIRED {
			return Err(ClientError::NotPaying(BuyError::NothingToRefund(format!(
				"{url} answered {} without asking for a payment",
				probe.status()
			))));
		}
		let header = text(probe.headers(), x402_http::PAYMENT_REQUIRED).map(str::to_owned);
		let body = probe.bytes().await?;
		let mut required = x402_http::read_payment_required(header.as_deref(), &body)?.required;
		for attempt in 0..2 {
			let refund = loop {
				let turn = self.buyer.channel_turn();
				match self.buyer.refund(&required) {
					Err(BuyError::ChannelBusy(id)) => {
						if tokio::time::timeout(CHANNEL_WAIT, turn).await.is_err() {
							return Err(BuyError::ChannelBusy(id).into());
						}
					},
					other => break other?,
				}
			};
			let (name, value) = x402_http::payment_header(m2m_x402::X402_VERSION, &refund.payload)
				.expect("a v2 payment always has a header");
			let answer = match self.http.get(url).header(name, value).send().await {
				Ok(answer) => answer,
				Err(e) => {
					// Nothing is lost by not knowing: a refund asked again returns only what is
					// still left.
					self.buyer.refund_answered(&refund, None);
					return Err(e.into());
				},
			};
			let status = answer.status();
			let (answered, _, corrected) = read_answer(answer).await;
			let settlement = answered.settlement.and_then(Result::ok);
			self.buyer.refund_answered(&refund, settlement.as_ref());
			match (status.is_success(), settlement, corrected) {
				(true, Some(settled), _) if settled.success => return Ok(settled),
				(false, _, Some(corrected))
					if attempt == 0
						&& corrected.accepts.iter().any(|o| {
							o.extra.as_ref().is_some_and(|e| e.get("channelState").is_some())
						}) =>
				{
					tracing::info!(
						"the seller corrected the channel's state; asking again from it"
					);
					required = corrected;
				},
				(_, settlement, corrected) => {
					let reason = corrected
						.and_then(|c| c.error)
						.or_else(|| settlement.as_ref().and_then(|s| s.error_message.clone()))
						.unwrap_or_else(|| format!("the seller answered {status}"));
					return Err(ClientError::Refused {
						price: "a refund".into(),
						reason,
						settlement,
					});
				},
			}
		}
		Err(ClientError::NotPaying(BuyError::NothingToRefund(
			"the seller corrected the channel's state twice in a row".into(),
		)))
	}

	/// Begins a purchase of `required` for `request` (waiting for the channel, if the one it
	/// pays from has a request in flight) and sends it.
	async fn pay_with(
		&self,
		mut request: Request,
		required: &m2m_x402::v2::PaymentRequired,
		version: u32,
	) -> Result<Paid, ClientError> {
		let locator =
			Locator::Http { method: request.method().to_string(), url: request.url().to_string() };
		let flight = begin_purchase(&self.buyer, required, version, locator).await?;
		let Some((name, value)) =
			x402_http::payment_header(flight.version, &flight.payment.payload)
		else {
			// It never left the device: nothing can be taken.
			let network = flight.payment.network.clone();
			let reason = format!("no x402 v1 name for {network}; not sent");
			self.buyer.conclude(&flight, &Outcome::Failed { reason });
			return Err(ClientError::NoV1Network(network));
		};
		request.headers_mut().insert(name, value.parse().expect("base64 is a valid header value"));
		self.send(request, flight).await
	}

	/// Sends a payment in flight again, exactly as it was signed (after a crash, typically).
	/// Its `payment-identifier` lets the seller answer again without charging again.
	pub async fn resume(&self, flight: InFlight) -> Result<Paid, ClientError> {
		let Locator::Http { method, url } = &flight.locator else {
			return Err(ClientError::Transport(format!(
				"{} is not an HTTP purchase; resume it with its own transport",
				flight.locator.describe()
			)));
		};
		let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
		let (name, value) = x402_http::payment_header(flight.version, &flight.payment.payload)
			.ok_or_else(|| ClientError::NoV1Network(flight.payment.network.clone()))?;
		let request = self.http.request(method, url).header(name, value).build()?;
		tracing::info!(url = %url, price = %flight.payment.price, "resuming a payment in flight");
		self.send(request, flight).await
	}

	async fn send(&self, request: Request, flight: InFlight) -> Result<Paid, ClientError> {
		self.buyer.sending(&flight);
		// A broken connection leaves the payment in flight (no outcome): it may have been
		// settled, so only a resume, never a new signature, may follow.
		let response = self.http.execute(request).await?;
		let (answer, response, required) = read_answer(response).await;
		conclude_answer(&self.buyer, &flight, &answer, required)?;
		let response = response.expect("delivered and unserved answers keep their body");
		let settlement = answer.settlement.and_then(Result::ok);
		Ok(Paid { response, payment: Some(flight.payment), settlement })
	}
}

/// The seller's answer in the core's terms, and the response itself when its body is the
/// resource (or the handler's own failure), left unread for the caller, and a 402's
/// requirements (a channel's corrective 402 carries the channel's state in them).
async fn read_answer(
	response: Response,
) -> (SellerAnswer, Option<Response>, Option<m2m_x402::v2::PaymentRequired>) {
	let settlement = x402_http::read_settlement(
		text(response.headers(), x402_http::PAYMENT_RESPONSE),
		text(response.headers(), x402_http::X_PAYMENT_RESPONSE),
	)
	.map(|r| r.map_err(|e| e.to_string()));
	let status = response.status().as_u16();
	let settled = settlement.is_some();
	if let kind @ (AnswerKind::Delivered | AnswerKind::NotServed { .. }) =
		answer_kind(status, settled, None)
	{
		return (SellerAnswer { kind, settlement }, Some(response), None);
	}
	// Every other answer is read for its reason.
	let header = text(response.headers(), x402_http::PAYMENT_REQUIRED).map(str::to_owned);
	let body = response.bytes().await.unwrap_or_default();
	let (required, reason) = if status == StatusCode::PAYMENT_REQUIRED.as_u16() {
		let required =
			x402_http::read_payment_required(header.as_deref(), &body).ok().map(|r| r.required);
		// A failed settlement's reason is in the JSON body, not in the requirements.
		let reason =
			required.as_ref().and_then(|r| r.error.clone()).or_else(|| json_message(&body));
		(required, reason)
	} else {
		let reason =
			json_message(&body).unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
		(None, Some(reason))
	};
	(SellerAnswer { kind: answer_kind(status, settled, reason), settlement }, None, required)
}

/// What an answer, read by any transport, means for the caller: `Ok` when it carries the
/// resource (or the producer's own failure, not charged), else the error to return. The
/// outcome is journaled first ([`Buyer::answered`]).
// The error every public call of both clients returns, by value as they do.
#[allow(clippy::result_large_err)]
pub(crate) fn conclude_answer(
	buyer: &Buyer,
	flight: &InFlight,
	answer: &SellerAnswer,
	required: Option<m2m_x402::v2::PaymentRequired>,
) -> Result<(), ClientError> {
	let outcome = buyer.answered(flight, answer);
	if let (Outcome::Failed { reason }, Some(required)) = (&outcome, required) {
		if buyer.is_corrective(flight, &required) {
			return Err(ClientError::ChannelOutOfStep {
				reason: reason.clone(),
				required: Box::new(required),
			});
		}
	}
	let price = flight.payment.price.clone();
	let settlement = answer.settlement.clone().and_then(Result::ok);
	match (outcome, &answer.kind) {
		(Outcome::Settled { .. }, _) | (Outcome::Failed { .. }, AnswerKind::NotServed { .. }) => {
			Ok(())
		},
		(Outcome::Pending { transaction }, _) => {
			Err(ClientError::SettlementPending { price, transaction })
		},
		(Outcome::Unserved { transaction }, kind) => {
			Err(ClientError::Unserved { price, transaction, message: describe(kind) })
		},
		(Outcome::Failed { reason }, AnswerKind::FacilitatorUnavailable { message }) => {
			tracing::warn!(%reason, "seller unavailable");
			Err(ClientError::SellerUnavailable {
				status: StatusCode::BAD_GATEWAY,
				message: message.clone(),
			})
		},
		(Outcome::Failed { reason }, _) => Err(ClientError::Refused { price, reason, settlement }),
		(Outcome::Unknown { .. }, AnswerKind::Conflict { message }) => Err(ClientError::Conflict(
			flight.payment.payment_id.clone().unwrap_or_default(),
			message.clone(),
		)),
		(Outcome::Unknown { reason }, _) => Err(ClientError::InFlight { price, reason }),
	}
}

/// Begins a purchase of `required` at `locator`, waiting (up to a minute) for the channel it
/// pays from if that channel has a request in flight.
pub(crate) async fn begin_purchase(
	buyer: &Buyer,
	required: &m2m_x402::v2::PaymentRequired,
	version: u32,
	locator: Locator,
) -> Result<InFlight, ClientError> {
	let deadline = tokio::time::Instant::now() + CHANNEL_WAIT;
	loop {
		// Registered before trying, so that a release in between is not missed.
		let turn = buyer.channel_turn();
		match buyer.begin(required, version, locator.clone(), unix_now()) {
			Err(BuyError::ChannelBusy(id)) => {
				if tokio::time::timeout_at(deadline, turn).await.is_err() {
					return Err(BuyError::ChannelBusy(id).into());
				}
			},
			other => return Ok(other?),
		}
	}
}

/// Pays `required` with `pay`, and once more from the corrected state if the seller answers
/// with a channel's corrective 402 (after the buyer checked it). Twice in a row is an error.
pub(crate) async fn paying_corrected<T, F, Fut>(
	required: m2m_x402::v2::PaymentRequired,
	mut pay: F,
) -> Result<T, ClientError>
where
	F: FnMut(m2m_x402::v2::PaymentRequired) -> Fut,
	Fut: std::future::Future<Output = Result<T, ClientError>>,
{
	match pay(required).await {
		Err(ClientError::ChannelOutOfStep { required: corrected, .. }) => {
			tracing::info!("the seller corrected the channel's state; paying from it");
			pay(*corrected).await
		},
		other => other,
	}
}

fn describe(kind: &AnswerKind) -> String {
	match kind {
		AnswerKind::Delivered => "delivered".into(),
		AnswerKind::PaymentRequired { reason } => reason.clone().unwrap_or_else(|| "402".into()),
		AnswerKind::Conflict { message }
		| AnswerKind::FacilitatorUnavailable { message }
		| AnswerKind::NoVerdict { message } => message.clone(),
		AnswerKind::NotServed { status } => format!("the seller answered {status}"),
	}
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
	headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_message(body: &[u8]) -> Option<String> {
	let v: serde_json::Value = serde_json::from_slice(body).ok()?;
	let message = v.get("message")?.as_str()?;
	Some(match v.get("error").and_then(|e| e.as_str()) {
		Some(error) => format!("{error}: {message}"),
		None => message.to_string(),
	})
}
