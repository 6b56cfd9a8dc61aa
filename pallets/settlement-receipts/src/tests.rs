use crate::{mock::*, runtime_api::QueryError, *};
use frame_support::{assert_noop, assert_ok, dispatch::Pays};
use m2m_primitives::{
	eip712::domain_separator,
	receipt::{day_of, exact_receipt_id},
	H160, U256,
};
use sp_runtime::DispatchError;

struct Fleet {
	a: DeviceKeys,
	a_id: DeviceId,
	b: DeviceKeys,
	b_id: DeviceId,
	c: DeviceKeys,
	c_id: DeviceId,
}

/// Devices a and c belong to owner A, device b to owner B.
fn fleet() -> Fleet {
	let (a, b, c) = (DeviceKeys::new(1), DeviceKeys::new(2), DeviceKeys::new(3));
	let a_id = register(OWNER_A, &a);
	let b_id = register(OWNER_B, &b);
	let c_id = register(OWNER_A, &c);
	Fleet { a, a_id, b, b_id, c, c_id }
}

fn signed_by_device(keys: &DeviceKeys) -> RuntimeOrigin {
	RuntimeOrigin::signed(keys.account_id())
}

fn events() -> Vec<Event<Test>> {
	System::events()
		.into_iter()
		.filter_map(|r| match r.event {
			RuntimeEvent::SettlementReceipts(e) => Some(e),
			_ => None,
		})
		.collect()
}

fn id_of(input: &ReceiptInput) -> ReceiptId {
	let PaymentProof::Exact { authorization, .. } = &input.proof;
	exact_receipt_id(&input.asset, &authorization.from, &authorization.nonce)
}

mod record {
	use super::*;

