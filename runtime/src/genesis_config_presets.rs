//! Genesis presets: `dev` (one validator, instant or Aura sealing) and `local` (three
//! validators). Every account here is a well-known DEV key: never use them outside a testnet.
//!
//! Both presets fund the Substrate dev accounts (Alice…Ferdie, mapped to EVM addresses) and the
//! Ethereum dev accounts of the same dev mnemonic (`bottom drive obey…`, BIP-44 `m/44'/60'/0'/0/i`):
//! Alith, Baltathar, Charleth, Dorothy, Ethan and Faith, as on Moonbeam and peaq dev chains.

use alloc::{vec, vec::Vec};
use frame_support::build_struct_json_patch;
use serde_json::Value;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_consensus_grandpa::AuthorityId as GrandpaId;
use sp_genesis_builder::{self, PresetId};
use sp_keyring::Sr25519Keyring;

use crate::{AccountId, BalancesConfig, Runtime, RuntimeGenesisConfig, SudoConfig, UNIT};
use pallet_revive::AddressMapper;

/// The Ethereum dev accounts (DEV keys from the public dev mnemonic), Alith first.
pub const DEV_EVM_ACCOUNTS: [(&str, [u8; 20]); 6] = [
	("alith", hex_literal::hex!("f24ff3a9cf04c71dbc94d0b566f7a27b94566cac")),
	("baltathar", hex_literal::hex!("3cd0a705a2dc65e5b1e1205896baa2be8a07c6e0")),
	("charleth", hex_literal::hex!("798d4ba9baf0064ec19eb4f0a1a45785ae9d6dfc")),
	("dorothy", hex_literal::hex!("773539d4ac0e786233d90a233654ccee26a613d9")),
	("ethan", hex_literal::hex!("ff64d3f6efe2317ee2807d223a0bdc4c0c49dfdb")),
	("faith", hex_literal::hex!("c0f0f4ab324c46e55d02d0033343b4be8a55532d")),
];

/// The Substrate account that holds an Ethereum key's balance (`address ++ 0xEE × 12`).
fn evm_account(address: [u8; 20]) -> AccountId {
	<Runtime as pallet_revive::Config>::AddressMapper::to_fallback_account_id(&address.into())
}

/// The x402 batch-settlement contracts (`contracts/src/`), placed from genesis at the canonical
/// addresses that stock x402 clients hard-code (a channel id binds the settlement contract's
/// address, so it must be this one): the settlement contract and its EIP-3009 deposit collector.
/// Both are written without constructors or immutables, so their runtime code is complete.
pub const CHANNEL_CONTRACTS: [(&str, &str); 2] = [
	(
		"0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003",
		include_str!("../../contracts/out/BatchSettlement.json"),
	),
	(
		"0x4020806089470a89826cB9fB1f4059150b550004",
		include_str!("../../contracts/out/ERC3009DepositCollector.json"),
	),
];

/// pallet-revive genesis accounts carrying the channel contracts' runtime code.
fn channel_contract_accounts() -> Value {
	let accounts = CHANNEL_CONTRACTS
		.iter()
		.map(|(address, artifact)| {
			let artifact: Value =
				serde_json::from_str(artifact).expect("a committed solc artifact");
			let code = artifact["deployedBytecode"].clone();
			assert!(code.as_str().is_some_and(|c| c.len() > 2), "the artifact has runtime code");
			serde_json::json!({ "address": address.to_lowercase(), "code": code, "storage": {} })
		})
		.collect::<Vec<_>>();
	serde_json::json!({ "accounts": accounts })
}

/// Every dev account starts with a million tokens.
const DEV_ENDOWMENT: u128 = 1_000_000 * UNIT;

fn testnet_genesis(
	authorities: Vec<(AuraId, GrandpaId)>,
	endowed: Vec<AccountId>,
	root: AccountId,
) -> Value {
	let evm_accounts = DEV_EVM_ACCOUNTS.iter().map(|(_, address)| evm_account(*address));
	let mut patch = build_struct_json_patch!(RuntimeGenesisConfig {
		balances: BalancesConfig {
			balances: endowed
				.iter()
				.cloned()
				.chain(evm_accounts)
				.map(|k| (k, DEV_ENDOWMENT))
				.collect::<Vec<_>>(),
		},
		aura: pallet_aura::GenesisConfig {
			authorities: authorities.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
		},
		grandpa: pallet_grandpa::GenesisConfig {
			authorities: authorities.iter().map(|x| (x.1.clone(), 1)).collect::<Vec<_>>(),
		},
		sudo: SudoConfig { key: Some(root) },
	});
	patch["revive"] = channel_contract_accounts();
	patch
}

