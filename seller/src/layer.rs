//! x402 for axum: a tower [`Layer`] that puts a route behind a price.
//!
//! - No payment: **402** with `PAYMENT-REQUIRED` (v2) and the v1 form of the offers as the
//!   JSON body, so both generations of clients can pay.
//! - A payment that is malformed or not acceptable: **402** again, with the reason in
//!   `error`.
//! - A payment id reused for a different payment: **409**.
//! - The facilitator unreachable: **502**.
//! - Otherwise the handler runs with its response buffered. A status of 400 or more is
//!   returned as is and **not settled**. Else the payment is settled and the response
//!   released with `PAYMENT-RESPONSE` (`X-PAYMENT-RESPONSE` for v1); a failed settlement is a
//!   402 that carries the settlement result too.
//!
//! Every response exposes the x402 headers to browsers (`Access-Control-Expose-Headers`).
//! The handler finds the verified [`Paid`] in the request's extensions.
//!
//! This module only maps: HTTP in, a [`SaleRequest`] and a producer that runs the route; a
//! [`SaleOutcome`] out, as a status, headers and a body. The sale itself, and every rule that
//! protects money, is [`Seller::sell`]'s.

use std::{
	convert::Infallible,
	future::Future,
	pin::Pin,
	sync::Arc,
	task::{Context, Poll},
};

use axum::{
	body::{to_bytes, Body},
	http::{
		header, request::Parts, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode,
	},
	response::{IntoResponse, Response},
};
use m2m_x402::{
	http as x402_http,
	v2::{PaymentRequired, PaymentRequirements, ResourceInfo, SettleResponse},
};
use tower_layer::Layer;
use tower_service::Service;

pub use crate::Paid;
use crate::{Delivery, ResourceRequest, SaleOutcome, SaleRequest, Seller};

/// What a route costs: fixed offers, or offers computed from the request. Whatever computes
/// them must give the same offers for the paid retry as for the first request, since the
/// payment must echo one of them exactly.
#[derive(Clone)]
pub enum Price {
	Fixed(Arc<Vec<PaymentRequirements>>),
	PerRequest(Arc<PriceFn>),
}

/// Computes a request's offers from what it asks for (path and query), whatever the transport.
pub type PriceFn = dyn Fn(&ResourceRequest<'_>) -> Vec<PaymentRequirements> + Send + Sync;

impl Price {
	/// Offers computed from each request's path and query.
	pub fn per_request(
		f: impl Fn(&ResourceRequest<'_>) -> Vec<PaymentRequirements> + Send + Sync + 'static,
	) -> Self {
		Price::PerRequest(Arc::new(f))
	}

	/// The offers for `request`.
	pub fn offers(&self, request: &ResourceRequest<'_>) -> Vec<PaymentRequirements> {
		match self {
			Price::Fixed(offers) => offers.as_ref().clone(),
			Price::PerRequest(f) => f(request),
		}
	}
}

impl From<PaymentRequirements> for Price {
	fn from(offer: PaymentRequirements) -> Self {
		Price::Fixed(Arc::new(vec![offer]))
	}
}

impl From<Vec<PaymentRequirements>> for Price {
	fn from(offers: Vec<PaymentRequirements>) -> Self {
		Price::Fixed(Arc::new(offers))
	}
}

/// Puts the wrapped routes behind `price`, sold by `seller`.
#[derive(Clone)]
pub struct PaymentLayer {
	seller: Arc<Seller>,
	price: Price,
	description: Option<String>,
	mime_type: Option<String>,
	max_body: usize,
}

impl PaymentLayer {
	/// The largest handler response buffered by default (it is held until settled).
	pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

	pub fn new(seller: Arc<Seller>, price: impl Into<Price>) -> Self {
		Self {
			seller,
			price: price.into(),
			description: None,
			mime_type: None,
			max_body: Self::DEFAULT_MAX_BODY,
		}
	}

	/// Describes the resource in the 402 (`resource.description`).
	pub fn description(mut self, description: impl Into<String>) -> Self {
		self.description = Some(description.into());
		self
	}

	/// The resource's media type in the 402 (`resource.mimeType`).
	pub fn mime_type(mut self, mime_type: impl Into<String>) -> Self {
		self.mime_type = Some(mime_type.into());
		self
	}

	/// The largest handler response to buffer; a larger one is a 500 and is not settled.
	pub fn max_body(mut self, bytes: usize) -> Self {
		self.max_body = bytes;
		self
	}
}

impl<S> Layer<S> for PaymentLayer {
	type Service = PaymentService<S>;

	fn layer(&self, inner: S) -> Self::Service {
		PaymentService { inner, config: Arc::new(self.clone()) }
	}
}

/// The service [`PaymentLayer`] wraps around a route.
#[derive(Clone)]
pub struct PaymentService<S> {
	inner: S,
	config: Arc<PaymentLayer>,
}

impl<S> Service<Request<Body>> for PaymentService<S>
where
	S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
	S::Future: Send + 'static,
{
	type Response = Response;
	type Error = Infallible;
	type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

	fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
		self.inner.poll_ready(cx)
	}

	fn call(&mut self, request: Request<Body>) -> Self::Future {
		// The ready clone serves this request; a fresh clone stays behind for the next one.
		let fresh = self.inner.clone();
		let inner = std::mem::replace(&mut self.inner, fresh);
		let config = self.config.clone();
		Box::pin(async move {
			let mut response = handle(config, inner, request).await;
			response.headers_mut().append(
				header::ACCESS_CONTROL_EXPOSE_HEADERS,
				HeaderValue::from_static(x402_http::EXPOSED_HEADERS),
			);
			Ok(response)
		})
	}
}

/// HTTP in, one sale, HTTP out.
async fn handle<S>(config: Arc<PaymentLayer>, mut inner: S, request: Request<Body>) -> Response
where
	S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
	S::Future: Send + 'static,
{
	let (parts, body) = request.into_parts();
	if parts.method == Method::OPTIONS {
		// CORS preflights carry no payment and must not be charged.
		return call(&mut inner, Request::from_parts(parts, body)).await;
	}
	let asked = ResourceRequest { path: parts.uri.path(), query: parts.uri.query() };
	let offers = config.price.offers(&asked);
	let resource = ResourceInfo {
		url: resource_url(&parts),
		description: config.description.clone(),
		mime_type: config.mime_type.clone(),
	};
	let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
	let payment =
		x402_http::read_payment(text(x402_http::PAYMENT_SIGNATURE), text(x402_http::X_PAYMENT))
			.transpose();
	let max_body = config.max_body;
	let produce = move |paid: Paid| async move {
		let mut request = Request::from_parts(parts, body);
		request.extensions_mut().insert(paid);
		let (head, body) = call(&mut inner, request).await.into_parts();
		let bytes = match to_bytes(body, max_body).await {
			Ok(bytes) => bytes,
			Err(e) => {
				tracing::error!(error = %e, "handler response not buffered; not settled");
				return Err(error(
					StatusCode::INTERNAL_SERVER_ERROR,
					"response_too_large",
					&e.to_string(),
				));
			},
		};
		// An error status is the handler saying "not served": returned as is, not settled.
		if head.status.as_u16() >= 400 {
			return Err(Response::from_parts(head, Body::from(bytes)));
		}
		let delivery =
			Delivery { body: bytes.to_vec(), metadata: metadata(&head.headers), charge: None };
		Ok((delivery, head))
	};
	let request = SaleRequest { payment, offers, resource, buyer: None };
	match config.seller.sell(request, produce).await {
		SaleOutcome::PaymentRequired(required) => payment_required(&required),
		SaleOutcome::Refused { required, .. } => payment_required(&required),
		SaleOutcome::Conflict(message) => {
			error(StatusCode::CONFLICT, "payment_id_conflict", &message)
		},
		SaleOutcome::Unavailable(message) => {
			error(StatusCode::BAD_GATEWAY, "facilitator_unavailable", &message)
		},
		SaleOutcome::NotServed(response) => response,
		SaleOutcome::NotSettled { settlement, version } => {
			with_settlement(settlement_failed(&settlement), version, &settlement)
		},
		SaleOutcome::NotRecorded { settlement, version, error: e } => {
			let response = error(
				StatusCode::SERVICE_UNAVAILABLE,
				"sale_not_recorded",
				&format!("the payment was settled but the sale could not be recorded: {e}"),
			);
			with_settlement(response, version, &settlement)
		},
		SaleOutcome::Sold { delivery, kept, settlement, version } => with_settlement(
			Response::from_parts(kept, Body::from(delivery.body)),
			version,
			&settlement,
		),
		SaleOutcome::Replayed(answered) | SaleOutcome::Refunded(answered) => {
			let answered = *answered;
			let mut response = Response::new(Body::from(answered.delivery.body));
			for (k, v) in answered.delivery.metadata {
				if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
					response.headers_mut().append(k, v);
				}
			}
			with_settlement(response, answered.version, &answered.settlement)
		},
	}
}