	#[test]
	fn a_local_asset_receipt_is_refused_until_the_token_reports_the_authorization_used() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			let input = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 7, 3, NOW);
			assert_noop!(
				SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input.clone())),
				Error::<Test>::NotSettled
			);

			mark_settled(f.b.evm_address(), H256::repeat_byte(3));
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(input.clone())
			));
			let stored = Receipts::<Test>::get(id_of(&input)).unwrap();
			assert!(stored.settled_on_chain);
			assert!(matches!(
				events().last(),
				Some(Event::ReceiptRecorded { settled_on_chain: true, amount: 7, .. })
			));
		});
	}

	#[test]
	fn a_local_token_that_cannot_answer_is_an_error_not_a_pass() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			mark_settled(f.b.evm_address(), H256::repeat_byte(4));
			assert_noop!(
				SettlementReceipts::record_receipt(
					signed_by_device(&f.a),
					Box::new(receipt_in(broken_local_token(), &f.b, &f.a, f.a_id, 7, 4, NOW))
				),
				Error::<Test>::SettlementUnverifiable
			);
		});
	}

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
		let three = crate::Call::<Test>::record_receipts {
			receipts: vec![f(), f(), f()].try_into().unwrap(),
		};
		assert_eq!(
			three.get_dispatch_info().call_weight,
			<() as crate::WeightInfo>::record_receipts(3) + CHECK_WEIGHT * 3
		);
	}

	#[test]
	fn a_valid_receipt_updates_every_index_and_total() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			let input = receipt(&f.b, &f.a, f.a_id, 250_000, 1, NOW);
			let id = id_of(&input);
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(input.clone())
			));

			let stored = Receipts::<Test>::get(id).unwrap();
			assert_eq!((stored.payer, stored.payee, stored.amount), (f.b_id, f.a_id, 250_000));
			assert_eq!(
				(stored.payer_owner.clone(), stored.payee_owner.clone()),
				(account(OWNER_B), account(OWNER_A))
			);
			assert_eq!(stored.recorded_at, NOW);
			assert_eq!(Recorded::<Test>::get(id), Some(day_of(NOW)));

			let key = (NOW.to_be_bytes(), id);
			assert_eq!(DeviceReceipts::<Test>::get(f.b_id, key), Some(Role::Payer));
			assert_eq!(DeviceReceipts::<Test>::get(f.a_id, key), Some(Role::Payee));

			let spent = DeviceTotals::<Test>::get(f.b_id, usdt());
			assert_eq!((spent.spent, spent.payments_made, spent.requests_bought), (250_000, 1, 1));
			let earned = DeviceTotals::<Test>::get(f.a_id, usdt());
			assert_eq!(
				(earned.earned, earned.payments_received, earned.requests_sold),
				(250_000, 1, 1)
			);
			assert_eq!(OwnerTotals::<Test>::get(account(OWNER_B), usdt()).spent, 250_000);
			assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), usdt()).earned, 250_000);
			assert_eq!(DeviceDaily::<Test>::get((f.a_id, day_of(NOW), usdt())).earned, 250_000);
			assert_eq!(
				OwnerDaily::<Test>::get((account(OWNER_A), day_of(NOW), f.a_id, usdt())).earned,
				250_000
			);
			assert_eq!(AssetTotals::<Test>::get(usdt()), (250_000, 1));
			assert_eq!(
				events().last(),
				Some(&Event::ReceiptRecorded {
					id,
					payer: f.b_id,
					payee: f.a_id,
					asset: usdt(),
					amount: 250_000,
					settlement_tx: input.settlement_tx,
					settled_on_chain: false,
				})
			);
			assert!(!stored.settled_on_chain, "an asset on another chain is payer-signed only");
		});
	}

	#[test]
	fn the_payee_owner_may_record_but_nobody_else() {
		new_test_ext().execute_with(|| {
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
		new_test_ext().execute_with(|| {
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
		new_test_ext().execute_with(|| {
			let f = fleet();
			// Signed by someone else's key.
			let mut forged = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
			let (_, other_signature) = authorize(&f.c, f.a.evm_address(), 5, 1, &usdt_domain());
			let PaymentProof::Exact { signature, .. } = &mut forged.proof;
			*signature = other_signature;
			assert_noop!(
				SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(forged)),
				Error::<Test>::InvalidSignature
			);
			// Signed by the payer, but for another token domain.
			let wrong_domain = domain_separator(b"USD Coin", b"2", usdt().chain_id, usdt().token);
			let (authorization, signature) =
				authorize(&f.b, f.a.evm_address(), 5, 2, &wrong_domain);
			let mut input = receipt(&f.b, &f.a, f.a_id, 5, 2, NOW);
			input.proof = PaymentProof::Exact { authorization, signature };
			assert_noop!(
				SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)),
				Error::<Test>::InvalidSignature
			);
			// The amount was changed after signing.
			let mut inflated = receipt(&f.b, &f.a, f.a_id, 5, 3, NOW);
			let PaymentProof::Exact { authorization, .. } = &mut inflated.proof;
			authorization.value = U256::from(5_000_000u64);
			assert_noop!(
				SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(inflated)),
				Error::<Test>::InvalidSignature
			);
			// A malformed recovery id.
			let mut malformed = receipt(&f.b, &f.a, f.a_id, 5, 4, NOW);
			let PaymentProof::Exact { signature, .. } = &mut malformed.proof;
			signature.0[64] = 9;
			assert_noop!(
				SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(malformed)),
				Error::<Test>::InvalidSignature
			);
			// Ethereum-style v (27/28) is fine.
			let mut eth_v = receipt(&f.b, &f.a, f.a_id, 5, 5, NOW);
			let PaymentProof::Exact { signature, .. } = &mut eth_v.proof;
			signature.0[64] += 27;
			assert_ok!(SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(eth_v)));
		});
	}

	#[test]
	fn parties_are_checked() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			// The payer paid device c, but device a claims the receipt.
			let (authorization, signature) =
				authorize(&f.b, f.c.evm_address(), 5, 1, &usdt_domain());
			let mut input = receipt(&f.b, &f.a, f.a_id, 5, 1, NOW);
			input.proof = PaymentProof::Exact { authorization, signature };
			assert_noop!(
				SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)),
				Error::<Test>::RecipientMismatch
			);
			let stranger = DeviceKeys::new(77);
			assert_noop!(
				SettlementReceipts::record_receipt(
					signed_by_device(&f.a),
					Box::new(receipt(&stranger, &f.a, f.a_id, 5, 1, NOW))
				),
				Error::<Test>::PayerNotRegistered
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
		new_test_ext().execute_with(|| {
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
		new_test_ext().execute_with(|| {
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
}

mod batch {
	use super::*;

	#[test]
	fn skips_duplicates_and_records_the_rest() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			let first = receipt(&f.b, &f.a, f.a_id, 10, 1, NOW);
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(first.clone())
			));
			let second = receipt(&f.b, &f.a, f.a_id, 20, 2, NOW);
			let third = receipt(&f.c, &f.a, f.a_id, 30, 3, NOW);
			assert_ok!(SettlementReceipts::record_receipts(
				signed_by_device(&f.a),
				vec![first.clone(), second.clone(), third.clone()].try_into().unwrap()
			));
			assert!(events().contains(&Event::DuplicateReceiptSkipped { id: id_of(&first) }));
			assert!(Receipts::<Test>::contains_key(id_of(&second)));
			assert!(Receipts::<Test>::contains_key(id_of(&third)));
			assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()).earned, 60);
			assert_eq!(AssetTotals::<Test>::get(usdt()), (60, 3));
		});
	}

	#[test]
	fn one_invalid_receipt_fails_the_whole_batch() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			let good = receipt(&f.b, &f.a, f.a_id, 10, 1, NOW);
			let mut bad = receipt(&f.b, &f.a, f.a_id, 10, 2, NOW);
			bad.request_count = 0;
			assert_noop!(
				SettlementReceipts::record_receipts(
					signed_by_device(&f.a),
					vec![good.clone(), bad].try_into().unwrap()
				),
				Error::<Test>::ZeroRequests
			);
			assert!(!Recorded::<Test>::contains_key(id_of(&good)));
			assert_noop!(
				SettlementReceipts::record_receipts(signed_by_device(&f.a), Default::default()),
				Error::<Test>::EmptyBatch
			);
			let too_many: Vec<_> =
				(0..=MAX_BATCH as u8).map(|n| receipt(&f.b, &f.a, f.a_id, 1, n, NOW)).collect();
			assert!(BoundedVec::<ReceiptInput, <Test as Config>::MaxBatchSize>::try_from(too_many)
				.is_err());
		});
	}
}

