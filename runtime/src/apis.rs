//! Runtime API implementations.

// `vec!` is used inside the revive API macro.
use alloc::{vec, vec::Vec};
use frame_support::{
	genesis_builder_helper::{build_state, get_preset},
	weights::Weight,
};
use m2m_primitives::{
	receipt::{AssetKey, ReceiptId},
	H160,
};
use pallet_device_identity::{runtime_api::AttributeView, DeviceId, DeviceRecord};
use pallet_grandpa::AuthorityId as GrandpaId;
use pallet_settlement_receipts::{
	queries,
	runtime_api::{DeviceSummary, OwnerSummary, QueryError, ReceiptPage},
	AssetInfo, AssetVolume, Receipt, ReceiptCursor, Totals,
};
use sp_api::impl_runtime_apis;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_core::{crypto::KeyTypeId, OpaqueMetadata};
use sp_runtime::{
	traits::{Block as BlockT, NumberFor},
	transaction_validity::{TransactionSource, TransactionValidity},
	ApplyExtrinsicResult,
};
use sp_version::RuntimeVersion;

use super::{
	AccountId, Aura, Balance, Block, BlockNumber, Executive, Grandpa, InherentDataExt, Nonce,
	Runtime, RuntimeCall, RuntimeGenesisConfig, SessionKeys, System, TransactionPayment, VERSION,
};

