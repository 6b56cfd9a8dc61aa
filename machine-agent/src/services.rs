//! The services a device sells, each behind the x402 layer at its configured price.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use axum::{http::StatusCode, response::IntoResponse, routing::get, Router};
use m2m_x402::{policy, schemes::exact, Address, U256};
use m2m_x402_seller::{layer::PaymentLayer, Seller};

use crate::config::{Handler, Service};

/// What an offer needs to know about the token and the payee.
pub struct Pricing {
	pub chain_id: u64,
	pub usdt: Address,
	pub domain: (String, String),
	pub pay_to: Address,
}

/// How long a buyer's authorization stays valid. Generous on purpose: a `--dev` node's chain
/// time runs ahead of the wall clock while blocks come faster than one per 6 s slot, and the
/// token checks `validBefore` against chain time.
pub const MAX_TIMEOUT_SECS: u64 = 300;

/// USDT has 6 decimals.
pub const DECIMALS: u8 = 6;

/// `"0.01"` USDT in base units, or a clear error.
pub fn usdt_units(amount: &str, what: &str) -> Result<U256> {
	policy::parse_units(amount, DECIMALS)
		.with_context(|| format!("{what} {amount:?} is not a USDT amount (e.g. \"0.01\")"))
}

/// The router of every sold service.
pub fn router(
	services: &[Service],
	seller: Arc<Seller>,
	pricing: &Pricing,
	device: &str,
) -> Result<Router> {
	let mut router = Router::new();
	for s in services {
		let amount = usdt_units(&s.price, &format!("service {} price", s.path))?;
		let offer = exact::requirements(
			pricing.chain_id,
			pricing.usdt,
			(&pricing.domain.0, &pricing.domain.1),
			pricing.pay_to,
			amount,
			MAX_TIMEOUT_SECS,
		);
		let layer = PaymentLayer::new(seller.clone(), offer).description(s.description.clone());
		let handler =
			match s.handler {
				Handler::Sensor => {
					let device = device.to_string();
					get(move || sensor(device.clone())).layer(layer.mime_type("application/json"))
				},
				Handler::Static => {
					let file: PathBuf = s.file.clone().with_context(|| {
						format!("service {}: handler static needs file", s.path)
					})?;
					get(move || serve_file(file.clone())).layer(layer)
				},
				Handler::Proxy => {
					let target = s.target.clone().with_context(|| {
						format!("service {}: handler proxy needs target", s.path)
					})?;
					let http = reqwest::Client::new();
					get(move || proxy(http.clone(), target.clone())).layer(layer)
				},
			};
		router = router.route(&s.path, handler);
	}
	Ok(router)
}

/// A generated reading: what a sensor would measure, varying with time.
async fn sensor(device: String) -> impl IntoResponse {
	let now = crate::store::now_ms();
	let celsius = 20.0 + ((now / 1000) % 600) as f64 / 100.0;
	axum::Json(serde_json::json!({"device": device, "celsius": celsius, "at_ms": now}))
}

async fn serve_file(path: PathBuf) -> axum::response::Response {
	match tokio::fs::read(&path).await {
		Ok(bytes) => bytes.into_response(),
		// An error status is not settled: the buyer is not charged for a missing file.
		Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("cannot read {}: {e}", path.display()))
			.into_response(),
	}
}

async fn proxy(http: reqwest::Client, target: String) -> axum::response::Response {
	match http.get(&target).send().await {
		Ok(r) => {
			let status =
				StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
			match r.bytes().await {
				Ok(body) => (status, body).into_response(),
				Err(e) => (StatusCode::BAD_GATEWAY, format!("{target}: {e}")).into_response(),
			}
		},
		Err(e) => (StatusCode::BAD_GATEWAY, format!("{target}: {e}")).into_response(),
	}
}