mod admin {
	use super::*;

	#[test]
	fn the_asset_registry_is_privileged_and_bounded() {
		new_test_ext().execute_with(|| {
			let usdc = AssetKey { chain_id: 84532, token: H160::repeat_byte(3) };
			assert_noop!(
				SettlementReceipts::register_asset(
					RuntimeOrigin::signed(account(OWNER_A)),
					usdc,
					b"USDC".to_vec(),
					b"2".to_vec(),
					6,
					b"USDC".to_vec()
				),
				DispatchError::BadOrigin
			);
			assert_noop!(
				SettlementReceipts::register_asset(
					RuntimeOrigin::root(),
					usdc,
					vec![b'n'; 65],
					b"2".to_vec(),
					6,
					b"USDC".to_vec()
				),
				Error::<Test>::AssetLabelTooLong
			);
			assert_ok!(SettlementReceipts::register_asset(
				RuntimeOrigin::root(),
				usdc,
				b"USDC".to_vec(),
				b"2".to_vec(),
				6,
				b"USDC".to_vec()
			));
			let expected = domain_separator(b"USDC", b"2", 84532, H160::repeat_byte(3));
			assert_eq!(Assets::<Test>::get(usdc).unwrap().domain_separator, expected);
			assert_eq!(
				events().last(),
				Some(&Event::AssetRegistered { asset: usdc, domain_separator: expected })
			);
			assert_noop!(
				SettlementReceipts::set_asset_enabled(
					RuntimeOrigin::root(),
					AssetKey { chain_id: 1, token: H160::zero() },
					false
				),
				Error::<Test>::UnknownAsset
			);
			assert_noop!(
				SettlementReceipts::set_asset_enabled(
					RuntimeOrigin::signed(account(OWNER_A)),
					usdc,
					false
				),
				DispatchError::BadOrigin
			);
		});
	}

	#[test]
	fn genesis_registers_assets_with_their_domain() {
		new_test_ext().execute_with(|| {
			let info = Assets::<Test>::get(usdt()).unwrap();
			assert_eq!(info.domain_separator, usdt_domain());
			assert_eq!(
				(info.decimals, info.symbol.to_vec(), info.enabled),
				(6, b"USDT".to_vec(), true)
			);
			assert_eq!(RetentionPeriod::<Test>::get(), RETENTION_MS);
		});
	}

