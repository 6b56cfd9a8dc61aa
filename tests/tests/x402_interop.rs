//! Interoperability with the reference x402 implementations (npm, pinned in
//! `tests/interop/package-lock.json`), on loopback with our USDT on anvil:
//!
//! - the reference v2 client (`@x402/fetch` + `@x402/evm`) buys from our axum seller;
//! - our client buys from the reference v2 seller (`@x402/express`) that verifies and settles
//!   through **our** facilitator;
//! - the legacy v1 client (`x402-fetch` 1.x) buys from our axum seller;
//! - the reference batch-settlement client (`@x402/evm` `batch-settlement/client`) pays our
//!   seller from a payment channel (a deposit, many vouchers) and gets a cooperative refund.

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
	reference_client_with(script, url, market, &[]).await
}

/// [`reference_client`] with more environment.
async fn reference_client_with(
	script: &str,
	url: &str,
	market: &Market,
	env: &[(&str, &str)],
) -> serde_json::Value {
	let output = tokio::time::timeout(
		Duration::from_secs(120),
		tokio::process::Command::new("node")
			.arg(script)
			.arg(url)
			.current_dir(interop_dir())
			.env("BUYER_KEY", buyer_key())
			.env("RPC_URL", &market.anvil.url)
			.env("ASSET", market.token.to_checksum(None))
			.envs(env.iter().copied())
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

/// The reference channel client against our seller: one deposit, then a voucher per request
/// that our seller checks alone; then the client's cooperative refund, which our seller
/// grants through our facilitator: what was charged is claimed, the rest goes back.
#[test]
fn the_reference_channel_client_pays_our_seller_from_a_deposit_and_gets_a_refund() {
	use axum::{routing::get, Router};
	use m2m_x402::schemes::batch_settlement::rules;
	use m2m_x402_seller::{layer::PaymentLayer, ChannelStore, MemoryChannels};

	const PRICE: u128 = 10_000;
	const COUNT: u128 = 12;
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let (facilitator, offer) = market.channels(Duration::from_secs(30), PRICE).await;
		let sold = Arc::new(MemoryChannels::default());
		let seller = Arc::new(
			Seller::new(facilitator)
				.with_channels(sold.clone())
				.with_receiver_key(dev::signer(SELLER)),
		);
		let app = Router::new().route(
			"/kwh",
			get(|| async { "1 kWh" }).layer(PaymentLayer::new(seller, rules::requirements(&offer))),
		);
		let server = Server::start(app).await;
		let before = market.balance(BUYER).await;

		let count = COUNT.to_string();
		let url = format!("{}/kwh", server.url);
		let got =
			reference_client_with("buy-channel.mjs", &url, &market, &[("COUNT", &count)]).await;
		let paid = got["paid"].as_array().unwrap();
		assert_eq!(paid.len(), COUNT as usize, "{got}");
		// A request carries a transaction only when it brought a deposit (the balance grew):
		// the client deposits 10 requests' worth (its depositMultiplier), so 12 take two.
		let (mut balance, mut deposits) = (0u128, 0);
		for (i, answer) in paid.iter().enumerate() {
			assert_eq!(answer["status"], 200, "request {i}: {answer}");
			assert_eq!(answer["body"], "1 kWh");
			let charge = &answer["settlement"]["extra"];
			assert_eq!(charge["chargedAmount"], PRICE.to_string(), "request {i}: {answer}");
			let cumulative = (i as u128 + 1) * PRICE;
			assert_eq!(charge["channelState"]["chargedCumulativeAmount"], cumulative.to_string());
			let now: u128 = charge["channelState"]["balance"].as_str().unwrap().parse().unwrap();
			let tx = answer["settlement"]["transaction"].as_str().unwrap();
			if now > balance {
				assert_eq!((tx.len(), now - balance), (66, 10 * PRICE), "request {i}: {answer}");
				deposits += 1;
			} else {
				assert_eq!(tx, "", "a bare voucher moves nothing on-chain: {answer}");
			}
			balance = now;
		}
		assert_eq!(deposits, 2, "{got}");

		let refund = &got["refund"];
		assert_eq!(refund["success"], true, "{got}");
		assert_eq!(refund["transaction"].as_str().unwrap().len(), 66, "{got}");
		assert_eq!(refund["amount"], (balance - COUNT * PRICE).to_string(), "the unspent rest");
		let channels = sold.all().unwrap();
		assert_eq!(channels.len(), 1);
		let channel = &channels[0];
		assert_eq!(
			(channel.charged, channel.total_claimed, channel.requests),
			(COUNT * PRICE, COUNT * PRICE, COUNT as u64)
		);
		assert_eq!(channel.balance, COUNT * PRICE, "the deposits' rest went back");
		assert_eq!(market.channel(channel.channel_id).await, (COUNT * PRICE, COUNT * PRICE));
		assert_eq!(
			market.balance(BUYER).await,
			before - U256::from(COUNT * PRICE),
			"the payer paid exactly what it was served"
		);
	});
}

