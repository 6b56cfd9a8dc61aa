//! The x402 facilitator core: verifies exact/EIP-3009 payments against the chain and settles
//! them, on any Ethereum JSON-RPC endpoint (m2m-eth-rpc, anvil).
//!
//! - [`Facilitator::verify`] runs the pure checks of [`m2m_x402::schemes::exact::verify`] first, then
//!   the on-chain ones, cheapest first: the token's EIP-712 domain (read once, cached), the
//!   authorization's state, the payer's balance, and an `eth_call` simulation of the settlement.
//! - [`Facilitator::settle`] verifies again, signs `transferWithAuthorization` itself (so its
//!   hash is known before it is broadcast, see [`sender`]) and waits a bounded time for the
//!   receipt. Its simulation runs with the gas limit the transaction will carry (remembered
//!   per token from an estimate, with headroom), so one execution both proves the settlement
//!   would succeed and prices it; gas is estimated again only when that simulation fails. A transaction that may have been broadcast but is not confirmed in time, for
//!   whatever reason (a slow chain, a lost reply, a reset connection), answers
//!   `settlement_pending` with its hash, never a plain failure, so that a conforming client
//!   does not sign and pay again.
//! - A second presentation of an authorization that is being settled answers
//!   `settlement_pending` with the first one's transaction: it is not settled twice, and the
//!   buyer is not told to pay again.

pub mod channels;
pub mod client;
pub mod http;
pub mod lookup;
pub mod sender;

pub use client::{Facilitate, RemoteFacilitator, Unavailable};
pub use lookup::ChainLookup;

use std::{collections::HashMap, sync::Mutex, time::Duration};

use m2m_evm::{
	alloy::{
		primitives::{Address, B256},
		providers::{DynProvider, Provider},
		rpc::types::{TransactionReceipt, TransactionRequest},
		signers::local::PrivateKeySigner,
	},
	usdt::{self, USDT},
};
use m2m_x402::{
	clock::unix_now,
	network,
	schemes::{
		self,
		exact::{self, Verified},
	},
	v2::{
		PaymentPayload, PaymentRequirements, SettleResponse, SupportedKind, SupportedResponse,
		VerifyResponse,
	},
	ErrorReason, Problem, X402_VERSION,
};

/// A facilitator for one EVM chain, submitting settlements from one key.
pub struct Facilitator {
	provider: DynProvider,
	sender: sender::Sender,
	chain_id: u64,
	receipt_timeout: Duration,
	domains: Mutex<HashMap<Address, (String, String)>>,
	/// Per token, the gas limit settlements carry: the largest estimate seen, plus headroom.
	gas_limits: Mutex<HashMap<Address, u64>>,
	/// Authorizations being settled (payer, nonce), with their transaction once known.
	in_flight: Mutex<HashMap<(Address, B256), String>>,
	/// The settlement signer's key, which also signs claim batches as the receiver authorizer
	/// this facilitator offers for channels.
	authorizer: PrivateKeySigner,
	/// Whether the chain carries the batch-settlement contracts at their canonical addresses.
	channels: bool,
}

impl Facilitator {
	/// A facilitator on the endpoint behind `provider`, which signs its settlements with
	/// `signer` (the provider's own wallet, if any, is not used).
	pub async fn new(
		provider: DynProvider,
		signer: PrivateKeySigner,
		receipt_timeout: Duration,
	) -> Result<Self, m2m_evm::EvmError> {
		let chain_id = provider.get_chain_id().await?;
		let channels = m2m_evm::channels::installed(&provider).await?;
		Ok(Self {
			authorizer: signer.clone(),
			channels,
			sender: sender::Sender::new(provider.clone(), signer, chain_id),
			provider,
			chain_id,
			receipt_timeout,
			domains: Mutex::default(),
			gas_limits: Mutex::default(),
			in_flight: Mutex::default(),
		})
	}

	/// The address that submits (and pays gas for) settlements.
	pub fn signer(&self) -> Address {
		self.sender.address()
	}

