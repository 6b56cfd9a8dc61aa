//! Test runtime: the real identity pallet (with real proofs), balances and timestamp.

use crate as pallet_settlement_receipts;
use frame_support::{
	derive_impl, parameter_types,
	traits::{ConstU128, ConstU32, ConstU64},
};
use frame_system::EnsureRoot;
use m2m_primitives::{
	eip712::{domain_separator, EcdsaSignature, TransferWithAuthorization},
	receipt::AssetKey,
	H160, H256, U256,
};
use pallet_device_identity::{testing::evm_sign, DeviceId};
use sp_core::{sr25519, Pair};
use sp_runtime::{
	traits::{IdentifyAccount, IdentityLookup, Verify},
	BuildStorage, MultiSignature,
};

pub use pallet_device_identity::testing::DeviceKeys;

use crate::{AuthorizationRecord, GenesisAsset, PaymentProof, ReceiptInput, SettlementCheck};
use frame_support::weights::Weight;
use std::{cell::RefCell, collections::BTreeMap};

pub type AccountId = <<MultiSignature as Verify>::Signer as IdentifyAccount>::AccountId;
pub type Balance = u128;
type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		Timestamp: pallet_timestamp,
		DeviceIdentity: pallet_device_identity,
		SettlementReceipts: pallet_settlement_receipts,
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

impl pallet_timestamp::Config for Test {
	type Moment = u64;
	type OnTimestampSet = ();
	type MinimumPeriod = ConstU64<1>;
	type WeightInfo = ();
}

parameter_types! {
	pub const DeviceDeposit: Balance = 10;
}

impl pallet_device_identity::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Signature = MultiSignature;
	type ForceOrigin = EnsureRoot<AccountId>;
	type DeviceDeposit = DeviceDeposit;
	type AttributeDepositBase = ConstU128<1>;
	type AttributeDepositPerByte = ConstU128<1>;
	type MaxDevicesPerOwner = ConstU32<10>;
	type MaxAttributesPerDevice = ConstU32<4>;
	type MaxAttributeValueLen = ConstU32<32>;
	type WeightInfo = ();
}

pub const MAX_BATCH: u32 = 4;
pub const RETENTION_MS: u64 = 10 * DAY;
pub const SKEW_MS: u64 = 60_000;
pub const BACKDATE_MS: u64 = 2 * DAY;
pub const MAX_RETENTION_MS: u64 = 400 * DAY;
pub const DAY: u64 = 86_400_000;
/// 2026-11-21T12:00:00Z: chain time at the start of every test.
pub const NOW: u64 = 1_795_262_400_000;

impl crate::Config for Test {
	type Devices = DeviceIdentity;
	type AdminOrigin = EnsureRoot<AccountId>;
	type UnixTime = Timestamp;
	type MaxBatchSize = ConstU32<MAX_BATCH>;
	type MaxPruneBatch = ConstU32<4>;
	type MaxClockSkew = ConstU64<SKEW_MS>;
	type MaxBackdate = ConstU64<BACKDATE_MS>;
	type DefaultRetention = ConstU64<RETENTION_MS>;
	type MaxRetention = ConstU64<MAX_RETENTION_MS>;
	type Settlement = MockSettlement;
	type WeightInfo = ();
}

/// The EVM chain id that the mock treats as "this chain".
pub const LOCAL_CHAIN_ID: u64 = 4242;
/// Weight the mock oracle charges per check.
pub const CHECK_WEIGHT: Weight = Weight::from_parts(1_000_000, 100);

thread_local! {
	static TOKEN: RefCell<BTreeMap<(H160, H256), AuthorizationRecord>> =
		const { RefCell::new(BTreeMap::new()) };
	static CLAIMED: RefCell<BTreeMap<H256, u128>> = const { RefCell::new(BTreeMap::new()) };
}

/// The mock settlement contract shows `total` claimed from `channel_id`.
pub fn mark_claimed(channel_id: H256, total: u128) {
	CLAIMED.with(|c| c.borrow_mut().insert(channel_id, total));
}

/// A MOCK settlement oracle for unit tests, standing in for a token that remembers what it
/// executed: [`mark_executed`] and [`mark_cancelled`] write its memory, for tokens of
/// [`LOCAL_CHAIN_ID`]; a token at `0xdead…` answers nothing. The runtime uses the real one over
/// pallet-revive and the real USDT (`runtime/src/configs/evm.rs` tests it, forgeries included).
pub struct MockSettlement;

impl crate::SettlementOracle for MockSettlement {
	fn check_weight() -> Weight {
		CHECK_WEIGHT
	}
	fn authorization_record(asset: &AssetKey, from: &H160, nonce: &H256) -> AuthorizationRecord {
		if asset.chain_id != LOCAL_CHAIN_ID || asset.token == H160::repeat_byte(0xde) {
			AuthorizationRecord::Unavailable
		} else {
			TOKEN.with(|t| {
				t.borrow().get(&(*from, *nonce)).copied().unwrap_or(AuthorizationRecord::Unused)
			})
		}
	}
	fn channel_claimed(asset: &AssetKey, channel_id: &H256) -> Option<u128> {
		if asset.chain_id != LOCAL_CHAIN_ID || asset.token == H160::repeat_byte(0xde) {
			None
		} else {
			Some(CLAIMED.with(|c| c.borrow().get(channel_id).copied().unwrap_or(0)))
		}
	}
}

