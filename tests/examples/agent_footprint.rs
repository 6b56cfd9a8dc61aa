//! Load script: the `machine-agent` daemon's footprint. Starts a selling agent (anvil as its
//! EVM, no chain: receipts wait in its outbox), reads its resident memory idle, then under
//! `requests` paid purchases (`concurrency` in flight) and after. Prints figures; asserts only
//! that every purchase was paid once.
//!
//! ```text
//! cargo build --release --workspace --examples
//! $CARGO_TARGET_DIR/release/examples/agent_footprint [requests] [concurrency]
//! ```

use std::{sync::Arc, time::Instant};

use m2m_e2e_tests::{
	agent::Device,
	market::{Market, READING_PRICE},
};
use m2m_evm::{alloy::primitives::U256, dev, usdt::USDT};
use m2m_x402_buyer::{client::X402Client, Buyer};

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
	let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
	let field = |name: &str| {
		status
			.lines()
			.find_map(|l| l.strip_prefix(name))
			.and_then(|v| v.split_whitespace().next()?.parse().ok())
			.unwrap_or(0)
	};
	(field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main]
async fn main() {
	let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
	let requests = args.next().unwrap_or(500);
	let concurrency = args.next().unwrap_or(16);
	let market = Market::open(&[]).await;
	let seller =
		Device::init("footprint", "//Alice", market.token, "ws://127.0.0.1:1", &market.anvil.url);
	let alith = m2m_evm::connect(&market.anvil.url, Some(dev::signer("alith"))).unwrap();
	m2m_evm::send_native(&alith, seller.evm_address(), U256::from(10u128.pow(19))).await.unwrap();
	// `seller` owns the device's directory: it lives as long as the daemon.
	let ((daemon, url), _seller) =
		tokio::task::spawn_blocking(move || (seller.run(), seller)).await.unwrap();
	let binary = m2m_e2e_tests::workspace_binary("machine-agent", "M2M_AGENT_BIN");
	let size = std::fs::metadata(&binary).unwrap().len();
	let (idle, _) = memory(daemon.pid());

	let mut policy = market.policy(READING_PRICE, u64::MAX);
	policy.assets[0].daily_budget = U256::MAX;
	let client = X402Client::new(Buyer::new(dev::signer("alith"), policy));
	let before = {
		let p = m2m_evm::connect(&market.anvil.url, None).unwrap();
		USDT::new(market.token, &p).balanceOf(dev::signer("alith").address()).call().await.unwrap()
	};
	let start = Instant::now();
	let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
	let workers: Vec<_> = (0..concurrency)
		.map(|_| {
			let (client, url, next) = (client.clone(), format!("{url}/reading"), next.clone());
			tokio::spawn(async move {
				while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
					let paid = client.get(&url).await.expect("a paid request");
					assert!(paid.settlement.expect("PAYMENT-RESPONSE").success);
				}
			})
		})
		.collect();
	for w in workers {
		w.await.unwrap();
	}
	let elapsed = start.elapsed();
	let (after, peak) = memory(daemon.pid());
	let after_balance = {
		let p = m2m_evm::connect(&market.anvil.url, None).unwrap();
		USDT::new(market.token, &p).balanceOf(dev::signer("alith").address()).call().await.unwrap()
	};
	assert_eq!(
		before - after_balance,
		U256::from(READING_PRICE * requests as u64),
		"paid once each"
	);
	println!("machine-agent binary: {:.1} MiB", size as f64 / 1048576.0);
	println!(
		"RSS idle (serving, embedded facilitator, RocksDB open): {:.1} MiB",
		idle as f64 / 1024.0
	);
	println!(
		"{requests} paid sales ({concurrency} in flight) in {:.2} s = {:.0}/s; RSS after {:.1} MiB, peak {:.1} MiB",
		elapsed.as_secs_f64(),
		requests as f64 / elapsed.as_secs_f64(),
		after as f64 / 1024.0,
		peak as f64 / 1024.0
	);
}
