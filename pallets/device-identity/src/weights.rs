//! Weights for `pallet_device_identity`.
//!
//! PROVISIONAL: hand-estimated upper bounds, to be replaced by the output of the benchmarks in
//! `benchmarking.rs` (`scripts/benchmark-weights.sh`).

#![cfg_attr(rustfmt, rustfmt_skip)]
#![allow(unused_parens)]
#![allow(unused_imports)]
#![allow(missing_docs)]

use frame_support::{traits::Get, weights::{Weight, constants::RocksDbWeight}};
use core::marker::PhantomData;

/// Weight functions needed for `pallet_device_identity`.
pub trait WeightInfo {
	fn register() -> Weight;
	fn set_attribute(v: u32, ) -> Weight;
	fn remove_attribute() -> Weight;
	fn rotate_key() -> Weight;
	fn offer_transfer() -> Weight;
	fn cancel_transfer() -> Weight;
	fn accept_transfer() -> Weight;
	fn suspend() -> Weight;
	fn reactivate() -> Weight;
	fn deregister(a: u32, ) -> Weight;
}

/// Weights for `pallet_device_identity` using the Substrate node and recommended hardware.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
	fn register() -> Weight {
		Weight::from_parts(180_000_000, 4000)
			.saturating_add(T::DbWeight::get().reads(8_u64))
			.saturating_add(T::DbWeight::get().writes(9_u64))
	}
	fn set_attribute(v: u32, ) -> Weight {
		Weight::from_parts(40_000_000, 4000)
			.saturating_add(Weight::from_parts(2_000, 0).saturating_mul(v.into()))
			.saturating_add(T::DbWeight::get().reads(3_u64))
			.saturating_add(T::DbWeight::get().writes(3_u64))
	}
	fn remove_attribute() -> Weight {
		Weight::from_parts(40_000_000, 4000)
			.saturating_add(T::DbWeight::get().reads(3_u64))
			.saturating_add(T::DbWeight::get().writes(3_u64))
	}
	fn rotate_key() -> Weight {
		Weight::from_parts(120_000_000, 4000)
			.saturating_add(T::DbWeight::get().reads(4_u64))
			.saturating_add(T::DbWeight::get().writes(4_u64))
	}
	fn offer_transfer() -> Weight {
		Weight::from_parts(20_000_000, 4000)
			.saturating_add(T::DbWeight::get().reads(1_u64))
			.saturating_add(T::DbWeight::get().writes(1_u64))
	}
	fn cancel_transfer() -> Weight {
		Weight::from_parts(20_000_000, 4000)
			.saturating_add(T::DbWeight::get().reads(2_u64))
			.saturating_add(T::DbWeight::get().writes(1_u64))
	}
	fn accept_transfer() -> Weight {
		Weight::from_parts(80_000_000, 8000)
			.saturating_add(T::DbWeight::get().reads(8_u64))
			.saturating_add(T::DbWeight::get().writes(9_u64))
	}
	fn suspend() -> Weight {
		Weight::from_parts(20_000_000, 4000)
			.saturating_add(T::DbWeight::get().reads(1_u64))
			.saturating_add(T::DbWeight::get().writes(1_u64))
	}
	fn reactivate() -> Weight {
		Weight::from_parts(20_000_000, 4000)
			.saturating_add(T::DbWeight::get().reads(1_u64))
			.saturating_add(T::DbWeight::get().writes(1_u64))
	}
	fn deregister(a: u32, ) -> Weight {
		Weight::from_parts(80_000_000, 8000)
			.saturating_add(Weight::from_parts(10_000_000, 2000).saturating_mul(a.into()))
			.saturating_add(T::DbWeight::get().reads(4_u64))
			.saturating_add(T::DbWeight::get().writes(9_u64))
			.saturating_add(T::DbWeight::get().writes((1_u64).saturating_mul(a.into())))
	}
}

// For tests.
impl WeightInfo for () {
	fn register() -> Weight { Weight::from_parts(180_000_000, 4000) }
	fn set_attribute(_v: u32, ) -> Weight { Weight::from_parts(40_000_000, 4000) }
	fn remove_attribute() -> Weight { Weight::from_parts(40_000_000, 4000) }
	fn rotate_key() -> Weight { Weight::from_parts(120_000_000, 4000) }
	fn offer_transfer() -> Weight { Weight::from_parts(20_000_000, 4000) }
	fn cancel_transfer() -> Weight { Weight::from_parts(20_000_000, 4000) }
	fn accept_transfer() -> Weight { Weight::from_parts(80_000_000, 8000) }
	fn suspend() -> Weight { Weight::from_parts(20_000_000, 4000) }
	fn reactivate() -> Weight { Weight::from_parts(20_000_000, 4000) }
	fn deregister(_a: u32, ) -> Weight { Weight::from_parts(80_000_000, 8000) }
}
