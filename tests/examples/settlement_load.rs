//! Load script: settled `exact` payments per second on a real chain, next to what its blocks
//! can hold.
//!
//! A buyer signs `payments` EIP-3009 authorizations; our facilitator settles them, `concurrency`
//! at a time, from one key, through the chain's eth-rpc, exactly as an agent's embedded
//! facilitator does. It prints the settled rate, how the settlements spread over blocks, and the
//! block capacity for this transaction: the block gas limit, which pallet-revive derives from the
//! runtime's block weights, divided by the gas limit a settlement carries (the block builder
//! counts a transaction's declared weight, not what it used). Figures, not assertions; it
//! fails only if a payment does not settle exactly once.
//!
//! ```text
//! ./scripts/testnet.sh --load 60          # on the 3-validator zombienet testnet
//! M2M_ETH_RPC_URL=http://127.0.0.1:8545 $CARGO_TARGET_DIR/release/examples/settlement_load [payments] [concurrency]
//! ```

use std::{
	collections::BTreeMap,
	sync::Arc,
	time::{Duration, Instant},
};

use m2m_evm::{
	alloy::{
		consensus::Transaction,
		eips::BlockNumberOrTag,
		primitives::{B256, U256},
		providers::Provider,
	},
	dev, usdt,
};
use m2m_facilitator::Facilitator;
use m2m_x402::schemes::exact;

/// 0.01 USDT a payment.
const PRICE: u64 = 10_000;

#[tokio::main]
async fn main() {
	let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
	let payments = args.next().unwrap_or(60);
	let concurrency = args.next().unwrap_or(20).max(1);
	let url = std::env::var("M2M_ETH_RPC_URL").unwrap_or_else(|_| "http://127.0.0.1:8545".into());
	println!("settlement load on {url}: {payments} exact payments, {concurrency} at a time");

	let provider = m2m_evm::connect(&url, None).expect("an eth-rpc URL");
	let chain_id = provider.get_chain_id().await.expect("eth-rpc answers");
	let deployer = m2m_evm::connect(&url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
	let faith = dev::signer(dev::USDT_DEPLOYER).address();
	let token = usdt::find_or_deploy(&deployer, faith).await.expect("USDT").address();
	let domain = usdt::domain(&provider, token).await.expect("the token's EIP-712 domain");
	// DEV accounts (the chain presets endow them): a buyer, a payee, a settler.
	let buyer = dev::signer("alith");
	let payee = dev::signer("baltathar").address();
	usdt::mint(&deployer, token, buyer.address(), U256::from(PRICE * payments as u64))
		.await
		.expect("mint the buyer's USDT");
	let before = usdt_balance(&provider, token, payee).await;

	let facilitator = Arc::new(
		Facilitator::new(provider.clone(), dev::signer("charleth"), Duration::from_secs(120))
			.await
			.expect("a facilitator"),
	);
	let offer = exact::requirements(
		chain_id,
		token,
		(&domain.name, &domain.version),
		payee,
		U256::from(PRICE),
		900,
	);
	let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
	let signed: Vec<_> = (0..payments)
		.map(|i| {
			let mut nonce = [0u8; 32];
			nonce[..8].copy_from_slice(&(now as u64).to_be_bytes());
			nonce[24..].copy_from_slice(&(i as u64).to_be_bytes());
			let wire = exact::sign(&buyer, &offer, now, B256::from(nonce)).expect("signing");
			exact::payment(offer.clone(), &wire)
		})
		.collect();

	let start = Instant::now();
	let queue = Arc::new(std::sync::Mutex::new(signed));
	let workers: Vec<_> = (0..concurrency)
		.map(|_| {
			let (queue, facilitator, offer) = (queue.clone(), facilitator.clone(), offer.clone());
			tokio::spawn(async move {
				let mut settled = Vec::new();
				loop {
					let Some(payment) = queue.lock().unwrap().pop() else { return settled };
					let answer = facilitator.settle(&payment, &offer).await;
					assert!(answer.success, "a payment did not settle: {answer:?}");
					settled.push(answer.transaction.parse::<B256>().expect("a hash"));
				}
			})
		})
		.collect();
	let mut transactions = Vec::new();
	for w in workers {
		transactions.extend(w.await.expect("a worker"));
	}
	let elapsed = start.elapsed();
	let paid = usdt_balance(&provider, token, payee).await - before;
	assert_eq!(paid, U256::from(PRICE * payments as u64), "each payment settled exactly once");

	let mut per_block = BTreeMap::new();
	let (mut gas_used, mut gas_limit) = (0u64, 0u64);
	for tx in &transactions {
		let receipt = provider.get_transaction_receipt(*tx).await.unwrap().expect("a receipt");
		*per_block.entry(receipt.block_number.expect("mined")).or_insert(0usize) += 1;
		gas_used = gas_used.max(receipt.gas_used);
		let sent = provider.get_transaction_by_hash(*tx).await.unwrap().expect("the transaction");
		gas_limit = gas_limit.max(sent.inner.gas_limit());
	}
	let (first, last) = (*per_block.keys().next().unwrap(), *per_block.keys().last().unwrap());
	let block = |n: u64| {
		let provider = provider.clone();
		async move {
			provider
				.get_block_by_number(BlockNumberOrTag::Number(n))
				.await
				.unwrap()
				.expect("a block")
				.header
		}
	};
	let (head, tail) = (block(first).await, block(last).await);
	let blocks = (last - first + 1) as f64;
	let block_time = if last > first {
		(tail.timestamp - head.timestamp) as f64 / (last - first) as f64
	} else {
		6.0
	};
	let capacity = tail.gas_limit / gas_limit.max(1);

	println!(
		"settled {payments} payments in {:.1} s = {:.2} settlements/s",
		elapsed.as_secs_f64(),
		payments as f64 / elapsed.as_secs_f64()
	);
	println!(
		"blocks #{first}..#{last} ({blocks} blocks, {block_time:.1} s apart): {:.1} settlements \
		 per block; per block: {per_block:?}",
		payments as f64 / blocks
	);
	println!(
		"a settlement: gas used {gas_used}, gas limit {gas_limit}; block gas limit {} (from the \
		 runtime's block weights)",
		tail.gas_limit
	);
	println!(
		"block capacity for settlements: {capacity} per block = {:.2} settlements/s at {block_time:.1} s blocks",
		capacity as f64 / block_time
	);
}

async fn usdt_balance(
	provider: &m2m_evm::alloy::providers::DynProvider,
	token: m2m_evm::alloy::primitives::Address,
	who: m2m_evm::alloy::primitives::Address,
) -> U256 {
	usdt::USDT::new(token, provider).balanceOf(who).call().await.expect("balanceOf")
}
