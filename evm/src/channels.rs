//! The x402 batch-settlement contracts (`contracts/src/BatchSettlement.sol` and
//! `ERC3009DepositCollector.sol`): bindings from the committed artifacts, their canonical
//! addresses, and how they get there.
//!
//! On the m2m-pay chain both are in genesis at the canonical addresses. On anvil they are put
//! there with `anvil_setCode` ([`install_on_anvil`]); both contracts are written without
//! constructors or immutables, so runtime code copied to an address is the whole contract.

use alloy::{
	primitives::{address, Address, Bytes},
	providers::{DynProvider, Provider},
};

use crate::EvmError;

// The generated call builders take every Solidity argument.
#[allow(clippy::too_many_arguments)]
mod bindings {
	alloy::sol!(
	/// The x402 batch-settlement contract: channels, vouchers, claims, settlement,
	/// withdrawals and refunds.
	#[sol(rpc)]
	#[derive(Debug, PartialEq, Eq)]
	BatchSettlement,
	"../contracts/out/BatchSettlement.json"
	);
	alloy::sol!(
	/// Collects a channel deposit with the payer's EIP-3009 `ReceiveWithAuthorization`.
	#[sol(rpc)]
	#[derive(Debug, PartialEq, Eq)]
	ERC3009DepositCollector,
	"../contracts/out/ERC3009DepositCollector.json"
	);
}
pub use bindings::{BatchSettlement, ERC3009DepositCollector};

/// Where stock x402 clients expect the settlement contract (the same on every chain).
pub const SETTLEMENT_ADDRESS: Address = address!("4020074e9dF2ce1deE5A9C1b5c3f541D02a10003");
/// Where stock x402 clients expect the EIP-3009 deposit collector.
pub const DEPOSIT_COLLECTOR_ADDRESS: Address = address!("4020806089470a89826cB9fB1f4059150b550004");

/// Whether the endpoint has exactly our contracts at the canonical addresses.
pub async fn installed(provider: &DynProvider) -> Result<bool, EvmError> {
	let settlement = provider.get_code_at(SETTLEMENT_ADDRESS).await?;
	let collector = provider.get_code_at(DEPOSIT_COLLECTOR_ADDRESS).await?;
	Ok(settlement == BatchSettlement::DEPLOYED_BYTECODE
		&& collector == ERC3009DepositCollector::DEPLOYED_BYTECODE)
}

/// Puts both contracts at the canonical addresses of an anvil endpoint (`anvil_setCode`),
/// unless they are there already. Anvil only: a real chain has them from genesis.
pub async fn install_on_anvil(provider: &DynProvider) -> Result<(), EvmError> {
	if installed(provider).await? {
		return Ok(());
	}
	for (at, code) in [
		(SETTLEMENT_ADDRESS, &BatchSettlement::DEPLOYED_BYTECODE),
		(DEPOSIT_COLLECTOR_ADDRESS, &ERC3009DepositCollector::DEPLOYED_BYTECODE),
	] {
		let _: () = provider.raw_request("anvil_setCode".into(), (at, Bytes::clone(code))).await?;
	}
	if !installed(provider).await? {
		return Err(EvmError::Deployment(
			"anvil_setCode succeeded but the channel contracts are not at their addresses".into(),
		));
	}
	Ok(())
}

#[cfg(test)]
mod tests {
	use super::*;
	use alloy::sol_types::SolCall;

	#[test]
	fn the_bindings_have_the_schemes_selectors() {
		assert!(BatchSettlement::DEPLOYED_BYTECODE.len() > 5_000);
		assert_eq!(BatchSettlement::depositCall::SELECTOR, [0x14, 0x0f, 0x1e, 0x75]);
		assert_eq!(BatchSettlement::claimCall::SELECTOR, [0x29, 0x23, 0x7b, 0x0c]);
		assert_eq!(BatchSettlement::claimWithSignatureCall::SELECTOR, [0xe4, 0x3c, 0xe1, 0xf2]);
		assert_eq!(BatchSettlement::settleCall::SELECTOR, [0x9d, 0xb3, 0x2a, 0x8f]);
		assert_eq!(BatchSettlement::refundWithSignatureCall::SELECTOR, [0xb7, 0x74, 0x33, 0xe9]);
		assert_eq!(BatchSettlement::multicallCall::SELECTOR, [0xac, 0x96, 0x50, 0xd8]);
		assert_eq!(BatchSettlement::getChannelIdCall::SELECTOR, [0x5e, 0x5e, 0x0b, 0x87]);
		assert_eq!(BatchSettlement::channelsCall::SELECTOR, [0x7a, 0x7e, 0xbd, 0x7b]);
		assert_eq!(ERC3009DepositCollector::collectCall::SELECTOR, [0xe4, 0x16, 0xd8, 0xd3]);
	}
}
