//! `batch-settlement` (payment channels) on the facilitator: the on-chain half of the scheme.
//!
//! - `/verify` of a `deposit`, `voucher` or `refund`: the pure checks of
//!   [`m2m_x402::schemes::batch_settlement::rules`], then the channel's confirmed on-chain state
//!   (balance, claimed, pending withdrawal, refund nonce), the payer's token balance and an
//!   `eth_call` of the deposit. The answer's `extra` is that on-chain state.
//! - `/settle` of a `deposit` (sent, then the channel read again once it is mined), and of the
//!   receiver's `claim` and `settle`. A bare voucher is not settleable: it is claimed later, in
//!   a batch. A claim batch whose simulation fails is split: each row is simulated alone, the
//!   failing ones are reported in `extra.failedClaims` and the rest are claimed, so one bad row
//!   never sinks the batch.
//! - The facilitator's key is also the receiver authorizer it offers (`/supported`): it signs
//!   the claim batches of channels that name it, and refuses to sign for others.
//!
//! Only confirmed state is mirrored: every read is of the latest block, after the facilitator's
//! own transactions were mined. As for `exact`, a transaction that may have been broadcast but
//! is not confirmed in time answers `settlement_pending` with its hash.

use m2m_evm::{
	alloy::{
		primitives::{Address, Bytes, B256, U256},
		providers::Provider,
		signers::SignerSync,
		sol_types::{SolCall, SolEvent},
	},
	channels::{BatchSettlement, DEPOSIT_COLLECTOR_ADDRESS, SETTLEMENT_ADDRESS},
	usdt::USDT,
};
use m2m_x402::{
	clock::unix_now,
	schemes::batch_settlement::{
		digest::{self, ClaimEntry},
		payload::{ChannelPayload, ChannelStateWire, ReceiverPayload, VoucherClaimWire},
		rules::{self, VerifiedDeposit, VerifiedVoucher},
		SCHEME,
	},
	v2::{PaymentPayload, PaymentRequirements, SettleResponse, VerifyResponse},
	ErrorReason, Problem,
};

use crate::{Facilitator, Failures};

const DEPOSIT_FAILURES: Failures = Failures {
	what: "the deposit",
	would_fail: ErrorReason::ChannelDepositSimulationFailed,
	reverted: ErrorReason::ChannelDepositTransactionFailed,
};
const CLAIM_FAILURES: Failures = Failures {
	what: "the claim",
	would_fail: ErrorReason::ChannelClaimSimulationFailed,
	reverted: ErrorReason::ChannelClaimTransactionFailed,
};
const SETTLE_FAILURES: Failures = Failures {
	what: "the settle",
	would_fail: ErrorReason::ChannelSettleTransactionFailed,
	reverted: ErrorReason::ChannelSettleTransactionFailed,
};

/// A channel's confirmed on-chain state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
	pub balance: u128,
	pub total_claimed: u128,
	/// Unix seconds; zero when no withdrawal is pending.
	pub withdraw_requested_at: u64,
	pub refund_nonce: U256,
}

impl Snapshot {
	pub fn wire(&self, channel_id: B256) -> ChannelStateWire {
		ChannelStateWire {
			channel_id: channel_id.to_string(),
			balance: self.balance.to_string(),
			total_claimed: self.total_claimed.to_string(),
			withdraw_requested_at: self.withdraw_requested_at,
			refund_nonce: self.refund_nonce.to_string(),
			charged_cumulative_amount: None,
		}
	}
}

/// A channel payment that passed every check, off-chain and on-chain.
struct Checked {
	verified: VerifiedVoucher,
	deposit: Option<VerifiedDeposit>,
	snapshot: Snapshot,
}

impl Facilitator {
	/// Whether this chain carries the settlement contracts (read once, at start).
	pub fn offers_channels(&self) -> bool {
		self.channels
	}

