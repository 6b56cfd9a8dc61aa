//! The m2m-pay runtime: a peaq-like solochain for machine-to-machine payments.
//!
//! Consensus is Aura (6 s slots) with GRANDPA finality. On top of balances, fees and sudo sit the
//! two machine pallets: [`pallet_device_identity`] (who a device is and which keys speak for it)
//! and [`pallet_settlement_receipts`] (what devices paid each other, provably, with fleet
//! accounting). The EVM side is pallet-revive running plain solc EVM bytecode (index 20): USDT
//! lives there as an ERC-20, Ethereum tools reach it through `m2m-eth-rpc`, and the receipts
//! pallet asks it whether a payment really settled.

#![cfg_attr(not(feature = "std"), no_std)]
// `construct_runtime!` and `impl_runtime_apis!` expand to large amounts of code.
#![recursion_limit = "256"]

#[cfg(feature = "std")]
include!(concat!(env!("OUT_DIR"), "/wasm_binary.rs"));

extern crate alloc;

use alloc::vec::Vec;

pub mod apis;
#[cfg(feature = "runtime-benchmarks")]
mod benchmarks;
pub mod configs;
pub mod genesis_config_presets;

use sp_runtime::{
	generic, impl_opaque_keys,
	traits::{BlakeTwo256, IdentifyAccount, Verify},
	MultiAddress, MultiSignature,
};
use sp_version::RuntimeVersion;

pub use frame_system::Call as SystemCall;
pub use pallet_balances::Call as BalancesCall;
#[cfg(any(feature = "std", test))]
pub use sp_runtime::BuildStorage;

/// Types the node needs without knowing the runtime's extrinsic format.
pub mod opaque {
	use super::*;
	pub use sp_runtime::OpaqueExtrinsic as UncheckedExtrinsic;

	pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
	pub type Block = generic::Block<Header, UncheckedExtrinsic>;
	pub type BlockId = generic::BlockId<Block>;
	pub type Hash = <BlakeTwo256 as sp_runtime::traits::Hash>::Output;
}

impl_opaque_keys! {
	pub struct SessionKeys {
		pub aura: Aura,
		pub grandpa: Grandpa,
	}
}

#[sp_version::runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
	spec_name: alloc::borrow::Cow::Borrowed("m2m-pay"),
	impl_name: alloc::borrow::Cow::Borrowed("m2m-pay"),
	authoring_version: 1,
	// 101: settlement receipts v1 (digest-proven settlement, any payer, split totals; storage
	// migration 0 -> 1); `register_asset` takes a `SettlementCheck`, hence transaction_version 2.
	spec_version: 101,
	impl_version: 1,
	apis: apis::RUNTIME_API_VERSIONS,
	transaction_version: 2,
	system_version: 1,
};

/// Block time, as on peaq.
pub const MILLI_SECS_PER_BLOCK: u64 = 6000;
/// Aura slot length. Cannot change once the chain has started.
pub const SLOT_DURATION: u64 = MILLI_SECS_PER_BLOCK;

pub const MINUTES: BlockNumber = 60_000 / (MILLI_SECS_PER_BLOCK as BlockNumber);
pub const HOURS: BlockNumber = MINUTES * 60;
pub const DAYS: BlockNumber = HOURS * 24;

/// The native token has 18 decimals, as PEAQ does.
pub const TOKEN_DECIMALS: u8 = 18;
pub const TOKEN_SYMBOL: &str = "M2M";
pub const UNIT: Balance = 1_000_000_000_000_000_000;
pub const MILLI_UNIT: Balance = UNIT / 1_000;
pub const MICRO_UNIT: Balance = UNIT / 1_000_000;
pub const EXISTENTIAL_DEPOSIT: Balance = MILLI_UNIT;
/// The generic Substrate address format.
pub const SS58_PREFIX: u16 = 42;
/// EVM chain id (EIP-155) of the m2m-pay local testnet. Deliberately distinct from peaq
/// (3338), krest (2241) and agung (9990), so that nothing signed here replays there.
pub const EVM_CHAIN_ID: u64 = 33380;