fn authority(k: Sr25519Keyring) -> (AuraId, GrandpaId) {
	let grandpa = match k {
		Sr25519Keyring::Alice => sp_keyring::Ed25519Keyring::Alice,
		Sr25519Keyring::Bob => sp_keyring::Ed25519Keyring::Bob,
		Sr25519Keyring::Charlie => sp_keyring::Ed25519Keyring::Charlie,
		_ => unreachable!("only alice, bob and charlie validate"),
	};
	(k.public().into(), grandpa.public().into())
}

/// Every well-known dev account (Alice…Ferdie and their stashes).
fn dev_accounts() -> Vec<AccountId> {
	Sr25519Keyring::iter()
		.filter(|k| k != &Sr25519Keyring::One && k != &Sr25519Keyring::Two)
		.map(|k| k.to_account_id())
		.collect()
}

/// One validator (Alice), who is also sudo.
pub fn development_config_genesis() -> Value {
	testnet_genesis(
		vec![authority(Sr25519Keyring::Alice)],
		dev_accounts(),
		Sr25519Keyring::Alice.to_account_id(),
	)
}

/// Three validators (Alice, Bob, Charlie); Alice is sudo.
pub fn local_config_genesis() -> Value {
	testnet_genesis(
		vec![
			authority(Sr25519Keyring::Alice),
			authority(Sr25519Keyring::Bob),
			authority(Sr25519Keyring::Charlie),
		],
		dev_accounts(),
		Sr25519Keyring::Alice.to_account_id(),
	)
}

/// The JSON patch of a named preset.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
	let patch = match id.as_ref() {
		sp_genesis_builder::DEV_RUNTIME_PRESET => development_config_genesis(),
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_config_genesis(),
		_ => return None,
	};
	Some(
		serde_json::to_string(&patch)
			.expect("serialization to json is expected to work. qed.")
			.into_bytes(),
	)
}

/// The preset names.
pub fn preset_names() -> Vec<PresetId> {
	vec![
		PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
		PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
	]
}

#[cfg(test)]
pub(crate) mod tests {
	use super::*;
	use crate::BuildStorage;

	/// Test externalities with the genesis state of `preset`.
	pub(crate) fn build(preset: &str) -> sp_io::TestExternalities {
		let patch = get_preset(&PresetId::from(preset)).expect("preset exists");
		let mut config = serde_json::to_value(RuntimeGenesisConfig::default()).unwrap();
		json_merge(&mut config, serde_json::from_slice(&patch).unwrap());
		let config: RuntimeGenesisConfig = serde_json::from_value(config).unwrap();
		config.build_storage().expect("genesis builds").into()
	}

	fn json_merge(base: &mut Value, patch: Value) {
		match (base, patch) {
			(Value::Object(base), Value::Object(patch)) => {
				for (k, v) in patch {
					json_merge(base.entry(k).or_insert(Value::Null), v);
				}
			},
			(base, patch) => *base = patch,
		}
	}

	#[test]
	fn dev_preset_builds_with_one_validator_and_funded_accounts() {
		build(sp_genesis_builder::DEV_RUNTIME_PRESET).execute_with(|| {
			assert_eq!(pallet_aura::Authorities::<crate::Runtime>::get().len(), 1);
			assert_eq!(
				pallet_balances::Pallet::<crate::Runtime>::free_balance(
					Sr25519Keyring::Bob.to_account_id()
				),
				DEV_ENDOWMENT
			);
			assert_eq!(
				pallet_sudo::Key::<crate::Runtime>::get(),
				Some(Sr25519Keyring::Alice.to_account_id())
			);
			for (name, address) in DEV_EVM_ACCOUNTS {
				assert_eq!(
					pallet_revive::Pallet::<Runtime>::evm_balance(&address.into()),
					// Spendable: the endowment less the existential deposit.
					pallet_revive::U256::from(DEV_ENDOWMENT - crate::EXISTENTIAL_DEPOSIT),
					"{name} is funded on the EVM side"
				);
			}
			// AutoMap gives every account created at genesis its EVM address; listing them in
			// revive's `mapped_accounts` as well would fail with `AccountAlreadyMapped`.
			let bob = Sr25519Keyring::Bob.to_account_id();
			assert!(<Runtime as pallet_revive::Config>::AddressMapper::is_mapped(&bob));
		});
	}

	#[test]
	fn local_preset_builds_with_three_validators() {
		build(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET).execute_with(|| {
			assert_eq!(pallet_aura::Authorities::<crate::Runtime>::get().len(), 3);
			assert_eq!(pallet_grandpa::Pallet::<crate::Runtime>::grandpa_authorities().len(), 3);
		});
	}

	#[test]
	fn unknown_presets_are_absent() {
		assert!(get_preset(&PresetId::from("mainnet")).is_none());
		assert_eq!(preset_names().len(), 2);
	}
}
