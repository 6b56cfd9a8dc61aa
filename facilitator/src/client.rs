//! How a seller reaches a facilitator: in-process ([`Facilitator`] itself) or over HTTP
//! ([`RemoteFacilitator`]), behind one trait, so the seller's code does not care which.

use std::time::Duration;

use m2m_x402::v2::{
	FacilitatorRequest, PaymentPayload, PaymentRequirements, SettleResponse, SupportedResponse,
	VerifyResponse,
};

use crate::Facilitator;

/// The facilitator could not be asked, or gave no usable answer.
///
/// The difference matters for `settle`: a request that never reached the facilitator took
/// nothing (a seller answers 502), but one that reached it and got no answer (a timeout, a
/// connection reset mid-answer) may have started a settlement. The seller must then treat the
/// payment as pending, never as refused, or the buyer would sign and pay again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("facilitator unavailable: {message}")]
pub struct Unavailable {
	pub message: String,
	/// The request may have reached the facilitator.
	pub maybe_sent: bool,
}

impl Unavailable {
	/// Nothing reached the facilitator.
	pub fn not_sent(message: impl Into<String>) -> Self {
		Self { message: message.into(), maybe_sent: false }
	}

	/// The request may have been acted on.
	pub fn maybe_sent(message: impl Into<String>) -> Self {
		Self { message: message.into(), maybe_sent: true }
	}
}

/// Whether a failed request may have reached the server: only a failure to connect proves it
/// did not.
fn sent_or_not(e: &reqwest::Error, message: String) -> Unavailable {
	if e.is_connect() || e.is_builder() {
		Unavailable::not_sent(message)
	} else {
		Unavailable::maybe_sent(message)
	}
}

/// The facilitator's three operations, wherever it runs.
#[async_trait::async_trait]
pub trait Facilitate: Send + Sync {
	async fn verify(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<VerifyResponse, Unavailable>;

	async fn settle(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<SettleResponse, Unavailable>;

	async fn supported(&self) -> Result<SupportedResponse, Unavailable>;
}

#[async_trait::async_trait]
impl Facilitate for Facilitator {
	async fn verify(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<VerifyResponse, Unavailable> {
		Ok(Facilitator::verify(self, payment, requirements).await)
	}

	async fn settle(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<SettleResponse, Unavailable> {
		Ok(Facilitator::settle(self, payment, requirements).await)
	}

	async fn supported(&self) -> Result<SupportedResponse, Unavailable> {
		Ok(Facilitator::supported(self))
	}
}

/// A facilitator's HTTP API at `base_url` (`…/verify`, `…/settle`, `…/supported`): ours, or
/// any other that speaks x402.
#[derive(Clone, Debug)]
pub struct RemoteFacilitator {
	http: reqwest::Client,
	base_url: String,
}

impl RemoteFacilitator {
	/// `timeout` bounds each call; a settlement call must allow for the facilitator's own
	/// receipt wait, so give it more than that.
	pub fn new(base_url: &str, timeout: Duration) -> Self {
		let http = reqwest::Client::builder()
			.timeout(timeout)
			.build()
			.expect("a reqwest client with a timeout always builds");
		Self { http, base_url: base_url.trim_end_matches('/').to_string() }
	}

	async fn post<T: serde::de::DeserializeOwned>(
		&self,
		path: &str,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<T, Unavailable> {
		let body = FacilitatorRequest {
			x402_version: payment.x402_version,
			payment_payload: payment.clone(),
			payment_requirements: requirements.clone(),
		};
		let url = format!("{}{path}", self.base_url);
		let response = self
			.http
			.post(&url)
			.json(&body)
			.send()
			.await
			.map_err(|e| sent_or_not(&e, format!("POST {url}: {e}")))?;
		read(&url, response).await
	}
}

async fn read<T: serde::de::DeserializeOwned>(
	url: &str,
	response: reqwest::Response,
) -> Result<T, Unavailable> {
	let status = response.status();
	// From here on the request was received: whatever went wrong, it may have been acted on.
	let bytes =
		response.bytes().await.map_err(|e| Unavailable::maybe_sent(format!("{url}: {e}")))?;
	if !status.is_success() {
		let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
		return Err(Unavailable::maybe_sent(format!("{url} answered {status}: {text}")));
	}
	serde_json::from_slice(&bytes).map_err(|e| {
		Unavailable::maybe_sent(format!("{url} answered something that is not x402: {e}"))
	})
}

#[async_trait::async_trait]
impl Facilitate for RemoteFacilitator {
	async fn verify(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<VerifyResponse, Unavailable> {
		self.post("/verify", payment, requirements).await
	}

	async fn settle(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<SettleResponse, Unavailable> {
		self.post("/settle", payment, requirements).await
	}

	async fn supported(&self) -> Result<SupportedResponse, Unavailable> {
		let url = format!("{}/supported", self.base_url);
		let response = self
			.http
			.get(&url)
			.send()
			.await
			.map_err(|e| sent_or_not(&e, format!("GET {url}: {e}")))?;
		read(&url, response).await
	}
}
