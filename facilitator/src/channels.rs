//! `batch-settlement` (payment channels) on the facilitator: the on-chain half of the scheme.
//!
//! - `/verify` of a `deposit`, `voucher` or `refund`: the pure checks of
//!   [`m2m_x402::schemes::batch_settlement::rules`], then the channel's confirmed on-chain state
//!   (balance, claimed, pending withdrawal, refund nonce), the payer's token balance and an
//!   `eth_call` of the deposit. The answer's `extra` is that on-chain state.
//! - `/settle` of a `deposit` (sent, then the channel read again once it is mined), and of the
//!   receiver's `claim`, `settle` and enriched `refund` (its claim and the refund in one
//!   `multicall`). A bare voucher is not settleable: it is claimed later, in
//!   a batch. A claim batch whose simulation fails is split: each row is simulated alone, the
//!   failing ones are reported in `extra.failedClaims` and the rest are claimed, so one bad row
//!   never sinks the batch.
//! - The facilitator's key is also the receiver authorizer it offers (`/supported`): it signs
//!   the claim batches of channels that name it, and refuses to sign for others. It signs a
//!   refund only when the channel's receiver signed it too: a refund gives money back to the
//!   payer, and `/settle` is open to anyone.
//!
//! Only confirmed state is mirrored: every read is of the latest block, after the facilitator's
//! own transactions were mined. As for `exact`, a transaction that may have been broadcast but
//! is not confirmed in time answers `settlement_pending` with its hash.