// The standard runtime APIs plus `ReviveApi`, which eth-rpc calls for every Ethereum request.
pallet_revive::impl_runtime_apis_plus_revive_traits! {
	Runtime,
	Revive,
	Executive,
	EthExtraImpl,

	impl sp_api::Core<Block> for Runtime {
		fn version() -> RuntimeVersion {
			VERSION
		}

		fn execute_block(block: <Block as BlockT>::LazyBlock) {
			Executive::execute_block(block);
		}

		fn initialize_block(header: &<Block as BlockT>::Header) -> sp_runtime::ExtrinsicInclusionMode {
			Executive::initialize_block(header)
		}
	}

	impl sp_api::Metadata<Block> for Runtime {
		fn metadata() -> OpaqueMetadata {
			OpaqueMetadata::new(Runtime::metadata().into())
		}

		fn metadata_at_version(version: u32) -> Option<OpaqueMetadata> {
			Runtime::metadata_at_version(version)
		}

		fn metadata_versions() -> Vec<u32> {
			Runtime::metadata_versions()
		}
	}

	impl frame_support::view_functions::runtime_api::RuntimeViewFunction<Block> for Runtime {
		fn execute_view_function(
			id: frame_support::view_functions::ViewFunctionId,
			input: Vec<u8>,
		) -> Result<Vec<u8>, frame_support::view_functions::ViewFunctionDispatchError> {
			Runtime::execute_view_function(id, input)
		}
	}

	impl sp_block_builder::BlockBuilder<Block> for Runtime {
		fn apply_extrinsic(extrinsic: <Block as BlockT>::Extrinsic) -> ApplyExtrinsicResult {
			Executive::apply_extrinsic(extrinsic)
		}

		fn finalize_block() -> <Block as BlockT>::Header {
			Executive::finalize_block()
		}

		fn inherent_extrinsics(data: sp_inherents::InherentData) -> Vec<<Block as BlockT>::Extrinsic> {
			data.create_extrinsics()
		}

		fn check_inherents(
			block: <Block as BlockT>::LazyBlock,
			data: sp_inherents::InherentData,
		) -> sp_inherents::CheckInherentsResult {
			data.check_extrinsics(&block)
		}
	}

	impl sp_transaction_pool::runtime_api::TaggedTransactionQueue<Block> for Runtime {
		fn validate_transaction(
			source: TransactionSource,
			tx: <Block as BlockT>::Extrinsic,
			block_hash: <Block as BlockT>::Hash,
		) -> TransactionValidity {
			Executive::validate_transaction(source, tx, block_hash)
		}
	}

	impl sp_offchain::OffchainWorkerApi<Block> for Runtime {
		fn offchain_worker(header: &<Block as BlockT>::Header) {
			Executive::offchain_worker(header)
		}
	}

	impl sp_consensus_aura::AuraApi<Block, AuraId> for Runtime {
		fn slot_duration() -> sp_consensus_aura::SlotDuration {
			sp_consensus_aura::SlotDuration::from_millis(Aura::slot_duration())
		}

		fn authorities() -> Vec<AuraId> {
			pallet_aura::Authorities::<Runtime>::get().into_inner()
		}
	}

	impl sp_session::SessionKeys<Block> for Runtime {
		fn generate_session_keys(owner: Vec<u8>, seed: Option<Vec<u8>>) -> sp_session::OpaqueGeneratedSessionKeys {
			SessionKeys::generate(&owner, seed).into()
		}

		fn decode_session_keys(encoded: Vec<u8>) -> Option<Vec<(Vec<u8>, KeyTypeId)>> {
			SessionKeys::decode_into_raw_public_keys(&encoded)
		}
	}

	impl sp_consensus_grandpa::GrandpaApi<Block> for Runtime {
		fn grandpa_authorities() -> sp_consensus_grandpa::AuthorityList {
			Grandpa::grandpa_authorities()
		}

		fn current_set_id() -> sp_consensus_grandpa::SetId {
			Grandpa::current_set_id()
		}

		fn submit_report_equivocation_unsigned_extrinsic(
			_equivocation_proof: sp_consensus_grandpa::EquivocationProof<
				<Block as BlockT>::Hash,
				NumberFor<Block>,
			>,
			_key_owner_proof: sp_consensus_grandpa::OpaqueKeyOwnershipProof,
		) -> Option<()> {
			None
		}

		fn generate_key_ownership_proof(
			_set_id: sp_consensus_grandpa::SetId,
			_authority_id: GrandpaId,
		) -> Option<sp_consensus_grandpa::OpaqueKeyOwnershipProof> {
			// The key-owner proof type is uninhabited: there is no session pallet to prove against.
			None
		}
	}

	impl frame_system_rpc_runtime_api::AccountNonceApi<Block, AccountId, Nonce> for Runtime {
		fn account_nonce(account: AccountId) -> Nonce {
			System::account_nonce(account)
		}
	}

	impl pallet_transaction_payment_rpc_runtime_api::TransactionPaymentApi<Block, Balance> for Runtime {
		fn query_info(
			uxt: <Block as BlockT>::Extrinsic,
			len: u32,
		) -> pallet_transaction_payment_rpc_runtime_api::RuntimeDispatchInfo<Balance> {
			TransactionPayment::query_info(uxt, len)
		}
		fn query_fee_details(
			uxt: <Block as BlockT>::Extrinsic,
			len: u32,
		) -> pallet_transaction_payment::FeeDetails<Balance> {
			TransactionPayment::query_fee_details(uxt, len)
		}
		fn query_weight_to_fee(weight: Weight) -> Balance {
			TransactionPayment::weight_to_fee(weight)
		}
		fn query_length_to_fee(length: u32) -> Balance {
			TransactionPayment::length_to_fee(length)
		}
	}

	impl pallet_transaction_payment_rpc_runtime_api::TransactionPaymentCallApi<Block, Balance, RuntimeCall>
		for Runtime
	{
		fn query_call_info(
			call: RuntimeCall,
			len: u32,
		) -> pallet_transaction_payment::RuntimeDispatchInfo<Balance> {
			TransactionPayment::query_call_info(call, len)
		}
		fn query_call_fee_details(
			call: RuntimeCall,
			len: u32,
		) -> pallet_transaction_payment::FeeDetails<Balance> {
			TransactionPayment::query_call_fee_details(call, len)
		}
		fn query_weight_to_fee(weight: Weight) -> Balance {
			TransactionPayment::weight_to_fee(weight)
		}
		fn query_length_to_fee(length: u32) -> Balance {
			TransactionPayment::length_to_fee(length)
		}
	}

	impl pallet_device_identity::runtime_api::DeviceIdentityApi<Block, AccountId, Balance, BlockNumber> for Runtime {
		fn device(id: DeviceId) -> Option<DeviceRecord<AccountId, Balance, BlockNumber>> {
			pallet_device_identity::Devices::<Runtime>::get(id)
		}

		fn device_by_account(account: AccountId) -> Option<DeviceId> {
			pallet_device_identity::DeviceByAccount::<Runtime>::get(account)
		}

		fn device_by_evm(address: H160) -> Option<DeviceId> {
			pallet_device_identity::DeviceByEvm::<Runtime>::get(address)
		}

		fn device_by_peer(peer_id: Vec<u8>) -> Option<DeviceId> {
			let peer_id: pallet_device_identity::PeerId = peer_id.try_into().ok()?;
			pallet_device_identity::DeviceByPeer::<Runtime>::get(peer_id)
		}

		fn devices_of_owner(owner: AccountId, after: Option<DeviceId>, limit: u32) -> Vec<DeviceId> {
			pallet_device_identity::Pallet::<Runtime>::devices_of_owner(&owner, after, limit.min(1000))
		}

		fn attributes(device: DeviceId) -> Vec<AttributeView<BlockNumber>> {
			pallet_device_identity::Pallet::<Runtime>::live_attributes(device)
				.into_iter()
				.map(|(name, a)| (name.into_inner(), a.value.into_inner(), a.valid_until))
				.collect()
		}

		fn proof_nonce(owner: AccountId) -> u64 {
			pallet_device_identity::ProofNonces::<Runtime>::get(owner)
		}
	}

	impl pallet_settlement_receipts::runtime_api::SettlementReceiptsApi<Block, AccountId> for Runtime {
		fn receipt(id: ReceiptId) -> Option<Receipt<AccountId>> {
			pallet_settlement_receipts::Receipts::<Runtime>::get(id)
		}

		fn is_recorded(id: ReceiptId) -> bool {
			pallet_settlement_receipts::Recorded::<Runtime>::contains_key(id)
		}

		fn asset(asset: AssetKey) -> Option<AssetInfo> {
			pallet_settlement_receipts::Assets::<Runtime>::get(asset)
		}

		fn owner_totals(owner: AccountId) -> Vec<(AssetKey, Totals)> {
			pallet_settlement_receipts::OwnerTotals::<Runtime>::iter_prefix(owner).collect()
		}

		fn device_totals(device: DeviceId) -> Vec<(AssetKey, Totals)> {
			pallet_settlement_receipts::DeviceTotals::<Runtime>::iter_prefix(device).collect()
		}

		fn owner_summary(
			owner: AccountId,
			from_ms: u64,
			to_ms: u64,
			after: Option<DeviceId>,
			limit: u32,
		) -> Result<OwnerSummary, QueryError> {
			queries::owner_summary::<Runtime>(&owner, from_ms, to_ms, after, limit)
		}

		fn payer_totals(payer: H160) -> Vec<(AssetKey, Totals)> {
			pallet_settlement_receipts::PayerTotals::<Runtime>::iter_prefix(payer).collect()
		}

		fn asset_volume(asset: AssetKey) -> AssetVolume {
			pallet_settlement_receipts::AssetTotals::<Runtime>::get(asset)
		}

		fn device_summary(device: DeviceId, from_ms: u64, to_ms: u64) -> Result<DeviceSummary, QueryError> {
			queries::device_summary::<Runtime>(device, from_ms, to_ms)
		}

		fn device_receipts(
			device: DeviceId,
			from_ms: u64,
			to_ms: u64,
			after: Option<ReceiptCursor>,
			limit: u32,
		) -> Result<ReceiptPage<AccountId>, QueryError> {
			queries::device_receipts::<Runtime>(device, from_ms, to_ms, after, limit)
		}
	}

	#[cfg(feature = "runtime-benchmarks")]
	impl frame_benchmarking::Benchmark<Block> for Runtime {
		fn benchmark_metadata(extra: bool) -> (
			Vec<frame_benchmarking::BenchmarkList>,
			Vec<frame_support::traits::StorageInfo>,
		) {
			use frame_benchmarking::BenchmarkList;
			use frame_support::traits::StorageInfoTrait;
			use super::*;

			let mut list = Vec::<BenchmarkList>::new();
			list_benchmarks!(list, extra);
			let storage_info = AllPalletsWithSystem::storage_info();
			(list, storage_info)
		}

		#[allow(non_local_definitions)]
		fn dispatch_benchmark(
			config: frame_benchmarking::BenchmarkConfig
		) -> Result<Vec<frame_benchmarking::BenchmarkBatch>, alloc::string::String> {
			use frame_benchmarking::BenchmarkBatch;
			use frame_support::traits::WhitelistedStorageKeys;
			use sp_storage::TrackedStorageKey;
			use super::*;

			let whitelist: Vec<TrackedStorageKey> = AllPalletsWithSystem::whitelisted_storage_keys();
			let mut batches = Vec::<BenchmarkBatch>::new();
			let params = (&config, &whitelist);
			add_benchmarks!(params, batches);
			Ok(batches)
		}
	}

	impl sp_genesis_builder::GenesisBuilder<Block> for Runtime {
		fn build_state(config: Vec<u8>) -> sp_genesis_builder::Result {
			build_state::<RuntimeGenesisConfig>(config)
		}

		fn get_preset(id: &Option<sp_genesis_builder::PresetId>) -> Option<Vec<u8>> {
			get_preset::<RuntimeGenesisConfig>(id, crate::genesis_config_presets::get_preset)
		}

		fn preset_names() -> Vec<sp_genesis_builder::PresetId> {
			crate::genesis_config_presets::preset_names()
		}
	}
}