async fn call<S>(inner: &mut S, request: Request<Body>) -> Response
where
	S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
	match inner.call(request).await {
		Ok(response) => response,
		Err(never) => match never {},
	}
}

/// The handler's headers, as the delivery's metadata (x402's own are added on the way out).
fn metadata(headers: &HeaderMap) -> Vec<(String, String)> {
	headers
		.iter()
		.filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
		.collect()
}

/// x402's header names are upper case on paper; `http` stores every name in lower case.
fn header_name(name: &str) -> HeaderName {
	HeaderName::from_bytes(name.as_bytes()).expect("x402 header names are valid")
}

/// `http://host/path?query` of the request, as the buyer addressed it.
fn resource_url(parts: &Parts) -> String {
	let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
	let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
	format!("http://{host}{path}")
}

/// 402 with `PAYMENT-REQUIRED` and the v1 form of the offers as the body.
fn payment_required(required: &PaymentRequired) -> Response {
	let (header_value, body) = x402_http::payment_required(required);
	let mut response = (StatusCode::PAYMENT_REQUIRED, body).into_response();
	let headers = response.headers_mut();
	headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
	headers.insert(
		header_name(x402_http::PAYMENT_REQUIRED),
		HeaderValue::from_str(&header_value).expect("base64 is a valid header value"),
	);
	response
}

/// `response` with the settlement header of the buyer's protocol version.
fn with_settlement(mut response: Response, version: u32, settlement: &SettleResponse) -> Response {
	let (name, value) = x402_http::settlement_header(version, settlement);
	let value = HeaderValue::from_str(&value).expect("base64 is a valid header value");
	response.headers_mut().insert(header_name(name), value);
	response
}

fn settlement_failed(settlement: &SettleResponse) -> Response {
	let reason =
		settlement.error_reason.as_ref().map(|r| r.as_str()).unwrap_or("settlement_failed");
	error(
		StatusCode::PAYMENT_REQUIRED,
		reason,
		settlement.error_message.as_deref().unwrap_or("the payment was not settled"),
	)
}

fn error(status: StatusCode, error: &str, message: &str) -> Response {
	(status, axum::Json(serde_json::json!({ "error": error, "message": message }))).into_response()
}
