use super::*;
use frame_support::{assert_noop, assert_ok};

#[test]
fn skips_duplicates_and_records_the_rest() {
	test(|| {
		let f = fleet();
		let first = receipt(&f.b, &f.a, f.a_id, 10, 1, NOW);
		assert_ok!(SettlementReceipts::record_receipt(
			signed_by_device(&f.a),
			Box::new(first.clone())
		));
		let second = receipt(&f.b, &f.a, f.a_id, 20, 2, NOW);
		let outside = DeviceKeys::new(90);
		let third = receipt(&outside, &f.a, f.a_id, 30, 3, NOW);
		assert_ok!(SettlementReceipts::record_receipts(
			signed_by_device(&f.a),
			vec![first.clone(), second.clone(), third.clone()].try_into().unwrap()
		));
		assert!(events().contains(&Event::DuplicateReceiptSkipped { id: id_of(&first) }));
		assert!(Receipts::<Test>::contains_key(id_of(&second)));
		assert!(Receipts::<Test>::contains_key(id_of(&third)));
		assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()).signed_only.earned, 60);
		assert_eq!(
			AssetTotals::<Test>::get(usdt()).signed_only,
			Volume { amount: 60, receipts: 3 }
		);
	});
}

#[test]
fn one_invalid_receipt_fails_the_whole_batch() {
	test(|| {
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
		assert!(
			BoundedVec::<ReceiptInput, <Test as Config>::MaxBatchSize>::try_from(too_many).is_err()
		);
	});
}
