//! Test runtime for the device identity pallet: real balances with holds, real signatures.

use crate as pallet_device_identity;
use frame_support::{
	derive_impl, parameter_types,
	traits::{ConstU128, ConstU32},
};
use frame_system::EnsureRoot;
use sp_core::{sr25519, Pair};
use sp_runtime::{
	traits::{IdentifyAccount, IdentityLookup, Verify},
	BuildStorage, MultiSignature,
};

pub use crate::testing::{evm_sign, DeviceKeys};

pub type AccountId = <<MultiSignature as Verify>::Signer as IdentifyAccount>::AccountId;
pub type Balance = u128;
type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		DeviceIdentity: pallet_device_identity,
	}
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountId = AccountId;
	type Lookup = IdentityLookup<AccountId>;
	type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type Balance = Balance;
	type AccountStore = System;
	type ExistentialDeposit = ConstU128<1>;
	type RuntimeHoldReason = RuntimeHoldReason;
}

pub const DEVICE_DEPOSIT: Balance = 1_000;
pub const ATTRIBUTE_BASE: Balance = 100;
pub const ATTRIBUTE_PER_BYTE: Balance = 1;
pub const MAX_DEVICES: u32 = 3;
pub const MAX_ATTRIBUTES: u32 = 4;
pub const MAX_VALUE_LEN: u32 = 32;

parameter_types! {
	pub const DeviceDeposit: Balance = DEVICE_DEPOSIT;
}

impl crate::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Signature = MultiSignature;
	type ForceOrigin = EnsureRoot<AccountId>;
	type DeviceDeposit = DeviceDeposit;
	type AttributeDepositBase = ConstU128<ATTRIBUTE_BASE>;
	type AttributeDepositPerByte = ConstU128<ATTRIBUTE_PER_BYTE>;
	type MaxDevicesPerOwner = ConstU32<MAX_DEVICES>;
	type MaxAttributesPerDevice = ConstU32<MAX_ATTRIBUTES>;
	type MaxAttributeValueLen = ConstU32<MAX_VALUE_LEN>;
	type WeightInfo = ();
}

pub fn account(seed: u8) -> AccountId {
	sr25519::Pair::from_seed(&[seed; 32]).public().into()
}

pub const OWNER: u8 = 1;
pub const OTHER_OWNER: u8 = 2;
pub const POOR_OWNER: u8 = 3;
pub const STARTING_BALANCE: Balance = 1_000_000;

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut storage = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: vec![
			(account(OWNER), STARTING_BALANCE),
			(account(OTHER_OWNER), STARTING_BALANCE),
			(account(POOR_OWNER), 10),
		],
		..Default::default()
	}
	.assimilate_storage(&mut storage)
	.unwrap();
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.register_extension(sp_keystore::KeystoreExt::new(
		sp_keystore::testing::MemoryKeystore::new(),
	));
	ext.execute_with(|| System::set_block_number(1));
	ext
}
