//! The dev node end to end: real process, real RPC (subxt), real signatures.

use m2m_chain_client::{
	ChainClient, ChainError, DeviceKeys, Evidence, PaymentProof, ReceiptInput, Role,
	SettlementCheck,
};
use m2m_e2e_tests::{now_ms, Node};
use m2m_primitives::{
	eip712::{domain_separator, TransferWithAuthorization},
	receipt::{exact_receipt_id, AssetKey},
	H160, H256, U256,
};
use subxt::utils::Static;
use subxt_signer::sr25519::dev;

/// The test asset: a USDT-like token on EVM chain 9990.
fn usdt() -> AssetKey {
	AssetKey { chain_id: 9990, token: H160::repeat_byte(0x55) }
}

fn usdt_domain() -> H256 {
	domain_separator(b"Tether USD", b"1", usdt().chain_id, usdt().token)
}

/// A receipt for `payer` paying `payee` `value`, signed by `signer_keys` (the payer, unless a
/// forgery is wanted).
fn receipt(
	payer: &DeviceKeys,
	signer_keys: &DeviceKeys,
	payee: &DeviceKeys,
	payee_id: u64,
	value: u64,
	nonce: u8,
) -> (ReceiptInput, H256) {
	let now = now_ms();
	let authorization = TransferWithAuthorization {
		from: payer.evm_address(),
		to: payee.evm_address(),
		value: U256::from(value),
		valid_after: U256::from(now / 1000 - 600),
		valid_before: U256::from(now / 1000 + 60),
		nonce: H256::repeat_byte(nonce),
	};
	let signature = signer_keys.evm.sign_authorization(&authorization, &usdt_domain());
	let id = exact_receipt_id(&usdt(), &authorization.from, &authorization.nonce);
	let input = ReceiptInput {
		payee: payee_id,
		asset: Static(usdt()),
		proof: PaymentProof::Exact {
			authorization: Static(authorization),
			signature: Static(signature),
		},
		settlement_tx: H256::repeat_byte(0xAB),
		resource: H256::repeat_byte(0xCD),
		request_count: 3,
		period_start: now - 1_000,
		period_end: now,
	};
	(input, id)
}

