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

/// Parses a `/verify` or `/settle` body, or answers 400 saying what is wrong with it.
fn request(body: &[u8]) -> Result<FacilitatorRequest, Response> {
	serde_json::from_slice(body).map_err(|e| {
		(
			StatusCode::BAD_REQUEST,
			Json(serde_json::json!({
				"error": "invalid_payload",
				"message": format!(
					"expected {{x402Version, paymentPayload, paymentRequirements}}: {e}"
				),
			})),
		)
			.into_response()
	})
}

async fn verify(State(f): State<Arc<Facilitator>>, body: Bytes) -> Response {
	match request(&body) {
		Ok(r) => Json(f.verify(&r.payment_payload, &r.payment_requirements).await).into_response(),
		Err(response) => response,
	}
}

async fn settle(State(f): State<Arc<Facilitator>>, body: Bytes) -> Response {
	match request(&body) {
		Ok(r) => Json(f.settle(&r.payment_payload, &r.payment_requirements).await).into_response(),
		Err(response) => response,
	}
}

async fn supported(State(f): State<Arc<Facilitator>>) -> Response {
	Json(f.supported()).into_response()
}

async fn health(State(f): State<Arc<Facilitator>>) -> Response {
	Json(serde_json::json!({"status": "ok", "network": m2m_x402::network::caip2(f.chain_id)}))
		.into_response()
}
