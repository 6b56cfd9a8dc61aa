//! The testnet USDT: bindings, EIP-712 domain, and idempotent deployment.
//!
//! The bindings come from `contracts/out/USDT.json`, the artifact that `contracts/build.js`
//! compiles with the pinned solc (a test keeps it identical to the source).

use alloy::{
	primitives::{Address, TxHash, B256, U256},
	providers::{DynProvider, Provider},
	rpc::types::TransactionRequest,
};

use crate::{confirm, EvmError, DEPLOY_GAS};

// The generated call builders take every Solidity argument, as EIP-3009 defines them.
#[allow(clippy::too_many_arguments)]
mod bindings {
	alloy::sol!(
	/// The m2m-pay testnet USDT: ERC-20 (6 decimals), EIP-2612, EIP-3009, owner-only mint.
	#[sol(rpc)]
	#[derive(Debug, PartialEq, Eq)]
	USDT,
	"../contracts/out/USDT.json"
	);
}
pub use bindings::USDT;

/// An EIP-3009 authorization with its signature: everything `transferWithAuthorization`
/// takes. Whoever submits it pays the gas; the token moves `value` from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransfer {
	pub from: Address,
	pub to: Address,
	pub value: U256,
	pub valid_after: U256,
	pub valid_before: U256,
	pub nonce: B256,
	/// 27 or 28.
	pub v: u8,
	pub r: B256,
	pub s: B256,
}

impl SignedTransfer {
	/// The settlement transaction on `token` (the sender is filled in by whoever sends it).
	pub fn request(&self, token: Address, provider: &DynProvider) -> TransactionRequest {
		USDT::new(token, provider)
			.transferWithAuthorization(
				self.from,
				self.to,
				self.value,
				self.valid_after,
				self.valid_before,
				self.nonce,
				self.v,
				self.r,
				self.s,
			)
			.into_transaction_request()
	}

	/// Sends the settlement from the provider's signer and waits for it to succeed.
	pub async fn submit(&self, token: Address, provider: &DynProvider) -> Result<TxHash, EvmError> {
		confirm(provider.send_transaction(self.request(token, provider)).await?).await
	}
}

/// Decimals of the testnet USDT (as of peaq's and most chains' USDT).
pub const DECIMALS: u8 = 6;
/// Token base units per USDT.
pub const UNIT: u64 = 1_000_000;

/// Where the deployer's first transaction puts the token (CREATE at nonce 0).
pub fn canonical_address(deployer: Address) -> Address {
	deployer.create(0)
}

/// The token's EIP-712 domain, as the contract reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
	pub name: String,
	pub version: String,
	pub chain_id: u64,
	pub verifying_contract: Address,
}

/// Reads the EIP-712 domain from the token (EIP-5267 `eip712Domain()`).
pub async fn domain(provider: &DynProvider, token: Address) -> Result<Domain, EvmError> {
	let d = USDT::new(token, provider).eip712Domain().call().await?;
	Ok(Domain {
		name: d.domainName,
		version: d.domainVersion,
		chain_id: d.chainId.try_into().map_err(|_| {
			EvmError::Deployment(format!("token {token} reports a chain id beyond 64 bits"))
		})?,
		verifying_contract: d.verifyingContract,
	})
}

/// How [`find_or_deploy`] got its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deployment {
	/// The token was already at its canonical address.
	Found(Address),
	/// This call deployed it.
	Deployed { address: Address, tx: TxHash },
}

impl Deployment {
	pub fn address(&self) -> Address {
		match self {
			Deployment::Found(a) | Deployment::Deployed { address: a, .. } => *a,
		}
	}
}

/// Finds USDT at the canonical address of the provider's signer, or deploys it there (the
/// signer must then be unused, nonce 0). Safe to call any number of times.
pub async fn find_or_deploy(
	provider: &DynProvider,
	deployer: Address,
) -> Result<Deployment, EvmError> {
	let address = canonical_address(deployer);
	if !provider.get_code_at(address).await?.is_empty() {
		let token = USDT::new(address, provider);
		let (symbol, owner) = (token.symbol().call().await?, token.owner().call().await?);
		if symbol != "USDT" || owner != deployer {
			return Err(EvmError::Deployment(format!(
				"{address} holds a contract that is not this USDT (symbol {symbol:?}, owner {owner})"
			)));
		}
		return Ok(Deployment::Found(address));
	}
	let nonce = provider.get_transaction_count(deployer).await?;
	if nonce != 0 {
		return Err(EvmError::Deployment(format!(
			"deployer {deployer} has sent {nonce} transaction(s) but USDT is not at {address}: \
			 the deployer key must be used for nothing else"
		)));
	}
	let builder = USDT::deploy_builder(provider, deployer);
	let gas = match builder.estimate_gas().await {
		// Headroom: the estimate is exact for the state it ran against.
		Ok(estimate) => estimate.saturating_add(estimate / 5),
		Err(_) => DEPLOY_GAS,
	};
	let pending = builder.gas(gas).send().await?;
	let tx = confirm(pending).await?;
	if provider.get_code_at(address).await?.is_empty() {
		return Err(EvmError::Deployment(format!(
			"deployment {tx} succeeded but left no code at the canonical address {address}"
		)));
	}
	Ok(Deployment::Deployed { address, tx })
}

/// Mints `amount` base units to `to`; the provider must sign as the token owner.
pub async fn mint(
	provider: &DynProvider,
	token: Address,
	to: Address,
	amount: U256,
) -> Result<TxHash, EvmError> {
	confirm(USDT::new(token, provider).mint(to, amount).send().await?).await
}

/// The transaction that used `authorizer`'s authorization `nonce` to pay `to` exactly
/// `value`, if there is one: found by its `AuthorizationUsed` log, then checked against the
/// same transaction's `Transfer` log (a payer could have signed another authorization with the
/// same nonce).
pub async fn find_authorization_use(
	provider: &DynProvider,
	token: Address,
	authorizer: Address,
	nonce: B256,
	to: Address,
	value: U256,
) -> Result<Option<TxHash>, EvmError> {
	use alloy::{rpc::types::Filter, sol_types::SolEvent};
	let filter = Filter::new()
		.address(token)
		.event_signature(USDT::AuthorizationUsed::SIGNATURE_HASH)
		.topic1(authorizer.into_word())
		.topic2(nonce)
		.from_block(0);
	for log in provider.get_logs(&filter).await? {
		let Some(tx) = log.transaction_hash else { continue };
		let Some(receipt) = provider.get_transaction_receipt(tx).await? else { continue };
		let paid = receipt.inner.logs().iter().any(|l| {
			l.address() == token
				&& USDT::Transfer::decode_log_data(l.data())
					.is_ok_and(|t| t.from == authorizer && t.to == to && t.value == value)
		});
		if paid {
			return Ok(Some(tx));
		}
	}
	Ok(None)
}

#[cfg(test)]
mod tests {
	use super::*;
	use alloy::sol_types::SolCall;

	#[test]
	fn the_binding_matches_the_compiled_contract() {
		// sol! embedded the artifact's creation code; an empty one would deploy nothing.
		assert!(USDT::BYTECODE.len() > 1_000);
		assert!(USDT::DEPLOYED_BYTECODE.len() > 1_000);
		assert_eq!(
			USDT::transferWithAuthorizationCall::SELECTOR,
			[0xe3, 0xee, 0x16, 0x0e],
			"the x402 settle call selector"
		);
	}
}
