use super::*;
use frame_support::{assert_noop, assert_ok};
use sp_runtime::DispatchError;

#[test]
fn the_asset_registry_is_privileged_and_bounded() {
	test(|| {
		let usdc = AssetKey { chain_id: 84532, token: H160::repeat_byte(3) };
		assert_noop!(
			SettlementReceipts::register_asset(
				RuntimeOrigin::signed(account(OWNER_A)),
				usdc,
				b"USDC".to_vec(),
				b"2".to_vec(),
				6,
				b"USDC".to_vec(),
				SettlementCheck::SignedOnly
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
				b"USDC".to_vec(),
				SettlementCheck::SignedOnly
			),
			Error::<Test>::AssetLabelTooLong
		);
		assert_ok!(SettlementReceipts::register_asset(
			RuntimeOrigin::root(),
			usdc,
			b"USDC".to_vec(),
			b"2".to_vec(),
			6,
			b"USDC".to_vec(),
			SettlementCheck::SignedOnly
		));
		let expected = domain_separator(b"USDC", b"2", 84532, H160::repeat_byte(3));
		assert_eq!(Assets::<Test>::get(usdc).unwrap().domain_separator, expected);
		assert_eq!(
			events().last(),
			Some(&Event::AssetRegistered {
				asset: usdc,
				domain_separator: expected,
				settlement: SettlementCheck::SignedOnly
			})
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
	test(|| {
		let info = Assets::<Test>::get(usdt()).unwrap();
		assert_eq!(info.domain_separator, usdt_domain());
		assert_eq!(
			(info.decimals, info.symbol.to_vec(), info.enabled, info.settlement),
			(6, b"USDT".to_vec(), true, SettlementCheck::SignedOnly)
		);
		assert_eq!(
			Assets::<Test>::get(local_usdt()).unwrap().settlement,
			SettlementCheck::TokenDigest
		);
		assert_eq!(RetentionPeriod::<Test>::get(), RETENTION_MS);
	});
}

#[test]
fn retention_is_configurable() {
	test(|| {
		assert_noop!(
			SettlementReceipts::set_retention_period(RuntimeOrigin::signed(account(OWNER_A)), 5),
			DispatchError::BadOrigin
		);
		assert_ok!(SettlementReceipts::set_retention_period(RuntimeOrigin::root(), 5));
		assert_eq!(RetentionPeriod::<Test>::get(), 5);
		assert_noop!(
			SettlementReceipts::set_retention_period(RuntimeOrigin::root(), MAX_RETENTION_MS + 1),
			Error::<Test>::RetentionTooLong
		);
		assert_ok!(SettlementReceipts::set_retention_period(
			RuntimeOrigin::root(),
			MAX_RETENTION_MS
		));
	});
}
