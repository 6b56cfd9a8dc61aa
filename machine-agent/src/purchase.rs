//! Buying once (`machine-agent pay`, `POST /buy`), over HTTP (a URL) or libp2p
//! (`device:<id>/<path>`, `/…/p2p/<PeerId>/<path>`): a purchase whose earlier payment never got
//! an answer is resumed with that same signed payment, never signed again.

use m2m_x402_buyer::{
	client::{ClientError, Paid, X402Client},
	messages::Bought,
	InFlight, Locator,
};
use serde_json::{json, Value};

use crate::{p2p, store::Store};

/// Buys `target`, or finishes the purchase of it that is in flight; the result as JSON.
pub async fn buy(client: &X402Client, p2p: &p2p::Buying, store: &Store, target: &str) -> Value {
	let normalized = match p2p::is_target(target) {
		true => target.to_string(),
		false => {
			reqwest::Url::parse(target).map(|u| u.to_string()).unwrap_or_else(|_| target.into())
		},
	};
	let in_flight =
		store.purchases_in_flight().into_iter().find(|f| f.locator.resource() == normalized);
	let resumed = in_flight.is_some();
	let mut result = match in_flight {
		Some(flight) => resume(client, p2p, flight).await,
		None if p2p::is_target(target) => {
			let bought = buy_p2p(p2p, target).await;
			report_bought(&bought);
			bought_json(bought).await
		},
		None => {
			let paid = client.get(target).await;
			report(&paid);
			paid_json(paid).await
		},
	};
	result["resumed"] = json!(resumed);
	result
}

/// Resumes `flight` over the transport it was started on; the result as JSON.
pub async fn resume(client: &X402Client, p2p: &p2p::Buying, flight: InFlight) -> Value {
	match flight.locator {
		Locator::Http { .. } => {
			let paid = client.resume(flight).await;
			report(&paid);
			paid_json(paid).await
		},
		Locator::Libp2p { .. } => {
			let bought = p2p.client.resume(flight).await.map_err(anyhow::Error::from);
			report_bought(&bought);
			bought_json(bought).await
		},
	}
}

/// Resolves the target to its device, checks the peer, and buys.
async fn buy_p2p(p2p: &p2p::Buying, target: &str) -> anyhow::Result<Bought> {
	let resolved = p2p::resolve(target, &p2p.node, &p2p.identities).await?;
	tracing::info!(
		%target, device = resolved.device, peer = %resolved.peer.peer, pay_to = %resolved.pay_to,
		"buying over libp2p"
	);
	Ok(p2p.client.get(target, &resolved.peer, &resolved.resource, Some(&resolved.pay_to)).await?)
}

/// Streams `units` units of a metered service over libp2p (`/x402-stream/1.0.0`), paying
/// interval by interval from a channel; the result as JSON. The last interval is cut short at
/// `units` and charged only what it delivered.
pub async fn stream(p2p: &p2p::Buying, target: &str, units: u64) -> Value {
	let mut bodies = Vec::new();
	let streamed = async {
		let resolved = p2p::resolve(target, &p2p.node, &p2p.identities).await?;
		tracing::info!(
			%target, device = resolved.device, peer = %resolved.peer.peer, units,
			"streaming over libp2p"
		);
		let on_unit = |n: u64, body: &[u8]| {
			tracing::debug!(unit = n, bytes = body.len(), "unit received");
			bodies.push(String::from_utf8_lossy(body).into_owned());
		};
		let (peer, resource, pay_to) = (&resolved.peer, &resolved.resource, &resolved.pay_to);
		anyhow::Ok(p2p.client.stream(target, peer, resource, Some(pay_to), units, on_unit).await?)
	}
	.await;
	match streamed {
		Ok(s) => {
			tracing::info!(units = s.units, intervals = s.intervals, charged = %crate::channels::usdt(s.charged), "streamed over libp2p");
			json!({
				"status": 200,
				"body": bodies.join("\n"),
				"units": s.units,
				"intervals": s.intervals,
				"unitPrice": crate::channels::usdt(s.meter.unit_price),
				"price": crate::channels::usdt(s.charged),
				"transaction": "",
			})
		},
		Err(e) => {
			tracing::warn!(error = %format!("{e:#}"), "stream over libp2p did not complete");
			json!({"error": format!("{e:#}")})
		},
	}
}

async fn paid_json(result: Result<Paid, ClientError>) -> Value {
	match result {
		Ok(paid) => {
			let price = paid.payment.as_ref().map(|p| p.price.clone());
			let transaction = paid.settlement.as_ref().map(|s| s.transaction.clone());
			let status = paid.response.status().as_u16();
			let body = paid.response.text().await.unwrap_or_default();
			json!({"status": status, "body": body, "price": price, "transaction": transaction})
		},
		Err(e) => json!({"error": e.to_string()}),
	}
}

async fn bought_json(result: anyhow::Result<Bought>) -> Value {
	match result {
		Ok(bought) => json!({
			"status": bought.response.status,
			"body": String::from_utf8_lossy(&bought.body),
			"price": bought.payment.as_ref().map(|p| p.price.clone()),
			"transaction": bought.settlement.as_ref().map(|s| s.transaction.clone()),
		}),
		Err(e) => json!({"error": format!("{e:#}")}),
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

fn report_bought(result: &anyhow::Result<Bought>) {
	match result {
		Ok(Bought { payment: Some(p), settlement, response, .. }) => tracing::info!(
			price = %p.price, status = response.status,
			tx = settlement.as_ref().map(|s| s.transaction.as_str()).unwrap_or(""), "bought over libp2p"
		),
		Ok(Bought { response, .. }) => {
			tracing::info!(status = response.status, "fetched over libp2p (free)")
		},
		Err(e) => {
			tracing::warn!(error = %format!("{e:#}"), "purchase over libp2p did not complete")
		},
	}
}
