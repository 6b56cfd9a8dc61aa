//! The selling side's hook into the seller core: every settled sale goes to disk (with its
//! receipt queued for the chain) before the resource leaves, keyed by the authorization that
//! paid for it, so that a payment presented again after it was served buys nothing more.

use std::sync::Arc;

use codec::{Decode, Encode};
use m2m_chain_client::{exact_authorization, DeviceId, PaymentProof, ReceiptInput};
use m2m_primitives::{
	channel::ChannelConfig,
	eip712::{EcdsaSignature, TransferWithAuthorization},
	receipt::{channel_receipt_id, exact_receipt_id, AssetKey},
	H160, H256,
};
use m2m_x402::{
	policy,
	schemes::batch_settlement::{payload::ChannelConfigWire, rules as channel_rules},
	v2::SettleResponse,
};
use m2m_x402_seller::{ChannelRecord, Sale, SaleKey, SaleRecorder};
use subxt::utils::Static;

use crate::{
	catalogue,
	store::{channels::ChannelReceipted, now_ms, PaymentRecord, Role, State, Store},
};

/// A receipt as the outbox keeps it (SCALE): everything but the payee's device id, which is
/// known once the device is registered. (Schema 4; [`crate::store`] migrates schema 3's,
/// which were exact only.)
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueuedReceipt {
	pub asset: AssetKey,
	pub proof: QueuedProof,
	pub settlement_tx: H256,
	pub resource: H256,
	pub request_count: u32,
	pub period_start: u64,
	pub period_end: u64,
}

/// What proves a queued receipt's payment, by scheme.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum QueuedProof {
	/// An `exact` sale: the EIP-3009 authorization the token executed.
	#[codec(index = 0)]
	Exact { authorization: TransferWithAuthorization, signature: EcdsaSignature },
	/// A channel claim that took the channel's claimed total to `total_claimed`, under the
	/// payer's voucher of `voucher_amount`.
	#[codec(index = 1)]
	Channel {
		config: ChannelConfig,
		voucher_amount: u128,
		signature: EcdsaSignature,
		total_claimed: u128,
	},
}

impl QueuedReceipt {
	/// The receipt the payee `device` submits.
	pub fn input(self, device: DeviceId) -> ReceiptInput {
		let proof = match self.proof {
			QueuedProof::Exact { authorization, signature } => PaymentProof::Exact {
				authorization: Static(authorization),
				signature: Static(signature),
			},
			QueuedProof::Channel { config, voucher_amount, signature, total_claimed } => {
				PaymentProof::Channel {
					config: Static(config),
					voucher_amount,
					signature: Static(signature),
					total_claimed,
				}
			},
		};
		ReceiptInput {
			payee: device,
			asset: Static(self.asset),
			proof,
			settlement_tx: self.settlement_tx,
			resource: self.resource,
			request_count: self.request_count,
			period_start: self.period_start,
			period_end: self.period_end,
		}
	}

	/// The receipt of a channel's claims that `record` shows beyond what was receipted
	/// (`receipted`: the claimed total and the requests already in receipts), with its id;
	/// `None` if nothing new was claimed. `transaction` is the claim's, when known.
	pub fn channel(
		asset: AssetKey,
		record: &ChannelRecord,
		receipted: ChannelReceipted,
		resource: &str,
		transaction: H256,
	) -> Result<Option<([u8; 32], QueuedReceipt, ChannelReceipted)>, String> {
		if record.total_claimed <= receipted.amount {
			return Ok(None);
		}
		let config = channel_config(&record.config)?;
		let signature = signature(&record.signature).ok_or_else(|| {
			format!(
				"channel {}: the stored voucher signature is not 65 bytes of hex",
				record.channel_id
			)
		})?;
		let claimed_requests = record.requests.saturating_sub(record.unclaimed_requests);
		let requests = claimed_requests.saturating_sub(receipted.requests).max(1);
		let channel_id = H256(record.channel_id.0);
		let id = channel_receipt_id(&asset, &channel_id, record.total_claimed);
		let now = now_ms();
		let receipt = QueuedReceipt {
			asset,
			proof: QueuedProof::Channel {
				config,
				voucher_amount: record.signed,
				signature,
				total_claimed: record.total_claimed,
			},
			settlement_tx: transaction,
			resource: catalogue::resource_id(resource),
			request_count: u32::try_from(requests).unwrap_or(u32::MAX),
			period_start: now,
			period_end: now,
		};
		let after = ChannelReceipted {
			amount: record.total_claimed,
			requests: receipted.requests.saturating_add(requests),
		};
		Ok(Some((id.0, receipt, after)))
	}
}

