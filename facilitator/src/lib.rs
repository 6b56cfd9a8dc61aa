//! The x402 facilitator core: verifies exact/EIP-3009 payments against the chain and settles
//! them, on any Ethereum JSON-RPC endpoint (m2m-eth-rpc, anvil).
//!
//! - [`Facilitator::verify`] runs the pure checks of [`m2m_x402::exact::verify`] first, then
//!   the on-chain ones, cheapest first: the token's EIP-712 domain (read once, cached), the
//!   authorization's state, the payer's balance, and an `eth_call` simulation of the settlement.
//! - [`Facilitator::settle`] verifies again, sends `transferWithAuthorization` (one sender at a
//!   time, so nonces never collide) and waits a bounded time for the receipt. A transaction
//!   that was sent but not confirmed in time answers `settlement_pending` with its hash, never
//!   a plain failure, so that a conforming client does not sign and pay again.
//! - An in-flight set refuses a second presentation of an authorization that is being settled.

pub mod client;
pub mod http;

pub use client::{Facilitate, RemoteFacilitator, Unavailable};

use std::{
	collections::{HashMap, HashSet},
	sync::Mutex,
	time::{Duration, SystemTime, UNIX_EPOCH},
};

use m2m_evm::{
	alloy::{
		primitives::{Address, B256},
		providers::{DynProvider, Provider},
	},
	usdt::{self, USDT},
};
use m2m_x402::{
	exact::{self, Verified},
	network,
	v2::{
		PaymentPayload, PaymentRequirements, SettleResponse, SupportedKind, SupportedResponse,
		VerifyResponse,
	},
	ErrorReason, X402_VERSION,
};

/// A facilitator for one EVM chain, submitting settlements from one key.
pub struct Facilitator {
	provider: DynProvider,
	signer: Address,
	chain_id: u64,
	receipt_timeout: Duration,
	domains: Mutex<HashMap<Address, (String, String)>>,
	in_flight: Mutex<HashSet<(Address, B256)>>,
	sending: tokio::sync::Mutex<()>,
}

/// A refusal: the spec's reason and a sentence.
type Refusal = (ErrorReason, String);

impl Facilitator {
	/// A facilitator on the endpoint behind `provider`, which signs as `signer`.
	pub async fn new(
		provider: DynProvider,
		signer: Address,
		receipt_timeout: Duration,
	) -> Result<Self, m2m_evm::EvmError> {
		let chain_id = provider.get_chain_id().await?;
		Ok(Self {
			provider,
			signer,
			chain_id,
			receipt_timeout,
			domains: Mutex::default(),
			in_flight: Mutex::default(),
			sending: tokio::sync::Mutex::new(()),
		})
	}

	/// `GET /supported`: exact on this chain, settled by this signer.
	pub fn supported(&self) -> SupportedResponse {
		let mut signers = serde_json::Map::new();
		signers.insert("eip155:*".into(), vec![self.signer.to_checksum(None)].into());
		SupportedResponse {
			kinds: vec![SupportedKind {
				x402_version: X402_VERSION,
				scheme: exact::SCHEME.into(),
				network: network::caip2(self.chain_id),
				extra: None,
			}],
			extensions: Vec::new(),
			signers,
		}
	}

