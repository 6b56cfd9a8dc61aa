//! What a device sells, independent of any transport: each service's resource path, its x402
//! offer and its producer. The HTTP router ([`crate::services`]) is an adapter over it; the
//! libp2p service will be another, selling the same catalogue under the same offers.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use m2m_primitives::H256;
use m2m_x402::{
	libp2p::stream::Meter,
	policy,
	schemes::{
		batch_settlement::{self, rules as channel_rules},
		exact,
	},
	v2::PaymentRequirements,
	Address, U256,
};

use crate::config::{Handler, PriceScheme, Service};

/// What an offer needs to know about the token and the payee.
pub struct Pricing {
	pub chain_id: u64,
	pub usdt: Address,
	pub domain: (String, String),
	pub pay_to: Address,
	/// Who signs this device's channel claims (its facilitator's key); `None` if the
	/// facilitator does not settle channels.
	pub receiver_authorizer: Option<Address>,
}

/// How long a buyer's authorization stays valid. Generous on purpose: a `--dev` node's chain
/// time runs ahead of the wall clock while blocks come faster than one per 6 s slot, and the
/// token checks `validBefore` against chain time.
pub const MAX_TIMEOUT_SECS: u64 = 300;

/// USDT has 6 decimals.
pub const DECIMALS: u8 = m2m_evm::usdt::DECIMALS;

/// `"0.01"` USDT in base units, or a clear error.
pub fn usdt_units(amount: &str, what: &str) -> Result<U256> {
	policy::parse_units(amount, DECIMALS)
		.with_context(|| format!("{what} {amount:?} is not a USDT amount (e.g. \"0.01\")"))
}

/// The resource id a receipt records for a sale of `resource` (a URL or a bare path): the
/// BLAKE2-256 of its path (`/reading`), so that a service has one id whatever the transport,
/// host or port it was bought through, and the query does not split its accounting.
pub fn resource_id(resource: &str) -> H256 {
	let after_scheme = resource.split_once("://").map(|(_, rest)| rest);
	let path = match after_scheme {
		Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
		None => resource,
	};
	let path = path.split(['?', '#']).next().unwrap_or("/");
	H256(m2m_primitives::blake2_256(path.as_bytes()))
}

/// A service on sale.
#[derive(Clone)]
pub struct Entry {
	/// The resource path, e.g. `/reading`.
	pub path: String,
	/// The one offer a buyer pays (regenerated identically for every request, as matching
	/// requires).
	pub offer: PaymentRequirements,
	pub description: String,
	pub producer: Producer,
	/// Also sold as a metered stream over libp2p, with its own offer.
	pub metered: Option<Metered>,
}

/// A service sold as a metered stream: its channel offer (of `units_per_voucher` units at the
/// service's price), its meter, and its pace.
#[derive(Clone)]
pub struct Metered {
	pub offer: PaymentRequirements,
	pub meter: Meter,
	pub unit_interval: Duration,
}

/// What answers a paid request.
#[derive(Clone)]
pub enum Producer {
	/// A generated reading of this device (JSON).
	Sensor { device: String },
	/// A file's bytes.
	File(PathBuf),
	/// The answer of a GET to `target`.
	Proxy { target: String, http: reqwest::Client },
}

/// A product, as every transport delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
	pub mime_type: Option<&'static str>,
	pub body: Vec<u8>,
}

/// Why nothing was produced. The sale is then not settled: the buyer is not charged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
	/// The device cannot produce it now (a missing file).
	#[error("{0}")]
	Unavailable(String),
	/// The upstream a proxy forwards to failed, or answered `status`.
	#[error("{message}")]
	Upstream { status: Option<u16>, message: String },
}

impl Producer {
	/// The MIME type the offer announces, if the producer knows it in advance.
	pub fn mime_type(&self) -> Option<&'static str> {
		match self {
			Producer::Sensor { .. } => Some("application/json"),
			Producer::File(_) | Producer::Proxy { .. } => None,
		}
	}

	/// Produces one delivery.
	pub async fn produce(&self) -> Result<Product, Failure> {
		match self {
			Producer::Sensor { device } => {
				let now = m2m_x402::clock::unix_now_ms();
				let celsius = 20.0 + ((now / 1000) % 600) as f64 / 100.0;
				let reading =
					serde_json::json!({"device": device, "celsius": celsius, "at_ms": now});
				Ok(Product { mime_type: self.mime_type(), body: reading.to_string().into_bytes() })
			},
			Producer::File(path) => match tokio::fs::read(path).await {
				Ok(body) => Ok(Product { mime_type: None, body }),
				Err(e) => Err(Failure::Unavailable(format!("cannot read {}: {e}", path.display()))),
			},
			Producer::Proxy { target, http } => {
				let failed = |status, e: &dyn std::fmt::Display| Failure::Upstream {
					status,
					message: format!("{target}: {e}"),
				};
				let response = http.get(target).send().await.map_err(|e| failed(None, &e))?;
				let status = response.status();
				if !status.is_success() {
					return Err(failed(Some(status.as_u16()), &status));
				}
				let body = response.bytes().await.map_err(|e| failed(None, &e))?;
				Ok(Product { mime_type: None, body: body.to_vec() })
			},
		}
	}
}