use m2m_evm::{
	alloy::{
		primitives::{Address, Bytes, B256, U256},
		providers::Provider,
		rpc::types::BlockId,
		signers::SignerSync,
		sol_types::SolEvent,
	},
	channels::{BatchSettlement, DEPOSIT_COLLECTOR_ADDRESS, SETTLEMENT_ADDRESS},
	usdt::USDT,
};
use m2m_x402::{
	clock::unix_now,
	schemes::batch_settlement::{
		digest::{self, ClaimEntry},
		payload::{
			ChannelPayload, ChannelStateWire, EnrichedRefund, ReceiverPayload, VoucherClaimWire,
		},
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
const REFUND_FAILURES: Failures = Failures {
	what: "the refund",
	would_fail: ErrorReason::ChannelRefundSimulationFailed,
	reverted: ErrorReason::ChannelRefundTransactionFailed,
};
const SETTLE_FAILURES: Failures = Failures {
	what: "the settle",
	would_fail: ErrorReason::ChannelSettleSimulationFailed,
	reverted: ErrorReason::ChannelSettleTransactionFailed,
};

/// The most rows one claim batch may have (the reference's default): more would risk the block
/// gas limit, and isolating a failing row costs one simulation per row.
pub const MAX_CLAIMS_PER_BATCH: usize = 100;

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
		if let Err(problem) = self.gate(payment, requirements) {
			return failed(problem, String::new(), network);
		}
		if let Ok(receiver) = payment.payload.decode::<ReceiverPayload>() {
			return match receiver {
				ReceiverPayload::Claim { claims, claim_authorizer_signature } => {
					self.claim(&claims, claim_authorizer_signature.as_deref(), network).await
				},
				ReceiverPayload::Settle { receiver, token } => {
					self.settle_receiver(&receiver, &token, network).await
				},
				ReceiverPayload::Refund(refund) => match self.refund(&refund, &network).await {
					Ok(refunded) => refunded,
					Err((problem, tx)) => failed(problem, tx, network),
				},
			};
		}
		// The pure checks first: a deposit being settled is answered from the in-flight map
		// before the chain, which would see its authorization as used once it is mined.
		let pure = rules::verify(payment, requirements).and_then(|v| match &v.payload {
			ChannelPayload::Deposit { deposit, .. } => {
				let d = rules::verify_deposit(&v, deposit, unix_now())?;
				Ok((v.config.payer, d.authorization.nonce))
			},
			ChannelPayload::Voucher { .. } => Err(Problem::new(
				ErrorReason::ChannelPayloadType,
				"a voucher does not settle on its own: the receiver claims vouchers in batches \
				 (a `claim`)",
			)),
			ChannelPayload::Refund { .. } => Err(Problem::new(
				ErrorReason::ChannelRefundPayload,
				"a payer's refund is sent to the receiver, which settles it enriched with the \
				 refund nonce, its claim and its signature",
			)),
		});
		let key = match pure {
			Ok(key) => key,
			Err(problem) => return failed(problem, String::new(), network),
		};
		if let Some(tx) = self.in_flight_tx(&key).filter(|tx| !tx.is_empty()) {
			return failed(crate::already_settling(), tx, network);
		}
		let checked = match self.check_channel(payment, requirements).await {
			Ok(c) => c,
			Err(problem) => return failed(problem, String::new(), network),
		};
		let deposit = checked.deposit.expect("a deposit, checked above");
		let v = &checked.verified;
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
		self.release_in_flight(
			key,
			&outcome.as_ref().map(|r| r.transaction_hash).map_err(Clone::clone),
		);
		match outcome.map(|receipt| receipt.transaction_hash) {
			Ok(tx) => {
				// The deposit is mined: the balance shows it, unless the endpoint lags behind its
				// own receipt, and then it must be reported anyway.
				let least = checked.snapshot.balance.saturating_add(deposit.amount);
				let mut state = self
					.snapshot(v.channel_id)
					.await
					.unwrap_or(Snapshot { balance: least, ..checked.snapshot });
				state.balance = state.balance.max(least);
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

	/// What every channel request must pass before anything else: the protocol version, the
	/// scheme on both sides, the network, this facilitator's chain, and contracts on it.
	fn gate(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<(), Problem> {
		if payment.x402_version != m2m_x402::X402_VERSION {
			return Err(Problem::new(
				ErrorReason::InvalidX402Version,
				format!("x402Version {} is not supported for channels (2)", payment.x402_version),
			));
		}
		if payment.accepted.scheme != SCHEME || requirements.scheme != SCHEME {
			return Err(Problem::new(
				ErrorReason::ChannelScheme,
				format!(
					"paid with {:?}, required {:?}",
					payment.accepted.scheme, requirements.scheme
				),
			));
		}
		if payment.accepted.network != requirements.network {
			return Err(Problem::new(
				ErrorReason::ChannelNetworkMismatch,
				format!(
					"paid on {:?}, required {:?}",
					payment.accepted.network, requirements.network
				),
			));
		}
		if m2m_x402::network::evm_chain_id(&requirements.network) != Some(self.chain_id) {
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
		Ok(())
	}

	/// The pure checks, then the chain's, in the specification's order.
	async fn check_channel(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<Checked, Problem> {
		self.gate(payment, requirements)?;
		let verified = rules::verify(payment, requirements)?;
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
			let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider);
			let call = contract
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

	/// The channel's state in the latest block (all of it read at one block, so that a
	/// balance and a refund nonce never come from either side of a refund).
	pub async fn snapshot(&self, channel_id: B256) -> Result<Snapshot, Problem> {
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider);
		let failed = |e: String| Problem::new(ErrorReason::ChannelRpcReadFailed, e);
		let block = BlockId::number(
			self.provider.get_block_number().await.map_err(|e| failed(e.to_string()))?,
		);
		let read = |e: m2m_evm::alloy::contract::Error| failed(e.to_string());
		let state = contract.channels(channel_id).block(block).call().await.map_err(read)?;
		let withdrawal =
			contract.pendingWithdrawals(channel_id).block(block).call().await.map_err(read)?;
		let refund_nonce =
			contract.refundNonce(channel_id).block(block).call().await.map_err(read)?;
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
		if claims.is_empty() || claims.len() > MAX_CLAIMS_PER_BATCH {
			let problem = Problem::new(
				ErrorReason::ChannelClaimPayload,
				format!("a claim batch has 1 to {MAX_CLAIMS_PER_BATCH} rows, not {}", claims.len()),
			);
			return failed(problem, String::new(), network);
		}
		let rows = match claims.iter().map(claim_row).collect::<Result<Vec<_>, _>>() {
			Ok(rows) => rows,
			Err(problem) => return failed(problem, String::new(), network),
		};
		// Rows at or below what their channel claimed change nothing: no transaction for them.
		let domain = rules::domain(self.chain_id);
		// `positions[i]` is the receiver's index of live row i: failures are reported by it.
		let mut live = Vec::with_capacity(rows.len());
		let mut positions = Vec::with_capacity(rows.len());
		for (position, row) in rows.into_iter().enumerate() {
			let id = digest::channel_id(&x402_config(&row.voucher.channel), &domain);
			match self.snapshot(id).await {
				Ok(s) if row.totalClaimed <= s.total_claimed => {},
				// A failed read leaves the row to the simulation.
				_ => {
					live.push(row);
					positions.push(position);
				},
			}
		}
		let rows = live;
		if rows.is_empty() {
			return SettleResponse {
				success: true,
				error_reason: None,
				error_message: None,
				transaction: String::new(),
				network,
				payer: None,
				amount: Some(String::new()),
				extensions: None,
				extra: Some(serde_json::json!({ "claimed": 0, "failedClaims": [] })),
			};
		}
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
							self.authorizer.address()
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
					Err(error) => failures
						.push(serde_json::json!({ "index": positions[index], "error": error })),
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
			Ok(receipt) => SettleResponse {
				success: true,
				error_reason: None,
				error_message: None,
				transaction: receipt.transaction_hash.to_string(),
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

	/// A receiver's refund: its claim of what was charged (if above the claimed total) and
	/// then the refund, in one `multicall`, so that the payer never gets back what it was
	/// served. The answer's `amount` is what the channel's balance fell by, with the channel's
	/// state after it.
	async fn refund(
		&self,
		refund: &EnrichedRefund,
		network: &str,
	) -> Result<SettleResponse, (Problem, String)> {
		let EnrichedRefund {
			channel_config,
			voucher,
			amount,
			refund_nonce,
			claims,
			refund_authorizer_signature,
			claim_authorizer_signature,
			receiver_signature,
		} = refund;
		let bad = |m: String| (Problem::new(ErrorReason::ChannelRefundPayload, m), String::new());
		let config = rules::parse_config(channel_config).map_err(|p| bad(p.message))?;
		let domain = rules::domain(self.chain_id);
		let channel_id = digest::channel_id(&config, &domain);
		if voucher.channel_id.parse::<B256>().ok() != Some(channel_id) {
			let message = format!(
				"the refund names channel {}, its config hashes to {channel_id}",
				voucher.channel_id
			);
			return Err((Problem::new(ErrorReason::ChannelIdMismatch, message), String::new()));
		}
		let amount = rules::amount(amount, "amount", ErrorReason::ChannelRefundAmountInvalid)
			.and_then(|a| match a {
				0 => Err(Problem::new(ErrorReason::ChannelRefundAmountInvalid, "a refund of 0")),
				a => Ok(a),
			})
			.map_err(|p| (p, String::new()))?;
		let nonce = U256::from_str_radix(refund_nonce, 10)
			.map_err(|_| bad(format!("refundNonce {refund_nonce:?} is not a decimal integer")))?;
		let rows = claims
			.iter()
			.map(claim_row)
			.collect::<Result<Vec<_>, _>>()
			.map_err(|p| (p, String::new()))?;
		if let Some(other) = rows
			.iter()
			.map(|r| digest::channel_id(&x402_config(&r.voucher.channel), &domain))
			.find(|id| *id != channel_id)
		{
			return Err(bad(format!("a refund claims its own channel only, not {other}")));
		}
		let before = self.snapshot(channel_id).await.map_err(|p| (p, String::new()))?;
		if nonce != before.refund_nonce {
			return Err(bad(format!(
				"refund nonce {nonce} is stale: the channel's next is {} (a refund landed since)",
				before.refund_nonce
			)));
		}
		let live: Vec<_> =
			rows.into_iter().filter(|r| r.totalClaimed > before.total_claimed).collect();
		let claimed_after =
			live.iter().map(|r| r.totalClaimed).max().unwrap_or(0).max(before.total_claimed);
		if before.balance <= claimed_after {
			let message = format!(
				"nothing is left to refund: the channel holds {} and {claimed_after} is claimed",
				before.balance
			);
			return Err((
				Problem::new(ErrorReason::ChannelRefundNoBalance, message),
				String::new(),
			));
		}
		// The signatures the contract checks are the receiver authorizer's: brought, or this
		// facilitator's when the channel names it, and then only at the receiver's request.
		let authorizer_signs = refund_authorizer_signature.is_none()
			|| (!live.is_empty() && claim_authorizer_signature.is_none());
		if authorizer_signs {
			if config.receiverAuthorizer != self.signer() {
				let message = format!(
					"the channel's receiver authorizer is {}, this facilitator signs as {}",
					config.receiverAuthorizer,
					self.signer()
				);
				return Err((
					Problem::new(ErrorReason::ChannelAuthorizerAddressMismatch, message),
					String::new(),
				));
			}
			if config.receiver != self.signer() {
				let signature = receiver_signature.as_deref().ok_or_else(|| {
					bad(format!(
						"this facilitator signs a refund only with the receiver's own signature \
						 (receiverSignature, by {})",
						config.receiver
					))
				})?;
				rules::check_refund_signature(
					signature,
					config.receiver,
					channel_id,
					nonce,
					amount,
					self.chain_id,
				)
				.map_err(|p| (p, String::new()))?;
			}
		}
		let refund_signature = match refund_authorizer_signature {
			Some(s) => alloy_bytes(s)
				.ok_or_else(|| bad("refundAuthorizerSignature is not 0x-hex".into()))?,
			None => {
				let digest = digest::refund_digest(channel_id, nonce, amount, &domain);
				let signature =
					self.authorizer.sign_hash_sync(&digest).expect("signing a hash cannot fail");
				Bytes::from(signature.as_bytes().to_vec())
			},
		};
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider);
		let refund_call =
			contract.refundWithSignature(contract_config(&config), amount, nonce, refund_signature);
		let request = if live.is_empty() {
			refund_call.into_transaction_request()
		} else {
			let claim_signature = match claim_authorizer_signature {
				Some(s) => alloy_bytes(s)
					.ok_or_else(|| bad("claimAuthorizerSignature is not 0x-hex".into()))?,
				None => self.sign_claim_batch(&live),
			};
			let claim_call = contract.claimWithSignature(live, claim_signature);
			contract
				.multicall(vec![claim_call.calldata().clone(), refund_call.calldata().clone()])
				.into_transaction_request()
		};
		let receipt = self.send_and_wait(request, &REFUND_FAILURES).await?;
		// The state after it: read again, or, if the endpoint cannot say, what it must be.
		let after = match self.snapshot(channel_id).await {
			Ok(after) => after,
			Err(_) => {
				let refunded = amount.min(before.balance - claimed_after);
				Snapshot {
					balance: before.balance - refunded,
					total_claimed: claimed_after,
					refund_nonce: before.refund_nonce + U256::from(1),
					..before
				}
			},
		};
		Ok(SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: receipt.transaction_hash.to_string(),
			network: network.to_owned(),
			payer: Some(config.payer.to_checksum(None)),
			amount: Some(before.balance.saturating_sub(after.balance).to_string()),
			extensions: None,
			extra: Some(serde_json::json!({ "channelState": after.wire(channel_id) })),
		})
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
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &self.provider);
		let settled = |amount: u128, transaction: String| SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction,
			network: network.clone(),
			payer: None,
			amount: Some(amount.to_string()),
			extensions: None,
			extra: None,
		};
		// Nothing claimed since the last settle: answered without a transaction.
		if let Ok(totals) = contract.receivers(receiver, token).call().await {
			if totals.totalClaimed == totals.totalSettled {
				return settled(0, String::new());
			}
		}
		let request = contract.settle(receiver, token).into_transaction_request();
		match self.send_and_wait(request, &SETTLE_FAILURES).await {
			Ok(receipt) => {
				let amount = receipt
					.inner
					.logs()
					.iter()
					.filter(|l| l.address() == SETTLEMENT_ADDRESS)
					.find_map(|l| BatchSettlement::Settled::decode_log_data(l.data()).ok())
					.map_or(0, |e| e.amount);
				settled(amount, receipt.transaction_hash.to_string())
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

/// `0x`-prefixed hex.
fn alloy_bytes(s: &str) -> Option<Bytes> {
	s.strip_prefix("0x").and_then(|h| m2m_evm::alloy::hex::decode(h).ok()).map(Bytes::from)
}

/// A claim row as the contract takes it: the voucher's signature re-encoded with v in
/// {27, 28}, the only form the contract accepts (a payer may send 0 or 1).
fn claim_row(wire: &VoucherClaimWire) -> Result<BatchSettlement::VoucherClaim, Problem> {
	let reason = ErrorReason::ChannelClaimPayload;
	let config = rules::parse_config(&wire.voucher.channel)
		.map_err(|e| Problem::new(reason.clone(), format!("a claim's channel: {}", e.message)))?;
	let signature = rules::signature(&wire.signature, "claimed voucher's", reason.clone())?;
	Ok(BatchSettlement::VoucherClaim {
		voucher: BatchSettlement::Voucher {
			channel: contract_config(&config),
			maxClaimableAmount: rules::amount(
				&wire.voucher.max_claimable_amount,
				"maxClaimableAmount",
				reason.clone(),
			)?,
		},
		signature: Bytes::from(signature.as_bytes().to_vec()),
		totalClaimed: rules::amount(&wire.total_claimed, "totalClaimed", reason)?,
	})
}
