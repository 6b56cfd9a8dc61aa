//! Channel receipts: a claim from a payment channel is recorded as what it adds to the
//! channel's recorded total (its cursor), proven against the settlement contract's claimed
//! total. The mock contract stands in for `contracts/src/BatchSettlement.sol`; the node's end
//! to end tests record claims against the real one.

use super::*;
use frame_support::{assert_noop, assert_ok};
use m2m_primitives::channel::{
	settlement_domain, voucher_digest, ChannelConfig, SETTLEMENT_ADDRESS,
};
use pallet_device_identity::testing::evm_sign;

/// Device b pays device a from a channel in local USDT.
fn config(f: &Fleet) -> ChannelConfig {
	ChannelConfig {
		payer: f.b.evm_address(),
		payer_authorizer: f.b.evm_address(),
		receiver: f.a.evm_address(),
		receiver_authorizer: H160::repeat_byte(0x77),
		token: local_usdt().token,
		withdraw_delay: 900,
		salt: H256::zero(),
	}
}

fn channel_id(f: &Fleet) -> H256 {
	config(f).channel_id(local_usdt().chain_id, SETTLEMENT_ADDRESS)
}

/// A receipt of a claim that took the channel to `total`, under b's voucher of `voucher`.
fn claim(f: &Fleet, voucher: u128, total: u128, requests: u32) -> ReceiptInput {
	let asset = local_usdt();
	let domain = settlement_domain(asset.chain_id, SETTLEMENT_ADDRESS);
	let digest = voucher_digest(&channel_id(f), voucher, &domain);
	ReceiptInput {
		payee: f.a_id,
		asset,
		proof: PaymentProof::Channel {
			config: config(f),
			voucher_amount: voucher,
			signature: evm_sign(&f.b.evm, &digest.0),
			total_claimed: total,
		},
		settlement_tx: H256::repeat_byte(0x5e),
		resource: H256::repeat_byte(0xAA),
		request_count: requests,
		period_start: NOW - 1_000,
		period_end: NOW,
	}
}

fn record(f: &Fleet, input: &ReceiptInput) -> frame_support::dispatch::DispatchResult {
	SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input.clone()))
}

#[test]
fn each_claim_records_what_it_adds_to_the_channel_proven_by_the_contract() {
	test(|| {
		let f = fleet();
		let first = claim(&f, 30_000, 30_000, 3);
		assert_noop!(record(&f, &first), Error::<Test>::NotSettled);
		mark_claimed(channel_id(&f), 30_000);
		assert_ok!(record(&f, &first));
		assert_eq!(ChannelCursors::<Test>::get(channel_id(&f)), 30_000);

		// The next claim adds 20 000 to the channel: that, not its cumulative 50 000, is paid.
		let second = claim(&f, 60_000, 50_000, 2);
		assert_noop!(record(&f, &second), Error::<Test>::NotSettled);
		mark_claimed(channel_id(&f), 50_000);
		assert_ok!(record(&f, &second));
		let totals = DeviceTotals::<Test>::get(f.a_id, local_usdt());
		assert_eq!(totals.proven.earned, 50_000);
		assert_eq!(totals.proven.requests_sold, 5);
		let spent = DeviceTotals::<Test>::get(f.b_id, local_usdt());
		assert_eq!(spent.proven.spent, 50_000, "the payer device's spend too");
		assert!(matches!(
			events().last(),
			Some(Event::ReceiptRecorded { evidence: Evidence::Proven, amount: 20_000, .. })
		));

		// The same claim again is the same receipt; an older one adds nothing.
		assert_noop!(record(&f, &second), Error::<Test>::DuplicateReceipt);
		assert_noop!(record(&f, &claim(&f, 60_000, 40_000, 1)), Error::<Test>::ClaimBelowCursor);
	});
}

#[test]
fn a_claim_must_stay_within_the_voucher_the_payer_signed() {
	test(|| {
		let f = fleet();
		mark_claimed(channel_id(&f), 90_000);
		assert_noop!(record(&f, &claim(&f, 30_000, 40_000, 4)), Error::<Test>::ClaimAboveVoucher);

		let mut forged = claim(&f, 90_000, 90_000, 9);
		let PaymentProof::Channel { signature, .. } = &mut forged.proof else { unreachable!() };
		let digest = voucher_digest(
			&channel_id(&f),
			90_000,
			&settlement_domain(local_usdt().chain_id, SETTLEMENT_ADDRESS),
		);
		*signature = evm_sign(&f.c.evm, &digest.0);
		assert_noop!(record(&f, &forged), Error::<Test>::InvalidSignature);

		let mut other_token = claim(&f, 90_000, 90_000, 9);
		let PaymentProof::Channel { config, .. } = &mut other_token.proof else { unreachable!() };
		config.token = H160::repeat_byte(0x99);
		assert_noop!(record(&f, &other_token), Error::<Test>::ChannelTokenMismatch);

		let mut to_someone_else = claim(&f, 90_000, 90_000, 9);
		let PaymentProof::Channel { config, .. } = &mut to_someone_else.proof else {
			unreachable!()
		};
		config.receiver = f.c.evm_address();
		assert_noop!(record(&f, &to_someone_else), Error::<Test>::RecipientMismatch);
	});
}

#[test]
fn a_channel_on_a_contract_that_cannot_answer_is_unverifiable() {
	test(|| {
		let f = fleet();
		let mut input = claim(&f, 10_000, 10_000, 1);
		input.asset = broken_local_token();
		let PaymentProof::Channel { config, .. } = &mut input.proof else { unreachable!() };
		config.token = broken_local_token().token;
		let id = config.channel_id(broken_local_token().chain_id, SETTLEMENT_ADDRESS);
		let digest = voucher_digest(
			&id,
			10_000,
			&settlement_domain(broken_local_token().chain_id, SETTLEMENT_ADDRESS),
		);
		let PaymentProof::Channel { signature, .. } = &mut input.proof else { unreachable!() };
		*signature = evm_sign(&f.b.evm, &digest.0);
		assert_noop!(record(&f, &input), Error::<Test>::SettlementUnverifiable);
	});
}
