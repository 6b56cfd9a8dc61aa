//! Load script: paid requests per second, end to end on loopback. A buyer pays a seller for
//! `/reading` again and again (`concurrency` requests in flight); every payment is verified and
//! settled on anvil by our facilitator, reached over HTTP.
//!
//! The same load then runs against the Rust stack users would otherwise pick (crates.io
//! `x402-axum` seller + `x402-reqwest` client, in `benches/x402-rs/`, built outside the
//! workspace), with the same facilitator code, and the ratio is printed. The two alternate for
//! a few rounds, each run on a fresh anvil and facilitator: anvil slows down as its history
//! grows, so a second run on the same chain would be measured on a slower chain. Prints
//! figures; asserts only that every request was paid exactly once.
//!
//! ```text
//! cargo build --release --workspace --examples
//! (cd benches/x402-rs && cargo build --release)     # optional: the comparison
//! $CARGO_TARGET_DIR/release/examples/x402_load [requests] [concurrency] [rounds]
//! ```

use std::{sync::Arc, time::Duration};

use m2m_e2e_tests::{
	load::{drive, median, Figures},
	market::{self, Market, Server, READING_PRICE, SELLER},
};
use m2m_evm::alloy::primitives::U256;
use m2m_facilitator::{http as facilitator_http, RemoteFacilitator};
use m2m_x402_buyer::client::X402Client;
use m2m_x402_seller::Seller;

/// `requests` purchases with `concurrency` in flight, through our client and seller.
async fn ours(client: X402Client, url: String, requests: usize, concurrency: usize) -> Figures {
	drive(requests, concurrency, move || {
		let (client, url) = (client.clone(), url.clone());
		async move {
			let paid = client.get(&url).await.expect("a paid request");
			assert!(paid.settlement.expect("PAYMENT-RESPONSE").success);
		}
	})
	.await
}

/// The x402-rs comparison binary, if built (into the same target directory).
fn x402_rs_binary() -> Option<std::path::PathBuf> {
	let path = match std::env::var("X402_RS_LOAD_BIN") {
		Ok(path) => std::path::PathBuf::from(path),
		// target/release/examples/x402_load → target/release/x402-rs-load
		Err(_) => std::env::current_exe()
			.expect("own path")
			.parent()
			.and_then(|examples| examples.parent())
			.expect("target/release")
			.join("x402-rs-load"),
	};
	path.exists().then_some(path)
}

/// A fresh chain and facilitator for one run, so that neither stack inherits the other's
/// blocks (anvil slows down as its history grows).
struct Stage {
	market: Market,
	facilitator: Server,
}

impl Stage {
	async fn open() -> Stage {
		let market = Market::open(&[]).await;
		let facilitator = Server::start(facilitator_http::router(
			market.facilitator(Duration::from_secs(30)).await,
		))
		.await;
		Stage { market, facilitator }
	}
}

/// Our client and seller on a fresh stage.
async fn run_ours(requests: usize, concurrency: usize) -> Figures {
	let Stage { market, facilitator } = Stage::open().await;
	let remote = RemoteFacilitator::new(&facilitator.url, Duration::from_secs(40));
	let seller = Server::start(market.seller_app(Arc::new(Seller::new(Arc::new(remote))))).await;
	let mut policy = market.policy(READING_PRICE, u64::MAX);
	policy.assets[0].daily_budget = U256::MAX;
	let buyer = m2m_x402_buyer::Buyer::new(m2m_evm::dev::signer(market::BUYER), policy);
	let client = X402Client::new(buyer);

	// Warm-up: connections, the facilitator's domain and gas caches.
	ours(client.clone(), format!("{}/reading", seller.url), concurrency, concurrency).await;
	let before = market.balance(SELLER).await;
	let figures = ours(client, format!("{}/reading", seller.url), requests, concurrency).await;
	let paid = market.balance(SELLER).await - before;
	assert_eq!(paid, U256::from(READING_PRICE * requests as u64), "each request paid exactly once");
	figures
}

/// The x402-rs binary on a fresh stage.
async fn run_theirs(bin: &std::path::Path, requests: usize, concurrency: usize) -> Figures {
	let Stage { market, facilitator } = Stage::open().await;
	let before = market.balance(SELLER).await;
	let output = tokio::process::Command::new(bin)
		.args([
			"--facilitator",
			&facilitator.url,
			"--token",
			&market.token.to_checksum(None),
			"--pay-to",
			&market::address(SELLER).to_checksum(None),
			"--requests",
			&requests.to_string(),
			"--concurrency",
			&concurrency.to_string(),
		])
		.env(
			"BUYER_KEY",
			format!("0x{}", hex::encode(m2m_evm::dev::signer(market::BUYER).to_bytes())),
		)
		.output()
		.await
		.expect("the x402-rs load binary runs");
	assert!(
		output.status.success(),
		"x402-rs load failed: {}{}",
		String::from_utf8_lossy(&output.stdout),
		String::from_utf8_lossy(&output.stderr)
	);
	let theirs: serde_json::Value =
		serde_json::from_slice(output.stdout.trim_ascii()).expect("one JSON line");
	let paid = market.balance(SELLER).await - before;
	// Its run includes its own warm-up of `concurrency` purchases.
	assert_eq!(
		paid,
		U256::from(READING_PRICE * (requests + concurrency) as u64),
		"x402-rs: each request paid exactly once"
	);
	Figures {
		requests: theirs["requests"].as_u64().unwrap() as usize,
		elapsed: Duration::from_secs_f64(theirs["elapsed_s"].as_f64().unwrap()),
		latencies: theirs["latencies_ms"]
			.as_array()
			.unwrap()
			.iter()
			.map(|v| Duration::from_secs_f64(v.as_f64().unwrap() / 1e3))
			.collect(),
	}
}

#[tokio::main]
async fn main() {
	let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
	let requests = args.next().unwrap_or(300);
	let concurrency = args.next().unwrap_or(16);
	let rounds = args.next().unwrap_or(3).max(1);
	println!(
		"x402 end to end on loopback: {requests} requests, {concurrency} in flight, settled on \
		 anvil; {rounds} rounds, each run on a fresh anvil and facilitator"
	);
	let bin = x402_rs_binary();
	if bin.is_none() {
		println!("x402-rs comparison skipped: build benches/x402-rs (see its README) to run it");
	}
	let (mut ratios, mut ours_rates, mut theirs_rates) = (Vec::new(), Vec::new(), Vec::new());
	for round in 1..=rounds {
		let mine = run_ours(requests, concurrency).await;
		mine.print(&format!("[{round}] m2m (axum Layer + reqwest)"));
		ours_rates.push(mine.per_second());
		let Some(bin) = &bin else { continue };
		let theirs = run_theirs(bin, requests, concurrency).await;
		theirs.print(&format!("[{round}] x402-rs (axum + reqwest)"));
		theirs_rates.push(theirs.per_second());
		ratios.push(mine.per_second() / theirs.per_second());
	}
	println!("median m2m: {:.1} req/s", median(ours_rates));
	if !ratios.is_empty() {
		println!("median x402-rs: {:.1} req/s", median(theirs_rates));
		let (lo, hi) = ratios.iter().fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
		println!("ratio m2m / x402-rs: median {:.2}× (range {lo:.2}–{hi:.2}×)", median(ratios));
	}
}
