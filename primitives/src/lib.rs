//! Pure protocol rules shared by the chain (runtime, pallets) and the devices (agent, tests).
//!
//! Nothing here does I/O or keeps state. Every function is deterministic, so the runtime can
//! recompute what a device signed, and a device can predict what the runtime will accept.
//!
//! - [`eip712`]: the EIP-3009 `TransferWithAuthorization` typed-data digest and secp256k1
//!   signature rules (what x402's `exact` scheme signs on EVM chains).
//! - [`channel`]: the x402 batch-settlement channel id and voucher digests.
//! - [`device`]: device identifiers and the domain-separated challenges that prove a key is
//!   controlled by whoever registers it (chain key, EVM address, libp2p PeerId).
//! - [`receipt`]: receipt identifiers, asset keys and the accounting calendar.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod channel;
pub mod device;
pub mod eip712;
pub mod receipt;

pub use primitive_types::{H160, H256, U256};
pub use sp_crypto_hashing::{blake2_256, keccak_256};
