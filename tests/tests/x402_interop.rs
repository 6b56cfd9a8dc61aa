//! Interoperability with the reference x402 implementations (npm, pinned in
//! `tests/interop/package-lock.json`), on loopback with our USDT on anvil:
//!
//! - the reference v2 client (`@x402/fetch` + `@x402/evm`) buys from our axum seller;
//! - our client buys from the reference v2 seller (`@x402/express`) that verifies and settles
//!   through **our** facilitator;
//! - the legacy v1 client (`x402-fetch` 1.x) buys from our axum seller.

use std::{path::PathBuf, process::Command, sync::Arc, time::Duration};

use m2m_e2e_tests::{
	market::{self, Market, Server, BUYER, READING_PRICE, SELLER},
	Process,
};
use m2m_evm::{alloy::primitives::U256, dev};
use m2m_facilitator::http as facilitator_http;
use m2m_x402_buyer::client::X402Client;
use m2m_x402_seller::Seller;

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn interop_dir() -> PathBuf {
	let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
	assert!(
		dir.join("node_modules").exists(),
		"{}/node_modules is missing: run scripts/setup.sh (or `npm ci` there)",
		dir.display()
	);
	dir
}

fn buyer_key() -> String {
	format!("0x{}", hex::encode(dev::signer(BUYER).to_bytes()))
}

/// Runs a reference client script against `url` and returns what it printed.
async fn reference_client(script: &str, url: &str, market: &Market) -> serde_json::Value {
	let output = tokio::time::timeout(
		Duration::from_secs(120),
		tokio::process::Command::new("node")
			.arg(script)
			.arg(url)
			.current_dir(interop_dir())
			.env("BUYER_KEY", buyer_key())
			.env("RPC_URL", &market.anvil.url)
			.env("ASSET", market.token.to_checksum(None))
			.output(),
	)
	.await
	.expect("the reference client finished within 120 s")
	.expect("node runs");
	let stdout = String::from_utf8_lossy(&output.stdout);
	assert!(
		output.status.success(),
		"{script} failed: {}\n{stdout}\n{}",
		output.status,
		String::from_utf8_lossy(&output.stderr)
	);
	serde_json::from_str(stdout.lines().last().unwrap_or_default())
		.unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

async fn our_seller(market: &Market) -> Server {
	let seller = Seller::new(market.facilitator(Duration::from_secs(30)).await);
	Server::start(market.seller_app(Arc::new(seller))).await
}

#[test]
fn the_reference_v2_client_buys_from_our_seller() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let server = our_seller(&market).await;
		let got = reference_client("buy-v2.mjs", &format!("{}/reading", server.url), &market).await;
		assert_eq!(got["status"], 200, "{got}");
		assert!(got["body"].as_str().unwrap().contains("21.5"), "{got}");
		assert_eq!(got["settlement"]["success"], true, "{got}");
		assert_eq!(got["settlement"]["network"], "eip155:84532", "{got}");
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
	});
}

#[test]
fn the_legacy_v1_client_buys_from_our_seller() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let server = our_seller(&market).await;
		let got = reference_client("buy-v1.mjs", &format!("{}/reading", server.url), &market).await;
		assert_eq!(got["status"], 200, "{got}");
		assert_eq!(got["settlement"]["success"], true, "{got}");
		assert_eq!(got["settlement"]["network"], "eip155:84532", "{got}");
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
	});
}

#[test]
fn our_client_buys_from_the_reference_seller_through_our_facilitator() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let facilitator = Server::start(facilitator_http::router(
			market.facilitator(Duration::from_secs(30)).await,
		))
		.await;
		let mut command = Command::new("node");
		command
			.arg("sell-v2.mjs")
			.current_dir(interop_dir())
			.env("FACILITATOR_URL", &facilitator.url)
			.env("NETWORK", m2m_x402::network::caip2(market::CHAIN_ID))
			.env("ASSET", market.token.to_checksum(None))
			.env("PAY_TO", market::address(SELLER).to_checksum(None))
			.env("AMOUNT", READING_PRICE.to_string());
		// The express server asks our facilitator for /supported while starting, so the
		// blocking wait must not hold up this runtime.
		let (express, url) = tokio::task::spawn_blocking(move || {
			Process::spawn("the @x402/express seller", command, None, |line| {
				line.strip_prefix("listening on ").map(str::to_string)
			})
		})
		.await
		.unwrap();

		let client = X402Client::new(market.buyer());
		let paid = client.get(&format!("{url}/reading")).await.unwrap_or_else(|e| {
			panic!("{e}\nexpress log:\n{}", express.log());
		});
		assert_eq!(paid.response.status(), 200);
		let settlement = paid.settlement.clone().expect("PAYMENT-RESPONSE from @x402/express");
		assert!(settlement.success, "{settlement:?}");
		assert_eq!(settlement.transaction.len(), 66);
		assert!(paid.response.text().await.unwrap().contains("21.5"));
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
	});
}
