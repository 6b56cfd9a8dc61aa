//! The chain's EVM side through the real node and `m2m-eth-rpc`, and the same contract suite on
//! anvil; the USDT artifacts; receipts verified against the token.

use m2m_chain_client::{ChainClient, Evidence, ReceiptInput};
use m2m_devnet::{device_keys, evm_signer, sign_payment, Endpoints, SignedPayment, NATIVE_UNIT};
use m2m_e2e_tests::{channel_suite, usdt_suite, Anvil, EthRpc, Node};
use m2m_evm::{alloy::primitives::U256, usdt};
use m2m_primitives::H256;
use subxt_signer::sr25519::dev;

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

#[test]
fn usdt_suite_passes_through_eth_rpc_on_the_real_node() {
	let node = Node::dev();
	let eth = EthRpc::start(&node);
	runtime().block_on(async {
		if let Err(e) = usdt_suite::run(&eth.url).await {
			panic!("{e:#}\n--- eth-rpc log ---\n{}", eth.log());
		}
	});
}

#[test]
fn usdt_suite_passes_on_anvil() {
	let anvil = Anvil::start();
	runtime()
		.block_on(async { usdt_suite::run(&anvil.url).await.map_err(|e| format!("{e:#}")) })
		.unwrap();
}

#[test]
fn committed_contract_artifacts_recompile_identically() {
	let contracts = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts");
	let output = std::process::Command::new("node")
		.arg("build.js")
		.arg("--check")
		.current_dir(contracts)
		.output()
		.expect("node is installed (scripts/setup.sh)");
	assert!(
		output.status.success(),
		"contracts/out is stale or solc failed:\n{}{}",
		String::from_utf8_lossy(&output.stdout),
		String::from_utf8_lossy(&output.stderr)
	);
}

/// The receipts pallet asks the token, through pallet-revive, whether the authorization a
/// receipt cites was used: before settlement the receipt is refused, after it it is recorded
/// as settled on chain.
#[test]
fn a_receipt_for_usdt_on_this_chain_is_recorded_only_once_the_transfer_happened() {
	let node = Node::dev();
	let eth = EthRpc::start(&node);
	let endpoints = Endpoints { node: node.ws_url.clone(), eth_rpc: eth.url.clone() };
	runtime().block_on(async {
		let token = m2m_devnet::deploy_usdt(&endpoints).await.expect("deploy and register");
		assert!(token.deployed_now && token.registered_now);
		let again = m2m_devnet::deploy_usdt(&endpoints).await.expect("idempotent");
		assert!(!again.deployed_now && !again.registered_now);
		assert_eq!(again.address, token.address);

		let names = ["charger".to_string(), "robot".to_string()];
		let funded =
			m2m_devnet::fund(&endpoints, &names, 5 * NATIVE_UNIT, U256::from(50 * usdt::UNIT))
				.await
				.expect("funding");
		assert!(funded.iter().all(|f| f.usdt == U256::from(50 * usdt::UNIT)
			&& f.native >= 5 * NATIVE_UNIT
			&& f.gas > U256::ZERO));

		let chain = ChainClient::connect(&node.ws_url).await.unwrap();
		let (charger, robot) = (device_keys("charger"), device_keys("robot"));
		let charger_id = chain.register_device(&dev::alice(), &charger).await.unwrap();
		chain.register_device(&dev::bob(), &robot).await.unwrap();

		let now = usdt_suite::chain_time(&m2m_evm::connect(&eth.url, None).unwrap()).await.unwrap();
		let nonce = H256(usdt_suite::nonce("receipt").0);
		let SignedPayment { settlement, receipt } =
			sign_payment(&token, &robot, &charger, charger_id, 250_000, now * 1000, nonce);

		let early = chain.record_receipt(&charger.account, receipt.clone()).await.unwrap_err();
		assert_eq!(early.pallet_error(), Some(("SettlementReceipts", "NotSettled")), "{early}");

		// The charger settles it on the EVM side, paying the gas.
		let charger_evm = m2m_evm::connect(&eth.url, Some(evm_signer(&charger))).unwrap();
		let tx = settlement.submit(token.address, &charger_evm).await.expect("settlement");

		let receipt = ReceiptInput { settlement_tx: H256(tx.0), ..receipt };
		let id = chain.record_receipt(&charger.account, receipt.clone()).await.expect("recorded");
		let stored = chain.receipt(id).await.unwrap().expect("body");
		assert_eq!(stored.evidence, Evidence::Proven, "the token executed exactly this payment");
		assert_eq!(stored.amount, 250_000);
		let again = chain.record_receipt(&charger.account, receipt).await.unwrap_err();
		assert_eq!(again.pallet_error(), Some(("SettlementReceipts", "DuplicateReceipt")));

		// The forgery `authorizationState` let through: sign 1,000 USDT and 0.01 USDT under
		// one nonce, settle the small one, record the large one.
		let nonce = H256(usdt_suite::nonce("forgery").0);
		let large =
			sign_payment(&token, &robot, &charger, charger_id, 1_000_000_000, now * 1000, nonce);
		let small = sign_payment(&token, &robot, &charger, charger_id, 10_000, now * 1000, nonce);
		let tx = small.settlement.submit(token.address, &charger_evm).await.expect("settlement");
		let forged = ReceiptInput { settlement_tx: H256(tx.0), ..large.receipt };
		let refused = chain.record_receipt(&charger.account, forged).await.unwrap_err();
		assert_eq!(
			refused.pallet_error(),
			Some(("SettlementReceipts", "DifferentAuthorizationExecuted")),
			"{refused}"
		);
		let honest = ReceiptInput { settlement_tx: H256(tx.0), ..small.receipt };
		chain.record_receipt(&charger.account, honest).await.expect("the executed one records");
	});
}

/// The x402 batch-settlement contracts are in the node's genesis at the canonical addresses,
/// and behave there as the scheme says (except finalizing a withdrawal, whose 15-minute delay
/// a real clock cannot skip; the anvil run covers it).
#[test]
fn channel_suite_passes_through_eth_rpc_on_the_real_node() {
	let node = Node::dev();
	let eth = EthRpc::start(&node);
	runtime().block_on(async {
		if let Err(e) = channel_suite::run(&eth.url, channel_suite::Clock::Real).await {
			panic!("{e:#}\n--- eth-rpc log ---\n{}", eth.log());
		}
	});
}

#[test]
fn channel_suite_passes_on_anvil_with_the_contracts_at_the_canonical_addresses() {
	let anvil = Anvil::start();
	runtime()
		.block_on(async {
			let provider = m2m_evm::connect(&anvil.url, None).unwrap();
			m2m_evm::channels::install_on_anvil(&provider).await?;
			// Installing twice changes nothing.
			m2m_evm::channels::install_on_anvil(&provider).await?;
			channel_suite::run(&anvil.url, channel_suite::Clock::Warpable).await
		})
		.map_err(|e| format!("{e:#}"))
		.unwrap();
}
