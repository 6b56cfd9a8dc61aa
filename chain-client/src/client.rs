//! [`ChainClient`]: one connection to a node, typed calls and queries.

use m2m_primitives::{receipt::ReceiptId, H160, H256};
use subxt::{
	config::DefaultExtrinsicParamsBuilder,
	error::{DispatchError, TransactionEventsError},
	events::DecodeAsEvent,
	rpcs::{LegacyRpcMethods, RpcClient},
	transactions::{Payload, TransactionStatus},
	utils::{AccountId32, Static},
	OnlineClient, PolkadotConfig,
};
use subxt_signer::sr25519::Keypair;

use crate::{
	runtime::{
		self, device_identity::events::DeviceRegistered,
		runtime_types::bounded_collections::bounded_vec::BoundedVec,
		settlement_receipts::events::ReceiptRecorded,
	},
	ChainError, DeviceId, DeviceKeys, DeviceRecord, DeviceSummary, OwnerSummary, ReceiptInput,
	ReceiptPage, SettlementCheck,
};

type Config = PolkadotConfig;

/// Devices per `owner_summary` page: the runtime's maximum.
const OWNER_SUMMARY_PAGE: u32 = 50;
type Rpc = LegacyRpcMethods<subxt::config::RpcConfigFor<Config>>;

/// The outcome of an included transaction.
pub struct Submitted {
	pub block_hash: H256,
	/// The height of the block that included it (a best block: not necessarily final).
	pub block_number: u32,
	pub extrinsic_hash: H256,
	pub events: subxt::extrinsics::ExtrinsicEvents<Config>,
}

impl Submitted {
	/// Every event of type `E` the transaction emitted.
	pub fn find<E: DecodeAsEvent>(&self) -> Result<Vec<E>, ChainError> {
		self.events.find::<E>().map(|e| e.map_err(|e| subxt::Error::from(e).into())).collect()
	}
}

/// A connection to an m2m-pay node.
#[derive(Clone)]
pub struct ChainClient {
	url: String,
	api: OnlineClient<Config>,
	rpc: Rpc,
}

impl ChainClient {
	/// Connects over WebSocket, e.g. `ws://127.0.0.1:9944`.
	pub async fn connect(url: &str) -> Result<Self, ChainError> {
		let unavailable = |reason: String| ChainError::Unavailable { url: url.to_string(), reason };
		let rpc =
			RpcClient::from_insecure_url(url).await.map_err(|e| unavailable(e.to_string()))?;
		let config = PolkadotConfig::builder().use_historic_types(false).build();
		let api = OnlineClient::from_rpc_client_with_config(config, rpc.clone())
			.await
			.map_err(|e| unavailable(e.to_string()))?;
		Ok(Self { url: url.to_string(), api, rpc: LegacyRpcMethods::new(rpc) })
	}

	/// The node URL this client talks to.
	pub fn url(&self) -> &str {
		&self.url
	}

	/// The underlying subxt client, for calls this type does not wrap.
	pub fn api(&self) -> &OnlineClient<Config> {
		&self.api
	}

	pub fn genesis_hash(&self) -> H256 {
		self.api.genesis_hash()
	}

