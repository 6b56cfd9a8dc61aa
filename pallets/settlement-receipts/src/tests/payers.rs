//! A payer need not be a device: browsers and other companies' agents pay too.

use super::*;
use frame_support::assert_ok;

#[test]
fn a_payer_that_is_not_a_device_is_recorded_by_address() {
	test(|| {
		let f = fleet();
		let browser = DeviceKeys::new(77); // an EVM key only: never registered
		let input = receipt_in(local_usdt(), &browser, &f.a, f.a_id, 90, 1, NOW);
		mark_settled(&input);
		assert_ok!(SettlementReceipts::record_receipt(
			signed_by_device(&f.a),
			Box::new(input.clone())
		));

		let stored = Receipts::<Test>::get(id_of(&input)).unwrap();
		assert_eq!(
			(stored.payer, stored.payer_device, stored.payer_owner, stored.evidence),
			(browser.evm_address(), None, None, Evidence::Proven)
		);
		assert_eq!(PayerTotals::<Test>::get(browser.evm_address(), local_usdt()).proven.spent, 90);
		assert_eq!(DeviceTotals::<Test>::get(f.a_id, local_usdt()).proven.earned, 90);
		let page = crate::queries::device_receipts::<Test>(f.a_id, 0, u64::MAX, None, 10).unwrap();
		assert_eq!(page.receipts.len(), 1);
		assert_eq!(page.receipts[0].2.payer, browser.evm_address());
	});
}

#[test]
fn a_signed_only_receipt_from_an_outside_payer_is_recorded_as_signed_only() {
	test(|| {
		let f = fleet();
		let agent = DeviceKeys::new(78);
		let input = receipt(&agent, &f.a, f.a_id, 3, 2, NOW);
		assert_ok!(SettlementReceipts::record_receipt(
			signed_by_device(&f.a),
			Box::new(input.clone())
		));
		let stored = Receipts::<Test>::get(id_of(&input)).unwrap();
		assert_eq!((stored.payer_device, stored.evidence), (None, Evidence::SignedOnly));
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), usdt()), earned(3));
	});
}

#[test]
fn a_payer_device_is_named_when_one_is_registered() {
	test(|| {
		let f = fleet();
		let input = receipt(&f.b, &f.a, f.a_id, 3, 2, NOW);
		assert_ok!(SettlementReceipts::record_receipt(
			signed_by_device(&f.a),
			Box::new(input.clone())
		));
		let stored = Receipts::<Test>::get(id_of(&input)).unwrap();
		assert_eq!(
			(stored.payer, stored.payer_device, stored.payer_owner),
			(f.b.evm_address(), Some(f.b_id), Some(account(OWNER_B)))
		);
		assert_eq!(DeviceTotals::<Test>::get(f.b_id, usdt()).signed_only.spent, 3);
	});
}
