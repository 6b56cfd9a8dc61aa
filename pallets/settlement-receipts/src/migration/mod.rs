//! Storage migrations, one module per version step.
//!
//! The runtime lists them in its `Migrations` tuple; each runs once, guarded by the pallet's
//! on-chain storage version.

pub mod v1;
