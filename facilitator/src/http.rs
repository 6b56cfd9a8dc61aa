//! The facilitator as an HTTP service: `POST /verify`, `POST /settle`, `GET /supported`,
//! `GET /health`, with the x402 bodies. Business refusals are 200 with `isValid: false` /
//! `success: false`; only a body that is not a facilitator request is a 400.

use std::sync::Arc;

use axum::{
	body::Bytes,
	extract::State,
	http::StatusCode,
	response::{IntoResponse, Response},
	routing::{get, post},
	Json, Router,
};
use m2m_x402::v2::FacilitatorRequest;

use crate::Facilitator;

/// The service's routes over one facilitator.
pub fn router(facilitator: Arc<Facilitator>) -> Router {
	Router::new()
		.route("/verify", post(verify))
		.route("/settle", post(settle))
		.route("/supported", get(supported))
		.route("/health", get(health))
		.with_state(facilitator)
}

/// Parses a `/verify` or `/settle` body, or says what is wrong with it.
fn request(body: &[u8]) -> Result<FacilitatorRequest, String> {
	serde_json::from_slice(body)
		.map_err(|e| format!("expected {{x402Version, paymentPayload, paymentRequirements}}: {e}"))
}

/// 400 for a body that is not a facilitator request.
fn bad_request(message: String) -> Response {
	let body = serde_json::json!({"error": "invalid_payload", "message": message});
	(StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn verify(State(f): State<Arc<Facilitator>>, body: Bytes) -> Response {
	match request(&body) {
		Ok(r) => Json(f.verify(&r.payment_payload, &r.payment_requirements).await).into_response(),
		Err(message) => bad_request(message),
	}
}

async fn settle(State(f): State<Arc<Facilitator>>, body: Bytes) -> Response {
	match request(&body) {
		Ok(r) => Json(f.settle(&r.payment_payload, &r.payment_requirements).await).into_response(),
		Err(message) => bad_request(message),
	}
}

async fn supported(State(f): State<Arc<Facilitator>>) -> Response {
	Json(f.supported()).into_response()
}

async fn health(State(f): State<Arc<Facilitator>>) -> Response {
	Json(serde_json::json!({"status": "ok", "network": m2m_x402::network::caip2(f.chain_id)}))
		.into_response()
}
