//! The EVM side: pallet-revive running solc EVM bytecode, configured after the published
//! `revive-dev-runtime`, and the settlement oracle that lets the receipts pallet ask a token
//! contract whether a payment happened.

use frame_support::{
	derive_impl, parameter_types,
	storage::{with_transaction, TransactionOutcome},
	traits::{ConstBool, ConstU32, ConstU64},
	weights::Weight,
};
use frame_system::{EnsureSigned, RawOrigin};
use m2m_primitives::{keccak_256, receipt::AssetKey, H160, H256};
use pallet_revive::{
	evm::fees::Info as FeeInfo, AccountId32Mapper, ExecConfig, TransactionLimits, U256,
};
use pallet_settlement_receipts::{SettlementOracle, SettlementState};
use sp_runtime::{DispatchError, Perbill};

use super::super::{
	AccountId, Address, Balance, Balances, EthExtraImpl, Revive, Runtime, RuntimeCall,
	RuntimeEvent, RuntimeHoldReason, RuntimeOrigin, Signature, Timestamp, EVM_CHAIN_ID, MICRO_UNIT,
	MILLI_UNIT,
};

parameter_types! {
	/// Storage deposits, in the native token (18 decimals, like wei): a contract storage slot
	/// costs 0.002 and a byte of code or storage 0.00001.
	pub const DepositPerItem: Balance = 2 * MILLI_UNIT;
	pub const DepositPerChildTrieItem: Balance = 2 * MILLI_UNIT / 100;
	pub const DepositPerByte: Balance = 10 * MICRO_UNIT;
	pub CodeHashLockupDepositPercent: Perbill = Perbill::from_percent(30);
}

#[derive_impl(pallet_revive::config_preludes::TestDefaultConfig)]
impl pallet_revive::Config for Runtime {
	type AddressMapper = AccountId32Mapper<Self>;
	type ChainId = ConstU64<EVM_CHAIN_ID>;
	type CodeHashLockupDepositPercent = CodeHashLockupDepositPercent;
	type DepositPerItem = DepositPerItem;
	type DepositPerChildTrieItem = DepositPerChildTrieItem;
	type DepositPerByte = DepositPerByte;
	type Balance = Balance;
	type Currency = Balances;
	/// The native token has 18 decimals, as ether does: one planck is one wei.
	type NativeToEthRatio = ConstU32<1>;
	type UploadOrigin = EnsureSigned<AccountId>;
	type InstantiateOrigin = EnsureSigned<AccountId>;
	type Time = Timestamp;
	type FeeInfo = FeeInfo<Address, Signature, EthExtraImpl>;
	type DebugEnabled = ConstBool<false>;
	type AutoMap = ConstBool<true>;
	/// Scales gas so that common contracts cost what Ethereum tools expect (a token transfer is
	/// tens of thousands of gas, not billions); the same factor as `revive-dev-runtime`.
	type GasScale = ConstU32<50_000>;
	type WeightInfo = pallet_revive::weights::SubstrateWeight<Self>;
}

/// Upper bound on one `authorizationState` call, charged per receipt up front; the call is
/// metered against it and counts as unverifiable beyond it. pallet-revive meters the real call
/// on our USDT at 113.7 µs and 15.7 KiB of proof (the runtime test below prints it); this
/// leaves a 4x margin.
const SETTLEMENT_CHECK_WEIGHT: Weight = Weight::from_parts(500_000_000, 64 * 1024);

/// Answers "was this EIP-3009 authorization used?" by calling the token contract's
/// `authorizationState(address,bytes32)` inside the runtime, for assets on this chain's EVM.
pub struct ReviveSettlement;

impl ReviveSettlement {
	fn calldata(from: &H160, nonce: &H256) -> alloc::vec::Vec<u8> {
		let selector = keccak_256(b"authorizationState(address,bytes32)");
		let mut data = alloc::vec::Vec::with_capacity(4 + 64);
		data.extend_from_slice(&selector[..4]);
		data.extend_from_slice(&[0u8; 12]);
		data.extend_from_slice(from.as_bytes());
		data.extend_from_slice(nonce.as_bytes());
		data
	}
}

impl SettlementOracle for ReviveSettlement {
	fn check_weight() -> Weight {
		SETTLEMENT_CHECK_WEIGHT
	}

