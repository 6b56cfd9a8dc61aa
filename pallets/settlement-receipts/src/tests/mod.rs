//! Unit tests of the pallet against the mock runtime, by concern. Every test ends with the
//! pallet's `try_state` invariants checked.

use crate::{mock::*, *};
use frame_support::BoundedVec;
use m2m_primitives::{
	eip712::domain_separator,
	receipt::{day_of, exact_receipt_id, AssetKey, ReceiptId},
	H160, H256, U256,
};
use pallet_device_identity::DeviceId;

mod admin;
mod batch;
mod channels;
mod migration;
mod payers;
mod proof;
mod queries;
mod record;
mod retention;

pub(crate) struct Fleet {
	pub a: DeviceKeys,
	pub a_id: DeviceId,
	pub b: DeviceKeys,
	pub b_id: DeviceId,
	pub c: DeviceKeys,
	pub c_id: DeviceId,
}

/// Devices a and c belong to owner A, device b to owner B.
pub(crate) fn fleet() -> Fleet {
	let (a, b, c) = (DeviceKeys::new(1), DeviceKeys::new(2), DeviceKeys::new(3));
	let a_id = register(OWNER_A, &a);
	let b_id = register(OWNER_B, &b);
	let c_id = register(OWNER_A, &c);
	Fleet { a, a_id, b, b_id, c, c_id }
}

/// Runs `f` in a fresh mock chain, then checks the pallet's invariants.
pub(crate) fn test(f: impl FnOnce()) {
	new_test_ext().execute_with(|| {
		f();
		SettlementReceipts::do_try_state().expect("try_state invariants hold");
	});
}

pub(crate) fn signed_by_device(keys: &DeviceKeys) -> RuntimeOrigin {
	RuntimeOrigin::signed(keys.account_id())
}

pub(crate) fn events() -> Vec<Event<Test>> {
	System::events()
		.into_iter()
		.filter_map(|r| match r.event {
			RuntimeEvent::SettlementReceipts(e) => Some(e),
			_ => None,
		})
		.collect()
}

pub(crate) fn id_of(input: &ReceiptInput) -> ReceiptId {
	let PaymentProof::Exact { authorization, .. } = &input.proof else {
		unreachable!("exact receipts only")
	};
	exact_receipt_id(&input.asset, &authorization.from, &authorization.nonce)
}

/// A signed-only flow with one payment of `amount` received.
pub(crate) fn earned(amount: u128) -> Totals {
	let mut t = Totals::default();
	t.add(Evidence::SignedOnly, Role::Payee, amount, 1);
	t
}
