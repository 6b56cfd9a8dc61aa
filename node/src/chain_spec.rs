//! The built-in chains. Their genesis comes from the runtime's presets, so the runtime is the
//! single source of truth; `chain-specs/` holds the exported JSON for other tools.

use m2m_runtime::WASM_BINARY;
use sc_service::{ChainType, Properties};

pub type ChainSpec = sc_service::GenericChainSpec;

fn properties() -> Properties {
	let mut p = Properties::new();
	p.insert("tokenSymbol".into(), m2m_runtime::TOKEN_SYMBOL.into());
	p.insert("tokenDecimals".into(), m2m_runtime::TOKEN_DECIMALS.into());
	p.insert("ss58Format".into(), m2m_runtime::SS58_PREFIX.into());
	p
}

fn wasm() -> Result<&'static [u8], String> {
	WASM_BINARY.ok_or_else(|| "the runtime wasm was not built (SKIP_WASM_BUILD?)".to_string())
}

/// A single validator (Alice) for development.
pub fn development() -> Result<ChainSpec, String> {
	Ok(ChainSpec::builder(wasm()?, None)
		.with_name("m2m-pay Development")
		.with_id("m2m_dev")
		.with_chain_type(ChainType::Development)
		.with_genesis_config_preset_name(sp_genesis_builder::DEV_RUNTIME_PRESET)
		.with_properties(properties())
		.build())
}

/// Three validators (Alice, Bob, Charlie): the local peaq-like testnet.
pub fn local_testnet() -> Result<ChainSpec, String> {
	Ok(ChainSpec::builder(wasm()?, None)
		.with_name("m2m-pay Local Testnet")
		.with_id("m2m_local")
		.with_chain_type(ChainType::Local)
		.with_genesis_config_preset_name(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET)
		.with_properties(properties())
		.build())
}