	/// Signs, submits and waits until the transaction is in a best block. Dispatch errors come
	/// back as [`ChainError::Dispatch`] with the pallet and error names.
	///
	/// The nonce comes from the node's pool-aware `system_accountNextIndex`, so that several
	/// transactions from one account can follow each other before finality.
	pub async fn submit<Call: Payload>(
		&self,
		call: &Call,
		signer: &Keypair,
	) -> Result<Submitted, ChainError> {
		let account: AccountId32 = signer.public_key().into();
		let nonce =
			self.rpc.system_account_next_index(&account).await.map_err(subxt::Error::from)?;
		let params = DefaultExtrinsicParamsBuilder::<Config>::new().nonce(nonce).build();
		let mut progress = self
			.api
			.tx()
			.await
			.map_err(subxt::Error::from)?
			.sign_and_submit_then_watch(call, signer, params)
			.await
			.map_err(subxt::Error::from)?;
		while let Some(status) = progress.next().await {
			match status.map_err(subxt::Error::from)? {
				TransactionStatus::InBestBlock(included)
				| TransactionStatus::InFinalizedBlock(included) => {
					let events = included.wait_for_success().await.map_err(dispatch_error)?;
					let block_number = self.block_number(included.block_hash()).await?;
					return Ok(Submitted {
						block_number,
						block_hash: included.block_hash(),
						extrinsic_hash: included.extrinsic_hash(),
						events,
					});
				},
				TransactionStatus::Error { message }
				| TransactionStatus::Invalid { message }
				| TransactionStatus::Dropped { message } => return Err(ChainError::NotIncluded(message)),
				_ => {},
			}
		}
		Err(ChainError::NotIncluded("the node stopped reporting the transaction".into()))
	}

	async fn block_number(&self, hash: H256) -> Result<u32, ChainError> {
		let header =
			self.rpc.chain_get_header(Some(hash)).await.map_err(subxt::Error::from)?.ok_or_else(
				|| ChainError::Query(format!("the node does not know block {hash:?}")),
			)?;
		Ok(header.number as u32)
	}

	/// The finalized head's height.
	pub async fn finalized_number(&self) -> Result<u32, ChainError> {
		let head = self.rpc.chain_get_finalized_head().await.map_err(subxt::Error::from)?;
		self.block_number(head).await
	}

	/// The finalized head's height, and for each of `ids` whether the finalized state holds
	/// it: what lets an outbox forget a receipt only once no reorg can take it back.
	pub async fn finalized_receipts(
		&self,
		ids: &[ReceiptId],
	) -> Result<(u32, Vec<bool>), ChainError> {
		let head = self.rpc.chain_get_finalized_head().await.map_err(subxt::Error::from)?;
		let number = self.block_number(head).await?;
		let at = self.api.at_block(head).await.map_err(subxt::Error::from)?;
		let mut recorded = Vec::with_capacity(ids.len());
		for id in ids {
			let call = runtime::runtime_apis().settlement_receipts_api().is_recorded(*id);
			recorded.push(at.runtime_apis().call(call).await.map_err(subxt::Error::from)?);
		}
		Ok((number, recorded))
	}

	/// Submits a call as sudo (dev chains: the sudo key is Alice).
	pub async fn sudo(
		&self,
		call: runtime::runtime_types::m2m_runtime::RuntimeCall,
		sudo_key: &Keypair,
	) -> Result<Submitted, ChainError> {
		let submitted = self.submit(&runtime::tx().sudo().sudo(call), sudo_key).await?;
		// Sudo reports the inner call's failure as an event, not as a dispatch error.
		for sudid in submitted.find::<runtime::sudo::events::Sudid>()? {
			if let Err(e) = sudid.sudo_result {
				return Err(ChainError::DispatchOther(format!("{e:?}")));
			}
		}
		Ok(submitted)
	}

	/// Registers `device` under `owner`, proving possession of its three keys.
	pub async fn register_device(
		&self,
		owner: &Keypair,
		device: &DeviceKeys,
	) -> Result<DeviceId, ChainError> {
		let owner_account: AccountId32 = owner.public_key().into();
		let nonce = self.proof_nonce(&owner_account).await?;
		let proof = device.registration_proof(&self.genesis_hash(), &owner_account, nonce);
		let call = runtime::tx().device_identity().register(
			device.account_id(),
			device.evm_address(),
			device.peer_id_bounded(),
			proof,
		);
		let submitted = self.submit(&call, owner).await?;
		submitted.find::<DeviceRegistered>()?.first().map(|e| e.device).ok_or_else(|| {
			ChainError::Query("registration emitted no DeviceRegistered event".into())
		})
	}