	/// `/verify` of a batch-settlement payment.
	pub(crate) async fn verify_channel(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> VerifyResponse {
		match self.check_channel(payment, requirements).await {
			Ok(c) => VerifyResponse {
				is_valid: true,
				invalid_reason: None,
				invalid_message: None,
				payer: Some(c.verified.config.payer.to_checksum(None)),
				extra: Some(state_json(&c.snapshot, c.verified.channel_id)),
			},
			Err(Problem { reason, message }) => VerifyResponse {
				is_valid: false,
				invalid_reason: Some(reason),
				invalid_message: Some(message),
				payer: None,
				extra: None,
			},
		}
	}

	/// `/settle` of a batch-settlement payment: a payer's deposit, or a receiver's claim or
	/// settle.
	pub(crate) async fn settle_channel(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> SettleResponse {
		let network = requirements.network.clone();
		if let Ok(receiver) = payment.payload.decode::<ReceiverPayload>() {
			return match receiver {
				ReceiverPayload::Claim { claims, claim_authorizer_signature } => {
					self.claim(&claims, claim_authorizer_signature.as_deref(), network).await
				},
				ReceiverPayload::Settle { receiver, token } => {
					self.settle_receiver(&receiver, &token, network).await
				},
			};
		}
		let checked = match self.check_channel(payment, requirements).await {
			Ok(c) => c,
			Err(problem) => return failed(problem, String::new(), network),
		};
		let Some(deposit) = checked.deposit else {
			return failed(
				Problem::new(
					ErrorReason::ChannelPayloadType,
					"only a deposit settles on its own: vouchers are claimed in batches by the \
					 receiver, refunds are the receiver's to send",
				),
				String::new(),
				network,
			);
		};
		let v = &checked.verified;
		let key = (v.config.payer, deposit.authorization.nonce);
		if let Err(earlier) = self.take_in_flight(key) {
			return failed(crate::already_settling(), earlier, network);
		}
		let request = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider)
			.deposit(
				contract_config(&v.config),
				deposit.amount,
				DEPOSIT_COLLECTOR_ADDRESS,
				deposit.collector_data(),
			)
			.into_transaction_request();
		let outcome = self.send_and_wait(request, &DEPOSIT_FAILURES).await;
		self.release_in_flight(key, &outcome);
		match outcome {
			Ok(tx) => {
				let state = self.snapshot(v.channel_id).await.unwrap_or(Snapshot {
					// The deposit is mined; if the read fails, report what it must show.
					balance: checked.snapshot.balance + deposit.amount,
					..checked.snapshot
				});
				SettleResponse {
					success: true,
					error_reason: None,
					error_message: None,
					transaction: tx.to_string(),
					network,
					payer: Some(v.config.payer.to_checksum(None)),
					amount: Some(deposit.amount.to_string()),
					extensions: None,
					extra: Some(serde_json::json!({ "channelState": state.wire(v.channel_id) })),
				}
			},
			Err((problem, tx)) => failed(problem, tx, network),
		}
	}

	/// The pure checks, then the chain's, in the specification's order.
	async fn check_channel(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<Checked, Problem> {
		let verified = rules::verify(payment, requirements)?;
		if verified.offer.chain_id != self.chain_id {
			return Err(Problem::new(
				ErrorReason::InvalidNetwork,
				format!(
					"this facilitator settles on eip155:{}, not {}",
					self.chain_id, requirements.network
				),
			));
		}
		if !self.channels {
			return Err(Problem::new(
				ErrorReason::UnsupportedScheme,
				format!("this chain has no settlement contract at {SETTLEMENT_ADDRESS}"),
			));
		}
		let deposit = match &verified.payload {
			ChannelPayload::Deposit { deposit, .. } => {
				Some(rules::verify_deposit(&verified, deposit, unix_now())?)
			},
			ChannelPayload::Voucher { .. } | ChannelPayload::Refund { .. } => None,
		};
		let snapshot = self.snapshot(verified.channel_id).await?;
		let refund = matches!(verified.payload, ChannelPayload::Refund { .. });
		let mut balance = snapshot.balance;
		if let Some(d) = &deposit {
			let held = USDT::new(verified.config.token, &self.provider)
				.balanceOf(verified.config.payer)
				.call()
				.await
				.map_err(|e| Problem::new(ErrorReason::ChannelRpcReadFailed, e.to_string()))?;
			if held < U256::from(d.amount) {
				return Err(Problem::new(
					ErrorReason::ChannelInsufficientBalance,
					format!("the payer holds {held}, the deposit is {}", d.amount),
				));
			}
			balance = balance.saturating_add(d.amount);
		} else if balance == 0 {
			return Err(Problem::new(ErrorReason::ChannelNotFound, "the channel holds no deposit"));
		}
		let max = verified.max_claimable;
		if max > balance {
			return Err(Problem::new(
				ErrorReason::ChannelCumulativeExceedsBalance,
				format!("the voucher is for {max} in total, the channel would hold {balance}"),
			));
		}
		let below =
			if refund { max < snapshot.total_claimed } else { max <= snapshot.total_claimed };
		if below {
			return Err(Problem::new(
				ErrorReason::ChannelCumulativeBelowClaimed,
				format!("the voucher is for {max}, {} was already claimed", snapshot.total_claimed),
			));
		}
		if let Some(d) = &deposit {
			let call = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider)
				.deposit(
					contract_config(&verified.config),
					d.amount,
					DEPOSIT_COLLECTOR_ADDRESS,
					d.collector_data(),
				)
				.from(self.signer());
			call.call().await.map_err(|e| {
				Problem::new(
					ErrorReason::ChannelDepositSimulationFailed,
					format!("the deposit would fail: {e}"),
				)
			})?;
		}
		Ok(Checked { verified, deposit, snapshot })
	}

	/// The channel's state in the latest block.
	pub async fn snapshot(&self, channel_id: B256) -> Result<Snapshot, Problem> {
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider);
		let read = |e: m2m_evm::alloy::contract::Error| {
			Problem::new(ErrorReason::ChannelRpcReadFailed, e.to_string())
		};
		let state = contract.channels(channel_id).call().await.map_err(read)?;
		let withdrawal = contract.pendingWithdrawals(channel_id).call().await.map_err(read)?;
		let refund_nonce = contract.refundNonce(channel_id).call().await.map_err(read)?;
		Ok(Snapshot {
			balance: state.balance,
			total_claimed: state.totalClaimed,
			withdraw_requested_at: withdrawal.initiatedAt.to::<u64>(),
			refund_nonce,
		})
	}

