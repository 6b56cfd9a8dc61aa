//! v0 → v1.
//!
//! - Assets gain [`SettlementCheck`]; every existing asset becomes
//!   [`SettlementCheck::SignedOnly`] until governance re-registers it as provable.
//! - Receipts name the payer by EVM address, with an optional payer device and owner, and
//!   carry [`Evidence`] instead of `settled_on_chain`.
//! - Totals keep proven and signed-only amounts apart.
//! - Owner aggregates are re-keyed: per (owner, day, asset) for totals, per (owner, device,
//!   day, asset) for the paged device breakdown, with the [`OwnerDevices`] index.
//! - Receipt bodies enter the expiry queue, and [`PayerTotals`] is filled from them.
//!
//! **Everything recorded under v0 becomes signed-only.** v0 took `authorizationState(from,
//! nonce) == true` as settlement, which a cancellation or a smaller authorization under the same
//! nonce also produces; those receipts never proved their amount moved. [`PayerTotals`] covers
//! the receipt bodies still stored at upgrade time (pruned bodies no longer name their payer).
//!
//! The migration runs in one block: it is meant for chains of testnet size (it touches every
//! receipt body and aggregate row once). A chain with millions of receipts would need it as a
//! multi-block migration.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use frame_support::{
	migrations::VersionedMigration, pallet_prelude::*, storage_alias,
	traits::UncheckedOnRuntimeUpgrade, BoundedVec,
};
use m2m_primitives::{
	receipt::{AssetKey, ReceiptId},
	H256,
};
use pallet_device_identity::DeviceId;
use scale_info::TypeInfo;

use crate::{
	AssetInfo, AssetTotals, AssetVolume, Assets, Config, DeviceDaily, DeviceTotals, Evidence,
	Expiries, Flow, OwnerDaily, OwnerDeviceDaily, OwnerDevices, OwnerTotals, Pallet, PayerTotals,
	Receipt, Receipts, Role, SchemeRecord, SettlementCheck, Totals, Volume, MAX_ASSET_LABEL_LEN,
	MAX_ASSET_NAME_LEN,
};

/// The v0 storage layout, as it was written.
pub mod v0 {
	use super::*;

	#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
	pub struct AssetInfo {
		pub name: BoundedVec<u8, ConstU32<MAX_ASSET_NAME_LEN>>,
		pub version: BoundedVec<u8, ConstU32<MAX_ASSET_LABEL_LEN>>,
		pub decimals: u8,
		pub symbol: BoundedVec<u8, ConstU32<MAX_ASSET_LABEL_LEN>>,
		pub domain_separator: H256,
		pub enabled: bool,
	}

	/// v0 totals had exactly the fields of today's [`Flow`].
	pub type Totals = Flow;

	#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
	pub struct Receipt<AccountId> {
		pub payer: DeviceId,
		pub payee: DeviceId,
		pub payer_owner: AccountId,
		pub payee_owner: AccountId,
		pub asset: AssetKey,
		pub amount: u128,
		pub scheme: SchemeRecord,
		pub settlement_tx: H256,
		pub resource: H256,
		pub request_count: u32,
		pub period_start: u64,
		pub period_end: u64,
		pub recorded_at: u64,
		pub settled_on_chain: bool,
	}

	#[storage_alias]
	pub type Assets<T: Config> = StorageMap<Pallet<T>, Blake2_128Concat, AssetKey, AssetInfo>;

	#[storage_alias]
	pub type Receipts<T: Config> =
		StorageMap<Pallet<T>, Identity, ReceiptId, Receipt<<T as frame_system::Config>::AccountId>>;

	#[storage_alias]
	pub type OwnerDaily<T: Config> = StorageNMap<
		Pallet<T>,
		(
			NMapKey<Blake2_128Concat, <T as frame_system::Config>::AccountId>,
			NMapKey<Twox64Concat, u32>,
			NMapKey<Twox64Concat, DeviceId>,
			NMapKey<Blake2_128Concat, AssetKey>,
		),
		Totals,
		ValueQuery,
	>;
}

