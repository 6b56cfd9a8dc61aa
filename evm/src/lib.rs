//! The EVM edge of m2m-pay, on [alloy].
//!
//! - [`usdt`]: the testnet USDT (`contracts/src/USDT.sol`) as `sol!` bindings generated from the
//!   committed compiler artifact, and its idempotent deployment.
//! - [`channels`]: the x402 batch-settlement contracts (payment channels) at their canonical
//!   addresses, and their placement on anvil.
//! - [`dev`]: the well-known DEV Ethereum accounts that the `dev` and `local` chain presets (and
//!   anvil started with the same mnemonic) fund.
//! - [`connect`]: a provider for an endpoint, optionally signing with a key.
//!
//! Everything here talks to any Ethereum JSON-RPC endpoint: `m2m-eth-rpc` in front of an
//! m2m-pay node, or anvil. The differences that matter are handled here once (see
//! [`DEPLOY_GAS`]).

pub mod channels;
pub mod dev;
pub mod key;
pub mod usdt;

pub use alloy;

use alloy::{
	network::EthereumWallet,
	primitives::{Address, TxHash, U256},
	providers::{DynProvider, Provider, ProviderBuilder},
	rpc::types::TransactionRequest,
	signers::local::PrivateKeySigner,
	transports::{RpcError, TransportErrorKind},
};

/// Gas limit for a contract deployment when `eth_estimateGas` fails (it can, on pallet-revive).
/// Fine for anvil; pallet-revive folds storage deposits into gas, so a deployment there needs
/// far more and relies on the estimate.
pub const DEPLOY_GAS: u64 = 10_000_000;

/// How long [`confirm`] waits for a receipt.
pub const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What can go wrong at the EVM edge.
#[derive(Debug, thiserror::Error)]
pub enum EvmError {
	#[error("invalid EVM RPC URL {url:?}: {reason}")]
	InvalidUrl { url: String, reason: String },
	#[error("EVM RPC request failed: {0}")]
	Rpc(#[from] RpcError<TransportErrorKind>),
	#[error("contract call failed: {0}")]
	Contract(#[from] alloy::contract::Error),
	#[error("transaction {tx} was not confirmed: {reason}")]
	Unconfirmed { tx: TxHash, reason: String },
	#[error("transaction {tx} reverted")]
	Reverted { tx: TxHash },
	#[error("{0}")]
	Deployment(String),
}

/// A provider for `url` that signs with `signer` (fills nonce, gas and chain id itself).
pub fn connect(url: &str, signer: Option<PrivateKeySigner>) -> Result<DynProvider, EvmError> {
	let parsed = url.parse().map_err(
		|e: <alloy::transports::http::reqwest::Url as std::str::FromStr>::Err| {
			EvmError::InvalidUrl { url: url.to_string(), reason: e.to_string() }
		},
	)?;
	// The nonce comes from the endpoint for every transaction. alloy's default (a cached
	// counter) burns a nonce when a send fails after filling, e.g. on a reverting gas
	// estimate, and every later transaction then waits behind the gap forever.
	let builder = ProviderBuilder::new()
		.disable_recommended_fillers()
		.with_gas_estimation()
		.with_simple_nonce_management()
		.fetch_chain_id();
	Ok(match signer {
		Some(signer) => builder.wallet(EthereumWallet::from(signer)).connect_http(parsed).erased(),
		None => builder.connect_http(parsed).erased(),
	})
}

/// Sends `value` wei of the native token from the provider's signer to `to` and waits for
/// inclusion.
pub async fn send_native(
	provider: &DynProvider,
	to: Address,
	value: U256,
) -> Result<TxHash, EvmError> {
	let pending =
		provider.send_transaction(TransactionRequest::default().to(to).value(value)).await?;
	confirm(pending).await
}

/// Waits for a sent transaction's receipt (polling `eth_getTransactionReceipt`, at most
/// [`RECEIPT_TIMEOUT`]) and checks that it succeeded.
///
/// Polling the receipt directly works the same on every endpoint; alloy's block-watching
/// heartbeat can miss a transaction that an automining node (anvil) included before the
/// watch began.
pub async fn confirm(
	pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
) -> Result<TxHash, EvmError> {
	let tx = *pending.tx_hash();
	let provider = pending.provider().clone();
	let deadline = tokio::time::Instant::now() + RECEIPT_TIMEOUT;
	loop {
		if let Some(receipt) = provider.get_transaction_receipt(tx).await? {
			return if receipt.status() { Ok(tx) } else { Err(EvmError::Reverted { tx }) };
		}
		if tokio::time::Instant::now() >= deadline {
			return Err(EvmError::Unconfirmed {
				tx,
				reason: format!("no receipt within {RECEIPT_TIMEOUT:?}"),
			});
		}
		tokio::time::sleep(std::time::Duration::from_millis(50)).await;
	}
}
