//! The catalogue served over HTTP: one axum route per entry, behind the x402 layer at its
//! offer. Mapping only: what is sold and how it is produced is [`crate::catalogue`].

use std::sync::Arc;

use axum::{
	http::{header, HeaderValue, StatusCode},
	response::{IntoResponse, Response},
	routing::get,
	Router,
};
use m2m_x402_seller::{layer::PaymentLayer, Seller};

use crate::catalogue::{Entry, Failure, Product};

/// The router of every entry of `catalogue`.
pub fn router(catalogue: Vec<Entry>, seller: Arc<Seller>) -> Router {
	let mut router = Router::new();
	for entry in catalogue {
		let mut layer =
			PaymentLayer::new(seller.clone(), entry.offer).description(entry.description);
		if let Some(mime_type) = entry.producer.mime_type() {
			layer = layer.mime_type(mime_type);
		}
		let producer = entry.producer;
		let handler = get(move || {
			let producer = producer.clone();
			async move { response(producer.produce().await) }
		});
		router = router.route(&entry.path, handler.layer(layer));
	}
	router
}

/// A product as a 200, a failure as an error status, which the x402 layer does not settle:
/// the buyer is not charged for it.
fn response(product: Result<Product, Failure>) -> Response {
	match product {
		Ok(Product { mime_type, body }) => {
			let mut response = body.into_response();
			if let Some(mime_type) = mime_type {
				response
					.headers_mut()
					.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime_type));
			}
			response
		},
		Err(Failure::Unavailable(message)) => {
			(StatusCode::SERVICE_UNAVAILABLE, message).into_response()
		},
		Err(Failure::Upstream { status, message }) => {
			let status = status
				.and_then(|s| StatusCode::from_u16(s).ok())
				.unwrap_or(StatusCode::BAD_GATEWAY);
			(status, message).into_response()
		},
	}
}