	#[test]
	fn retention_is_configurable() {
		new_test_ext().execute_with(|| {
			assert_noop!(
				SettlementReceipts::set_retention_period(
					RuntimeOrigin::signed(account(OWNER_A)),
					5
				),
				DispatchError::BadOrigin
			);
			assert_ok!(SettlementReceipts::set_retention_period(RuntimeOrigin::root(), 5));
			assert_eq!(RetentionPeriod::<Test>::get(), 5);
		});
	}
}

mod pruning {
	use super::*;

	#[test]
	fn bodies_go_after_retention_and_aggregates_stay() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			let input = receipt(&f.b, &f.a, f.a_id, 10, 1, NOW);
			let id = id_of(&input);
			assert_ok!(SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)));
			let ids: BoundedVec<_, _> = vec![id].try_into().unwrap();

			Timestamp::set_timestamp(NOW + RETENTION_MS - 1);
			assert_noop!(
				SettlementReceipts::prune_receipts(
					RuntimeOrigin::signed(account(OWNER_B)),
					ids.clone()
				),
				Error::<Test>::RetentionNotElapsed
			);
			Timestamp::set_timestamp(NOW + RETENTION_MS);
			let info = SettlementReceipts::prune_receipts(
				RuntimeOrigin::signed(account(OWNER_B)),
				ids.clone(),
			)
			.unwrap();
			assert_eq!(info.pays_fee, Pays::No);
			assert!(!Receipts::<Test>::contains_key(id));
			assert_eq!(DeviceReceipts::<Test>::iter_prefix(f.a_id).count(), 0);
			assert_eq!(DeviceReceipts::<Test>::iter_prefix(f.b_id).count(), 0);
			assert!(Recorded::<Test>::contains_key(id));
			assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()).earned, 10);
			assert_eq!(
				queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW).unwrap().totals,
				vec![(
					usdt(),
					Totals {
						earned: 10,
						payments_received: 1,
						requests_sold: 1,
						..Default::default()
					}
				)]
			);
			assert_eq!(events().last(), Some(&Event::ReceiptsPruned { count: 1 }));
			assert_noop!(
				SettlementReceipts::prune_receipts(RuntimeOrigin::signed(account(OWNER_B)), ids),
				Error::<Test>::UnknownReceipt
			);
		});
	}
}

mod queries_ {
	use super::*;

