//! Pallet configuration.

mod evm;
pub use evm::ReviveSettlement;

use frame_support::{
	derive_impl,
	dispatch::DispatchClass,
	parameter_types,
	traits::{ConstBool, ConstU128, ConstU32, ConstU64, ConstU8, VariantCountOf},
	weights::{
		constants::{RocksDbWeight, WEIGHT_REF_TIME_PER_SECOND},
		IdentityFee, Weight,
	},
};
use frame_system::{
	limits::{BlockLength, BlockWeights},
	EnsureRoot,
};
use pallet_transaction_payment::{ConstFeeMultiplier, FungibleAdapter, Multiplier};
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_runtime::{traits::One, Perbill};
use sp_version::RuntimeVersion;

use super::{
	AccountId, Aura, Balance, Balances, Block, BlockNumber, DeviceIdentity, Hash, Nonce,
	PalletInfo, Runtime, RuntimeCall, RuntimeEvent, RuntimeFreezeReason, RuntimeHoldReason,
	RuntimeOrigin, RuntimeTask, Signature, System, Timestamp, EXISTENTIAL_DEPOSIT, MILLI_UNIT,
	SLOT_DURATION, SS58_PREFIX, UNIT, VERSION,
};

const NORMAL_DISPATCH_RATIO: Perbill = Perbill::from_percent(75);

parameter_types! {
	pub const BlockHashCount: BlockNumber = 2400;
	pub const Version: RuntimeVersion = VERSION;
	/// 2 s of compute per 6 s block. A solochain has no proof-of-validity limit, but
	/// pallet-revive prices gas from the ratio of the two dimensions, so the proof size gets a
	/// finite bound: 64 MiB, generous enough that only compute limits a block.
	pub RuntimeBlockWeights: BlockWeights = BlockWeights::with_sensible_defaults(
		Weight::from_parts(2u64 * WEIGHT_REF_TIME_PER_SECOND, 64 * 1024 * 1024),
		NORMAL_DISPATCH_RATIO,
	);
	/// 5 MiB blocks; normal transactions may fill 75% of them.
	pub RuntimeBlockLength: BlockLength = BlockLength::builder()
		.max_length(5 * 1024 * 1024)
		.modify_max_length_for_class(DispatchClass::Normal, |max| *max = NORMAL_DISPATCH_RATIO * *max)
		.build();
	pub const SS58Prefix: u16 = SS58_PREFIX;
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
	type Block = Block;
	type BlockWeights = RuntimeBlockWeights;
	type BlockLength = RuntimeBlockLength;
	type AccountId = AccountId;
	type Nonce = Nonce;
	type Hash = Hash;
	type BlockHashCount = BlockHashCount;
	type DbWeight = RocksDbWeight;
	type Version = Version;
	type AccountData = pallet_balances::AccountData<Balance>;
	type SS58Prefix = SS58Prefix;
	type MaxConsumers = ConstU32<16>;
	// Every new account gets its EVM address mapping, so it can use the EVM side at once.
	type OnNewAccount = pallet_revive::AutoMapper<Runtime>;
	type OnKilledAccount = pallet_revive::AutoMapper<Runtime>;
}

impl pallet_aura::Config for Runtime {
	type AuthorityId = AuraId;
	type DisabledValidators = ();
	type MaxAuthorities = ConstU32<32>;
	type AllowMultipleBlocksPerSlot = ConstBool<false>;
	type SlotDuration = pallet_aura::MinimumPeriodTimesTwo<Runtime>;
}

impl pallet_grandpa::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type WeightInfo = ();
	type MaxAuthorities = ConstU32<32>;
	type MaxNominators = ConstU32<0>;
	type MaxSetIdSessionEntries = ConstU64<0>;
	type KeyOwnerProof = sp_core::Void;
	type EquivocationReportSystem = ();
}

impl pallet_timestamp::Config for Runtime {
	/// Milliseconds since the Unix epoch.
	type Moment = u64;
	type OnTimestampSet = Aura;
	type MinimumPeriod = ConstU64<{ SLOT_DURATION / 2 }>;
	type WeightInfo = ();
}

impl pallet_balances::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type MaxLocks = ConstU32<50>;
	type MaxReserves = ();
	type ReserveIdentifier = [u8; 8];
	type Balance = Balance;
	type DustRemoval = ();
	type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
	type AccountStore = System;
	type WeightInfo = pallet_balances::weights::SubstrateWeight<Runtime>;
	type FreezeIdentifier = RuntimeFreezeReason;
	type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
	type RuntimeHoldReason = RuntimeHoldReason;
	type RuntimeFreezeReason = RuntimeFreezeReason;
	type DoneSlashHandler = ();
}

parameter_types! {
	pub FeeMultiplier: Multiplier = Multiplier::one();
}

impl pallet_transaction_payment::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type OnChargeTransaction = FungibleAdapter<Balances, ()>;
	type OperationalFeeMultiplier = ConstU8<5>;
	// pallet-revive maps gas to fees through this exact type; 1:1 is the same price as before.
	type WeightToFee = pallet_revive::evm::fees::BlockRatioFee<1, 1, Runtime, Balance>;
	type LengthToFee = IdentityFee<Balance>;
	type FeeMultiplierUpdate = ConstFeeMultiplier<FeeMultiplier>;
	type WeightInfo = pallet_transaction_payment::weights::SubstrateWeight<Runtime>;
}

impl pallet_sudo::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type WeightInfo = pallet_sudo::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	pub const DeviceDeposit: Balance = UNIT;
	pub const AttributeDepositBase: Balance = UNIT / 10;
	pub const AttributeDepositPerByte: Balance = MILLI_UNIT;
}

impl pallet_device_identity::Config for Runtime {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Signature = Signature;
	type ForceOrigin = EnsureRoot<AccountId>;
	type DeviceDeposit = DeviceDeposit;
	type AttributeDepositBase = AttributeDepositBase;
	type AttributeDepositPerByte = AttributeDepositPerByte;
	type MaxDevicesPerOwner = ConstU32<10_000>;
	type MaxAttributesPerDevice = ConstU32<32>;
	type MaxAttributeValueLen = ConstU32<256>;
	type WeightInfo = pallet_device_identity::weights::SubstrateWeight<Runtime>;
}

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;

impl pallet_settlement_receipts::Config for Runtime {
	type Devices = DeviceIdentity;
	type AdminOrigin = EnsureRoot<AccountId>;
	type UnixTime = Timestamp;
	type MaxBatchSize = ConstU32<512>;
	type MaxPruneBatch = ConstU32<256>;
	/// Five minutes of clock skew between devices and the chain.
	type MaxClockSkew = ConstU64<300_000>;
	/// An agent whose chain was unreachable for up to a week still records its sales; older
	/// days are closed.
	type MaxBackdate = ConstU64<{ 7 * DAY_MS }>;
	/// Receipt bodies stay 90 days unless governance sets otherwise, and never beyond a year.
	type DefaultRetention = ConstU64<{ 90 * DAY_MS }>;
	type MaxRetention = ConstU64<{ 366 * DAY_MS }>;
	type Settlement = ReviveSettlement;
	type WeightInfo = pallet_settlement_receipts::weights::SubstrateWeight<Runtime>;
}
