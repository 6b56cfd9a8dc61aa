//! The node's RPC methods beyond the sc-rpc defaults.

use std::sync::Arc;

use jsonrpsee::RpcModule;
use m2m_runtime::{opaque::Block, AccountId, Balance, Nonce};
use sc_transaction_pool_api::TransactionPool;
use sp_api::ProvideRuntimeApi;
use sp_block_builder::BlockBuilder;
use sp_blockchain::{Error as BlockChainError, HeaderBackend, HeaderMetadata};

/// What the RPC extensions need.
pub struct FullDeps<C, P> {
	pub client: Arc<C>,
	pub pool: Arc<P>,
	/// With `--sealing manual-finality`: where `engine_createBlock` and `engine_finalizeBlock`
	/// send their commands.
	pub manual_seal: Option<
		futures::channel::mpsc::Sender<
			sc_consensus_manual_seal::EngineCommand<<Block as sp_runtime::traits::Block>::Hash>,
		>,
	>,
}

/// `system_accountNextIndex` (pool-aware nonces) and transaction-payment fee queries; with
/// manual finality, the `engine_*` methods too.
pub fn create_full<C, P>(
	deps: FullDeps<C, P>,
) -> Result<RpcModule<()>, Box<dyn std::error::Error + Send + Sync>>
where
	C: ProvideRuntimeApi<Block>
		+ HeaderBackend<Block>
		+ HeaderMetadata<Block, Error = BlockChainError>
		+ Send
		+ Sync
		+ 'static,
	C::Api: substrate_frame_rpc_system::AccountNonceApi<Block, AccountId, Nonce>,
	C::Api: pallet_transaction_payment_rpc::TransactionPaymentRuntimeApi<Block, Balance>,
	C::Api: BlockBuilder<Block>,
	P: TransactionPool + 'static,
{
	use pallet_transaction_payment_rpc::{TransactionPayment, TransactionPaymentApiServer};
	use substrate_frame_rpc_system::{System, SystemApiServer};

	let mut module = RpcModule::new(());
	let FullDeps { client, pool, manual_seal } = deps;
	module.merge(System::new(client.clone(), pool).into_rpc())?;
	module.merge(TransactionPayment::new(client).into_rpc())?;
	if let Some(sink) = manual_seal {
		use sc_consensus_manual_seal::rpc::{ManualSeal, ManualSealApiServer};
		module.merge(ManualSeal::new(sink).into_rpc())?;
	}
	Ok(module)
}