	/// Sets (or replaces) an attribute of `device`, signed by its owner; `valid_for` blocks,
	/// or forever.
	pub async fn set_attribute(
		&self,
		owner: &Keypair,
		device: DeviceId,
		name: &str,
		value: &[u8],
		valid_for: Option<u32>,
	) -> Result<(), ChainError> {
		let call = runtime::tx().device_identity().set_attribute(
			device,
			BoundedVec(name.as_bytes().to_vec()),
			value.to_vec(),
			valid_for,
		);
		self.submit(&call, owner).await.map(|_| ())
	}

	/// Replaces one key of `device` with the matching key of `new_keys`, signed by its owner;
	/// `new_keys` proves possession of the new key.
	pub async fn rotate_key(
		&self,
		owner: &Keypair,
		device: DeviceId,
		new_keys: &DeviceKeys,
		kind: m2m_primitives::device::KeyKind,
	) -> Result<(), ChainError> {
		let owner_account: AccountId32 = owner.public_key().into();
		let nonce = self.proof_nonce(&owner_account).await?;
		let proof =
			new_keys.rotation_proof(kind, &self.genesis_hash(), &owner_account, device, nonce);
		let call = runtime::tx().device_identity().rotate_key(device, proof);
		self.submit(&call, owner).await.map(|_| ())
	}

	/// Removes an attribute of `device`, signed by its owner (its deposit is released).
	pub async fn remove_attribute(
		&self,
		owner: &Keypair,
		device: DeviceId,
		name: &str,
	) -> Result<(), ChainError> {
		let call = runtime::tx()
			.device_identity()
			.remove_attribute(device, BoundedVec(name.as_bytes().to_vec()));
		self.submit(&call, owner).await.map(|_| ())
	}

	/// Records one receipt. `signer` is the payee device's key or its owner's.
	pub async fn record_receipt(
		&self,
		signer: &Keypair,
		receipt: ReceiptInput,
	) -> Result<ReceiptId, ChainError> {
		let submitted = self
			.submit(&runtime::tx().settlement_receipts().record_receipt(receipt), signer)
			.await?;
		submitted
			.find::<ReceiptRecorded>()?
			.first()
			.map(|e| e.id)
			.ok_or_else(|| ChainError::Query("no ReceiptRecorded event".into()))
	}

	/// Records a batch; receipts already on-chain are skipped. Returns the ids newly recorded
	/// and the height of the (best, not yet final) block that included the batch.
	pub async fn record_receipts(
		&self,
		signer: &Keypair,
		receipts: Vec<ReceiptInput>,
	) -> Result<(Vec<ReceiptId>, u32), ChainError> {
		let call = runtime::tx().settlement_receipts().record_receipts(BoundedVec(receipts));
		let submitted = self.submit(&call, signer).await?;
		let ids = submitted.find::<ReceiptRecorded>()?.into_iter().map(|e| e.id).collect();
		Ok((ids, submitted.block_number))
	}

	/// Transfers `amount` planck of the native token, keeping the sender alive.
	pub async fn transfer(
		&self,
		signer: &Keypair,
		to: AccountId32,
		amount: u128,
	) -> Result<Submitted, ChainError> {
		let call = runtime::tx().balances().transfer_keep_alive(to.into(), amount);
		self.submit(&call, signer).await
	}

	/// Free native balance of `account`, in planck.
	pub async fn free_balance(&self, account: AccountId32) -> Result<u128, ChainError> {
		let at = self.at().await?;
		let addr = runtime::storage().system().account();
		let value = at.storage().fetch(addr, (account,)).await.map_err(subxt::Error::from)?;
		Ok(value.decode().map_err(subxt::Error::from)?.data.free)
	}