/// The mock token executes `authorization` (under the "Tether USD" domain of `asset`).
pub fn mark_executed(asset: AssetKey, authorization: &TransferWithAuthorization) {
	let domain = domain_separator(b"Tether USD", b"1", asset.chain_id, asset.token);
	let digest = authorization.signing_digest(&domain);
	TOKEN.with(|t| {
		t.borrow_mut().insert(
			(authorization.from, authorization.nonce),
			AuthorizationRecord::Executed(digest),
		)
	});
}

/// The mock token executes the authorization a receipt cites.
pub fn mark_settled(input: &ReceiptInput) {
	match &input.proof {
		PaymentProof::Exact { authorization, .. } => mark_executed(input.asset, authorization),
		PaymentProof::Channel { config, total_claimed, .. } => {
			let id = config
				.channel_id(input.asset.chain_id, m2m_primitives::channel::SETTLEMENT_ADDRESS);
			mark_claimed(id, *total_claimed)
		},
	}
}

/// The payer cancels `nonce` on the mock token.
pub fn mark_cancelled(from: H160, nonce: H256) {
	TOKEN.with(|t| t.borrow_mut().insert((from, nonce), AuthorizationRecord::Cancelled));
}

/// USDT on this chain's own EVM (as the mock sees it), registered at genesis.
pub fn local_usdt() -> AssetKey {
	AssetKey { chain_id: LOCAL_CHAIN_ID, token: H160::repeat_byte(0x66) }
}

/// A token on this chain whose contract cannot answer.
pub fn broken_local_token() -> AssetKey {
	AssetKey { chain_id: LOCAL_CHAIN_ID, token: H160::repeat_byte(0xde) }
}

pub const OWNER_A: u8 = 1;
pub const OWNER_B: u8 = 2;

pub fn account(seed: u8) -> AccountId {
	sr25519::Pair::from_seed(&[seed; 32]).public().into()
}

/// USDT on a peaq-like chain, registered at genesis.
pub fn usdt() -> AssetKey {
	AssetKey { chain_id: 9990, token: H160::repeat_byte(0x55) }
}

pub fn usdt_domain() -> H256 {
	domain_separator(b"Tether USD", b"1", usdt().chain_id, usdt().token)
}

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut storage = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: vec![(account(OWNER_A), 1_000_000), (account(OWNER_B), 1_000_000)],
		..Default::default()
	}
	.assimilate_storage(&mut storage)
	.unwrap();
	crate::GenesisConfig::<Test> {
		assets: [
			(usdt(), SettlementCheck::SignedOnly),
			(local_usdt(), SettlementCheck::TokenDigest),
			(broken_local_token(), SettlementCheck::TokenDigest),
		]
		.into_iter()
		.map(|(asset, settlement)| GenesisAsset {
			asset,
			name: "Tether USD".into(),
			version: "1".into(),
			decimals: 6,
			symbol: "USDT".into(),
			settlement,
		})
		.collect(),
		retention_period: None,
		_phantom: Default::default(),
	}
	.assimilate_storage(&mut storage)
	.unwrap();
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.register_extension(sp_keystore::KeystoreExt::new(
		sp_keystore::testing::MemoryKeystore::new(),
	));
	ext.execute_with(|| {
		System::set_block_number(1);
		Timestamp::set_timestamp(NOW);
	});
	ext
}

/// Registers a device for `owner` through the identity pallet's real call.
pub fn register(owner: u8, keys: &DeviceKeys) -> DeviceId {
	let id = pallet_device_identity::NextDeviceId::<Test>::get();
	DeviceIdentity::register(
		RuntimeOrigin::signed(account(owner)),
		keys.account_id(),
		keys.evm_address(),
		keys.peer_id(),
		keys.proof::<Test>(&account(owner)),
	)
	.expect("registration succeeds");
	id
}

/// An authorization from `payer` to `to` under `domain`, signed by `payer`'s EVM key.
pub fn authorize(
	payer: &DeviceKeys,
	to: H160,
	value: u128,
	nonce: u8,
	domain: &H256,
) -> (TransferWithAuthorization, EcdsaSignature) {
	let authorization = TransferWithAuthorization {
		from: payer.evm_address(),
		to,
		value: U256::from(value),
		valid_after: U256::from(NOW / 1000 - 600),
		valid_before: U256::from(NOW / 1000 + 60),
		nonce: H256::repeat_byte(nonce),
	};
	let signature = evm_sign(&payer.evm, &authorization.signing_digest(domain).0);
	(authorization, signature)
}

/// A valid receipt of `payer` paying `payee` (device `payee_id`).
pub fn receipt(
	payer: &DeviceKeys,
	payee: &DeviceKeys,
	payee_id: DeviceId,
	value: u128,
	nonce: u8,
	period_end: u64,
) -> ReceiptInput {
	receipt_in(usdt(), payer, payee, payee_id, value, nonce, period_end)
}

/// [`receipt`] for any registered asset (all share the "Tether USD" domain name).
pub fn receipt_in(
	asset: AssetKey,
	payer: &DeviceKeys,
	payee: &DeviceKeys,
	payee_id: DeviceId,
	value: u128,
	nonce: u8,
	period_end: u64,
) -> ReceiptInput {
	let domain = domain_separator(b"Tether USD", b"1", asset.chain_id, asset.token);
	let (authorization, signature) = authorize(payer, payee.evm_address(), value, nonce, &domain);
	ReceiptInput {
		payee: payee_id,
		asset,
		proof: PaymentProof::Exact { authorization, signature },
		settlement_tx: H256::repeat_byte(nonce.wrapping_add(1)),
		resource: H256::repeat_byte(0xAA),
		request_count: 1,
		period_start: period_end.saturating_sub(1_000),
		period_end,
	}
}