	/// Claims a receiver's vouchers in one `claimWithSignature`, signing the batch itself
	/// unless the receiver brought the authorizer's signature.
	async fn claim(
		&self,
		claims: &[VoucherClaimWire],
		authorizer_signature: Option<&str>,
		network: String,
	) -> SettleResponse {
		let rows = match claims.iter().map(claim_row).collect::<Result<Vec<_>, _>>() {
			Ok(rows) if !rows.is_empty() => rows,
			Ok(_) => {
				let empty = Problem::new(ErrorReason::ChannelClaimPayload, "no claims");
				return failed(empty, String::new(), network);
			},
			Err(problem) => return failed(problem, String::new(), network),
		};
		let signed = match authorizer_signature {
			Some(signature) => match alloy_bytes(signature) {
				Some(signature) => Some(signature),
				None => {
					let bad = Problem::new(
						ErrorReason::ChannelClaimPayload,
						"claimAuthorizerSignature is not 0x-hex",
					);
					return failed(bad, String::new(), network);
				},
			},
			None => {
				if let Some(row) =
					rows.iter().find(|r| r.voucher.channel.receiverAuthorizer != self.signer())
				{
					let problem = Problem::new(
						ErrorReason::ChannelAuthorizerAddressMismatch,
						format!(
							"a row's receiver authorizer is {}, this facilitator signs as {}",
							row.voucher.channel.receiverAuthorizer,
							self.signer()
						),
					);
					return failed(problem, String::new(), network);
				}
				None
			},
		};
		// One bad row (a stale balance, a withdrawn channel) must not sink the others: when
		// the batch would fail and the facilitator signs, each row is simulated alone.
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider);
		let batch_signature = |rows: &[BatchSettlement::VoucherClaim]| {
			signed.clone().unwrap_or_else(|| self.sign_claim_batch(rows))
		};
		let simulate = |rows: Vec<BatchSettlement::VoucherClaim>| {
			let signature = batch_signature(&rows);
			let call = contract.claimWithSignature(rows, signature).from(self.signer());
			async move { call.call().await.map(|_| ()).map_err(|e| e.to_string()) }
		};
		let mut failures = Vec::new();
		let mut good = rows.clone();
		if let Err(error) = simulate(rows.clone()).await {
			if signed.is_some() || rows.len() == 1 {
				let problem = Problem::new(
					ErrorReason::ChannelClaimSimulationFailed,
					format!("the claim would fail: {error}"),
				);
				return failed(problem, String::new(), network);
			}
			good.clear();
			for (index, row) in rows.iter().enumerate() {
				match simulate(vec![row.clone()]).await {
					Ok(()) => good.push(row.clone()),
					Err(error) => {
						failures.push(serde_json::json!({ "index": index, "error": error }))
					},
				}
			}
			tracing::warn!(failed = failures.len(), claimed = good.len(), "claim rows isolated");
			if good.is_empty() {
				let problem = Problem::new(
					ErrorReason::ChannelClaimSimulationFailed,
					format!("every claim row would fail: {}", serde_json::Value::from(failures)),
				);
				return failed(problem, String::new(), network);
			}
		}
		let signature = batch_signature(&good);
		let request =
			contract.claimWithSignature(good.clone(), signature).into_transaction_request();
		match self.send_and_wait(request, &CLAIM_FAILURES).await {
			Ok(tx) => SettleResponse {
				success: true,
				error_reason: None,
				error_message: None,
				transaction: tx.to_string(),
				network,
				payer: None,
				amount: Some(String::new()),
				extensions: None,
				extra: Some(serde_json::json!({
					"claimed": good.len(),
					"failedClaims": failures,
				})),
			},
			Err((problem, tx)) => failed(problem, tx, network),
		}
	}

	/// The facilitator's signature, as receiver authorizer, over a claim batch.
	fn sign_claim_batch(&self, rows: &[BatchSettlement::VoucherClaim]) -> Bytes {
		let domain = rules::domain(self.chain_id);
		let entries: Vec<ClaimEntry> = rows
			.iter()
			.map(|r| ClaimEntry {
				channelId: digest::channel_id(&x402_config(&r.voucher.channel), &domain),
				maxClaimableAmount: r.voucher.maxClaimableAmount,
				totalClaimed: r.totalClaimed,
			})
			.collect();
		let signature = self
			.authorizer
			.sign_hash_sync(&digest::claim_batch_digest(&entries, &domain))
			.expect("signing a hash cannot fail");
		Bytes::from(signature.as_bytes().to_vec())
	}

	/// Pays `receiver` what was claimed for it in `token`; the amount comes from the
	/// contract's `Settled` event ("0" when there was nothing to settle).
	async fn settle_receiver(
		&self,
		receiver: &str,
		token: &str,
		network: String,
	) -> SettleResponse {
		let parse = |s: &str, field: &str| {
			s.parse::<Address>().map_err(|_| {
				Problem::new(
					ErrorReason::ChannelSettlePayload,
					format!("{field} {s:?} is not an address"),
				)
			})
		};
		let (receiver, token) = match (parse(receiver, "receiver"), parse(token, "token")) {
			(Ok(r), Ok(t)) => (r, t),
			(Err(p), _) | (_, Err(p)) => return failed(p, String::new(), network),
		};
		let request = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider)
			.settle(receiver, token)
			.into_transaction_request();
		match self.send_and_wait(request, &SETTLE_FAILURES).await {
			Ok(tx) => {
				let amount = match self.provider.get_transaction_receipt(tx).await {
					Ok(Some(receipt)) => receipt
						.inner
						.logs()
						.iter()
						.filter(|l| l.address() == SETTLEMENT_ADDRESS)
						.find_map(|l| BatchSettlement::Settled::decode_log_data(l.data()).ok())
						.map_or(0, |e| e.amount),
					_ => 0,
				};
				SettleResponse {
					success: true,
					error_reason: None,
					error_message: None,
					transaction: tx.to_string(),
					network,
					payer: None,
					amount: Some(amount.to_string()),
					extensions: None,
					extra: None,
				}
			},
			Err((problem, tx)) => failed(problem, tx, network),
		}
	}
}

