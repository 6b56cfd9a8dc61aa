//! `machine-agent channels`: the payment channels this device sells from and pays from, and
//! what an operator does with them (claim what was charged, withdraw what was not spent).
//!
//! The same functions answer the CLI directly (the store is free) and through the running
//! daemon's control socket (it holds the store).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use m2m_evm::{
	alloy::{primitives::B256, providers::DynProvider},
	channels::{BatchSettlement, SETTLEMENT_ADDRESS},
};
use m2m_primitives::receipt::AssetKey;
use m2m_x402::{policy::format_units, schemes::batch_settlement::rules};
use m2m_x402_buyer::{client::X402Client, BuyerChannel, BuyerChannelStore};
use m2m_x402_seller::{ChannelRecord, ChannelStore, Seller};
use serde_json::{json, Value};

use crate::{catalogue::DECIMALS, claims, store::Store};

/// `0.004000 USDT` for base units.
pub(crate) fn usdt(amount: u128) -> String {
	format_units(m2m_x402::U256::from(amount), DECIMALS, "USDT")
}

/// Every channel of both roles, as `/status` and `channels list` show them.
pub fn list(store: &Store) -> Result<Value> {
	let sold: Vec<ChannelRecord> = ChannelStore::all(store).map_err(anyhow::Error::msg)?;
	let bought: Vec<BuyerChannel> = BuyerChannelStore::all(store).map_err(anyhow::Error::msg)?;
	let mut out = Vec::new();
	for c in sold {
		out.push(json!({
			"role": "sell",
			"channel_id": c.channel_id.to_string(),
			"counterparty": c.config.payer,
			"balance": usdt(c.balance),
			"charged": usdt(c.charged),
			"claimed": usdt(c.total_claimed),
			"unclaimed": usdt(c.unclaimed()),
			"requests": c.requests,
			"withdraw_requested_at": c.withdraw_requested_at,
			"state": if c.withdraw_requested_at != 0 { "withdrawing" } else { "open" },
		}));
	}
	for c in bought {
		out.push(json!({
			"role": "buy",
			"channel_id": c.channel_id.to_string(),
			"counterparty": c.config.receiver,
			"balance": usdt(c.balance),
			"charged": usdt(c.charged),
			"claimed": usdt(c.total_claimed),
			"unclaimed": usdt(c.charged.saturating_sub(c.total_claimed)),
			"requests": c.requests,
			"withdraw_requested_at": c.withdraw_requested_at,
			"state": match (&c.stopped, c.withdraw_requested_at) {
				(Some(_), _) => "stopped",
				(None, 0) => "open",
				(None, _) => "withdrawing",
			},
			"stopped": c.stopped,
		}));
	}
	Ok(Value::Array(out))
}

/// Claims every channel's charges now (then settles them to this device), and queues their
/// receipts.
pub async fn claim(seller: &Seller, store: &Store, asset: AssetKey) -> Result<Value> {
	let report = seller.claim_channels().await.map_err(anyhow::Error::msg)?;
	let receipts = claims::receipt_claims(store, asset).map_err(anyhow::Error::msg)?;
	Ok(json!({
		"claimed": report.claimed.iter().map(|c| json!({
			"channel_id": c.channel_id.to_string(),
			"amount": usdt(c.amount),
			"requests": c.requests,
			"total_claimed": usdt(c.total_claimed),
			"transaction": c.transaction,
		})).collect::<Vec<_>>(),
		"failed": report.failed.iter().map(|(id, why)| json!({
			"channel_id": id.to_string(), "error": why,
		})).collect::<Vec<_>>(),
		"settled": report.settled,
		"receipts_queued": receipts,
	}))
}

/// Refunds the payer of `channel_id`, a channel this device sells from: everything charged
/// is claimed and the rest of the deposit returned, in one transaction. The claim's receipt
/// is queued like any other.
pub async fn refund(
	seller: &Seller,
	store: &Store,
	asset: AssetKey,
	channel_id: &str,
) -> Result<Value> {
	let id: B256 =
		channel_id.parse().with_context(|| format!("{channel_id:?} is not a channel id"))?;
	let refunded = seller.refund_channel(&id).await.map_err(anyhow::Error::msg)?;
	let receipts = claims::receipt_claims(store, asset).map_err(anyhow::Error::msg)?;
	Ok(json!({
		"channel_id": id.to_string(),
		"refunded": usdt(refunded.refunded),
		"claimed": usdt(refunded.claimed),
		"balance": usdt(refunded.balance),
		"transaction": refunded.transaction,
		"receipts_queued": receipts,
	}))
}