	fn authorization_state(asset: &AssetKey, from: &H160, nonce: &H256) -> SettlementState {
		if asset.chain_id != EVM_CHAIN_ID {
			return SettlementState::NotLocal;
		}
		// A view must not change state, whatever the contract does: roll everything back.
		let result = with_transaction(|| {
			let result = Revive::bare_call(
				RawOrigin::Root.into(),
				asset.token,
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: SETTLEMENT_CHECK_WEIGHT,
					deposit_limit: 0,
				},
				Self::calldata(from, nonce),
				&ExecConfig::new_substrate_tx_without_bump(),
			);
			TransactionOutcome::Rollback(Ok::<_, DispatchError>(result))
		});
		let Ok(result) = result else { return SettlementState::Unavailable };
		match result.result {
			Ok(ret) if !ret.did_revert() && ret.data.len() == 32 => {
				let (high, low) = ret.data.split_at(31);
				match (high.iter().all(|b| *b == 0), low[0]) {
					(true, 1) => SettlementState::Used,
					(true, 0) => SettlementState::Unused,
					_ => SettlementState::Unavailable,
				}
			},
			_ => SettlementState::Unavailable,
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::System;
	use pallet_revive::{AddressMapper, Code};
	use sp_keyring::Sr25519Keyring;

	/// The creation code of `contracts/out/USDT.json`.
	fn usdt_init_code() -> alloc::vec::Vec<u8> {
		let artifact: serde_json::Value =
			serde_json::from_str(include_str!("../../../contracts/out/USDT.json")).unwrap();
		let hex = artifact["bytecode"].as_str().unwrap().trim_start_matches("0x");
		(0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
	}

	/// The oracle asks a real USDT (deployed here from the committed artifact) and its metered
	/// cost stays well inside the weight the receipts pallet charges for it.
	#[test]
	fn the_settlement_oracle_reads_a_real_token_within_its_weight() {
		crate::genesis_config_presets::tests::build("development").execute_with(|| {
			System::set_block_number(1);
			let alice = Sr25519Keyring::Alice.to_account_id();
			let owner = <Runtime as pallet_revive::Config>::AddressMapper::to_address(&alice);
			let mut init = usdt_init_code();
			init.extend_from_slice(&[0u8; 12]);
			init.extend_from_slice(owner.as_bytes());
			let deployed = Revive::bare_instantiate(
				RuntimeOrigin::signed(alice),
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: Weight::from_parts(100_000_000_000, 10 * 1024 * 1024),
					deposit_limit: Balance::MAX,
				},
				Code::Upload(init),
				alloc::vec::Vec::new(),
				None,
				&ExecConfig::new_substrate_tx(),
			);
			let token = deployed.result.expect("USDT deploys").addr;

			let asset = AssetKey { chain_id: EVM_CHAIN_ID, token };
			let (from, nonce) = (H160::repeat_byte(1), H256::repeat_byte(2));
			assert_eq!(
				ReviveSettlement::authorization_state(&asset, &from, &nonce),
				SettlementState::Unused
			);
			let other_chain = AssetKey { chain_id: 3338, token };
			assert_eq!(
				ReviveSettlement::authorization_state(&other_chain, &from, &nonce),
				SettlementState::NotLocal
			);
			let no_contract = AssetKey { chain_id: EVM_CHAIN_ID, token: H160::repeat_byte(9) };
			assert_eq!(
				ReviveSettlement::authorization_state(&no_contract, &from, &nonce),
				SettlementState::Unavailable
			);

			let metered = Revive::bare_call(
				RawOrigin::Root.into(),
				token,
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: SETTLEMENT_CHECK_WEIGHT,
					deposit_limit: 0,
				},
				ReviveSettlement::calldata(&from, &nonce),
				&ExecConfig::new_substrate_tx_without_bump(),
			);
			assert!(metered.result.is_ok());
			let used = metered.weight_required;
			println!("authorizationState weight: {used} (charged {SETTLEMENT_CHECK_WEIGHT})");
			assert!(
				used.ref_time() * 4 <= SETTLEMENT_CHECK_WEIGHT.ref_time()
					&& used.proof_size() * 4 <= SETTLEMENT_CHECK_WEIGHT.proof_size(),
				"the charged weight must leave a 4x margin over {used}"
			);
		});
	}
}