/// The scheme's `/supported` kind: channels on this chain, claims authorized by `authorizer`.
pub(crate) fn supported_extra(authorizer: Address) -> serde_json::Value {
	serde_json::json!({ "receiverAuthorizer": authorizer.to_checksum(None) })
}

/// The scheme name, for routing.
pub(crate) fn is_channel_payment(requirements: &PaymentRequirements) -> bool {
	requirements.scheme == SCHEME
}

fn state_json(snapshot: &Snapshot, channel_id: B256) -> serde_json::Value {
	serde_json::to_value(snapshot.wire(channel_id)).expect("plain data")
}

fn failed(problem: Problem, transaction: String, network: String) -> SettleResponse {
	SettleResponse {
		success: false,
		error_reason: Some(problem.reason),
		error_message: Some(problem.message),
		transaction,
		network,
		payer: None,
		amount: None,
		extensions: None,
		extra: None,
	}
}

fn contract_config(
	c: &m2m_x402::schemes::batch_settlement::digest::ChannelConfig,
) -> BatchSettlement::ChannelConfig {
	BatchSettlement::ChannelConfig {
		payer: c.payer,
		payerAuthorizer: c.payerAuthorizer,
		receiver: c.receiver,
		receiverAuthorizer: c.receiverAuthorizer,
		token: c.token,
		withdrawDelay: c.withdrawDelay,
		salt: c.salt,
	}
}