/// Every service of the config, priced and with its producer, or the first one that is
/// misconfigured, named.
pub fn catalogue(services: &[Service], pricing: &Pricing, device: &str) -> Result<Vec<Entry>> {
	services
		.iter()
		.map(|s| {
			let amount = usdt_units(&s.price, &format!("service {} price", s.path))?;
			let mut metered = None;
			let offer = match s.scheme {
				PriceScheme::Exact => exact::requirements(
					pricing.chain_id,
					pricing.usdt,
					(&pricing.domain.0, &pricing.domain.1),
					pricing.pay_to,
					amount,
					MAX_TIMEOUT_SECS,
				),
				PriceScheme::BatchSettlement => {
					let receiver_authorizer = pricing.receiver_authorizer.with_context(|| {
						format!(
							"service {}: scheme batch-settlement needs a facilitator that settles \
							 channels (its /supported lists batch-settlement with a \
							 receiverAuthorizer)",
							s.path
						)
					})?;
					let offer = channel_rules::Offer {
						chain_id: pricing.chain_id,
						asset: pricing.usdt,
						token_domain: pricing.domain.clone(),
						pay_to: pricing.pay_to,
						receiver_authorizer,
						withdraw_delay: batch_settlement::DEFAULT_WITHDRAW_DELAY,
						max_price: amount.to::<u128>(),
						max_timeout_seconds: MAX_TIMEOUT_SECS,
					};
					if let Some(units_per_voucher) = s.units_per_voucher {
						let meter = Meter { unit_price: amount.to::<u128>(), units_per_voucher };
						let interval = meter.interval_amount().with_context(|| {
							format!("service {}: price × units_per_voucher overflows", s.path)
						})?;
						metered = Some(Metered {
							offer: channel_rules::requirements(&channel_rules::Offer {
								max_price: interval,
								..offer.clone()
							}),
							meter,
							unit_interval: Duration::from_millis(s.unit_interval_ms),
						});
					}
					channel_rules::requirements(&offer)
				},
			};
			let producer =
				match s.handler {
					Handler::Sensor => Producer::Sensor { device: device.to_string() },
					Handler::Static => Producer::File(s.file.clone().with_context(|| {
						format!("service {}: handler static needs file", s.path)
					})?),
					Handler::Proxy => Producer::Proxy {
						target: s.target.clone().with_context(|| {
							format!("service {}: handler proxy needs target", s.path)
						})?,
						http: reqwest::Client::new(),
					},
				};
			Ok(Entry {
				path: s.path.clone(),
				offer,
				description: s.description.clone(),
				producer,
				metered,
			})
		})
		.collect()
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn a_service_has_one_resource_id_whatever_the_transport_or_host() {
		let id = resource_id("/reading");
		assert_eq!(resource_id("http://127.0.0.1:8402/reading"), id);
		assert_eq!(resource_id("https://charger.example/reading?kwh=3"), id);
		assert_eq!(resource_id("/reading#top"), id);
		assert_ne!(resource_id("/charge"), id);
		assert_eq!(resource_id("http://host"), resource_id("/"));
	}

	#[tokio::test]
	async fn a_missing_file_is_unavailable_and_a_reading_is_json() {
		let missing = Producer::File("/nonexistent/m2m-catalogue-test".into());
		let e = missing.produce().await.unwrap_err();
		assert!(
			matches!(&e, Failure::Unavailable(m) if m.starts_with("cannot read /nonexistent")),
			"{e}"
		);
		let reading = Producer::Sensor { device: "charger".into() }.produce().await.unwrap();
		assert_eq!(reading.mime_type, Some("application/json"));
		let json: serde_json::Value = serde_json::from_slice(&reading.body).unwrap();
		assert_eq!(json["device"], "charger");
	}
}
