//! The chain edge (subxt, through `m2m-chain-client`): registering the device, and draining
//! the receipts outbox in batches, with retry and backoff, across chain outages. The pallet
//! skips receipts it already holds (their ids are derived from the payment), so a batch sent
//! twice after a crash records each receipt once.
//!
//! A receipt is forgotten only when the chain's *finalized* state holds it: inclusion in a best
//! block moves it to "awaiting finality", and if the finalized head passes that height without
//! it (a reorg, a dropped transaction) it is sent again. A receipt the chain refuses for a
//! reason retrying cannot change goes to the dead-letter list with the pallet's error, and the
//! receipts after it carry on; a refusal that time can cure is retried with backoff.

use std::{
	collections::HashMap,
	sync::{
		atomic::{AtomicBool, AtomicU64, Ordering},
		Arc,
	},
	time::{Duration, Instant},
};

use anyhow::{Context, Result};
use codec::Decode;
use m2m_chain_client::{ChainClient, ChainError, DeviceId, DeviceKeys};
use subxt_signer::{sr25519::Keypair, SecretUri};

use crate::{
	selling::QueuedReceipt,
	store::{outbox::ReceiptId, Store},
};

/// Receipts per `record_receipts` call.
pub const BATCH: usize = 64;
const NO_DEVICE: u64 = u64::MAX;