fn x402_config(
	c: &BatchSettlement::ChannelConfig,
) -> m2m_x402::schemes::batch_settlement::digest::ChannelConfig {
	m2m_x402::schemes::batch_settlement::digest::ChannelConfig {
		payer: c.payer,
		payerAuthorizer: c.payerAuthorizer,
		receiver: c.receiver,
		receiverAuthorizer: c.receiverAuthorizer,
		token: c.token,
		withdrawDelay: c.withdrawDelay,
		salt: c.salt,
	}
}

fn alloy_bytes(s: &str) -> Option<Bytes> {
	m2m_evm::alloy::hex::decode(s).ok().map(Bytes::from)
}

/// A claim row as the contract takes it.
fn claim_row(wire: &VoucherClaimWire) -> Result<BatchSettlement::VoucherClaim, Problem> {
	let p = |m: String| Problem::new(ErrorReason::ChannelClaimPayload, m);
	let config = rules::parse_config(&wire.voucher.channel)
		.map_err(|e| p(format!("a claim's channel: {}", e.message)))?;
	let amount = |s: &str, field: &str| {
		s.parse::<u128>().map_err(|_| p(format!("{field} {s:?} is not a uint128 decimal")))
	};
	Ok(BatchSettlement::VoucherClaim {
		voucher: BatchSettlement::Voucher {
			channel: contract_config(&config),
			maxClaimableAmount: amount(&wire.voucher.max_claimable_amount, "maxClaimableAmount")?,
		},
		signature: alloy_bytes(&wire.signature)
			.ok_or_else(|| p(format!("signature {:?} is not 0x-hex", wire.signature)))?,
		totalClaimed: amount(&wire.total_claimed, "totalClaimed")?,
	})
}
