//! The chain edge (subxt, through `m2m-chain-client`): registering the device, and draining
//! the receipts outbox in batches, with retry and backoff, across chain outages. The pallet
//! skips receipts it already holds (their ids are derived from the payment), so a batch sent
//! twice after a crash records each receipt once.

use std::{
	sync::{
		atomic::{AtomicBool, AtomicU64, Ordering},
		Arc,
	},
	time::Duration,
};

use anyhow::{Context, Result};
use codec::Decode;
use m2m_chain_client::{ChainClient, ChainError, DeviceId, DeviceKeys};
use subxt_signer::{sr25519::Keypair, SecretUri};

use crate::{selling::QueuedReceipt, store::Store};

/// Receipts per `record_receipts` call.
pub const BATCH: usize = 64;
const NO_DEVICE: u64 = u64::MAX;

/// What the agent knows about its chain and EVM connections, for `/status` and `/metrics`.
#[derive(Default)]
pub struct Health {
	pub chain_connected: AtomicBool,
	pub evm_connected: AtomicBool,
	device_id: AtomicU64,
	pub receipts_recorded: AtomicU64,
}

impl Health {
	pub fn new() -> Self {
		Self { device_id: AtomicU64::new(NO_DEVICE), ..Default::default() }
	}

	pub fn device_id(&self) -> Option<DeviceId> {
		Some(self.device_id.load(Ordering::Relaxed)).filter(|id| *id != NO_DEVICE)
	}
}

/// The owner's key from a secret URI (`//Alice` for DEV) or a 0600 file holding one.
pub fn owner_key(uri: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<Keypair>> {
	let text = match (uri, file) {
		(Some(u), _) => u.to_string(),
		(None, Some(f)) => m2m_evm::key::read_private(f)?.trim().to_string(),
		(None, None) => return Ok(None),
	};
	let uri: SecretUri =
		text.parse().map_err(|_| anyhow::anyhow!("the owner key is not a secret URI"))?;
	Ok(Some(Keypair::from_uri(&uri).map_err(|_| anyhow::anyhow!("the owner key is not valid"))?))
}

/// Registers the device under `owner` unless it already is; returns its id.
pub async fn ensure_registered(
	chain: &ChainClient,
	keys: &DeviceKeys,
	owner: Option<&Keypair>,
) -> Result<DeviceId> {
	if let Some(id) = chain.device_by_account(&keys.account_id()).await? {
		return Ok(id);
	}
	let owner = owner.context(
		"the device is not registered and no owner key is configured ([chain] owner or owner_file)",
	)?;
	chain.register_device(owner, keys).await.context("registering the device")
}

/// Keeps the device registered and the outbox drained, for as long as the agent runs.
pub async fn worker(
	url: String,
	keys: Arc<DeviceKeys>,
	owner: Option<Keypair>,
	store: Arc<Store>,
	health: Arc<Health>,
	wake: Arc<tokio::sync::Notify>,
) {
	let mut backoff = Duration::from_millis(500);
	loop {
		match session(&url, &keys, owner.as_ref(), &store, &health, &wake).await {
			Ok(()) => unreachable!("a session only ends with an error"),
			Err(e) => {
				health.chain_connected.store(false, Ordering::Relaxed);
				tracing::warn!(chain = %url, error = %format!("{e:#}"), retry_in = ?backoff, "chain unavailable; receipts stay in the outbox");
				tokio::time::sleep(backoff).await;
				backoff = (backoff * 2).min(Duration::from_secs(15));
			},
		}
	}
}

async fn session(
	url: &str,
	keys: &DeviceKeys,
	owner: Option<&Keypair>,
	store: &Store,
	health: &Health,
	wake: &tokio::sync::Notify,
) -> Result<()> {
	let chain = ChainClient::connect(url).await?;
	health.chain_connected.store(true, Ordering::Relaxed);
	let device = ensure_registered(&chain, keys, owner).await?;
	if health.device_id() != Some(device) {
		tracing::info!(device, "registered on-chain");
		health.device_id.store(device, Ordering::Relaxed);
	}
	loop {
		drain(&chain, keys, device, store, health).await?;
		// New sales wake the worker; a timeout catches anything else.
		let _ = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
		// A quiet outbox sends nothing, so ask the chain something to notice it going away.
		match tokio::time::timeout(
			Duration::from_secs(5),
			chain.device_by_account(&keys.account_id()),
		)
		.await
		{
			Ok(Ok(Some(_))) => {},
			Ok(Ok(None)) => anyhow::bail!("the device is no longer registered on this chain"),
			Ok(Err(e)) => return Err(e.into()),
			Err(_) => anyhow::bail!("the chain did not answer within 5 s"),
		}
	}
}

/// Submits the outbox in batches until it is empty. Transport errors end the session (the
/// caller reconnects); a batch the chain refuses is retried receipt by receipt, so that one bad
/// receipt does not hold up the others.
async fn drain(
	chain: &ChainClient,
	keys: &DeviceKeys,
	device: DeviceId,
	store: &Store,
	health: &Health,
) -> Result<()> {
	loop {
		let batch = store.outbox(BATCH);
		if batch.is_empty() {
			return Ok(());
		}
		let mut ids = Vec::new();
		let mut receipts = Vec::new();
		for (id, bytes) in &batch {
			match QueuedReceipt::decode(&mut &bytes[..]) {
				Ok(r) => {
					ids.push(*id);
					receipts.push(r.input(device));
				},
				Err(e) => {
					tracing::error!(id = %hex::encode(id), error = %e, "undecodable receipt left in the outbox")
				},
			}
		}
		if receipts.is_empty() {
			return Ok(());
		}
		match chain.record_receipts(&keys.account, receipts.clone()).await {
			Ok(recorded) => {
				store.outbox_done(&ids)?;
				health.receipts_recorded.fetch_add(recorded.len() as u64, Ordering::Relaxed);
				tracing::info!(
					batch = ids.len(),
					newly_recorded = recorded.len(),
					"receipts recorded on-chain"
				);
			},
			Err(e @ (ChainError::Dispatch { .. } | ChainError::DispatchOther(_))) => {
				tracing::warn!(error = %e, "the chain refused a batch; recording one by one");
				let mut progressed = false;
				for (id, receipt) in ids.iter().zip(receipts) {
					match chain.record_receipt(&keys.account, receipt).await {
						Ok(_) => {},
						Err(e)
							if e.pallet_error()
								== Some(("SettlementReceipts", "DuplicateReceipt")) => {},
						Err(e @ (ChainError::Dispatch { .. } | ChainError::DispatchOther(_))) => {
							tracing::error!(id = %hex::encode(id), error = %e, "receipt refused; kept in the outbox");
							continue;
						},
						Err(e) => return Err(e.into()),
					}
					store.outbox_done(&[*id])?;
					health.receipts_recorded.fetch_add(1, Ordering::Relaxed);
					progressed = true;
				}
				if !progressed {
					// Only refused receipts left: wait for the next wake-up rather than spin.
					return Ok(());
				}
			},
			Err(e) => return Err(e.into()),
		}
	}
}