/// What the agent knows about its chain and EVM connections, for `/status` and `/metrics`.
#[derive(Default)]
pub struct Health {
	pub chain_connected: AtomicBool,
	pub evm_connected: AtomicBool,
	device_id: AtomicU64,
	/// Receipts this run saw become final on-chain.
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
	let mut retries = Retries::default();
	loop {
		match session(&url, &keys, owner.as_ref(), &store, &health, &wake, &mut retries).await {
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
	retries: &mut Retries,
) -> Result<()> {
	let chain = ChainClient::connect(url).await?;
	health.chain_connected.store(true, Ordering::Relaxed);
	let device = ensure_registered(&chain, keys, owner).await?;
	if health.device_id() != Some(device) {
		tracing::info!(device, "registered on-chain");
		health.device_id.store(device, Ordering::Relaxed);
	}
	loop {
		confirm_finality(&chain, store, health).await?;
		drain(&chain, keys, device, store, retries).await?;
		// New sales wake the worker; a timeout catches anything else. Receipts waiting for
		// finality are checked every second (GRANDPA finalizes within a few blocks).
		let idle = if store.tally().awaiting_finality == 0 && retries.is_empty() {
			Duration::from_secs(5)
		} else {
			Duration::from_secs(1)
		};
		let _ = tokio::time::timeout(idle, wake.notified()).await;
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

/// What to do with a receipt the chain refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
	/// Retrying cannot change the answer: the receipt goes to the dead-letter list.
	DeadLetter,
	/// Time may cure it (the settlement is not visible yet, an asset not registered yet, a
	/// suspended payee reactivated): retry with backoff.
	Retry,
}

/// The rule for a refused receipt, by the pallet error's name.
pub fn verdict(pallet: &str, error: &str) -> Verdict {
	match (pallet, error) {
		(
			"SettlementReceipts",
			"NotSettled"
			| "SettlementUnverifiable"
			| "PeriodInFuture"
			| "PayeeSuspended"
			| "AssetDisabled"
			| "UnknownAsset",
		) => Verdict::Retry,
		("SettlementReceipts", _) => Verdict::DeadLetter,
		// Another pallet refusing (fees, origin) is about the account, not the receipt.
		_ => Verdict::Retry,
	}
}

/// Per-receipt backoff for refusals that may pass: 2 s, doubling, at most 5 min. Kept across
/// reconnects; a restart starts afresh, which costs one early retry.
#[derive(Default)]
pub struct Retries(HashMap<ReceiptId, (u32, Instant)>);

impl Retries {
	fn waiting(&self, id: &ReceiptId) -> bool {
		self.0.get(id).is_some_and(|(_, next)| Instant::now() < *next)
	}

	fn failed(&mut self, id: ReceiptId) -> Duration {
		let attempts = self.0.get(&id).map_or(0, |(n, _)| *n) + 1;
		let delay = (Duration::from_secs(2) * 2u32.saturating_pow(attempts - 1).min(150))
			.min(Duration::from_secs(300));
		self.0.insert(id, (attempts, Instant::now() + delay));
		delay
	}

	fn done(&mut self, id: &ReceiptId) {
		self.0.remove(id);
	}

	fn is_empty(&self) -> bool {
		self.0.is_empty()
	}
}

/// Forgets receipts the finalized chain holds, and sends again those whose block the
/// finalized chain abandoned.
async fn confirm_finality(chain: &ChainClient, store: &Store, health: &Health) -> Result<()> {
	let mut waiting = store.awaiting_finality();
	if waiting.is_empty() {
		return Ok(());
	}
	// Only receipts at or below the finalized height can be decided; the rest wait.
	let head = chain.finalized_number().await?;
	waiting.retain(|(_, sent)| sent.block_number <= head);
	if waiting.is_empty() {
		return Ok(());
	}
	let ids: Vec<_> = waiting.iter().map(|(id, _)| m2m_primitives::H256(*id)).collect();
	let (finalized, recorded) = chain.finalized_receipts(&ids).await?;
	let mut final_ids = Vec::new();
	for ((id, sent), recorded) in waiting.iter().zip(recorded) {
		if recorded {
			final_ids.push(*id);
		} else if finalized >= sent.block_number {
			tracing::warn!(
				id = %hex::encode(id), block = sent.block_number, finalized,
				"the block that held this receipt was not finalized; sending it again"
			);
			store.outbox_requeue(id)?;
		}
	}
	if !final_ids.is_empty() {
		store.outbox_final(&final_ids)?;
		health.receipts_recorded.fetch_add(final_ids.len() as u64, Ordering::Relaxed);
		tracing::info!(receipts = final_ids.len(), finalized, "receipts final on-chain");
	}
	Ok(())
}

/// Submits the outbox in batches until nothing is left to send now. Transport errors end the
/// session (the caller reconnects); a batch the chain refuses is retried receipt by receipt,
/// so that one bad receipt does not hold up the others.
async fn drain(
	chain: &ChainClient,
	keys: &DeviceKeys,
	device: DeviceId,
	store: &Store,
	retries: &mut Retries,
) -> Result<()> {
	loop {
		let batch = store.outbox(BATCH, |id| retries.waiting(id));
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
					tracing::error!(id = %hex::encode(id), error = %e, "undecodable receipt moved to the dead-letter list");
					store.outbox_dead(id, &format!("the stored receipt does not decode: {e}"))?;
				},
			}
		}
		if receipts.is_empty() {
			continue;
		}
		match chain.record_receipts(&keys.account, receipts.clone()).await {
			Ok((recorded, block)) => {
				store.outbox_sent(&ids, block)?;
				ids.iter().for_each(|id| retries.done(id));
				tracing::info!(
					batch = ids.len(),
					newly_recorded = recorded.len(),
					block,
					"receipts included; waiting for finality"
				);
			},
			Err(ChainError::Dispatch { .. } | ChainError::DispatchOther(_)) => {
				tracing::warn!(batch = ids.len(), "the chain refused a batch; sending one by one");
				for (id, receipt) in ids.iter().zip(receipts) {
					match chain.record_receipts(&keys.account, vec![receipt]).await {
						Ok((_, block)) => {
							store.outbox_sent(&[*id], block)?;
							retries.done(id);
						},
						Err(ChainError::Dispatch { pallet, error }) => {
							match verdict(&pallet, &error) {
								Verdict::DeadLetter => {
									tracing::error!(id = %hex::encode(id), %pallet, %error, "receipt refused for good; moved to the dead-letter list");
									store.outbox_dead(id, &format!("{pallet}::{error}"))?;
									retries.done(id);
								},
								Verdict::Retry => {
									let delay = retries.failed(*id);
									tracing::warn!(id = %hex::encode(id), %pallet, %error, retry_in = ?delay, "receipt refused for now; retrying later");
								},
							}
						},
						Err(ChainError::DispatchOther(reason)) => {
							let delay = retries.failed(*id);
							tracing::warn!(id = %hex::encode(id), %reason, retry_in = ?delay, "receipt refused for now; retrying later");
						},
						Err(e) => return Err(e.into()),
					}
				}
			},
			Err(e) => return Err(e.into()),
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn refusals_that_time_can_cure_are_retried_and_the_rest_are_dead_letters() {
		for cured_by_time in [
			"NotSettled",
			"SettlementUnverifiable",
			"PeriodInFuture",
			"PayeeSuspended",
			"UnknownAsset",
		] {
			assert_eq!(
				verdict("SettlementReceipts", cured_by_time),
				Verdict::Retry,
				"{cured_by_time}"
			);
		}
		for forever in [
			"RecipientMismatch",
			"InvalidSignature",
			"DifferentAuthorizationExecuted",
			"AuthorizationCancelled",
			"PeriodClosed",
			"UnprovenWithinOneOwner",
			"NotPayeeOrOwner",
		] {
			assert_eq!(verdict("SettlementReceipts", forever), Verdict::DeadLetter, "{forever}");
		}
		assert_eq!(verdict("Balances", "InsufficientBalance"), Verdict::Retry);
	}

	#[test]
	fn backoff_doubles_up_to_five_minutes_and_ends_on_success() {
		let mut r = Retries::default();
		let id = [1u8; 32];
		let delays: Vec<_> = (0..12).map(|_| r.failed(id).as_secs()).collect();
		assert_eq!(delays[..5], [2, 4, 8, 16, 32]);
		assert_eq!(*delays.last().unwrap(), 300);
		assert!(r.waiting(&id));
		r.done(&id);
		assert!(!r.waiting(&id) && r.is_empty());
	}
}
