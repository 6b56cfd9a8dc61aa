//! The paid-request load of `tests/examples/x402_load.rs`, through the crates.io x402-rs
//! stack: an `x402-axum` seller and an `x402-reqwest` client, verifying and settling through
//! the facilitator the caller names (ours, so that only the seller and buyer differ).
//!
//! Prints one JSON line: `{requests, elapsed_s, latencies_ms}`.

use std::{
	sync::{
		atomic::{AtomicUsize, Ordering},
		Arc,
	},
	time::Instant,
};

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use axum::{routing::get, Router};
use x402_axum::X402Middleware;
use x402_chain_eip155::{
	chain::{AssetTransferMethod, Eip155ChainReference, Eip155TokenDeployment},
	V2Eip155Exact, V2Eip155ExactClient,
};
use x402_reqwest::{ReqwestWithPayments, ReqwestWithPaymentsBuild, X402Client};
use x402_types::chain::DeployedTokenAmount;

fn arg(name: &str) -> String {
	let args: Vec<String> = std::env::args().collect();
	let at = args.iter().position(|a| a == name).unwrap_or_else(|| panic!("{name} is required"));
	args[at + 1].clone()
}

#[tokio::main]
async fn main() {
	let facilitator = arg("--facilitator");
	let token: Address = arg("--token").parse().expect("--token address");
	let pay_to: Address = arg("--pay-to").parse().expect("--pay-to address");
	let requests: usize = arg("--requests").parse().unwrap();
	let concurrency: usize = arg("--concurrency").parse().unwrap();
	let signer: PrivateKeySigner =
		std::env::var("BUYER_KEY").expect("BUYER_KEY").parse().expect("a private key");

	let usdt = Eip155TokenDeployment {
		chain_reference: Eip155ChainReference::new(84532),
		address: token,
		decimals: 6,
		transfer_method: AssetTransferMethod::Eip3009 {
			name: "Tether USD".into(),
			version: "1".into(),
		},
	};
	let price = V2Eip155Exact::price_tag(
		pay_to,
		DeployedTokenAmount { amount: U256::from(10_000u64), token: usdt },
	);
	let x402 = X402Middleware::new(&facilitator);
	let app = Router::new().route(
		"/reading",
		get(|| async { r#"{"celsius":21.5}"# }).layer(x402.with_price_tag(price)),
	);
	let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
	let url = format!("http://{}/reading", listener.local_addr().unwrap());
	tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

	let client = reqwest::Client::new()
		.with_payments(X402Client::new().register(V2Eip155ExactClient::new(Arc::new(signer))))
		.build();
	let run = |n: usize| {
		let (client, url) = (client.clone(), url.clone());
		async move {
			let next = Arc::new(AtomicUsize::new(0));
			let start = Instant::now();
			let workers: Vec<_> = (0..concurrency)
				.map(|_| {
					let (client, url, next) = (client.clone(), url.clone(), next.clone());
					tokio::spawn(async move {
						let mut latencies = Vec::new();
						while next.fetch_add(1, Ordering::Relaxed) < n {
							let t = Instant::now();
							let response = client.get(&url).send().await.expect("request");
							assert_eq!(response.status(), 200, "{:?}", response.text().await);
							assert!(response.headers().contains_key("payment-response"));
							latencies.push(t.elapsed().as_secs_f64() * 1e3);
						}
						latencies
					})
				})
				.collect();
			let mut latencies = Vec::new();
			for w in workers {
				latencies.extend(w.await.unwrap());
			}
			(start.elapsed().as_secs_f64(), latencies)
		}
	};
	run(concurrency).await; // warm-up, as on our side
	let (elapsed_s, latencies_ms) = run(requests).await;
	println!(
		"{}",
		serde_json::json!({"requests": requests, "elapsed_s": elapsed_s, "latencies_ms": latencies_ms})
	);
}