pub type Signature = MultiSignature;
pub type AccountId = <<Signature as Verify>::Signer as IdentifyAccount>::AccountId;
pub type Balance = u128;
pub type Nonce = u32;
pub type Hash = sp_core::H256;
pub type BlockNumber = u32;
pub type Address = MultiAddress<AccountId, ()>;
pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
pub type Block = generic::Block<Header, UncheckedExtrinsic>;
pub type SignedBlock = generic::SignedBlock<Block>;
pub type BlockId = generic::BlockId<Block>;

/// Transaction extensions. All are data-free or standard, so generic clients (subxt, PJS) can
/// sign for this chain without custom code. Ethereum transactions get the same set from
/// [`EthExtraImpl`].
pub type TxExtension = (
	frame_system::CheckNonZeroSender<Runtime>,
	frame_system::CheckSpecVersion<Runtime>,
	frame_system::CheckTxVersion<Runtime>,
	frame_system::CheckGenesis<Runtime>,
	frame_system::CheckEra<Runtime>,
	frame_system::CheckNonce<Runtime>,
	frame_system::CheckWeight<Runtime>,
	pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
	frame_metadata_hash_extension::CheckMetadataHash<Runtime>,
	// Turns the origin of an Ethereum transaction into its sender; after every extension that
	// relies on a signed origin.
	pallet_revive::evm::tx_extension::SetOrigin<Runtime>,
	// Last, to catch the refunds of everything before it.
	frame_system::WeightReclaim<Runtime>,
);

/// The extensions an Ethereum transaction (`Revive::eth_transact`) is dispatched with.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EthExtraImpl;

impl pallet_revive::evm::runtime::EthExtra for EthExtraImpl {
	type Config = Runtime;
	type ExtensionV0 = TxExtension;
	type ExtensionOtherVersions = sp_runtime::traits::InvalidVersion;

	fn get_eth_extension(nonce: Nonce, tip: Balance) -> Self::ExtensionV0 {
		(
			frame_system::CheckNonZeroSender::<Runtime>::new(),
			frame_system::CheckSpecVersion::<Runtime>::new(),
			frame_system::CheckTxVersion::<Runtime>::new(),
			frame_system::CheckGenesis::<Runtime>::new(),
			frame_system::CheckEra::<Runtime>::from(generic::Era::Immortal),
			frame_system::CheckNonce::<Runtime>::from(nonce),
			frame_system::CheckWeight::<Runtime>::new(),
			pallet_transaction_payment::ChargeTransactionPayment::<Runtime>::from(tip),
			frame_metadata_hash_extension::CheckMetadataHash::<Runtime>::new(false),
			pallet_revive::evm::tx_extension::SetOrigin::<Runtime>::new_from_eth_transaction(),
			frame_system::WeightReclaim::<Runtime>::new(),
		)
	}
}

/// Substrate extrinsics, plus Ethereum transactions wrapped in `Revive::eth_transact`.
pub type UncheckedExtrinsic =
	pallet_revive::evm::runtime::UncheckedExtrinsic<Address, Signature, EthExtraImpl>;
pub type SignedPayload = generic::SignedPayload<RuntimeCall, TxExtension>;

#[allow(unused_parens)]
/// Storage migrations run on the next runtime upgrade, each guarded by its pallet's version.
type Migrations = (pallet_settlement_receipts::migration::v1::MigrateV0ToV1<Runtime>,);

pub type Executive = frame_executive::Executive<
	Runtime,
	Block,
	frame_system::ChainContext<Runtime>,
	Runtime,
	AllPalletsWithSystem,
	Migrations,
>;