/// Our buyer against the reference channel seller (`@x402/express` with the batch-settlement
/// server scheme), which verifies and settles the deposit through **our** facilitator: one
/// deposit, then a voucher per request that the reference seller checks and charges; both
/// sides end with the same charged total.
#[test]
fn our_buyer_pays_the_reference_channel_seller_through_our_facilitator() {
	use m2m_x402_buyer::{Buyer, ChannelFunding, MemoryBuyerChannels};

	const PRICE: u128 = 10_000;
	const COUNT: u128 = 8;
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let (facilitator, _) = market.channels(Duration::from_secs(30), PRICE).await;
		let facilitator = Server::start(facilitator_http::router(facilitator)).await;
		let mut command = Command::new("node");
		command
			.arg("sell-channel.mjs")
			.current_dir(interop_dir())
			.env("FACILITATOR_URL", &facilitator.url)
			.env("NETWORK", m2m_x402::network::caip2(market::CHAIN_ID))
			.env("ASSET", market.token.to_checksum(None))
			.env("PAY_TO", market::address(SELLER).to_checksum(None))
			.env("AMOUNT", PRICE.to_string());
		let (express, url) = tokio::task::spawn_blocking(move || {
			Process::spawn("the @x402/express channel seller", command, None, |line| {
				line.strip_prefix("listening on ").map(str::to_string)
			})
		})
		.await
		.unwrap();

		let funding = ChannelFunding { requests_per_deposit: 20 };
		let buyer = Buyer::new(dev::signer(BUYER), market.policy(PRICE as u64, 1_000_000))
			.with_channels(Arc::new(MemoryBuyerChannels::default()), funding);
		let client = X402Client::new(buyer);
		let before = market.balance(BUYER).await;
		for i in 0..COUNT {
			let paid = client.get(&format!("{url}/kwh")).await.unwrap_or_else(|e| {
				panic!("request {i}: {e}\nexpress log:\n{}", express.log());
			});
			assert_eq!(paid.response.status(), 200, "request {i}");
			assert_eq!(paid.response.text().await.unwrap(), "1 kWh");
		}
		assert_eq!(
			market.balance(BUYER).await,
			before - U256::from(20 * PRICE),
			"one deposit, and no transfer per request"
		);
		let ours = client.buyer().channels().unwrap();
		assert_eq!(ours.len(), 1);
		assert_eq!(
			(ours[0].charged, ours[0].requests, ours[0].stopped.clone()),
			(COUNT * PRICE, COUNT as u64, None)
		);
		assert_eq!(ours[0].balance, 20 * PRICE, "as the reference seller reported it");

		// The reference seller's own record of the channel agrees.
		let theirs: serde_json::Value =
			reqwest::get(format!("{url}/channels")).await.unwrap().json().await.unwrap();
		let theirs = theirs.as_array().unwrap();
		assert_eq!(theirs.len(), 1, "{theirs:?}");
		assert_eq!(
			theirs[0]["channelId"].as_str().unwrap().to_lowercase(),
			ours[0].channel_id.to_string()
		);
		assert_eq!(theirs[0]["chargedCumulativeAmount"], (COUNT * PRICE).to_string());
		drop(express);
	});
}