/// Asks the seller at `url` to refund what this device's channel for its offer holds beyond
/// what it was charged.
pub async fn ask_refund(client: &X402Client, url: &str) -> Result<Value> {
	let settled = client.refund(url).await.map_err(anyhow::Error::msg)?;
	let refunded: u128 = settled.amount.as_deref().unwrap_or("0").parse().unwrap_or(0);
	let state = settled.extra.as_ref().and_then(|e| e.get("channelState"));
	Ok(json!({
		"channel_id": state.and_then(|s| s.get("channelId")).cloned().unwrap_or_default(),
		"refunded": usdt(refunded),
		"balance": state
			.and_then(|s| s.get("balance"))
			.and_then(|b| b.as_str())
			.and_then(|b| b.parse::<u128>().ok())
			.map(usdt),
		"transaction": settled.transaction,
	}))
}

/// Starts withdrawing what this device deposited into `channel_id` and the seller has not
/// claimed (`finalize`: completes a withdrawal whose delay has passed). The channel takes no
/// more vouchers from then on.
pub async fn withdraw(
	store: &Store,
	provider: &DynProvider,
	channel_id: &str,
	finalize: bool,
) -> Result<Value> {
	let id: B256 =
		channel_id.parse().with_context(|| format!("{channel_id:?} is not a channel id"))?;
	let mut channel = BuyerChannelStore::load(store, &id)
		.map_err(anyhow::Error::msg)?
		.with_context(|| format!("this device pays from no channel {id}"))?;
	let config = rules::parse_config(&channel.config).map_err(|p| anyhow::anyhow!("{p}"))?;
	let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, provider.clone());
	let state = contract.channels(id).call().await.context("reading the channel on-chain")?;
	let call_config = BatchSettlement::ChannelConfig {
		payer: config.payer,
		payerAuthorizer: config.payerAuthorizer,
		receiver: config.receiver,
		receiverAuthorizer: config.receiverAuthorizer,
		token: config.token,
		withdrawDelay: config.withdrawDelay,
		salt: config.salt,
	};
	let (receipt, what) = if finalize {
		let pending = contract.pendingWithdrawals(id).call().await?;
		if pending.initiatedAt.to::<u64>() == 0 {
			bail!(
				"no withdrawal is pending on channel {id}: start one with `channels withdraw {id}`"
			);
		}
		let tx = contract.finalizeWithdraw(call_config).send().await.context("finalizeWithdraw")?;
		(tx.get_receipt().await?, "finalized")
	} else {
		let available = state.balance.saturating_sub(state.totalClaimed);
		if available == 0 {
			bail!("channel {id} has nothing left to withdraw (everything deposited was claimed)");
		}
		// Before the chain: from now on no voucher is signed on this channel.
		channel.withdraw_requested_at = m2m_x402::clock::unix_now();
		BuyerChannelStore::save(store, &channel).map_err(anyhow::Error::msg)?;
		let tx = contract
			.initiateWithdraw(call_config, available)
			.send()
			.await
			.context("initiateWithdraw")?;
		(tx.get_receipt().await?, "initiated")
	};
	if !receipt.status() {
		bail!("the withdrawal transaction {} reverted", receipt.transaction_hash);
	}
	Ok(json!({
		"channel_id": id.to_string(),
		"withdrawal": what,
		"transaction": receipt.transaction_hash.to_string(),
		"available": usdt(state.balance.saturating_sub(state.totalClaimed)),
		"finalize_after_secs": config.withdrawDelay.to::<u64>(),
	}))
}

/// What a running daemon needs to answer channel requests.
pub struct DaemonChannels {
	pub seller: Arc<Seller>,
	pub provider: DynProvider,
	pub asset: AssetKey,
}
