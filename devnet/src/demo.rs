//! One machine-to-machine payment, end to end, on a running testnet: a robot pays a charger
//! 0.15 USDT with a signed EIP-3009 authorization, the charger settles it on the EVM side and
//! records a receipt that the chain verifies against the token, and both owners read their
//! accounting back. DEV keys only: Alice owns the charger, Bob the robot.

use anyhow::{Context, Result};
use m2m_chain_client::{ChainClient, DeviceKeys, ReceiptInput};
use m2m_evm::{
	alloy::primitives::U256,
	usdt::{self, USDT},
};
use m2m_primitives::H256;
use subxt_signer::sr25519::{dev as sr_dev, Keypair};

use crate::{
	device_keys, evm_signer, fund, sign_payment, to_address, Endpoints, SignedPayment, NATIVE_UNIT,
};

/// 0.15 USDT.
const PRICE: u64 = 150_000;
const DAY_MS: u64 = 86_400_000;

async fn ensure_registered(
	chain: &ChainClient,
	owner: &Keypair,
	keys: &DeviceKeys,
	name: &str,
) -> Result<u64> {
	if let Some(id) = chain.device_by_account(&keys.account_id()).await? {
		println!("  {name:<8} device #{id} (already registered)");
		return Ok(id);
	}
	let id =
		chain.register_device(owner, keys).await.with_context(|| format!("registering {name}"))?;
	println!("  {name:<8} device #{id} registered, EVM {}", to_address(keys.evm_address()));
	Ok(id)
}

fn now_ms() -> u64 {
	std::time::SystemTime::now()
		.duration_since(std::time::UNIX_EPOCH)
		.expect("clock after 1970")
		.as_millis() as u64
}

pub async fn run(endpoints: &Endpoints) -> Result<()> {
	let token = crate::deploy_usdt(endpoints).await?;
	println!(
		"  USDT at {} on EVM chain {} (EIP-712 domain {:?} v{})",
		token.address, token.domain.chain_id, token.domain.name, token.domain.version
	);
	let chain = ChainClient::connect(&endpoints.node).await?;
	let (charger_keys, robot_keys) = (device_keys("charger"), device_keys("robot"));
	let robot_evm = m2m_evm::connect(&endpoints.eth_rpc, Some(evm_signer(&robot_keys)))?;
	let robot_usdt = USDT::new(token.address, &robot_evm)
		.balanceOf(to_address(robot_keys.evm_address()))
		.call()
		.await?;
	if robot_usdt < U256::from(PRICE)
		|| chain.free_balance(charger_keys.account_id()).await? < NATIVE_UNIT
	{
		fund(
			endpoints,
			&["charger".into(), "robot".into()],
			10 * NATIVE_UNIT,
			U256::from(100 * usdt::UNIT),
		)
		.await?;
		println!("  funded charger and robot (native for fees and gas, 100 USDT each)");
	}
	let charger = ensure_registered(&chain, &sr_dev::alice(), &charger_keys, "charger").await?;
	let robot = ensure_registered(&chain, &sr_dev::bob(), &robot_keys, "robot").await?;

	// The robot authorizes the payment off-chain; it never sends a transaction itself.
	let now = now_ms();
	let nonce = H256(m2m_primitives::blake2_256(&[&now.to_le_bytes()[..], b"demo"].concat()));
	let SignedPayment { settlement, receipt } =
		sign_payment(&token, &robot_keys, &charger_keys, charger, PRICE, now, nonce);
	let receipt =
		ReceiptInput { resource: H256(m2m_primitives::blake2_256(b"/charge/kwh")), ..receipt };

	// A receipt for money that has not moved is refused: the chain asks the token.
	let early = chain.record_receipt(&charger_keys.account, receipt.clone()).await;
	match early.as_ref().err().and_then(|e| e.pallet_error()) {
		Some(("SettlementReceipts", "NotSettled")) => {
			println!("  a receipt before settlement is refused: SettlementReceipts::NotSettled")
		},
		_ => anyhow::bail!("expected NotSettled before settlement, got {early:?}"),
	}

	// The charger settles: it submits the authorization and pays the gas.
	let charger_evm = m2m_evm::connect(&endpoints.eth_rpc, Some(evm_signer(&charger_keys)))?;
	let tx = settlement
		.submit(token.address, &charger_evm)
		.await
		.context("settling with transferWithAuthorization")?;
	println!("  robot paid charger {}: EVM tx {tx}", crate::usdt_amount(U256::from(PRICE)));

	let receipt = ReceiptInput { settlement_tx: H256(tx.0), ..receipt };
	let id = chain.record_receipt(&charger_keys.account, receipt).await?;
	let stored = chain.receipt(id).await?.context("receipt body")?;
	println!("  receipt {id:?} recorded on-chain ({})", evidence(&stored.evidence));

	for (who, owner) in [("alice", sr_dev::alice()), ("bob", sr_dev::bob())] {
		let summary = chain.owner_summary(&owner.public_key().into(), now - DAY_MS, now).await?;
		for (asset, t) in summary.totals {
			for (kind, f) in [("proven", &t.proven), ("signed-only", &t.signed_only)] {
				if f.payments_made + f.payments_received == 0 {
					continue;
				}
				println!(
					"  owner {who:<5} today, token {:?}, {kind}: spent {} earned {} (payments out {}, in {})",
					asset.0.token,
					crate::usdt_amount(U256::from(f.spent)),
					crate::usdt_amount(U256::from(f.earned)),
					f.payments_made,
					f.payments_received
				);
			}
		}
	}
	let page = chain.device_receipts(robot, now - DAY_MS, now, None, 100).await?;
	println!("  robot's receipts today: {}", page.receipts.len());
	for (id, role, r) in page.receipts.iter().rev().take(3) {
		println!(
			"    {id:?} {role:?} {} to device #{} ({})",
			crate::usdt_amount(U256::from(r.amount)),
			r.payee,
			evidence(&r.evidence)
		);
	}
	Ok(())
}

fn evidence(e: &m2m_chain_client::Evidence) -> &'static str {
	match e {
		m2m_chain_client::Evidence::Proven => "proven: the token executed exactly this payment",
		m2m_chain_client::Evidence::SignedOnly => "signed-only",
	}
}