fn assert_refused(result: Result<impl std::fmt::Debug, ChainError>, pallet: &str, error: &str) {
	match result {
		Err(e) => assert_eq!(e.pallet_error(), Some((pallet, error)), "unexpected error: {e}"),
		Ok(v) => panic!("expected {pallet}::{error}, got Ok({v:?})"),
	}
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_register_and_receipts_round_trip_through_the_runtime_api() {
	let node = Node::dev();
	let chain = ChainClient::connect(&node.ws_url).await.expect("connects to the dev node");
	let (alice, bob) = (dev::alice(), dev::bob());

	chain
		.register_asset_sudo(
			&alice,
			usdt(),
			"Tether USD",
			"1",
			6,
			"USDT",
			SettlementCheck::SignedOnly,
		)
		.await
		.expect("sudo registers the asset");

	// Owner Alice's charger sells; owner Bob's robot buys.
	let charger = DeviceKeys::dev("e2e/charger");
	let robot = DeviceKeys::dev("e2e/robot");
	let charger_id = chain.register_device(&alice, &charger).await.expect("charger registers");
	let robot_id = chain.register_device(&bob, &robot).await.expect("robot registers");
	assert_ne!(charger_id, robot_id);
	assert_eq!(chain.device_by_evm(charger.evm_address()).await.unwrap(), Some(charger_id));
	assert_eq!(chain.device_by_peer(robot.peer_id()).await.unwrap(), Some(robot_id));
	assert_eq!(chain.device_by_account(&charger.account_id()).await.unwrap(), Some(charger_id));
	assert_eq!(
		chain.devices_of_owner(&alice.public_key().into(), None, 10).await.unwrap(),
		vec![charger_id]
	);

	// Registering the same keys again is refused; a proof for another owner does not verify.
	assert_refused(chain.register_device(&alice, &charger).await, "DeviceIdentity", "AccountInUse");
	let squatted = DeviceKeys::dev("e2e/squatted");
	let stolen_proof =
		squatted.registration_proof(&chain.genesis_hash(), &alice.public_key().into(), 0);
	let squat = m2m_chain_client::runtime::tx().device_identity().register(
		squatted.account_id(),
		squatted.evm_address(),
		squatted.peer_id_bounded(),
		stolen_proof,
	);
	assert_refused(
		chain.submit(&squat, &bob).await.map(|_| ()),
		"DeviceIdentity",
		"BadAccountProof",
	);

	// The charger records the robot's payment, signed by the robot's EVM key. Alice (its owner)
	// submits: devices without native tokens can leave this to their owner.
	let (paid, id) = receipt(&robot, &robot, &charger, charger_id, 250_000, 1);
	assert_eq!(chain.record_receipt(&alice, paid.clone()).await.expect("receipt recorded"), id);
	assert!(chain.is_recorded(id).await.unwrap());
	let stored = chain.receipt(id).await.unwrap().expect("receipt body");
	assert_eq!(
		(stored.payer, stored.payer_device, stored.payee, stored.amount),
		(robot.evm_address(), Some(robot_id), charger_id, 250_000)
	);
	assert_eq!(stored.evidence, Evidence::SignedOnly, "a token elsewhere proves nothing here");

	// A replay of the same payment is refused, however it is relabelled.
	assert_refused(
		chain.record_receipt(&alice, paid).await,
		"SettlementReceipts",
		"DuplicateReceipt",
	);
	// A receipt signed by someone other than the payer is refused.
	let (forged, _) = receipt(&robot, &charger, &charger, charger_id, 999_999, 2);
	assert_refused(
		chain.record_receipt(&alice, forged).await,
		"SettlementReceipts",
		"InvalidSignature",
	);

	// A batch with a duplicate records only the new payment.
	let (again, _) = receipt(&robot, &robot, &charger, charger_id, 250_000, 1);
	let (second, second_id) = receipt(&robot, &robot, &charger, charger_id, 50_000, 3);
	assert_eq!(
		chain.record_receipts(&alice, vec![again, second]).await.unwrap().0,
		vec![second_id]
	);

	// Fleet accounting, read back through the runtime API.
	let now = now_ms();
	let alice_summary =
		chain.owner_summary(&alice.public_key().into(), now - 60_000, now).await.unwrap();
	assert_eq!(alice_summary.totals.len(), 1);
	let (asset, totals) = &alice_summary.totals[0];
	assert_eq!(asset.0, usdt());
	let earned = &totals.signed_only;
	assert_eq!((earned.earned, earned.payments_received, earned.requests_sold), (300_000, 2, 6));
	assert_eq!((totals.proven.earned, totals.proven.payments_received), (0, 0));
	assert_eq!(
		alice_summary.devices.iter().map(|(d, _, _)| *d).collect::<Vec<_>>(),
		vec![charger_id]
	);
	let bob_summary =
		chain.owner_summary(&bob.public_key().into(), now - 60_000, now).await.unwrap();
	assert_eq!(
		(
			bob_summary.totals[0].1.signed_only.spent,
			bob_summary.totals[0].1.signed_only.payments_made
		),
		(300_000, 2)
	);

	let page = chain.device_receipts(robot_id, now - 60_000, now, None, 10).await.unwrap();
	assert_eq!(page.receipts.len(), 2);
	assert!(page.receipts.iter().all(|(_, role, _)| *role == Role::Payer));
	let device = chain.device_summary(charger_id, now - 60_000, now).await.unwrap();
	assert_eq!(device.totals[0].1.signed_only.earned, 300_000);

	// Out-of-range queries get a precise refusal.
	match chain.owner_summary(&alice.public_key().into(), now, now - 1).await {
		Err(ChainError::Query(reason)) => assert!(reason.contains("InvalidRange"), "{reason}"),
		other => panic!("expected InvalidRange, got {other:?}", other = other.map(|_| ())),
	}
	drop(node);
}