	/// Registers an accepted asset through sudo. `settlement` says whether its token proves
	/// what it executed ([`SettlementCheck::TokenDigest`], our USDT on this chain) or receipts
	/// stay payer-signed only.
	#[allow(clippy::too_many_arguments)]
	pub async fn register_asset_sudo(
		&self,
		sudo_key: &Keypair,
		asset: m2m_primitives::receipt::AssetKey,
		name: &str,
		version: &str,
		decimals: u8,
		symbol: &str,
		settlement: SettlementCheck,
	) -> Result<(), ChainError> {
		let call = runtime::runtime_types::m2m_runtime::RuntimeCall::SettlementReceipts(
			runtime::runtime_types::pallet_settlement_receipts::pallet::Call::register_asset {
				asset: Static(asset),
				name: name.as_bytes().to_vec(),
				version: version.as_bytes().to_vec(),
				decimals,
				symbol: symbol.as_bytes().to_vec(),
				settlement,
			},
		);
		self.sudo(call, sudo_key).await.map(|_| ())
	}

	async fn at(
		&self,
	) -> Result<
		subxt::client::ClientAtBlock<Config, subxt::client::OnlineClientAtBlockImpl<Config>>,
		ChainError,
	> {
		// Queries read the best block, so that a receipt is visible as soon as it is included.
		let best = self
			.rpc
			.chain_get_block_hash(None)
			.await
			.map_err(subxt::Error::from)?
			.ok_or_else(|| ChainError::Query("the node has no best block".into()))?;
		Ok(self.api.at_block(best).await.map_err(subxt::Error::from)?)
	}

	/// Calls a runtime API at the best block.
	async fn call_api<P: subxt::runtime_apis::Payload>(
		&self,
		call: P,
	) -> Result<P::ReturnType, ChainError> {
		Ok(self.at().await?.runtime_apis().call(call).await.map_err(subxt::Error::from)?)
	}

	/// The nonce the next key-possession proof of `owner` must sign.
	pub async fn proof_nonce(&self, owner: &AccountId32) -> Result<u64, ChainError> {
		let call = runtime::runtime_apis().device_identity_api().proof_nonce(*owner);
		self.call_api(call).await
	}

	pub async fn device_by_evm(&self, address: H160) -> Result<Option<DeviceId>, ChainError> {
		let call = runtime::runtime_apis().device_identity_api().device_by_evm(address);
		self.call_api(call).await
	}

	pub async fn device_by_account(
		&self,
		account: &AccountId32,
	) -> Result<Option<DeviceId>, ChainError> {
		let call = runtime::runtime_apis().device_identity_api().device_by_account(*account);
		self.call_api(call).await
	}

	/// A device's record: its owner, EVM address, PeerId and status.
	pub async fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>, ChainError> {
		let call = runtime::runtime_apis().device_identity_api().device(id);
		self.call_api(call).await
	}

	/// A device's attributes that have not expired: `(name, value)`.
	pub async fn attributes(
		&self,
		device: DeviceId,
	) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ChainError> {
		let call = runtime::runtime_apis().device_identity_api().attributes(device);
		Ok(self.call_api(call).await?.into_iter().map(|(name, value, _)| (name, value)).collect())
	}

	pub async fn device_by_peer(&self, peer_id: Vec<u8>) -> Result<Option<DeviceId>, ChainError> {
		let call = runtime::runtime_apis().device_identity_api().device_by_peer(peer_id);
		self.call_api(call).await
	}

	/// A page of `owner`'s device ids after `after`.
	pub async fn devices_of_owner(
		&self,
		owner: &AccountId32,
		after: Option<DeviceId>,
		limit: u32,
	) -> Result<Vec<DeviceId>, ChainError> {
		let call =
			runtime::runtime_apis().device_identity_api().devices_of_owner(*owner, after, limit);
		self.call_api(call).await
	}

	/// An accepted asset, if registered.
	pub async fn asset(
		&self,
		asset: m2m_primitives::receipt::AssetKey,
	) -> Result<Option<crate::AssetInfo>, ChainError> {
		let call = runtime::runtime_apis().settlement_receipts_api().asset(Static(asset));
		self.call_api(call).await
	}

