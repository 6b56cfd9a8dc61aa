//! Buying once (`machine-agent pay`, `POST /buy`): a purchase of a URL whose earlier payment
//! never got an answer is resumed with that same signed payment, never signed again.

use m2m_x402_buyer::client::{ClientError, Paid, X402Client};
use serde_json::{json, Value};

use crate::store::Store;

/// Buys `url`, or finishes the purchase of it that is in flight; the result as JSON.
pub async fn buy(client: &X402Client, store: &Store, url: &str) -> Value {
	let normalized = reqwest::Url::parse(url).map(|u| u.to_string()).unwrap_or_else(|_| url.into());
	let in_flight =
		store.purchases_in_flight().into_iter().find(|f| f.locator.resource() == normalized);
	let resumed = in_flight.is_some();
	let result = match in_flight {
		Some(flight) => client.resume(flight).await,
		None => client.get(url).await,
	};
	report(&result);
	match result {
		Ok(paid) => {
			let price = paid.payment.as_ref().map(|p| p.price.clone());
			let transaction = paid.settlement.as_ref().map(|s| s.transaction.clone());
			let status = paid.response.status().as_u16();
			let body = paid.response.text().await.unwrap_or_default();
			json!({"status": status, "body": body, "price": price, "transaction": transaction, "resumed": resumed})
		},
		Err(e) => json!({"error": e.to_string(), "resumed": resumed}),
	}
}

/// Logs how a purchase ended.
pub fn report(result: &Result<Paid, ClientError>) {
	match result {
		Ok(Paid { payment: Some(p), settlement, response }) => tracing::info!(
			url = %response.url(), price = %p.price, status = %response.status(),
			tx = settlement.as_ref().map(|s| s.transaction.as_str()).unwrap_or(""), "bought"
		),
		Ok(Paid { response, .. }) => {
			tracing::info!(url = %response.url(), status = %response.status(), "fetched (free)")
		},
		Err(e) => tracing::warn!(error = %e, "purchase did not complete"),
	}
}
