use super::*;
use frame_support::{assert_noop, assert_ok};
use sp_runtime::DispatchError;

#[test]
fn the_settlement_check_is_charged_per_receipt() {
	use frame_support::dispatch::GetDispatchInfo;
	let f = || {
		let keys = (DeviceKeys::new(1), DeviceKeys::new(2));
		receipt(&keys.1, &keys.0, 0, 1, 1, NOW)
	};
	let one = crate::Call::<Test>::record_receipt { receipt: Box::new(f()) };
	assert_eq!(
		one.get_dispatch_info().call_weight,
		<() as crate::WeightInfo>::record_receipt() + CHECK_WEIGHT
	);
	let three =
		crate::Call::<Test>::record_receipts { receipts: vec![f(), f(), f()].try_into().unwrap() };
	assert_eq!(
		three.get_dispatch_info().call_weight,
		<() as crate::WeightInfo>::record_receipts(3) + CHECK_WEIGHT * 3
	);
}

#[test]
fn a_valid_receipt_updates_every_index_and_total() {
	test(|| {
		let f = fleet();
		let input = receipt(&f.b, &f.a, f.a_id, 250_000, 1, NOW);
		let id = id_of(&input);
		assert_ok!(SettlementReceipts::record_receipt(
			signed_by_device(&f.a),
			Box::new(input.clone())
		));

		let stored = Receipts::<Test>::get(id).unwrap();
		assert_eq!(
			(stored.payer, stored.payer_device, stored.payee, stored.amount),
			(f.b.evm_address(), Some(f.b_id), f.a_id, 250_000)
		);
		assert_eq!(
			(stored.payer_owner.clone(), stored.payee_owner.clone()),
			(Some(account(OWNER_B)), account(OWNER_A))
		);
		assert_eq!(stored.recorded_at, NOW);
		assert_eq!(Recorded::<Test>::get(id), Some(day_of(NOW)));

		let key = (NOW.to_be_bytes(), id);
		assert_eq!(DeviceReceipts::<Test>::get(f.b_id, key), Some(Role::Payer));
		assert_eq!(DeviceReceipts::<Test>::get(f.a_id, key), Some(Role::Payee));

		let spent = DeviceTotals::<Test>::get(f.b_id, usdt());
		assert_eq!(spent.proven, Flow::default(), "nothing is proven on a signed-only asset");
		let spent = spent.signed_only;
		assert_eq!((spent.spent, spent.payments_made, spent.requests_bought), (250_000, 1, 1));
		let received = DeviceTotals::<Test>::get(f.a_id, usdt()).signed_only;
		assert_eq!(
			(received.earned, received.payments_received, received.requests_sold),
			(250_000, 1, 1)
		);
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_B), usdt()).signed_only.spent, 250_000);
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), usdt()), earned(250_000));
		assert_eq!(DeviceDaily::<Test>::get((f.a_id, day_of(NOW), usdt())), earned(250_000));
		assert_eq!(
			OwnerDaily::<Test>::get((account(OWNER_A), day_of(NOW), usdt())),
			earned(250_000)
		);
		assert_eq!(
			OwnerDeviceDaily::<Test>::get((account(OWNER_A), f.a_id, day_of(NOW), usdt())),
			earned(250_000)
		);
		assert!(OwnerDevices::<Test>::contains_key(account(OWNER_A), f.a_id));
		assert_eq!(PayerTotals::<Test>::get(f.b.evm_address(), usdt()).signed_only.spent, 250_000);
		assert_eq!(
			AssetTotals::<Test>::get(usdt()),
			AssetVolume {
				proven: Volume::default(),
				signed_only: Volume { amount: 250_000, receipts: 1 }
			}
		);
		assert_eq!(
			events().last(),
			Some(&Event::ReceiptRecorded {
				id,
				payer: f.b.evm_address(),
				payer_device: Some(f.b_id),
				payee: f.a_id,
				asset: usdt(),
				amount: 250_000,
				settlement_tx: input.settlement_tx,
				evidence: Evidence::SignedOnly,
			})
		);
		assert_eq!(stored.evidence, Evidence::SignedOnly, "an asset elsewhere is signed only");
	});
}