	/// Whether a receipt id was ever recorded.
	pub async fn is_recorded(&self, id: ReceiptId) -> Result<bool, ChainError> {
		let call = runtime::runtime_apis().settlement_receipts_api().is_recorded(id);
		self.call_api(call).await
	}

	/// A recorded receipt body.
	pub async fn receipt(
		&self,
		id: ReceiptId,
	) -> Result<Option<crate::Receipt<AccountId32>>, ChainError> {
		let call = runtime::runtime_apis().settlement_receipts_api().receipt(id);
		self.call_api(call).await
	}

	/// An owner's accounting over the UTC days `from_ms..=to_ms` touches, every device
	/// included: the runtime answers in bounded pages, which this reads one after the other.
	pub async fn owner_summary(
		&self,
		owner: &AccountId32,
		from_ms: u64,
		to_ms: u64,
	) -> Result<OwnerSummary, ChainError> {
		let mut summary = self.owner_summary_page(owner, from_ms, to_ms, None).await?;
		while let Some(after) = summary.next.take() {
			let page = self.owner_summary_page(owner, from_ms, to_ms, Some(after)).await?;
			summary.devices.extend(page.devices);
			summary.next = page.next;
		}
		Ok(summary)
	}

	/// One page of an owner's accounting: the totals, and the devices after `after`.
	pub async fn owner_summary_page(
		&self,
		owner: &AccountId32,
		from_ms: u64,
		to_ms: u64,
		after: Option<DeviceId>,
	) -> Result<OwnerSummary, ChainError> {
		let call = runtime::runtime_apis().settlement_receipts_api().owner_summary(
			*owner,
			from_ms,
			to_ms,
			after,
			OWNER_SUMMARY_PAGE,
		);
		self.call_api(call).await?.map_err(|e| ChainError::Query(format!("{e:?}")))
	}

	/// All-time spending of a payer address (a device or not), per asset.
	pub async fn payer_totals(
		&self,
		payer: H160,
	) -> Result<Vec<(Static<m2m_primitives::receipt::AssetKey>, crate::Totals)>, ChainError> {
		let call = runtime::runtime_apis().settlement_receipts_api().payer_totals(payer);
		self.call_api(call).await
	}

	/// A device's accounting over the UTC days `from_ms..=to_ms` touches.
	pub async fn device_summary(
		&self,
		device: DeviceId,
		from_ms: u64,
		to_ms: u64,
	) -> Result<DeviceSummary, ChainError> {
		let call = runtime::runtime_apis()
			.settlement_receipts_api()
			.device_summary(device, from_ms, to_ms);
		self.call_api(call).await?.map_err(|e| ChainError::Query(format!("{e:?}")))
	}

	/// A page of a device's receipts, oldest first.
	pub async fn device_receipts(
		&self,
		device: DeviceId,
		from_ms: u64,
		to_ms: u64,
		after: Option<([u8; 8], H256)>,
		limit: u32,
	) -> Result<ReceiptPage<AccountId32>, ChainError> {
		let call = runtime::runtime_apis()
			.settlement_receipts_api()
			.device_receipts(device, from_ms, to_ms, after, limit);
		self.call_api(call).await?.map_err(|e| ChainError::Query(format!("{e:?}")))
	}
}

/// Turns a failed extrinsic into pallet and error names.
fn dispatch_error(e: TransactionEventsError) -> ChainError {
	match e {
		TransactionEventsError::ExtrinsicFailed(DispatchError::Module(module)) => {
			match module.details() {
				Ok(details) => ChainError::Dispatch {
					pallet: details.pallet.name().to_string(),
					error: details.variant.name.clone(),
				},
				Err(_) => ChainError::DispatchOther(format!("{module:?}")),
			}
		},
		TransactionEventsError::ExtrinsicFailed(other) => {
			ChainError::DispatchOther(other.to_string())
		},
		other => subxt::Error::from(other).into(),
	}
}