	/// `GET /supported`: exact on this chain, settled by this signer.
	pub fn supported(&self) -> SupportedResponse {
		let mut signers = serde_json::Map::new();
		signers.insert("eip155:*".into(), vec![self.signer().to_checksum(None)].into());
		let mut kinds = vec![SupportedKind {
			x402_version: X402_VERSION,
			scheme: exact::SCHEME.into(),
			network: network::caip2(self.chain_id),
			extra: None,
		}];
		if self.channels {
			kinds.push(SupportedKind {
				x402_version: X402_VERSION,
				scheme: m2m_x402::schemes::batch_settlement::SCHEME.into(),
				network: network::caip2(self.chain_id),
				extra: Some(channels::supported_extra(self.signer())),
			});
		}
		SupportedResponse { kinds, extensions: Vec::new(), signers }
	}

	/// `POST /verify`.
	pub async fn verify(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> VerifyResponse {
		if channels::is_channel_payment(requirements) {
			return self.verify_channel(payment, requirements).await;
		}
		match self.check(payment, requirements).await {
			Ok(v) => VerifyResponse {
				is_valid: true,
				invalid_reason: None,
				invalid_message: None,
				payer: Some(v.payer.to_checksum(None)),
				extra: None,
			},
			Err(Problem { reason, message }) => VerifyResponse {
				is_valid: false,
				invalid_reason: Some(reason),
				invalid_message: Some(message),
				payer: schemes::payer(payment),
				extra: None,
			},
		}
	}

	/// `POST /settle`.
	pub async fn settle(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> SettleResponse {
		if channels::is_channel_payment(requirements) {
			return self.settle_channel(payment, requirements).await;
		}
		let failed = |problem: Problem, transaction: String| SettleResponse {
			success: false,
			error_reason: Some(problem.reason),
			error_message: Some(problem.message),
			transaction,
			network: requirements.network.clone(),
			payer: schemes::payer(payment),
			amount: None,
			extensions: None,
			extra: None,
		};
		let verified = match exact::verify(payment, requirements, unix_now()) {
			Ok(v) => v,
			Err(problem) => return failed(problem, String::new()),
		};
		// An authorization being settled is answered from the in-flight map before the
		// on-chain checks, which would see it as used once its transaction is in the pool.
		// (Its signature is checked, so nobody learns more than the public hash.)
		let earlier = self.in_flight_tx(&(verified.payer, verified.authorization.nonce));
		if let Some(tx) = earlier.filter(|tx| !tx.is_empty()) {
			return failed(already_settling(), tx);
		}
		let (verified, gas_limit) = match self.check_on_chain(verified, requirements).await {
			Ok(checked) => checked,
			Err(problem) => return failed(problem, String::new()),
		};
		let key = (verified.payer, verified.authorization.nonce);
		if let Err(earlier) = self.take_in_flight(key) {
			return failed(already_settling(), earlier);
		}
		let outcome = self.submit(&verified, gas_limit).await;
		self.release_in_flight(key, &outcome);
		match outcome {
			Ok(tx) => SettleResponse {
				success: true,
				error_reason: None,
				error_message: None,
				transaction: tx.to_string(),
				network: requirements.network.clone(),
				payer: Some(verified.payer.to_checksum(None)),
				amount: Some(verified.authorization.value.to_string()),
				extensions: None,
				extra: None,
			},
			Err((problem, tx)) => failed(problem, tx),
		}
	}

	/// The settlement's transaction, or why it failed (with the transaction, once known).
	async fn submit(&self, v: &Verified, gas_limit: u64) -> Result<B256, (Problem, String)> {
		let request = settlement(v).request(v.token, &self.provider).gas_limit(gas_limit);
		self.send_and_wait(request, &EXACT_FAILURES).await.map(|receipt| receipt.transaction_hash)
	}

	/// Signs and broadcasts `request` from the facilitator's key and waits a bounded time for
	/// its receipt: the successful receipt, or why it failed (with the transaction once it may
	/// have been broadcast, so that a caller answers `settlement_pending`, never "failed", for
	/// it).
	pub(crate) async fn send_and_wait(
		&self,
		request: TransactionRequest,
		failures: &Failures,
	) -> Result<TransactionReceipt, (Problem, String)> {
		let tx = match self.sender.send(request).await {
			Ok(broadcast) => broadcast.tx(),
			// Nothing left the facilitator: a final failure, and nothing was used.
			Err(sender::NotSent::WouldFail(e)) => {
				return Err((
					Problem::new(
						failures.would_fail.clone(),
						format!("{} would fail: {e}", failures.what),
					),
					String::new(),
				))
			},
			Err(e) => {
				return Err((
					Problem::new(ErrorReason::UnexpectedSettleError, e.to_string()),
					String::new(),
				))
			},
		};
		let deadline = tokio::time::Instant::now() + self.receipt_timeout;
		// Instant-sealing endpoints answer within milliseconds, 6 s blocks take seconds: poll
		// soon, then back off.
		let mut pause = Duration::from_millis(2);
		loop {
			match self.provider.get_transaction_receipt(tx).await {
				Ok(Some(receipt)) if receipt.status() => return Ok(receipt),
				Ok(Some(_)) => {
					return Err((
						Problem::new(
							failures.reverted.clone(),
							format!("{} transaction reverted", failures.what),
						),
						tx.to_string(),
					))
				},
				// Not mined yet, or the endpoint hiccuped: keep waiting within the bound.
				Ok(None) | Err(_) => {},
			}
			if tokio::time::Instant::now() >= deadline {
				return Err((
					Problem::new(
						ErrorReason::SettlementPending,
						format!(
							"sent, but not confirmed within {:?}; check the transaction before \
							 paying again",
							self.receipt_timeout
						),
					),
					tx.to_string(),
				));
			}
			tokio::time::sleep(pause).await;
			pause = (pause * 2).min(Duration::from_millis(100));
		}
	}

	fn in_flight_tx(&self, key: &(Address, B256)) -> Option<String> {
		self.in_flight.lock().expect("in-flight map").get(key).cloned()
	}

	/// Takes the in-flight slot of an authorization (payer, nonce), or answers with the
	/// transaction of the settlement that holds it (empty while it is not signed yet).
	pub(crate) fn take_in_flight(&self, key: (Address, B256)) -> Result<(), String> {
		let mut in_flight = self.in_flight.lock().expect("in-flight map");
		match in_flight.get(&key) {
			Some(tx) => Err(tx.clone()),
			None => {
				in_flight.insert(key, String::new());
				Ok(())
			},
		}
	}

	/// Frees the slot after a settlement, unless it is pending: then it keeps the
	/// authorization blocked, with its hash, because it may still land.
	pub(crate) fn release_in_flight(
		&self,
		key: (Address, B256),
		outcome: &Result<B256, (Problem, String)>,
	) {
		let mut in_flight = self.in_flight.lock().expect("in-flight map");
		match outcome {
			Err((Problem { reason: ErrorReason::SettlementPending, .. }, tx)) => {
				in_flight.insert(key, tx.clone());
			},
			_ => {
				in_flight.remove(&key);
			},
		}
	}

	/// Every check: the pure ones, then those against the chain.
	async fn check(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<Verified, Problem> {
		let v = exact::verify(payment, requirements, unix_now())?;
		Ok(self.check_on_chain(v, requirements).await?.0)
	}

	/// The checks against the chain, cheapest first, of a payment the pure checks passed; and
	/// the gas limit under which its settlement was simulated successfully.
	async fn check_on_chain(
		&self,
		v: Verified,
		requirements: &PaymentRequirements,
	) -> Result<(Verified, u64), Problem> {
		if v.chain_id != self.chain_id {
			return Err(Problem::new(
				ErrorReason::InvalidNetwork,
				format!(
					"this facilitator settles on eip155:{}, not {}",
					self.chain_id, requirements.network
				),
			));
		}
		let unexpected = |e: String| Problem::new(ErrorReason::UnexpectedVerifyError, e);
		let (name, version) = self.domain_of(v.token).await.map_err(unexpected)?;
		if requirements.eip712_name_version() != Some((name.as_str(), version.as_str())) {
			return Err(Problem::new(
				ErrorReason::InvalidPaymentRequirements,
				format!(
					"the token's EIP-712 domain is ({name:?}, {version:?}), not what extra says"
				),
			));
		}
		let token = USDT::new(v.token, &self.provider);
		let a = &v.authorization;
		if token
			.authorizationState(a.from, a.nonce)
			.call()
			.await
			.map_err(|e| unexpected(e.to_string()))?
		{
			return Err(Problem::new(
				ErrorReason::InvalidTransactionState,
				"this authorization was already used or canceled",
			));
		}
		let balance =
			token.balanceOf(a.from).call().await.map_err(|e| unexpected(e.to_string()))?;
		if balance < a.value {
			return Err(Problem::new(
				ErrorReason::InsufficientFunds,
				format!("the payer holds {balance}, the payment needs {}", a.value),
			));
		}
		let gas_limit = self.simulate(&v).await.map_err(|e| {
			Problem::new(
				ErrorReason::InvalidTransactionState,
				format!("the settlement would fail: {e}"),
			)
		})?;
		Ok((v, gas_limit))
	}

	/// Simulates the settlement under the token's remembered gas limit, and returns that
	/// limit. Without one, or when the simulation fails (it may have run out of gas: a first
	/// transfer to a payee stores more), gas is estimated, which simulates too and tells a
	/// revert from a shortage; the estimate plus a quarter is remembered when it is larger.
	async fn simulate(&self, v: &Verified) -> Result<u64, String> {
		let request = settlement(v).request(v.token, &self.provider).from(self.signer());
		let remembered = self.gas_limits.lock().expect("gas limits").get(&v.token).copied();
		if let Some(limit) = remembered {
			if self.provider.call(request.clone().gas_limit(limit)).await.is_ok() {
				return Ok(limit);
			}
		}
		let estimate = self.provider.estimate_gas(request).await.map_err(|e| e.to_string())?;
		let limit = estimate.saturating_add(estimate / 4);
		let mut limits = self.gas_limits.lock().expect("gas limits");
		let entry = limits.entry(v.token).or_insert(limit);
		*entry = (*entry).max(limit);
		Ok(*entry)
	}

	/// The token's EIP-712 name and version, read on-chain once.
	async fn domain_of(&self, token: Address) -> Result<(String, String), String> {
		if let Some(d) = self.domains.lock().expect("domain cache").get(&token) {
			return Ok(d.clone());
		}
		let d = m2m_evm::usdt::domain(&self.provider, token).await.map_err(|e| e.to_string())?;
		let entry = (d.name, d.version);
		self.domains.lock().expect("domain cache").insert(token, entry.clone());
		Ok(entry)
	}
}

/// The reasons a transaction's failure is reported with, per kind of settlement.
pub(crate) struct Failures {
	/// What the transaction does, for messages: "the settlement".
	pub what: &'static str,
	/// Its simulation (gas estimate) failed: nothing was sent.
	pub would_fail: ErrorReason,
	/// It was mined and reverted.
	pub reverted: ErrorReason,
}

const EXACT_FAILURES: Failures = Failures {
	what: "the settlement",
	would_fail: ErrorReason::InvalidTransactionState,
	reverted: ErrorReason::InvalidTransactionState,
};

/// Pending, not refused: the first settlement may still land, and a buyer told "failed"
/// would sign and pay again.
pub(crate) fn already_settling() -> Problem {
	Problem::new(
		ErrorReason::SettlementPending,
		"this authorization is already being settled; check the transaction before paying again",
	)
}

/// The verified authorization as the token's settlement call takes it (whoever submits it).
pub fn settlement(v: &Verified) -> usdt::SignedTransfer {
	let a = &v.authorization;
	usdt::SignedTransfer {
		from: a.from,
		to: a.to,
		value: a.value,
		valid_after: a.validAfter,
		valid_before: a.validBefore,
		nonce: a.nonce,
		v: 27 + v.signature.v() as u8,
		r: v.signature.r().into(),
		s: v.signature.s().into(),
	}
}