#[frame_support::runtime]
mod runtime {
	#[runtime::runtime]
	#[runtime::derive(
		RuntimeCall,
		RuntimeEvent,
		RuntimeError,
		RuntimeOrigin,
		RuntimeFreezeReason,
		RuntimeHoldReason,
		RuntimeSlashReason,
		RuntimeLockId,
		RuntimeTask,
		RuntimeViewFunction
	)]
	pub struct Runtime;

	#[runtime::pallet_index(0)]
	pub type System = frame_system;
	#[runtime::pallet_index(1)]
	pub type Timestamp = pallet_timestamp;
	#[runtime::pallet_index(2)]
	pub type Aura = pallet_aura;
	#[runtime::pallet_index(3)]
	pub type Grandpa = pallet_grandpa;
	#[runtime::pallet_index(4)]
	pub type Balances = pallet_balances;
	#[runtime::pallet_index(5)]
	pub type TransactionPayment = pallet_transaction_payment;
	#[runtime::pallet_index(6)]
	pub type Sudo = pallet_sudo;

	// The machine pallets.
	#[runtime::pallet_index(10)]
	pub type DeviceIdentity = pallet_device_identity;
	#[runtime::pallet_index(11)]
	pub type SettlementReceipts = pallet_settlement_receipts;

	// The EVM side. eth-rpc requires this exact name.
	#[runtime::pallet_index(20)]
	pub type Revive = pallet_revive;
}

#[cfg(test)]
mod tests {
	use super::*;
	use frame_support::{dispatch::DispatchClass, traits::Get};
	use pallet_settlement_receipts::WeightInfo;

	/// The largest `record_receipts` batch whose weight (benchmarked, plus the settlement check
	/// of each receipt on this chain's EVM) fits the block's limit for one normal extrinsic.
	fn largest_batch_by_weight() -> u32 {
		use pallet_settlement_receipts::SettlementOracle;
		let max = configs::RuntimeBlockWeights::get()
			.get(DispatchClass::Normal)
			.max_extrinsic
			.expect("normal extrinsics are limited");
		let weight = |n: u32| {
			<Runtime as pallet_settlement_receipts::Config>::WeightInfo::record_receipts(n)
				.saturating_add(configs::ReviveSettlement::check_weight().saturating_mul(n as u64))
		};
		let (mut lo, mut hi) = (0u32, 1_000_000u32);
		while lo < hi {
			let mid = (lo + hi).div_ceil(2);
			if weight(mid).all_lte(max) {
				lo = mid;
			} else {
				hi = mid - 1;
			}
		}
		lo
	}

	#[test]
	fn a_full_receipt_batch_fits_in_one_block() {
		let bound: u32 = <Runtime as pallet_settlement_receipts::Config>::MaxBatchSize::get();
		let largest = largest_batch_by_weight();
		println!("largest record_receipts batch by weight: {largest} (MaxBatchSize {bound})");
		assert!(bound <= largest, "MaxBatchSize {bound} exceeds what fits in a block ({largest})");
	}

	/// Clients generate their types from `chain-client/metadata/m2m-runtime.scale` at build time,
	/// without a node. This keeps that file identical to what the runtime reports.
	#[test]
	fn committed_metadata_matches_the_runtime() {
		let path =
			concat!(env!("CARGO_MANIFEST_DIR"), "/../chain-client/metadata/m2m-runtime.scale");
		// pallet-revive's metadata reads storage (its constants), so it needs externalities.
		let current: Vec<u8> =
			sp_io::TestExternalities::new(Default::default()).execute_with(|| {
				Runtime::metadata_at_version(16).expect("metadata v16 is supported").to_vec()
			});
		if std::env::var_os("M2M_BLESS").is_some() {
			std::fs::write(path, &current).expect("write metadata");
		}
		let committed = std::fs::read(path).unwrap_or_default();
		assert!(
			committed == current,
			"chain-client/metadata/m2m-runtime.scale is out of date; regenerate with \
			 `M2M_BLESS=1 cargo test --release -p m2m-runtime committed_metadata`"
		);
	}
}
