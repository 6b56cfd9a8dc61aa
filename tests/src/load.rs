//! What the load scripts (`tests/examples/*_load.rs`) share: a closed-loop load driver, its
//! figures, and a selling agent on a chain of the script's choice.

use std::{
	future::Future,
	sync::{
		atomic::{AtomicUsize, Ordering},
		Arc,
	},
	time::{Duration, Instant},
};

use m2m_evm::{
	alloy::primitives::{Address, U256},
	dev,
};

use crate::{agent::Device, Process};

/// What one run measured.
pub struct Figures {
	pub requests: usize,
	pub elapsed: Duration,
	pub latencies: Vec<Duration>,
}

impl Figures {
	pub fn per_second(&self) -> f64 {
		self.requests as f64 / self.elapsed.as_secs_f64()
	}

	pub fn percentile(&self, p: f64) -> Duration {
		let mut sorted = self.latencies.clone();
		sorted.sort();
		sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
	}

	pub fn print(&self, name: &str) {
		println!(
			"{name:<34} {:>5} paid requests in {:>6.2} s = {:>7.1} req/s   p50 {:>6.1} ms   p99 {:>6.1} ms",
			self.requests,
			self.elapsed.as_secs_f64(),
			self.per_second(),
			self.percentile(0.50).as_secs_f64() * 1e3,
			self.percentile(0.99).as_secs_f64() * 1e3,
		);
	}
}

/// The middle value (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
	values.sort_by(f64::total_cmp);
	values[values.len() / 2]
}

/// Runs `one` `requests` times with `concurrency` calls in flight (a closed loop: each worker
/// starts its next request when its last one ends), timing each.
pub async fn drive<F, Fut>(requests: usize, concurrency: usize, one: F) -> Figures
where
	F: Fn() -> Fut + Clone + Send + 'static,
	Fut: Future<Output = ()> + Send,
{
	let next = Arc::new(AtomicUsize::new(0));
	let start = Instant::now();
	let workers: Vec<_> = (0..concurrency)
		.map(|_| {
			let (one, next) = (one.clone(), next.clone());
			tokio::spawn(async move {
				let mut latencies = Vec::new();
				while next.fetch_add(1, Ordering::Relaxed) < requests {
					let t = Instant::now();
					one().await;
					latencies.push(t.elapsed());
				}
				latencies
			})
		})
		.collect();
	let mut latencies = Vec::new();
	for w in workers {
		latencies.extend(w.await.expect("a load worker"));
	}
	Figures { requests, elapsed: start.elapsed(), latencies }
}

/// The metered service's price: 0.0001 USDT (100 base units), low enough that 1,000 requests
/// stay under the agent's default unclaimed bound (1 USDT) and no claim interrupts a run.
pub const METERED: &str = "0.0001";
pub const METERED_UNITS: u128 = 100;

/// A selling `machine-agent` on the EVM at `evm_url` (no Substrate chain: receipts wait in its
/// outbox), with `/reading` (`exact`, 0.01 USDT) and `/kwh` (a channel, [`METERED`] a
/// request), over HTTP and libp2p; gas for its embedded facilitator comes from the faucet.
/// Its log level is `AGENT_LOG` (default `info`).
pub async fn selling_agent(evm_url: &str, token: Address, name: &str) -> (Device, Process, String) {
	let mut device = Device::init(name, "//Alice", token, "ws://127.0.0.1:1", evm_url);
	device.env.push(("RUST_LOG".into(), std::env::var("AGENT_LOG").unwrap_or("info".into())));
	let config = device.dir.join("machine-agent.toml");
	let text = std::fs::read_to_string(&config).unwrap().replace(
		"# What this device may spend",
		&format!(
			"[[services]]\npath = \"/kwh\"\nprice = \"{METERED}\"\nhandler = \"sensor\"\n\
			 scheme = \"batch-settlement\"\n\n# What this device may spend"
		),
	);
	std::fs::write(&config, text).unwrap();
	let faucet = m2m_evm::connect(evm_url, Some(dev::signer(dev::FAUCET))).unwrap();
	m2m_evm::send_native(&faucet, device.evm_address(), U256::from(10u128.pow(20))).await.unwrap();
	let ((daemon, url), device) =
		tokio::task::spawn_blocking(move || (device.run(), device)).await.unwrap();
	(device, daemon, url)
}

/// Where a running agent listens over libp2p (the file it writes next to its data): its TCP
/// address and its QUIC one.
pub fn libp2p_addresses(device: &Device) -> (m2m_p2p::Multiaddr, m2m_p2p::Multiaddr) {
	let text = std::fs::read_to_string(device.dir.join("data.p2p")).expect("the agent's data.p2p");
	let addresses: Vec<m2m_p2p::Multiaddr> =
		text.lines().map(|l| l.parse().expect("a multiaddr")).collect();
	let is_quic = |a: &m2m_p2p::Multiaddr| a.iter().any(|p| matches!(p, m2m_p2p::Protocol::QuicV1));
	let find = |quic: bool| {
		addresses.iter().find(|a| is_quic(a) == quic).cloned().expect("TCP and QUIC addresses")
	};
	(find(false), find(true))
}

/// A buyer of USDT on chain `chain_id` with no budget limit (1 USDT a request at most), whose
/// channels (kept in memory) are funded for `requests_per_deposit` requests.
pub fn unlimited_buyer(
	chain_id: u64,
	token: Address,
	key: m2m_evm::alloy::signers::local::PrivateKeySigner,
	requests_per_deposit: u64,
) -> m2m_x402_buyer::Buyer {
	use m2m_x402::policy::{AssetAllowance, SpendingPolicy};
	let policy = SpendingPolicy {
		assets: vec![AssetAllowance {
			network: m2m_x402::network::caip2(chain_id),
			asset: token,
			symbol: "USDT".into(),
			decimals: 6,
			max_per_request: U256::from(m2m_evm::usdt::UNIT),
			daily_budget: U256::MAX,
		}],
		payees: vec![],
	};
	let funding = m2m_x402_buyer::ChannelFunding { requests_per_deposit };
	m2m_x402_buyer::Buyer::new(key, policy)
		.with_channels(Arc::new(m2m_x402_buyer::MemoryBuyerChannels::default()), funding)
}
