//! Registers two devices on a running m2m-pay chain, records a payment between them, and reads
//! the fleet accounting back through the runtime API.
//!
//! ```text
//! cargo run --release -p m2m-chain-client --example testnet_demo -- ws://127.0.0.1:9944
//! ```
//!
//! Uses DEV keys only (Alice is sudo and owns the charger, Bob owns the robot). Safe to run
//! again: devices and the asset are registered once, and every run records one new payment.

use m2m_chain_client::{ChainClient, DeviceKeys, PaymentProof, ReceiptInput};
use m2m_primitives::{
	eip712::{domain_separator, TransferWithAuthorization},
	receipt::AssetKey,
	H160, H256, U256,
};
use subxt::utils::Static;
use subxt_signer::sr25519::{dev, Keypair};

/// A USDT-like test token. The EVM side of the chain (and its real USDT) comes later; until then
/// the authorization is genuinely signed but no EVM transfer backs it.
fn usdt() -> AssetKey {
	AssetKey { chain_id: 9990, token: H160::repeat_byte(0x55) }
}

async fn device(chain: &ChainClient, owner: &Keypair, keys: &DeviceKeys, name: &str) -> u64 {
	if let Some(id) = chain.device_by_account(&keys.account_id()).await.expect("query") {
		println!("  {name:<8} device #{id} (already registered)");
		return id;
	}
	let id = chain.register_device(owner, keys).await.expect("registration");
	println!("  {name:<8} device #{id} registered, EVM {:?}", keys.evm_address());
	id
}

#[tokio::main]
async fn main() {
	let url = std::env::args().nth(1).unwrap_or_else(|| "ws://127.0.0.1:9944".into());
	let chain = ChainClient::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
	let (alice, bob) = (dev::alice(), dev::bob());
	println!("connected to {url} (genesis {:?})", chain.genesis_hash());

	if chain.asset(usdt()).await.expect("query").is_none() {
		chain
			.register_asset_sudo(&alice, usdt(), "Tether USD", "1", 6, "USDT")
			.await
			.expect("asset registration");
		println!("  registered asset USDT on EVM chain {}", usdt().chain_id);
	}
	let charger_keys = DeviceKeys::dev("demo/charger");
	let robot_keys = DeviceKeys::dev("demo/robot");
	let charger = device(&chain, &alice, &charger_keys, "charger").await;
	let robot = device(&chain, &bob, &robot_keys, "robot").await;

	let now = std::time::SystemTime::now()
		.duration_since(std::time::UNIX_EPOCH)
		.expect("clock")
		.as_millis() as u64;
	let authorization = TransferWithAuthorization {
		from: robot_keys.evm_address(),
		to: charger_keys.evm_address(),
		value: U256::from(150_000u64), // 0.15 USDT
		valid_after: U256::from(now / 1000 - 600),
		valid_before: U256::from(now / 1000 + 300),
		nonce: H256(m2m_primitives::blake2_256(&now.to_le_bytes())),
	};
	let domain = domain_separator(b"Tether USD", b"1", usdt().chain_id, usdt().token);
	let signature = robot_keys.evm.sign_authorization(&authorization, &domain);
	let receipt = ReceiptInput {
		payee: charger,
		asset: Static(usdt()),
		proof: PaymentProof::Exact {
			authorization: Static(authorization),
			signature: Static(signature),
		},
		settlement_tx: H256::zero(),
		resource: H256(m2m_primitives::blake2_256(b"/charge/kwh")),
		request_count: 1,
		period_start: now - 60_000,
		period_end: now,
	};
	let id = chain.record_receipt(&alice, receipt).await.expect("receipt");
	println!("  robot paid charger 0.15 USDT: receipt {id:?} recorded on-chain");

	let day = 86_400_000;
	for (who, owner) in [("alice", &alice), ("bob", &bob)] {
		let summary =
			chain.owner_summary(&owner.public_key().into(), now - day, now).await.expect("summary");
		for (asset, t) in summary.totals {
			println!(
				"  owner {who:<5} today on chain {}: spent {:>8} earned {:>8} (payments out {}, in {})",
				asset.0.chain_id, t.spent, t.earned, t.payments_made, t.payments_received
			);
		}
	}
	let page = chain.device_receipts(robot, now - day, now, None, 5).await.expect("receipts");
	println!("  robot's latest receipts (of {} today):", page.receipts.len());
	for (id, role, r) in page.receipts.iter().rev().take(5) {
		println!("    {id:?} {role:?} amount {} to device #{}", r.amount, r.payee);
	}
}