#[test]
fn the_payee_owner_may_record_but_nobody_else() {
	test(|| {
		let f = fleet();
		assert_noop!(
			SettlementReceipts::record_receipt(
				signed_by_device(&f.b),
				Box::new(receipt(&f.b, &f.a, f.a_id, 1, 1, NOW))
			),
			Error::<Test>::NotPayeeOrOwner
		);
		assert_noop!(
			SettlementReceipts::record_receipt(
				RuntimeOrigin::signed(account(OWNER_B)),
				Box::new(receipt(&f.b, &f.a, f.a_id, 1, 1, NOW))
			),
			Error::<Test>::NotPayeeOrOwner
		);
		assert_ok!(SettlementReceipts::record_receipt(
			RuntimeOrigin::signed(account(OWNER_A)),
			Box::new(receipt(&f.b, &f.a, f.a_id, 1, 1, NOW))
		));
		assert_noop!(
			SettlementReceipts::record_receipt(
				RuntimeOrigin::none(),
				Box::new(receipt(&f.b, &f.a, f.a_id, 1, 2, NOW))
			),
			DispatchError::BadOrigin
		);
	});
}

#[test]
fn a_payment_is_recorded_once_even_after_pruning() {
	test(|| {
		let f = fleet();
		let input = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
		assert_ok!(SettlementReceipts::record_receipt(
			signed_by_device(&f.a),
			Box::new(input.clone())
		));
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input.clone())),
			Error::<Test>::DuplicateReceipt
		);
		// The same authorization described differently is still the same payment.
		let mut relabelled = input.clone();
		relabelled.request_count = 7;
		relabelled.settlement_tx = H256::repeat_byte(0xEE);
		assert_noop!(
			SettlementReceipts::record_receipt(
				RuntimeOrigin::signed(account(OWNER_A)),
				Box::new(relabelled)
			),
			Error::<Test>::DuplicateReceipt
		);
		Timestamp::set_timestamp(NOW + RETENTION_MS);
		assert_ok!(SettlementReceipts::prune_receipts(
			RuntimeOrigin::signed(account(OWNER_B)),
			vec![id_of(&input)].try_into().unwrap()
		));
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)),
			Error::<Test>::DuplicateReceipt
		);
	});
}

#[test]
fn signatures_must_be_the_payers_under_the_assets_domain() {
	test(|| {
		let f = fleet();
		// Signed by someone else's key.
		let mut forged = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
		let (_, other_signature) = authorize(&f.c, f.a.evm_address(), 5, 1, &usdt_domain());
		let PaymentProof::Exact { signature, .. } = &mut forged.proof else { unreachable!() };
		*signature = other_signature;
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(forged)),
			Error::<Test>::InvalidSignature
		);
		// Signed by the payer, but for another token domain.
		let wrong_domain = domain_separator(b"USD Coin", b"2", usdt().chain_id, usdt().token);
		let (authorization, signature) = authorize(&f.b, f.a.evm_address(), 5, 2, &wrong_domain);
		let mut input = receipt(&f.b, &f.a, f.a_id, 5, 2, NOW);
		input.proof = PaymentProof::Exact { authorization, signature };
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)),
			Error::<Test>::InvalidSignature
		);
		// The amount was changed after signing.
		let mut inflated = receipt(&f.b, &f.a, f.a_id, 5, 3, NOW);
		let PaymentProof::Exact { authorization, .. } = &mut inflated.proof else { unreachable!() };
		authorization.value = U256::from(5_000_000u64);
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(inflated)),
			Error::<Test>::InvalidSignature
		);
		// A malformed recovery id.
		let mut malformed = receipt(&f.b, &f.a, f.a_id, 5, 4, NOW);
		let PaymentProof::Exact { signature, .. } = &mut malformed.proof else { unreachable!() };
		signature.0[64] = 9;
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(malformed)),
			Error::<Test>::InvalidSignature
		);
		// Ethereum-style v (27/28) is fine.
		let mut eth_v = receipt(&f.b, &f.a, f.a_id, 5, 5, NOW);
		let PaymentProof::Exact { signature, .. } = &mut eth_v.proof else { unreachable!() };
		signature.0[64] += 27;
		assert_ok!(SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(eth_v)));
	});
}