	#[test]
	fn owner_summaries_read_only_the_requested_days() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			Timestamp::set_timestamp(NOW + 3 * DAY);
			// Day 0: b pays a 10 and c 20. Day 2: b pays a 40. Day 3: a (owner A) pays b 5.
			for (payee, payee_id, value, nonce, at) in [
				(&f.a, f.a_id, 10, 1, NOW),
				(&f.c, f.c_id, 20, 2, NOW),
				(&f.a, f.a_id, 40, 3, NOW + 2 * DAY),
			] {
				assert_ok!(SettlementReceipts::record_receipt(
					signed_by_device(payee),
					Box::new(receipt(&f.b, payee, payee_id, value, nonce, at))
				));
			}
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(&f.b),
				Box::new(receipt(&f.a, &f.b, f.b_id, 5, 4, NOW + 3 * DAY))
			));

			let day0 = queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW).unwrap();
			assert_eq!(day0.from_day, day_of(NOW));
			assert_eq!(day0.totals[0].1.earned, 30);
			assert_eq!(day0.totals[0].1.spent, 0);
			assert_eq!(
				day0.devices.iter().map(|(d, _, t)| (*d, t.earned)).collect::<Vec<_>>(),
				vec![(f.a_id, 10), (f.c_id, 20)]
			);
			let all =
				queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW + 3 * DAY).unwrap();
			assert_eq!((all.totals[0].1.earned, all.totals[0].1.spent), (70, 5));
			assert_eq!((all.totals[0].1.payments_received, all.totals[0].1.payments_made), (3, 1));
			let b = queries::owner_summary::<Test>(&account(OWNER_B), NOW, NOW + 3 * DAY).unwrap();
			assert_eq!((b.totals[0].1.spent, b.totals[0].1.earned), (70, 5));
			let empty =
				queries::owner_summary::<Test>(&account(OWNER_A), NOW + DAY, NOW + DAY).unwrap();
			assert!(empty.totals.is_empty() && empty.devices.is_empty());

			assert_eq!(
				queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW - 1),
				Err(QueryError::InvalidRange)
			);
			assert_eq!(
				queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW + 366 * DAY),
				Err(QueryError::RangeTooLong { max_days: queries::MAX_RANGE_DAYS })
			);

			let device = queries::device_summary::<Test>(f.a_id, NOW, NOW + 3 * DAY).unwrap();
			assert_eq!((device.totals[0].1.earned, device.totals[0].1.spent), (50, 5));
			assert_eq!(
				device
					.daily
					.iter()
					.map(|(d, _, t)| (*d - day_of(NOW), t.earned, t.spent))
					.collect::<Vec<_>>(),
				vec![(0, 10, 0), (2, 40, 0), (3, 0, 5)]
			);
		});
	}

	#[test]
	fn accounting_follows_the_owner_at_the_time() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(receipt(&f.b, &f.a, f.a_id, 10, 1, NOW))
			));
			assert_ok!(DeviceIdentity::offer_transfer(
				RuntimeOrigin::signed(account(OWNER_A)),
				f.a_id,
				account(OWNER_B)
			));
			assert_ok!(DeviceIdentity::accept_transfer(
				RuntimeOrigin::signed(account(OWNER_B)),
				f.a_id
			));
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(&f.a),
				Box::new(receipt(&f.c, &f.a, f.a_id, 7, 2, NOW))
			));
			assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), usdt()).earned, 10);
			assert_eq!(OwnerTotals::<Test>::get(account(OWNER_B), usdt()).earned, 7);
			assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()).earned, 17);
		});
	}

	#[test]
	fn device_receipts_page_in_time_order_within_the_range() {
		new_test_ext().execute_with(|| {
			let f = fleet();
			Timestamp::set_timestamp(NOW + DAY);
			let times = [NOW + 500, NOW, NOW + 2_000, NOW + 1_000, NOW + DAY];
			for (n, at) in times.iter().enumerate() {
				assert_ok!(SettlementReceipts::record_receipt(
					signed_by_device(&f.a),
					Box::new(receipt(&f.b, &f.a, f.a_id, 1 + n as u128, n as u8 + 1, *at))
				));
			}
			let mut seen = Vec::new();
			let mut after = None;
			loop {
				let page =
					queries::device_receipts::<Test>(f.a_id, NOW, NOW + 2_000, after, 2).unwrap();
				assert!(page.receipts.len() <= 2);
				seen.extend(page.receipts.iter().map(|(_, role, r)| (r.period_end, *role)));
				match page.next {
					Some(cursor) => after = Some(cursor),
					None => break,
				}
			}
			assert_eq!(
				seen,
				vec![
					(NOW, Role::Payee),
					(NOW + 500, Role::Payee),
					(NOW + 1_000, Role::Payee),
					(NOW + 2_000, Role::Payee)
				]
			);
			let payer_view =
				queries::device_receipts::<Test>(f.b_id, 0, u64::MAX, None, 100).unwrap();
			assert_eq!(payer_view.receipts.len(), 5);
			assert!(payer_view.receipts.iter().all(|(_, role, _)| *role == Role::Payer));
			assert!(payer_view.next.is_none());
			let later =
				queries::device_receipts::<Test>(f.a_id, NOW + 1_001, u64::MAX, None, 100).unwrap();
			assert_eq!(
				later.receipts.iter().map(|(_, _, r)| r.period_end).collect::<Vec<_>>(),
				vec![NOW + 2_000, NOW + DAY]
			);

			assert_eq!(
				queries::device_receipts::<Test>(f.a_id, NOW, NOW, None, 0),
				Err(QueryError::InvalidPageSize { max: queries::MAX_PAGE })
			);
			assert_eq!(
				queries::device_receipts::<Test>(f.a_id, NOW, NOW, None, queries::MAX_PAGE + 1),
				Err(QueryError::InvalidPageSize { max: queries::MAX_PAGE })
			);
			assert_eq!(
				queries::device_receipts::<Test>(f.a_id, 2, 1, None, 10),
				Err(QueryError::InvalidRange)
			);
		});
	}
}