/// A `0x`-hex 65-byte signature.
fn signature(hex_text: &str) -> Option<EcdsaSignature> {
	let bytes = hex::decode(hex_text.strip_prefix("0x").unwrap_or(hex_text)).ok()?;
	Some(EcdsaSignature(<[u8; 65]>::try_from(bytes).ok()?))
}

/// A channel config as the chain hashes it.
fn channel_config(wire: &ChannelConfigWire) -> Result<ChannelConfig, String> {
	let config = channel_rules::parse_config(wire).map_err(|p| p.to_string())?;
	Ok(ChannelConfig {
		payer: H160(config.payer.0 .0),
		payer_authorizer: H160(config.payerAuthorizer.0 .0),
		receiver: H160(config.receiver.0 .0),
		receiver_authorizer: H160(config.receiverAuthorizer.0 .0),
		token: H160(config.token.0 .0),
		withdraw_delay: config.withdrawDelay.to::<u64>(),
		salt: H256(config.salt.0),
	})
}

/// Writes sales and their receipts.
pub struct Recorder {
	pub store: Arc<Store>,
	pub asset: AssetKey,
	/// Wakes the chain worker to submit the new receipt.
	pub wake: Arc<tokio::sync::Notify>,
}

impl SaleRecorder for Recorder {
	fn settled(
		&self,
		sale: &Sale,
		settlement: &SettleResponse,
		resource: &str,
	) -> Result<(), String> {
		let (authorization, signature) =
			exact_authorization(&sale.accepted.payment).map_err(|e| e.to_string())?;
		let tx: H256 = settlement.transaction.parse().map_err(|_| {
			format!("the settlement transaction {:?} is not a hash", settlement.transaction)
		})?;
		let now = now_ms();
		let receipt = QueuedReceipt {
			asset: self.asset,
			proof: QueuedProof::Exact { authorization: authorization.clone(), signature },
			settlement_tx: tx,
			request_count: 1,
			resource: catalogue::resource_id(resource),
			period_start: now,
			period_end: now,
		};
		let id = exact_receipt_id(&self.asset, &authorization.from, &authorization.nonce);
		let r = &sale.accepted.requirement;
		let record = PaymentRecord {
			role: Role::Sell,
			state: State::Settled,
			url: resource.to_string(),
			price: r
				.amount
				.parse::<m2m_x402::U256>()
				.map(|a| policy::format_units(a, catalogue::DECIMALS, "USDT"))
				.unwrap_or_else(|_| format!("{} base units", r.amount)),
			amount: r.amount.clone(),
			network: r.network.clone(),
			asset: r.asset.clone(),
			counterparty: sale.payer.clone(),
			counterparty_peer: sale.buyer.as_ref().map(|b| b.peer.clone()),
			counterparty_device: sale.buyer.as_ref().and_then(|b| b.device),
			payment_id: m2m_x402::paywall::payment_id(&sale.accepted.payment).ok().flatten(),
			locator: None,
			version: None,
			payload: None,
			transaction: settlement.transaction.clone(),
			reason: String::new(),
			created_ms: now,
			updated_ms: now,
		};
		self.store
			.record_sale(&sale.key, &record, &id.0, &receipt.encode())
			.map_err(|e| e.to_string())?;
		self.wake.notify_one();
		Ok(())
	}

	fn sold(&self, key: &SaleKey) -> Result<bool, String> {
		self.store.sale_recorded(key).map_err(|e| e.to_string())
	}
}
