//! What "proven" means: the token executed exactly the cited authorization. Forgeries that the
//! v0 oracle (`authorizationState(from, nonce) == true`) accepted are refused here, each with
//! its own error. The mock token stands in for `contracts/src/USDT.sol`; the runtime repeats
//! these against the real token on pallet-revive.

use super::*;
use frame_support::{assert_noop, assert_ok};

fn record(f: &Fleet, input: &ReceiptInput) -> frame_support::dispatch::DispatchResult {
	SettlementReceipts::record_receipt(signed_by_device(&f.a), Box::new(input.clone()))
}

#[test]
fn a_receipt_is_refused_until_the_token_executed_it_then_proven() {
	test(|| {
		let f = fleet();
		let input = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 7, 3, NOW);
		assert_noop!(record(&f, &input), Error::<Test>::NotSettled);

		mark_settled(&input);
		assert_ok!(record(&f, &input));
		let stored = Receipts::<Test>::get(id_of(&input)).unwrap();
		assert_eq!(stored.evidence, Evidence::Proven);
		assert!(matches!(
			events().last(),
			Some(Event::ReceiptRecorded { evidence: Evidence::Proven, amount: 7, .. })
		));
		let totals = DeviceTotals::<Test>::get(f.a_id, local_usdt());
		assert_eq!((totals.proven.earned, totals.signed_only.earned), (7, 0));
	});
}

#[test]
fn a_large_authorization_is_refused_when_a_smaller_one_was_executed_under_its_nonce() {
	test(|| {
		let f = fleet();
		let large = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 1_000_000_000, 3, NOW);
		let small = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 10_000, 3, NOW);
		assert_eq!(id_of(&large), id_of(&small), "one nonce, one receipt id");
		mark_settled(&small);

		assert_noop!(record(&f, &large), Error::<Test>::DifferentAuthorizationExecuted);
		assert_ok!(record(&f, &small));
		assert_eq!(Receipts::<Test>::get(id_of(&small)).unwrap().amount, 10_000);
	});
}

#[test]
fn a_cancelled_authorization_is_refused() {
	test(|| {
		let f = fleet();
		let input = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 500, 4, NOW);
		mark_cancelled(f.b.evm_address(), H256::repeat_byte(4));
		assert_noop!(record(&f, &input), Error::<Test>::AuthorizationCancelled);
	});
}

#[test]
fn a_payment_to_someone_else_is_refused_even_when_executed() {
	test(|| {
		let f = fleet();
		// b paid c (and the token executed it); a claims it as its own earning.
		let (authorization, signature) = authorize(
			&f.b,
			f.c.evm_address(),
			500,
			5,
			&m2m_primitives::eip712::domain_separator(
				b"Tether USD",
				b"1",
				local_usdt().chain_id,
				local_usdt().token,
			),
		);
		mark_executed(local_usdt(), &authorization);
		let mut input = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 500, 5, NOW);
		input.proof = PaymentProof::Exact { authorization, signature };
		assert_noop!(record(&f, &input), Error::<Test>::RecipientMismatch);
	});
}

#[test]
fn one_owner_cannot_inflate_its_volume_with_unsettled_receipts() {
	test(|| {
		let f = fleet();
		// c and a both belong to owner A.
		let on_paper = receipt(&f.c, &f.a, f.a_id, 1_000_000_000, 6, NOW);
		assert_noop!(record(&f, &on_paper), Error::<Test>::UnprovenWithinOneOwner);
		let unexecuted = receipt_in(local_usdt(), &f.c, &f.a, f.a_id, 1_000_000_000, 6, NOW);
		assert_noop!(record(&f, &unexecuted), Error::<Test>::NotSettled);

		// The same owner moving real money between its devices is a proven, honest receipt.
		let real = receipt_in(local_usdt(), &f.c, &f.a, f.a_id, 25, 7, NOW);
		mark_settled(&real);
		assert_ok!(record(&f, &real));
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), local_usdt()).proven.earned, 25);
		assert_eq!(OwnerTotals::<Test>::get(account(OWNER_A), local_usdt()).proven.spent, 25);
	});
}

#[test]
fn a_provable_token_that_cannot_answer_is_an_error_not_a_pass() {
	test(|| {
		let f = fleet();
		let input = receipt_in(broken_local_token(), &f.b, &f.a, f.a_id, 7, 4, NOW);
		mark_settled(&input);
		assert_noop!(record(&f, &input), Error::<Test>::SettlementUnverifiable);
	});
}

#[test]
fn proven_and_signed_only_amounts_never_mix() {
	test(|| {
		let f = fleet();
		let proven = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 40, 8, NOW);
		mark_settled(&proven);
		assert_ok!(record(&f, &proven));
		let signed = receipt_in(local_usdt(), &f.b, &f.a, f.a_id, 2, 9, NOW);
		// Re-register the local token as signed-only: its later receipts are only signed.
		assert_ok!(SettlementReceipts::register_asset(
			RuntimeOrigin::root(),
			local_usdt(),
			b"Tether USD".to_vec(),
			b"1".to_vec(),
			6,
			b"USDT".to_vec(),
			SettlementCheck::SignedOnly
		));
		assert_ok!(record(&f, &signed));
		let owner = OwnerTotals::<Test>::get(account(OWNER_A), local_usdt());
		assert_eq!((owner.proven.earned, owner.signed_only.earned), (40, 2));
		let volume = AssetTotals::<Test>::get(local_usdt());
		assert_eq!((volume.proven.amount, volume.signed_only.amount), (40, 2));
		let summary =
			crate::queries::owner_summary::<Test>(&account(OWNER_A), NOW, NOW, None, 10).unwrap();
		assert_eq!(summary.totals, vec![(local_usdt(), owner)]);
	});
}
