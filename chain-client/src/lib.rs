//! Typed client for the m2m-pay chain, on subxt.
//!
//! - [`ChainClient`]: connect, register devices, record settlement receipts, and run the
//!   fleet-accounting queries of the runtime API.
//! - [`DeviceKeys`]: the three keys of a device (chain sr25519, EVM secp256k1, libp2p ed25519)
//!   and the proofs the chain expects from them.
//!
//! The runtime types are generated at compile time from `metadata/m2m-runtime.scale`, which a
//! runtime test keeps identical to what the runtime produces (no node is needed to build).

mod client;
mod error;
mod keys;
mod proof;

// The subxt macro reads the metadata file without telling cargo; this makes a new metadata
// file rebuild the generated types.
const _METADATA: &[u8] = include_bytes!("../metadata/m2m-runtime.scale");

pub use client::{ChainClient, Submitted};
pub use error::ChainError;
pub use keys::{DeviceKeys, EvmSigner};
pub use proof::exact_authorization;

/// Types and calls generated from the runtime metadata. Our own protocol types are substituted
/// in, so the client speaks `m2m_primitives` rather than generated copies of it.
#[subxt::subxt(
	runtime_metadata_path = "metadata/m2m-runtime.scale",
	derive_for_all_types = "Clone, PartialEq, Eq",
	substitute_type(
		path = "m2m_primitives::eip712::TransferWithAuthorization",
		with = "::subxt::utils::Static<::m2m_primitives::eip712::TransferWithAuthorization>"
	),
	substitute_type(
		path = "m2m_primitives::eip712::EcdsaSignature",
		with = "::subxt::utils::Static<::m2m_primitives::eip712::EcdsaSignature>"
	),
	substitute_type(
		path = "m2m_primitives::receipt::AssetKey",
		with = "::subxt::utils::Static<::m2m_primitives::receipt::AssetKey>"
	),
	substitute_type(
		path = "m2m_primitives::channel::ChannelConfig",
		with = "::subxt::utils::Static<::m2m_primitives::channel::ChannelConfig>"
	)
)]
pub mod runtime {}

pub use runtime::runtime_types::pallet_settlement_receipts::{
	runtime_api::{DeviceSummary, OwnerSummary, QueryError, ReceiptPage},
	types::{
		AssetInfo, AssetVolume, Evidence, Flow, PaymentProof, Receipt, ReceiptInput, Role,
		SettlementCheck, Totals, Volume,
	},
};

/// A device as the identity pallet records it.
pub type DeviceRecord =
	runtime::runtime_types::pallet_device_identity::DeviceRecord<AccountId, u128, u32>;

/// The chain's account id type.
pub type AccountId = subxt::utils::AccountId32;
/// A device id as the chain assigns it.
pub type DeviceId = u64;