#[test]
fn parties_are_checked() {
	test(|| {
		let f = fleet();
		// The payer paid device c, but device a claims the receipt.
		let (authorization, signature) = authorize(&f.b, f.c.evm_address(), 5, 1, &usdt_domain());
		let mut input = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
		input.proof = PaymentProof::Exact { authorization, signature };
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)),
			Error::<Test>::RecipientMismatch
		);
		assert_noop!(
			SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(receipt(&f.a, &f.a, f.a_id, 5, 1, NOW))
			),
			Error::<Test>::SelfPayment
		);
		assert_noop!(
			SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(receipt(&f.b, &f.a, 99, 5, 1, NOW))
			),
			Error::<Test>::UnknownPayee
		);
		assert_ok!(DeviceIdentity::suspend(RuntimeOrigin::signed(account(OWNER_A)), f.a_id));
		assert_noop!(
			SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(receipt(&f.b, &f.a, f.a_id, 5, 1, NOW))
			),
			Error::<Test>::PayeeSuspended
		);
	});
}

#[test]
fn assets_must_be_accepted() {
	test(|| {
		let f = fleet();
		let mut input = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
		input.asset.chain_id = 1;
		assert_noop!(
			SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)),
			Error::<Test>::UnknownAsset
		);
		assert_ok!(SettlementReceipts::set_asset_enabled(RuntimeOrigin::root(), usdt(), false));
		assert_noop!(
			SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(receipt(&f.b, &f.a, f.a_id, 5, 1, NOW))
			),
			Error::<Test>::AssetDisabled
		);
	});
}

#[test]
fn amounts_counts_and_periods_are_checked() {
	test(|| {
		let f = fleet();
		let origin = || signed_by_device(&f.a);
		assert_noop!(
			SettlementReceipts::record_receipt(
				origin(),
				Box::new(receipt(&f.b, &f.a, f.a_id, 0, 1, NOW))
			),
			Error::<Test>::ZeroAmount
		);
		let mut zero_requests = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
		zero_requests.request_count = 0;
		assert_noop!(
			SettlementReceipts::record_receipt(origin(), Box::new(zero_requests)),
			Error::<Test>::ZeroRequests
		);
		let mut backwards = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
		backwards.period_start = NOW + 1;
		assert_noop!(
			SettlementReceipts::record_receipt(origin(), Box::new(backwards)),
			Error::<Test>::InvalidPeriod
		);
		assert_noop!(
			SettlementReceipts::record_receipt(
				origin(),
				Box::new(receipt(&f.b, &f.a, f.a_id, 5, 1, NOW + SKEW_MS + 1))
			),
			Error::<Test>::PeriodInFuture
		);
		assert_ok!(SettlementReceipts::record_receipt(
			origin(),
			Box::new(receipt(&f.b, &f.a, f.a_id, 5, 1, NOW + SKEW_MS))
		));
		// Closed days stay closed: a period that ended before the backdating window.
		assert_noop!(
			SettlementReceipts::record_receipt(
				origin(),
				Box::new(receipt(&f.b, &f.a, f.a_id, 5, 3, NOW - BACKDATE_MS - 1))
			),
			Error::<Test>::PeriodClosed
		);
		assert_ok!(SettlementReceipts::record_receipt(
			origin(),
			Box::new(receipt(&f.b, &f.a, f.a_id, 5, 3, NOW - BACKDATE_MS))
		));

		// A value beyond 128 bits, correctly signed, is refused before any arithmetic.
		let (mut authorization, _) = authorize(&f.b, f.a.evm_address(), 1, 2, &usdt_domain());
		authorization.value = U256::from(u128::MAX) + U256::one();
		let signature = pallet_device_identity::testing::evm_sign(
			&f.b.evm,
			&authorization.signing_digest(&usdt_domain()).0,
		);
		let mut huge = receipt(&f.b, &f.a, f.a_id, 5, 2, NOW);
		huge.proof = PaymentProof::Exact { authorization, signature };
		assert_noop!(
			SettlementReceipts::record_receipt(origin(), Box::new(huge)),
			Error::<Test>::AmountTooLarge
		);
	});
}
