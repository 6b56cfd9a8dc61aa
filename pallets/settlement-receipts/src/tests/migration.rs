//! v0 → v1: stored data written in the v0 layout reads back in the v1 layout, every amount
//! signed-only, and the migration runs once.

use super::*;
use crate::migration::v1::{v0, MigrateV0ToV1};
use codec::Encode;
use frame_support::traits::{GetStorageVersion, OnRuntimeUpgrade, StorageVersion};

#[test]
fn v0_receipts_and_totals_become_signed_only_v1_rows_once() {
	test(|| {
		let f = fleet();
		StorageVersion::new(0).put::<SettlementReceipts>();
		let (authorization, signature) = authorize(&f.b, f.a.evm_address(), 70, 1, &usdt_domain());
		let id = exact_receipt_id(&usdt(), &f.b.evm_address(), &authorization.nonce);
		let day = day_of(NOW);
		// Exactly what v0 wrote for one receipt of b paying a 70.
		let old_info = Assets::<Test>::get(usdt()).unwrap();
		Assets::<Test>::remove(usdt());
		v0::Assets::<Test>::insert(
			usdt(),
			v0::AssetInfo {
				name: old_info.name.clone(),
				version: old_info.version.clone(),
				decimals: 6,
				symbol: old_info.symbol.clone(),
				domain_separator: old_info.domain_separator,
				enabled: true,
			},
		);
		v0::Receipts::<Test>::insert(
			id,
			v0::Receipt {
				payer: f.b_id,
				payee: f.a_id,
				payer_owner: account(OWNER_B),
				payee_owner: account(OWNER_A),
				asset: usdt(),
				amount: 70,
				scheme: SchemeRecord::Exact { authorization, signature },
				settlement_tx: H256::repeat_byte(9),
				resource: H256::repeat_byte(8),
				request_count: 1,
				period_start: NOW - 1_000,
				period_end: NOW,
				recorded_at: NOW,
				settled_on_chain: true,
			},
		);
		Recorded::<Test>::insert(id, day);
		let mut spend = Flow::default();
		spend.add(Role::Payer, 70, 1);
		let mut earn = Flow::default();
		earn.add(Role::Payee, 70, 1);
		let raw = |flow: Flow| flow.encode();
		for (device, flow) in [(f.b_id, spend), (f.a_id, earn)] {
			frame_support::storage::unhashed::put_raw(
				&DeviceTotals::<Test>::hashed_key_for(device, usdt()),
				&raw(flow),
			);
			frame_support::storage::unhashed::put_raw(
				&DeviceDaily::<Test>::hashed_key_for((device, day, usdt())),
				&raw(flow),
			);
		}
		for (owner, device, flow) in [(OWNER_B, f.b_id, spend), (OWNER_A, f.a_id, earn)] {
			frame_support::storage::unhashed::put_raw(
				&OwnerTotals::<Test>::hashed_key_for(account(owner), usdt()),
				&raw(flow),
			);
			v0::OwnerDaily::<Test>::insert((account(owner), day, device, usdt()), flow);
		}
		frame_support::storage::unhashed::put_raw(
			&AssetTotals::<Test>::hashed_key_for(usdt()),
			&(70u128, 1u64).encode(),
		);

		MigrateV0ToV1::<Test>::on_runtime_upgrade();

		assert_eq!(SettlementReceipts::on_chain_storage_version(), 1);
		let info = Assets::<Test>::get(usdt()).unwrap();
		assert_eq!(
			(info.settlement, info.domain_separator),
			(SettlementCheck::SignedOnly, old_info.domain_separator)
		);
		let receipt = Receipts::<Test>::get(id).unwrap();
		assert_eq!(
			(receipt.payer, receipt.payer_device, receipt.payer_owner.clone(), receipt.evidence),
			(f.b.evm_address(), Some(f.b_id), Some(account(OWNER_B)), Evidence::SignedOnly),
			"v0's settled_on_chain did not prove the amount: it becomes signed-only"
		);
		assert!(Expiries::<Test>::contains_key(NOW.to_be_bytes(), id));
		let signed = |flow| Totals { proven: Flow::default(), signed_only: flow };
		assert_eq!(DeviceTotals::<Test>::get(f.a_id, usdt()), signed(earn));
		assert_eq!(DeviceDaily::<Test>::get((f.b_id, day, usdt())), signed(spend));
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), usdt()), signed(earn));
		assert_eq!(OwnerDaily::<Test>::get((account(OWNER_A), day, usdt())), signed(earn));
		assert_eq!(
			OwnerDeviceDaily::<Test>::get((account(OWNER_B), f.b_id, day, usdt())),
			signed(spend)
		);
		assert!(OwnerDevices::<Test>::contains_key(account(OWNER_A), f.a_id));
		assert_eq!(PayerTotals::<Test>::get(f.b.evm_address(), usdt()), signed(spend));
		assert_eq!(
			AssetTotals::<Test>::get(usdt()).signed_only,
			Volume { amount: 70, receipts: 1 }
		);

		// A second run finds version 1 and changes nothing.
		let before = Receipts::<Test>::get(id);
		MigrateV0ToV1::<Test>::on_runtime_upgrade();
		assert_eq!(Receipts::<Test>::get(id), before);
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), usdt()), signed(earn));
	});
}
