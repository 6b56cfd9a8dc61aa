//! Weights for `pallet_settlement_receipts`.
//!
//! PROVISIONAL: hand-estimated upper bounds, to be replaced by the output of the benchmarks in
//! `benchmarking.rs` (`scripts/benchmark-weights.sh`).

#![cfg_attr(rustfmt, rustfmt_skip)]
#![allow(unused_parens)]
#![allow(unused_imports)]
#![allow(missing_docs)]

use frame_support::{traits::Get, weights::{Weight, constants::RocksDbWeight}};
use core::marker::PhantomData;

/// Weight functions needed for `pallet_settlement_receipts`.
pub trait WeightInfo {
	fn record_receipt() -> Weight;
	fn record_receipts(n: u32, ) -> Weight;
	fn register_asset() -> Weight;
	fn set_asset_enabled() -> Weight;
	fn set_retention_period() -> Weight;
	fn prune_receipts(n: u32, ) -> Weight;
}

/// Weights for `pallet_settlement_receipts` using the Substrate node and recommended hardware.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
	fn record_receipt() -> Weight {
		Weight::from_parts(150_000_000, 12000)
			.saturating_add(T::DbWeight::get().reads(14_u64))
			.saturating_add(T::DbWeight::get().writes(13_u64))
	}
	fn record_receipts(n: u32, ) -> Weight {
		Weight::from_parts(10_000_000, 0)
			.saturating_add(Weight::from_parts(150_000_000, 12000).saturating_mul(n.into()))
			.saturating_add(T::DbWeight::get().reads((14_u64).saturating_mul(n.into())))
			.saturating_add(T::DbWeight::get().writes((13_u64).saturating_mul(n.into())))
	}
	fn register_asset() -> Weight {
		Weight::from_parts(20_000_000, 1000)
			.saturating_add(T::DbWeight::get().writes(1_u64))
	}
	fn set_asset_enabled() -> Weight {
		Weight::from_parts(20_000_000, 1000)
			.saturating_add(T::DbWeight::get().reads(1_u64))
			.saturating_add(T::DbWeight::get().writes(1_u64))
	}
	fn set_retention_period() -> Weight {
		Weight::from_parts(10_000_000, 0)
			.saturating_add(T::DbWeight::get().writes(1_u64))
	}
	fn prune_receipts(n: u32, ) -> Weight {
		Weight::from_parts(10_000_000, 0)
			.saturating_add(Weight::from_parts(30_000_000, 4000).saturating_mul(n.into()))
			.saturating_add(T::DbWeight::get().reads(1_u64))
			.saturating_add(T::DbWeight::get().reads((1_u64).saturating_mul(n.into())))
			.saturating_add(T::DbWeight::get().writes((3_u64).saturating_mul(n.into())))
	}
}

// For tests.
impl WeightInfo for () {
	fn record_receipt() -> Weight { Weight::from_parts(150_000_000, 12000) }
	fn record_receipts(n: u32, ) -> Weight { Weight::from_parts(150_000_000, 12000).saturating_mul(n.into()) }
	fn register_asset() -> Weight { Weight::from_parts(20_000_000, 1000) }
	fn set_asset_enabled() -> Weight { Weight::from_parts(20_000_000, 1000) }
	fn set_retention_period() -> Weight { Weight::from_parts(10_000_000, 0) }
	fn prune_receipts(n: u32, ) -> Weight { Weight::from_parts(30_000_000, 4000).saturating_mul(n.into()) }
}
