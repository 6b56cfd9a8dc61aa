//! The selling side's hook into the seller core: every settled sale goes to disk (with its
//! receipt queued for the chain) before the resource leaves, keyed by the authorization that
//! paid for it, so that a payment presented again after it was served buys nothing more.

use std::sync::Arc;

use codec::{Decode, Encode};
use m2m_chain_client::{exact_authorization, DeviceId, PaymentProof, ReceiptInput};
use m2m_primitives::{
	eip712::{EcdsaSignature, TransferWithAuthorization},
	receipt::{exact_receipt_id, AssetKey},
	H256,
};
use m2m_x402::{policy, v2::SettleResponse};
use m2m_x402_seller::{Sale, SaleKey, SaleRecorder};
use subxt::utils::Static;

use crate::{
	catalogue,
	store::{now_ms, PaymentRecord, Role, State, Store},
};

/// A receipt as the outbox keeps it (SCALE): everything but the payee's device id, which is
/// known once the device is registered.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueuedReceipt {
	pub asset: AssetKey,
	pub authorization: TransferWithAuthorization,
	pub signature: EcdsaSignature,
	pub settlement_tx: H256,
	pub resource: H256,
	pub period_start: u64,
	pub period_end: u64,
}

impl QueuedReceipt {
	/// The receipt the payee `device` submits.
	pub fn input(self, device: DeviceId) -> ReceiptInput {
		ReceiptInput {
			payee: device,
			asset: Static(self.asset),
			proof: PaymentProof::Exact {
				authorization: Static(self.authorization),
				signature: Static(self.signature),
			},
			settlement_tx: self.settlement_tx,
			resource: self.resource,
			request_count: 1,
			period_start: self.period_start,
			period_end: self.period_end,
		}
	}
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
			authorization: authorization.clone(),
			signature,
			settlement_tx: tx,
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
