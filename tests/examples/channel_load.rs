//! Load script: what payment channels buy, measured. Prints figures; it fails only if a request
//! is not paid, or the money does not add up.
//!
//! 1. **Vouchers accepted per second by one agent.** A real `machine-agent` process sells a
//!    metered service (`scheme = "batch-settlement"`) on loopback, with anvil as its EVM.
//!    `buyers` in-process buyers each open a channel (one deposit), then pay `vouchers` requests
//!    each, all at once. Every voucher the agent accepts is checked (the payer's EIP-712
//!    signature recovered) and synced to its RocksDB store before the answer leaves. The
//!    agent runs pinned to a core of its own (`taskset`), the buyers and anvil on the other.
//!    Next to it, the single-core figure that bounds it: vouchers verified per second, in one
//!    thread, with the same code.
//! 2. **Latency of a voucher-paid request against an `exact` one, on the real chain**: the same
//!    agent program on `m2m-node --dev --sealing aura` (6 s blocks, as on the testnet) through
//!    `m2m-eth-rpc`; `samples` `exact` requests and 999 voucher-paid ones, one at a time.
//! 3. **On-chain transactions and fees per 1,000 requests** on the same chain: `exact` settles
//!    each request (its transactions' gas is measured over the samples and scaled to 1,000);
//!    the channel pays 1,000 requests with one deposit, then the agent's claim and settle
//!    (`machine-agent channels claim`), all measured.
//!
//! ```text
//! cargo build --release --workspace --examples
//! $CARGO_TARGET_DIR/release/examples/channel_load [vouchers] [buyers] [samples]
//! ```

use std::time::{Duration, Instant};

use m2m_e2e_tests::{
	agent::Device,
	load::{selling_agent, unlimited_buyer, METERED_UNITS},
	market::Market,
	EthRpc, Node,
};
use m2m_evm::{
	alloy::{
		primitives::{Address, B256, U256},
		providers::{DynProvider, Provider},
		signers::local::PrivateKeySigner,
	},
	dev, usdt,
	usdt::USDT,
};
use m2m_x402::schemes::{batch_settlement::rules, exact::recover_signer};
use m2m_x402_buyer::client::X402Client;

/// A chain to measure on: its EVM endpoint, with USDT deployed.
struct Chain {
	url: String,
	chain_id: u64,
	token: Address,
}