	/// `POST /verify`.
	pub async fn verify(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> VerifyResponse {
		match self.check(payment, requirements).await {
			Ok(v) => VerifyResponse {
				is_valid: true,
				invalid_reason: None,
				invalid_message: None,
				payer: Some(v.payer.to_checksum(None)),
			},
			Err((reason, message)) => VerifyResponse {
				is_valid: false,
				invalid_reason: Some(reason),
				invalid_message: Some(message),
				payer: payment.payer().map(str::to_owned),
			},
		}
	}

	/// `POST /settle`.
	pub async fn settle(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> SettleResponse {
		let failed = |reason: ErrorReason, message: String, transaction: String| SettleResponse {
			success: false,
			error_reason: Some(reason),
			error_message: Some(message),
			transaction,
			network: requirements.network.clone(),
			payer: payment.payer().map(str::to_owned),
			amount: None,
			extensions: None,
		};
		let verified = match self.check(payment, requirements).await {
			Ok(v) => v,
			Err((reason, message)) => return failed(reason, message, String::new()),
		};
		let key = (verified.payer, verified.authorization.nonce);
		if !self.in_flight.lock().expect("in-flight set").insert(key) {
			return failed(
				ErrorReason::InvalidTransactionState,
				"this authorization is already being settled".into(),
				String::new(),
			);
		}
		let outcome = self.submit(&verified).await;
		let pending = matches!(&outcome, Err((ErrorReason::SettlementPending, _, _)));
		if !pending {
			// A pending settlement keeps its authorization blocked: it may still land.
			self.in_flight.lock().expect("in-flight set").remove(&key);
		}
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
			},
			Err((reason, message, tx)) => failed(reason, message, tx),
		}
	}

	async fn submit(&self, v: &Verified) -> Result<B256, (ErrorReason, String, String)> {
		let request = settlement(v).request(v.token, &self.provider);
		let tx = {
			// One send at a time: the nonce is read from the endpoint and used at once.
			let _guard = self.sending.lock().await;
			match self.provider.send_transaction(request).await {
				Ok(pending) => *pending.tx_hash(),
				Err(e) => {
					return Err((
						ErrorReason::UnexpectedSettleError,
						format!("the settlement could not be sent: {e}"),
						String::new(),
					))
				},
			}
		};
		let deadline = tokio::time::Instant::now() + self.receipt_timeout;
		// Instant-sealing endpoints answer within milliseconds, 6 s blocks take seconds: poll
		// soon, then back off.
		let mut pause = Duration::from_millis(2);
		loop {
			match self.provider.get_transaction_receipt(tx).await {
				Ok(Some(receipt)) if receipt.status() => return Ok(tx),
				Ok(Some(_)) => {
					return Err((
						ErrorReason::InvalidTransactionState,
						"the settlement transaction reverted".into(),
						tx.to_string(),
					))
				},
				// Not mined yet, or the endpoint hiccuped: keep waiting within the bound.
				Ok(None) | Err(_) => {},
			}
			if tokio::time::Instant::now() >= deadline {
				return Err((
					ErrorReason::SettlementPending,
					format!(
						"sent, but not confirmed within {:?}; check the transaction before paying again",
						self.receipt_timeout
					),
					tx.to_string(),
				));
			}
			tokio::time::sleep(pause).await;
			pause = (pause * 2).min(Duration::from_millis(100));
		}
	}

	async fn check(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<Verified, Refusal> {
		let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
		let v = exact::verify(payment, requirements, now).map_err(|e| (e.reason, e.message))?;
		if v.chain_id != self.chain_id {
			return Err((
				ErrorReason::InvalidNetwork,
				format!(
					"this facilitator settles on eip155:{}, not {}",
					self.chain_id, requirements.network
				),
			));
		}
		let unexpected = |e: String| (ErrorReason::UnexpectedVerifyError, e);
		let (name, version) = self.domain_of(v.token).await.map_err(unexpected)?;
		if requirements.eip712_name_version() != Some((name.as_str(), version.as_str())) {
			return Err((
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
			return Err((
				ErrorReason::InvalidTransactionState,
				"this authorization was already used or canceled".into(),
			));
		}
		let balance =
			token.balanceOf(a.from).call().await.map_err(|e| unexpected(e.to_string()))?;
		if balance < a.value {
			return Err((
				ErrorReason::InsufficientFunds,
				format!("the payer holds {balance}, the payment needs {}", a.value),
			));
		}
		self.provider
			.call(settlement(&v).request(v.token, &self.provider).from(self.signer))
			.await
			.map_err(|e| {
				(ErrorReason::InvalidTransactionState, format!("the settlement would fail: {e}"))
			})?;
		Ok(v)
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

/// The verified authorization as the token's settlement call takes it.
fn settlement(v: &Verified) -> usdt::SignedTransfer {
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
