use super::*;
use crate::{queries, runtime_api::QueryError};
use frame_support::assert_ok;

#[test]
fn owner_summaries_read_only_the_requested_days() {
	test(|| {
		let f = fleet();
		// Day 0: b pays a 10 and c 20. Day 2: b pays a 40. Day 3: a (owner A) pays b 5.
		for (payee, payee_id, value, nonce, at) in [
			(&f.a, f.a_id, 10, 1, NOW),
			(&f.c, f.c_id, 20, 2, NOW),
			(&f.a, f.a_id, 40, 3, NOW + 2 * DAY),
		] {
			Timestamp::set_timestamp(at);
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(payee),
				Box::new(receipt(&f.b, payee, payee_id, value, nonce, at))
			));
		}
		Timestamp::set_timestamp(NOW + 3 * DAY);
		assert_ok!(SettlementReceipts::record_receipt(
			signed_by_device(&f.b),
			Box::new(receipt(&f.a, &f.b, f.b_id, 5, 4, NOW + 3 * DAY))
		));

		let day0 = queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW, None, 10).unwrap();
		assert_eq!(day0.from_day, day_of(NOW));
		assert_eq!(day0.totals[0].1.signed_only.earned, 30);
		assert_eq!(day0.totals[0].1.signed_only.spent, 0);
		assert_eq!(
			day0.devices.iter().map(|(d, _, t)| (*d, t.signed_only.earned)).collect::<Vec<_>>(),
			vec![(f.a_id, 10), (f.c_id, 20)]
		);
		let all = queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW + 3 * DAY, None, 10)
			.unwrap();
		assert_eq!(
			(all.totals[0].1.signed_only.earned, all.totals[0].1.signed_only.spent),
			(70, 5)
		);
		assert_eq!(
			(
				all.totals[0].1.signed_only.payments_received,
				all.totals[0].1.signed_only.payments_made
			),
			(3, 1)
		);
		let b = queries::owner_summary::<Test>(&account(OWNER_B), NOW, NOW + 3 * DAY, None, 10)
			.unwrap();
		assert_eq!((b.totals[0].1.signed_only.spent, b.totals[0].1.signed_only.earned), (70, 5));
		let empty =
			queries::owner_summary::<Test>(&account(OWNER_A), NOW + DAY, NOW + DAY, None, 10)
				.unwrap();
		assert!(empty.totals.is_empty() && empty.devices.is_empty());

		assert_eq!(
			queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW - 1, None, 10),
			Err(QueryError::InvalidRange)
		);
		assert_eq!(
			queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW + 366 * DAY, None, 10),
			Err(QueryError::RangeTooLong { max_days: queries::MAX_RANGE_DAYS })
		);

		let device = queries::device_summary::<Test>(f.a_id, NOW, NOW + 3 * DAY).unwrap();
		assert_eq!(
			(device.totals[0].1.signed_only.earned, device.totals[0].1.signed_only.spent),
			(50, 5)
		);
		assert_eq!(
			device
				.daily
				.iter()
				.map(|(d, _, t)| (*d - day_of(NOW), t.signed_only.earned, t.signed_only.spent))
				.collect::<Vec<_>>(),
			vec![(0, 10, 0), (2, 40, 0), (3, 0, 5)]
		);
	});
}

#[test]
fn accounting_follows_the_owner_at_the_time() {
	test(|| {
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
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), usdt()).signed_only.earned, 10);
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_B), usdt()).signed_only.earned, 7);
		assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()).signed_only.earned, 17);
	});
}

#[test]
fn device_receipts_page_in_time_order_within_the_range() {
	test(|| {
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
		let payer_view = queries::device_receipts::<Test>(f.b_id, 0, u64::MAX, None, 100).unwrap();
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

#[test]
fn an_owners_devices_come_in_bounded_pages_and_the_totals_cover_them_all() {
	test(|| {
		let f = fleet();
		// Owner A's devices a and c both earn from b.
		for (payee, id, value, nonce) in [(&f.a, f.a_id, 10, 1), (&f.c, f.c_id, 20, 2)] {
			assert_ok!(SettlementReceipts::record_receipt(
				signed_by_device(payee),
				Box::new(receipt(&f.b, payee, id, value, nonce, NOW))
			));
		}
		let owner = account(OWNER_A);
		let first = queries::owner_summary::<Test>(&owner, NOW, NOW, None, 1).unwrap();
		assert_eq!(
			first.totals,
			vec![(usdt(), {
				let mut t = earned(10);
				t.merge(&earned(20));
				t
			})]
		);
		assert_eq!(first.devices, vec![(f.a_id, usdt(), earned(10))]);
		assert_eq!(first.next, Some(f.a_id));
		let second = queries::owner_summary::<Test>(&owner, NOW, NOW, first.next, 1).unwrap();
		assert_eq!(second.devices, vec![(f.c_id, usdt(), earned(20))]);
		assert_eq!(second.next, None);
		let totals_only = queries::owner_summary::<Test>(&owner, NOW, NOW, None, 0).unwrap();
		assert_eq!((totals_only.totals, totals_only.devices), (first.totals, vec![]));
		assert_eq!(
			queries::owner_summary::<Test>(&owner, NOW, NOW, None, queries::MAX_DEVICES_PAGE + 1),
			Err(QueryError::InvalidPageSize { max: queries::MAX_DEVICES_PAGE })
		);
	});
}
