//! Concurrent settlement on the real chain: a node with 6 s Aura blocks, its eth-rpc, and one
//! seller whose facilitator settles many purchases at once from one key. eth-rpc answers the
//! "pending" nonce with the latest block's, so a facilitator that asked the endpoint for its
//! nonce reused it within a block ("1014: Priority is too low"); ours counts its own.

use std::{collections::HashSet, sync::Arc, time::Duration};

use axum::{routing::get, Router};
use m2m_e2e_tests::{market::Server, EthRpc, Node};
use m2m_evm::{alloy::primitives::U256, dev, usdt, usdt::USDT};
use m2m_facilitator::{ChainLookup, Facilitator};
use m2m_x402::{
	policy::{AssetAllowance, SpendingPolicy},
	schemes::exact,
};
use m2m_x402_buyer::{client::X402Client, Buyer};
use m2m_x402_seller::{layer::PaymentLayer, Seller};

/// EVM chain id of the `dev` preset.
const CHAIN_ID: u64 = 33380;
const PRICE: u64 = 10_000;
const PURCHASES: usize = 20;

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

#[test]
fn concurrent_purchases_on_aura_blocks_all_settle_exactly_once() {
	let node = Node::start(&["--dev", "--sealing", "aura"]);
	let eth = EthRpc::start(&node);
	runtime().block_on(async {
		let started = std::time::Instant::now();
		let deployer = m2m_evm::connect(&eth.url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
		let faith = dev::signer(dev::USDT_DEPLOYER).address();
		let token = usdt::find_or_deploy(&deployer, faith).await.unwrap().address();
		let buyer_key = dev::signer("alith");
		usdt::mint(&deployer, token, buyer_key.address(), U256::from(usdt::UNIT)).await.unwrap();
		let seller_address = dev::signer("baltathar").address();

		let provider = m2m_evm::connect(&eth.url, None).unwrap();
		let facilitator = Arc::new(
			Facilitator::new(provider.clone(), dev::signer("charleth"), Duration::from_secs(60))
				.await
				.unwrap(),
		);
		let seller = Arc::new(
			Seller::new(facilitator).with_settlement_lookup(Arc::new(ChainLookup::new(provider))),
		);
		let offer = exact::requirements(
			CHAIN_ID,
			token,
			("Tether USD", "1"),
			seller_address,
			U256::from(PRICE),
			300,
		);
		let app = Router::new()
			.route("/kwh", get(|| async { "1 kWh" }).layer(PaymentLayer::new(seller, offer)));
		let server = Server::start(app).await;

		let policy = SpendingPolicy {
			assets: vec![AssetAllowance {
				network: m2m_x402::network::caip2(CHAIN_ID),
				asset: token,
				symbol: "USDT".into(),
				decimals: 6,
				max_per_request: U256::from(PRICE),
				daily_budget: U256::from(usdt::UNIT),
			}],
			payees: vec![],
		};
		let client = X402Client::new(Buyer::new(buyer_key, policy));
		let setup = started.elapsed();
		let url = format!("{}/kwh", server.url);
		let purchases = (0..PURCHASES).map(|_| {
			let (client, url) = (client.clone(), url.clone());
			tokio::spawn(async move { client.get(&url).await })
		});
		let mut transactions = HashSet::new();
		let mut failures = Vec::new();
		for p in futures_join(purchases).await {
			match p {
				Ok(paid) => {
					let s = paid.settlement.expect("PAYMENT-RESPONSE");
					assert!(s.success, "{s:?}");
					transactions.insert(s.transaction);
				},
				Err(e) => failures.push(e.to_string()),
			}
		}
		// Figures for the log (not assertions): a 6 s block time bounds both.
		eprintln!(
			"setup (USDT deploy, mint, seller) {setup:.1?}; {PURCHASES} concurrent purchases {:.1?}",
			started.elapsed() - setup
		);
		assert!(failures.is_empty(), "every purchase settles: {failures:#?}\n{}", eth.log());
		assert_eq!(transactions.len(), PURCHASES, "one settlement transaction each");
		// Figures for the log: how the settlements spread over blocks, and their gas.
		{
			use m2m_evm::alloy::providers::Provider;
			let p = m2m_evm::connect(&eth.url, None).unwrap();
			let mut blocks = std::collections::BTreeMap::new();
			let mut gas = 0;
			for t in &transactions {
				let hash: m2m_evm::alloy::primitives::B256 = t.parse().unwrap();
				let r = p.get_transaction_receipt(hash).await.unwrap().expect("a receipt");
				*blocks.entry(r.block_number.unwrap()).or_insert(0) += 1;
				gas = gas.max(r.gas_used);
			}
			eprintln!("settlements per block: {blocks:?}; gas used per settlement up to {gas}");
		}
		let balance = USDT::new(token, &deployer).balanceOf(seller_address).call().await.unwrap();
		assert_eq!(balance, U256::from(PRICE * PURCHASES as u64), "each paid exactly once");
	});
}

/// Awaits every task, in order.
async fn futures_join<T: Send + 'static>(
	tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
	let mut out = Vec::new();
	for t in tasks {
		out.push(t.await.expect("the purchase task"));
	}
	out
}