impl Chain {
	/// Deploys (or finds) USDT on `url`.
	async fn at(url: &str) -> Chain {
		let deployer = m2m_evm::connect(url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
		let faith = dev::signer(dev::USDT_DEPLOYER).address();
		let token = usdt::find_or_deploy(&deployer, faith).await.unwrap().address();
		let chain_id = deployer.get_chain_id().await.unwrap();
		Chain { url: url.into(), chain_id, token }
	}

	fn provider(&self) -> DynProvider {
		m2m_evm::connect(&self.url, None).unwrap()
	}

	async fn mint(&self, to: Address, amount: u128) {
		let deployer = m2m_evm::connect(&self.url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
		usdt::mint(&deployer, self.token, to, U256::from(amount)).await.unwrap();
	}

	async fn balance(&self, who: Address) -> U256 {
		USDT::new(self.token, self.provider()).balanceOf(who).call().await.unwrap()
	}

	/// A buyer with no budget limit and a channel funding `per_deposit` requests.
	fn buyer(&self, key: PrivateKeySigner, per_deposit: u64) -> X402Client {
		X402Client::new(unlimited_buyer(self.chain_id, self.token, key, per_deposit))
	}

	/// The fee a transaction paid, in the native token's smallest unit, and its gas.
	async fn fee(&self, tx: &str) -> (u128, u64) {
		let hash: B256 = tx.parse().unwrap();
		let receipt = self.provider().get_transaction_receipt(hash).await.unwrap().unwrap();
		(receipt.gas_used as u128 * receipt.effective_gas_price, receipt.gas_used)
	}
}

/// A selling agent on `chain` (see [`selling_agent`]).
async fn seller(chain: &Chain, name: &str) -> (Device, m2m_e2e_tests::Process, String) {
	selling_agent(&chain.url, chain.token, name).await
}

/// CPU time a process has used so far (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
	let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc");
	// Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
	let fields: Vec<&str> = stat.rsplit_once(')').expect("stat").1.split_whitespace().collect();
	let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
	// The kernel's USER_HZ is 100 on every Linux we run.
	Duration::from_millis(ticks * 10)
}

/// Pins every thread of process `pid` to the CPUs `cpus` (`taskset` list syntax: `0`, `0-1`);
/// false if it could not (no taskset).
fn pin(pid: u32, cpus: &str) -> bool {
	std::process::Command::new("taskset")
		.args(["-a", "-cp", cpus, &pid.to_string()])
		.stdout(std::process::Stdio::null())
		.status()
		.is_ok_and(|s| s.success())
}

fn percentile(latencies: &mut [Duration], p: f64) -> f64 {
	latencies.sort();
	let at = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
	latencies[at].as_secs_f64() * 1e3
}

/// Voucher signatures recovered per second on one core: the same digest and recovery the
/// seller runs for every voucher.
fn recoveries_per_second() -> f64 {
	let offer = rules::Offer {
		chain_id: 84532,
		asset: Address::repeat_byte(1),
		token_domain: ("Tether USD".into(), "1".into()),
		pay_to: Address::repeat_byte(2),
		receiver_authorizer: Address::repeat_byte(3),
		withdraw_delay: 900,
		max_price: 100,
		max_timeout_seconds: 60,
	};
	let payer = PrivateKeySigner::random();
	let config = rules::config_for(&offer, payer.address(), B256::ZERO);
	let requirements = rules::requirements(&offer);
	let payments: Vec<_> = (1..=2_000u128)
		.map(|n| {
			let voucher = rules::sign_voucher(&payer, &config, n * 100, offer.chain_id).unwrap();
			let payload = m2m_x402::schemes::batch_settlement::payload::ChannelPayload::Voucher {
				channel_config: rules::config_wire(&config),
				voucher,
			};
			rules::payment(&requirements, &payload)
		})
		.collect();
	let start = Instant::now();
	let mut checked = 0u64;
	while start.elapsed() < Duration::from_secs(2) {
		for payment in &payments {
			// `verify` is what the seller runs: parse, hash the config, recover the signer.
			let verified = rules::verify(payment, &requirements).unwrap();
			assert_eq!(verified.config.payer, payer.address());
			checked += 1;
		}
	}
	let raw = {
		let signature = rules::signature(
			&rules::sign_voucher(&payer, &config, 100, offer.chain_id).unwrap().signature,
			"voucher",
			m2m_x402::ErrorReason::ChannelVoucherSignature,
		)
		.unwrap();
		let digest = B256::repeat_byte(9);
		let start = Instant::now();
		let mut n = 0u64;
		while start.elapsed() < Duration::from_secs(1) {
			std::hint::black_box(recover_signer(&signature, &digest).unwrap());
			n += 1;
		}
		n as f64 / start.elapsed().as_secs_f64()
	};
	println!("  ecrecover alone (secp256k1, one core):            {raw:>9.0} /s");
	checked as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
	let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
	let vouchers = args.next().unwrap_or(250);
	let buyers = args.next().unwrap_or(8);
	let samples = args.next().unwrap_or(10);

	println!("1. vouchers accepted per second by one agent (anvil, loopback)");
	// The agent gets a core of its own (CPU 0); this process, its buyers and anvil share the
	// other: so the agent's figure is one core's, like the verification figure next to it.
	let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
	let pinned = cpus >= 2 && pin(std::process::id(), "1");
	let market = Market::open(&[]).await;
	let anvil = Chain { url: market.anvil.url.clone(), chain_id: 84532, token: market.token };
	let provider = anvil.provider();
	m2m_evm::channels::install_on_anvil(&provider).await.unwrap();
	let (device, daemon, url) = seller(&anvil, "voucher-load").await;
	let pinned = pinned && pin(daemon.pid(), "0");
	let kwh = format!("{url}/kwh");
	let mut clients = Vec::new();
	for _ in 0..buyers {
		let key = PrivateKeySigner::random();
		anvil.mint(key.address(), METERED_UNITS * (vouchers as u128 + 1)).await;
		let client = anvil.buyer(key, vouchers as u64 + 1);
		// The first request opens the channel with its deposit (on-chain): not timed.
		let opened = client.get(&kwh).await.expect("the deposit");
		assert_eq!(opened.response.status(), 200);
		clients.push(client);
	}
	let cpu_before = cpu_time(daemon.pid());
	let start = Instant::now();
	let workers: Vec<_> = clients
		.into_iter()
		.map(|client| {
			let kwh = kwh.clone();
			tokio::spawn(async move {
				let mut latencies = Vec::with_capacity(vouchers);
				for _ in 0..vouchers {
					let began = Instant::now();
					let paid = client.get(&kwh).await.expect("a voucher-paid request");
					assert_eq!(paid.response.status(), 200);
					latencies.push(began.elapsed());
				}
				let channel = &client.buyer().channels().unwrap()[0];
				assert_eq!(channel.charged, METERED_UNITS * (vouchers as u128 + 1));
				latencies
			})
		})
		.collect();
	let mut latencies = Vec::new();
	for w in workers {
		latencies.extend(w.await.unwrap());
	}
	let elapsed = start.elapsed();
	let agent_cpu = cpu_time(daemon.pid()) - cpu_before;
	let accepted = (buyers * vouchers) as f64 / elapsed.as_secs_f64();
	println!(
		"  {} vouchers on {buyers} channels in {:.2} s:          {accepted:>9.0} /s   p50 {:.2} ms   p99 {:.2} ms",
		buyers * vouchers,
		elapsed.as_secs_f64(),
		percentile(&mut latencies, 0.5),
		percentile(&mut latencies, 0.99)
	);
	let cpu_per_voucher = agent_cpu.as_secs_f64() / (buyers * vouchers) as f64;
	println!(
		"  the agent's CPU time per voucher: {:.0} µs, so one core could accept {:.0} /s ({})",
		cpu_per_voucher * 1e6,
		1.0 / cpu_per_voucher,
		if pinned {
			"the agent pinned to CPU 0, the buyers and anvil on CPU 1"
		} else {
			"not pinned: the buyers and anvil share its cores"
		}
	);
	let verified = recoveries_per_second();
	println!("  voucher verification (parse, hash, recover), one core: {verified:>5.0} /s");
	println!(
		"  the agent accepts {:.0}% of the one-core verification rate ({:.0}% at its CPU-bound ceiling)",
		100.0 * accepted / verified,
		100.0 / cpu_per_voucher / verified
	);
	drop((daemon, device));
	if pinned {
		// The real chain's processes get every core again.
		pin(std::process::id(), &format!("0-{}", cpus - 1));
	}

	println!("\n2./3. exact against channel on the real chain (m2m-node --dev --sealing aura: 6 s blocks; m2m-eth-rpc)");
	let (node, eth) = tokio::task::spawn_blocking(|| {
		// Aura's 6 s slots, as on the testnet: instant sealing would run the chain's clock
		// ahead one slot per block, past the authorizations' validity.
		let node = Node::start(&["--dev", "--sealing", "aura"]);
		let eth = EthRpc::start(&node);
		(node, eth)
	})
	.await
	.unwrap();
	let chain = Chain::at(&eth.url).await;
	let (device, daemon, url) = seller(&chain, "latency").await;
	let key = PrivateKeySigner::random();
	chain.mint(key.address(), 10 * u128::from(usdt::UNIT)).await;
	const REQUESTS: usize = 1_000;
	let client = chain.buyer(key.clone(), REQUESTS as u64);
	let before = chain.balance(key.address()).await;

	let (mut exact, mut exact_gas, mut exact_fee) = (Vec::new(), 0u64, 0u128);
	for _ in 0..samples {
		let began = Instant::now();
		let paid = client.get(&format!("{url}/reading")).await.expect("an exact purchase");
		exact.push(began.elapsed());
		assert_eq!(paid.response.status(), 200);
		let (fee, gas) = chain.fee(&paid.settlement.unwrap().transaction).await;
		exact_gas += gas;
		exact_fee += fee;
	}
	let kwh = format!("{url}/kwh");
	let opened = client.get(&kwh).await.expect("the deposit");
	let deposit_tx = opened.settlement.unwrap().transaction;
	let mut metered = Vec::new();
	for _ in 1..REQUESTS {
		let began = Instant::now();
		let paid = client.get(&kwh).await.expect("a voucher-paid request");
		assert_eq!(paid.response.status(), 200);
		metered.push(began.elapsed());
	}
	let claim = device.cli(&["channels", "claim"]);
	assert!(claim.status.success(), "{}", String::from_utf8_lossy(&claim.stderr));
	let claimed: serde_json::Value = serde_json::from_slice(&claim.stdout).expect("claim JSON");
	let mut channel_txs = vec![deposit_tx];
	channel_txs.extend(
		claimed["claimed"]
			.as_array()
			.unwrap()
			.iter()
			.map(|c| c["transaction"].as_str().unwrap().to_string()),
	);
	channel_txs.extend(
		claimed["settled"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()),
	);
	let (mut channel_gas, mut channel_fee) = (0u64, 0u128);
	for tx in &channel_txs {
		let (fee, gas) = chain.fee(tx).await;
		channel_gas += gas;
		channel_fee += fee;
	}
	let spent = before - chain.balance(key.address()).await;
	let metered_total = METERED_UNITS * REQUESTS as u128;
	assert_eq!(
		spent,
		U256::from(samples as u128 * 10_000 + metered_total),
		"the buyer paid exactly the exact purchases and the metered requests"
	);
	let on_chain = m2m_evm::channels::BatchSettlement::new(
		m2m_evm::channels::SETTLEMENT_ADDRESS,
		chain.provider(),
	)
	.channels(client.buyer().channels().unwrap()[0].channel_id)
	.call()
	.await
	.unwrap();
	assert_eq!(on_chain.totalClaimed, metered_total, "claimed exactly what was served");

	let (exact_p50, exact_p99) = (percentile(&mut exact, 0.5), percentile(&mut exact, 0.99));
	let (voucher_p50, voucher_p99) =
		(percentile(&mut metered, 0.5), percentile(&mut metered, 0.99));
	println!("  latency, exact (settled on-chain per request):  p50 {exact_p50:>7.2} ms   p99 {exact_p99:>7.2} ms   ({samples} requests)");
	println!("  latency, channel voucher:                       p50 {voucher_p50:>7.2} ms   p99 {voucher_p99:>7.2} ms   ({} requests)", REQUESTS - 1);
	println!(
		"  a voucher-paid request takes {:.1}x less time at the median",
		exact_p50 / voucher_p50
	);
	let native = |wei: u128| wei as f64 / 1e18;
	let per_1000 = REQUESTS as f64 / samples as f64;
	println!(
		"  per 1,000 requests, exact:   {:>5} transactions, {:>11.0} gas, fees {:.6} native units (measured over {samples}, scaled)",
		REQUESTS,
		exact_gas as f64 * per_1000,
		native(exact_fee) * per_1000,
	);
	println!(
		"  per 1,000 requests, channel: {:>5} transactions, {:>11} gas, fees {:.6} native units (deposit, claim, settle; measured)",
		channel_txs.len(),
		channel_gas,
		native(channel_fee),
	);
	println!(
		"  the channel needs {:.0}x fewer transactions and {:.0}x less in fees",
		REQUESTS as f64 / channel_txs.len() as f64,
		native(exact_fee) * per_1000 / native(channel_fee)
	);
	drop((daemon, device, eth, node));
}
