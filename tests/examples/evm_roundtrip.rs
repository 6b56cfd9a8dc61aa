//! Load script: round-trip times of deploying USDT and transferring it, through `m2m-eth-rpc` on
//! a real `m2m-node --dev` (instant sealing) and on anvil, in one run. Prints figures; asserts
//! nothing about speed.
//!
//! ```text
//! cargo build --release --workspace --examples
//! $CARGO_TARGET_DIR/release/examples/evm_roundtrip [iterations]
//! ```

use std::time::{Duration, Instant};

use m2m_e2e_tests::{Anvil, EthRpc, Node};
use m2m_evm::{
	alloy::{primitives::U256, providers::Provider},
	dev,
	usdt::{self, USDT},
	DEPLOY_GAS,
};

struct Sample {
	deploy: Duration,
	mint: Duration,
	transfer: Duration,
}

async fn measure(url: &str, iterations: usize) -> anyhow::Result<Vec<Sample>> {
	let alith = m2m_evm::connect(url, Some(dev::signer("alith")))?;
	let alith_addr = dev::signer("alith").address();
	let to = dev::signer("baltathar").address();
	let mut samples = Vec::new();
	for _ in 0..iterations {
		let t0 = Instant::now();
		let builder = USDT::deploy_builder(&alith, alith_addr);
		let gas = builder.estimate_gas().await.map(|g| g + g / 5).unwrap_or(DEPLOY_GAS);
		let pending = builder.gas(gas).send().await?;
		let tx = pending.tx_hash().to_owned();
		m2m_evm::confirm(pending).await?;
		let deploy = t0.elapsed();
		let address = alith
			.get_transaction_receipt(tx)
			.await?
			.and_then(|r| r.contract_address)
			.ok_or_else(|| anyhow::anyhow!("no contract address"))?;
		let t1 = Instant::now();
		usdt::mint(&alith, address, alith_addr, U256::from(usdt::UNIT)).await?;
		let mint = t1.elapsed();
		let t2 = Instant::now();
		m2m_evm::confirm(USDT::new(address, &alith).transfer(to, U256::from(1)).send().await?)
			.await?;
		samples.push(Sample { deploy, mint, transfer: t2.elapsed() });
	}
	Ok(samples)
}

fn median(mut v: Vec<Duration>) -> Duration {
	v.sort();
	v[v.len() / 2]
}

fn report(name: &str, samples: Vec<Sample>) -> Duration {
	let total: Vec<_> = samples.iter().map(|s| s.deploy + s.mint + s.transfer).collect();
	let deploy_and_transfer: Vec<_> = samples.iter().map(|s| s.deploy + s.transfer).collect();
	let row = median(deploy_and_transfer);
	println!(
		"{name:<28} deploy {:>7.1?}  mint {:>7.1?}  transfer {:>7.1?}  deploy+transfer {:>7.1?}  all three {:>7.1?}  (medians of {})",
		median(samples.iter().map(|s| s.deploy).collect()),
		median(samples.iter().map(|s| s.mint).collect()),
		median(samples.iter().map(|s| s.transfer).collect()),
		row,
		median(total),
		samples.len(),
	);
	row
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
	let iterations = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(5);
	let node = Node::dev();
	let eth = EthRpc::start(&node);
	let anvil = Anvil::start();
	// One warm-up round each (connections, caches), not counted.
	measure(&eth.url, 1).await?;
	measure(&anvil.url, 1).await?;
	let ours = report("m2m-eth-rpc + m2m-node --dev", measure(&eth.url, iterations).await?);
	let reference = report("anvil 1.7.1", measure(&anvil.url, iterations).await?);
	println!(
		"deploy+transfer round trip: m2m-eth-rpc {:.1?}, anvil {:.1?} ({:.1}x)",
		ours,
		reference,
		ours.as_secs_f64() / reference.as_secs_f64()
	);
	Ok(())
}
