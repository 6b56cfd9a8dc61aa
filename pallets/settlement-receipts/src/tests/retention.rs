use super::*;
use frame_support::{assert_noop, assert_ok, dispatch::Pays, traits::Get, weights::Weight};

#[test]
fn bodies_go_after_retention_and_aggregates_stay() {
	test(|| {
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
		assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()), earned(10));
		assert_eq!(
			crate::queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW, None, 10)
				.unwrap()
				.totals,
			vec![(usdt(), earned(10))]
		);
		assert_eq!(events().last(), Some(&Event::ReceiptsPruned { count: 1 }));
		assert_noop!(
			SettlementReceipts::prune_receipts(RuntimeOrigin::signed(account(OWNER_B)), ids),
			Error::<Test>::UnknownReceipt
		);
	});
}

#[test]
fn the_chain_removes_expired_bodies_itself_oldest_first_within_the_spare_weight() {
	use frame_support::traits::Hooks;
	test(|| {
		let f = fleet();
		let mut ids = Vec::new();
		for n in 0..3u8 {
			Timestamp::set_timestamp(NOW + n as u64);
			let input = receipt(&f.b, &f.a, f.a_id, 10, n + 1, NOW);
			ids.push(id_of(&input));
			assert_ok!(SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input)));
		}
		// Young bodies stay, whatever the spare weight.
		Timestamp::set_timestamp(NOW + RETENTION_MS - 1);
		SettlementReceipts::on_idle(2, Weight::MAX);
		assert_eq!(Receipts::<Test>::iter().count(), 3);

		// Past retention, a block with room for one removal takes the oldest only.
		Timestamp::set_timestamp(NOW + RETENTION_MS + 10);
		let one = <<Test as frame_system::Config>::DbWeight as Get<
			frame_support::weights::RuntimeDbWeight,
		>>::get()
		.reads(2) + <() as crate::WeightInfo>::prune_receipts(1);
		SettlementReceipts::on_idle(3, one);
		assert!(!Receipts::<Test>::contains_key(ids[0]));
		assert!(Receipts::<Test>::contains_key(ids[1]));
		assert_eq!(events().last(), Some(&Event::ReceiptsPruned { count: 1 }));

		SettlementReceipts::on_idle(4, Weight::MAX);
		assert_eq!(Receipts::<Test>::iter().count(), 0);
		assert_eq!(Expiries::<Test>::iter().count(), 0);
		assert_eq!(DeviceReceipts::<Test>::iter_prefix(f.a_id).count(), 0);
		// Aggregates and the duplicate guard stay.
		assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()).signed_only.earned, 30);
		assert!(ids.iter().all(Recorded::<Test>::contains_key));
	});
}