fn signed_only(old: Flow) -> Totals {
	Totals { proven: Flow::default(), signed_only: old }
}

/// The v0 → v1 translation, unguarded; use [`MigrateV0ToV1`].
pub struct InnerMigrateV0ToV1<T>(core::marker::PhantomData<T>);

impl<T: Config> UncheckedOnRuntimeUpgrade for InnerMigrateV0ToV1<T> {
	fn on_runtime_upgrade() -> Weight {
		let (mut reads, mut writes) = (0u64, 0u64);

		Assets::<T>::translate::<v0::AssetInfo, _>(|_, old| {
			reads += 1;
			writes += 1;
			Some(AssetInfo {
				name: old.name,
				version: old.version,
				decimals: old.decimals,
				symbol: old.symbol,
				domain_separator: old.domain_separator,
				enabled: old.enabled,
				settlement: SettlementCheck::SignedOnly,
			})
		});

		let mut payers = Vec::new();
		Receipts::<T>::translate::<v0::Receipt<T::AccountId>, _>(|id, old| {
			reads += 1;
			writes += 2;
			// v0 knew exact payments only: its records cannot decode as anything else, so
			// this `else` is never taken.
			let SchemeRecord::Exact { authorization, .. } = &old.scheme else { return None };
			let payer = authorization.from;
			payers.push((payer, old.asset, old.amount, old.request_count));
			Expiries::<T>::insert(old.recorded_at.to_be_bytes(), id, ());
			Some(Receipt {
				payer,
				payer_device: Some(old.payer),
				payee: old.payee,
				payer_owner: Some(old.payer_owner),
				payee_owner: old.payee_owner,
				asset: old.asset,
				amount: old.amount,
				scheme: old.scheme,
				settlement_tx: old.settlement_tx,
				resource: old.resource,
				request_count: old.request_count,
				period_start: old.period_start,
				period_end: old.period_end,
				recorded_at: old.recorded_at,
				evidence: Evidence::SignedOnly,
			})
		});
		for (payer, asset, amount, requests) in payers {
			writes += 1;
			PayerTotals::<T>::mutate(payer, asset, |t| {
				t.add(Evidence::SignedOnly, Role::Payer, amount, requests)
			});
		}

		DeviceTotals::<T>::translate::<v0::Totals, _>(|_, _, old| {
			reads += 1;
			writes += 1;
			Some(signed_only(old))
		});
		OwnerTotals::<T>::translate::<v0::Totals, _>(|_, _, old| {
			reads += 1;
			writes += 1;
			Some(signed_only(old))
		});
		DeviceDaily::<T>::translate_values::<v0::Totals, _>(|old| {
			reads += 1;
			writes += 1;
			Some(signed_only(old))
		});

		// Same storage prefix, new keys: take every old row out before writing new ones.
		let old_rows: Vec<_> = v0::OwnerDaily::<T>::drain().collect();
		for ((owner, day, device, asset), old) in old_rows {
			reads += 1;
			writes += 4;
			let t = signed_only(old);
			OwnerDaily::<T>::mutate((&owner, day, asset), |row| row.merge(&t));
			OwnerDeviceDaily::<T>::insert((&owner, device, day, asset), t);
			OwnerDevices::<T>::insert(&owner, device, ());
		}

		AssetTotals::<T>::translate::<(u128, u64), _>(|_, (amount, receipts)| {
			reads += 1;
			writes += 1;
			Some(AssetVolume {
				proven: Volume::default(),
				signed_only: Volume { amount, receipts },
			})
		});

		T::DbWeight::get().reads_writes(reads, writes)
	}

	#[cfg(feature = "try-runtime")]
	fn post_upgrade(_state: Vec<u8>) -> Result<(), sp_runtime::TryRuntimeError> {
		Pallet::<T>::do_try_state()
	}
}

/// v0 → v1, run once: skipped when the on-chain storage version is not 0, and sets it to 1.
pub type MigrateV0ToV1<T> = VersionedMigration<
	0,
	1,
	InnerMigrateV0ToV1<T>,
	Pallet<T>,
	<T as frame_system::Config>::DbWeight,
>;
