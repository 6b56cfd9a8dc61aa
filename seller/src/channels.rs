//! Selling from payment channels (`batch-settlement`): the channel's steps of the one sale
//! sequence in [`crate::Seller`], the channel state they keep, and the claims that turn
//! vouchers into money.
//!
//! A request paid from a channel carries a cumulative voucher: "the receiver may claim up to N
//! in total". The seller keeps, per channel, what it has charged so far and the highest voucher
//! it holds ([`ChannelRecord`], in a [`ChannelStore`]). A voucher is accepted only if it is
//! exactly `charged + price` (otherwise the buyer gets a corrective 402 with the state and the
//! last voucher), within the channel's balance and above what was claimed. The record, with
//! the new voucher and the new charge, is durable **before** the resource leaves: a crash after
//! that loses nothing, and a crash before it charged nothing.
//!
//! The chain is asked (through the facilitator) only when a channel is first seen or brings a
//! deposit; later vouchers are checked locally, which is what makes channels cheap. Claims
//! ([`crate::Seller::claim_channels`]) run apart from sales, in batches of at most
//! [`MAX_CLAIMS_PER_BATCH`] rows, and then settle (move the tokens to the receiver).

use std::{
	collections::{BTreeMap, HashMap},
	sync::Mutex,
};

use m2m_x402::{
	paywall::Accepted,
	schemes::batch_settlement::{
		payload::{
			decimal, ChannelConfigWire, ChannelPayload, ChannelStateWire, ClaimedVoucherWire,
			EnrichedRefund, ReceiverPayload, VoucherClaimWire, VoucherWire,
		},
		rules::{self, ChannelView, VerifiedVoucher},
	},
	v2::{PaymentPayload, PaymentRequirements, SchemePayload, SettleResponse},
	ErrorReason, Problem, B256,
};
use serde::{Deserialize, Serialize};

/// The most rows one claim batch carries (the facilitator's bound).
pub const MAX_CLAIMS_PER_BATCH: usize = 100;

/// What a seller knows of one channel. Amounts are the asset's base units (decimal strings on
/// disk, as on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelRecord {
	pub channel_id: B256,
	pub config: ChannelConfigWire,
	/// The offer the channel's first payment accepted: claims and settles are asked under it.
	pub requirements: PaymentRequirements,
	/// What the buyer was charged so far, in total: the sum of the prices of the answers it
	/// got. Never above [`signed`](Self::signed).
	#[serde(with = "decimal")]
	pub charged: u128,
	/// The highest voucher's bound, and its signature (`0x`-hex, empty before the first).
	#[serde(with = "decimal")]
	pub signed: u128,
	pub signature: String,
	/// Mirrored from the chain (confirmed state only): the deposit left in the channel, what
	/// was claimed from it, when a withdrawal was initiated (Unix seconds, 0 if none), and the
	/// refund nonce.
	#[serde(with = "decimal")]
	pub balance: u128,
	#[serde(with = "decimal")]
	pub total_claimed: u128,
	pub withdraw_requested_at: u64,
	pub refund_nonce: String,
	/// Requests served from this channel, in all and since the last claim landed.
	pub requests: u64,
	pub unclaimed_requests: u64,
	/// The transaction of the last claim that landed (empty before the first).
	#[serde(default)]
	pub last_claim: String,
}

impl ChannelRecord {
	/// A channel first seen with this on-chain state: what the chain shows claimed was charged
	/// before (by this seller, in a life it forgot, or it could not have been claimed).
	fn first_seen(verified: &VerifiedVoucher, requirements: &PaymentRequirements) -> Self {
		Self {
			channel_id: verified.channel_id,
			config: verified.payload.channel_config().clone(),
			requirements: requirements.clone(),
			charged: 0,
			signed: 0,
			signature: String::new(),
			balance: 0,
			total_claimed: 0,
			withdraw_requested_at: 0,
			refund_nonce: "0".into(),
			requests: 0,
			unclaimed_requests: 0,
			last_claim: String::new(),
		}
	}

	/// Charged but not claimed yet: what this seller would lose if the payer withdrew now.
	pub fn unclaimed(&self) -> u128 {
		self.charged.saturating_sub(self.total_claimed)
	}

	pub fn view(&self) -> ChannelView {
		ChannelView {
			balance: self.balance,
			total_claimed: self.total_claimed,
			charged: self.charged,
		}
	}

	/// The state reported to the buyer.
	pub fn state(&self) -> ChannelStateWire {
		let nonce = self.refund_nonce.parse::<u64>().unwrap_or(0);
		rules::channel_state(self.channel_id, &self.view(), self.withdraw_requested_at, nonce)
	}

	/// Takes the chain's confirmed state. Mirrored amounts only grow: an endpoint that lags
	/// behind a claim must not make a claimed amount chargeable again.
	fn mirror(&mut self, state: &OnChain) {
		self.balance = state.balance;
		self.total_claimed = self.total_claimed.max(state.total_claimed);
		self.charged = self.charged.max(self.total_claimed);
		self.withdraw_requested_at = state.withdraw_requested_at;
		self.refund_nonce = state.refund_nonce.clone();
	}

	/// The claim row for everything charged.
	fn claim_row(&self) -> VoucherClaimWire {
		VoucherClaimWire {
			voucher: ClaimedVoucherWire {
				channel: self.config.clone(),
				max_claimable_amount: self.signed.to_string(),
			},
			signature: self.signature.clone(),
			total_claimed: self.charged.to_string(),
		}
	}
}

/// Where a seller keeps its channels.
///
/// `save` must be durable when it returns (on disk, synced): it runs before a resource paid
/// by a voucher leaves, and the voucher is the seller's only claim to the money. `load` and
/// `all` return what was saved last; an error means "cannot tell", never "no channel".
pub trait ChannelStore: Send + Sync {
	fn load(&self, channel_id: &B256) -> Result<Option<ChannelRecord>, String>;
	fn save(&self, record: &ChannelRecord) -> Result<(), String>;
	fn all(&self) -> Result<Vec<ChannelRecord>, String>;
}

/// Channels in memory: for tests and for sellers that accept losing their vouchers on exit.
#[derive(Default)]
pub struct MemoryChannels(Mutex<BTreeMap<B256, ChannelRecord>>);

impl ChannelStore for MemoryChannels {
	fn load(&self, channel_id: &B256) -> Result<Option<ChannelRecord>, String> {
		Ok(self.0.lock().expect("channels").get(channel_id).cloned())
	}

	fn save(&self, record: &ChannelRecord) -> Result<(), String> {
		self.0.lock().expect("channels").insert(record.channel_id, record.clone());
		Ok(())
	}

	fn all(&self) -> Result<Vec<ChannelRecord>, String> {
		Ok(self.0.lock().expect("channels").values().cloned().collect())
	}
}

/// A channel's confirmed on-chain state, as the facilitator reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OnChain {
	pub balance: u128,
	pub total_claimed: u128,
	pub withdraw_requested_at: u64,
	pub refund_nonce: String,
}

impl OnChain {
	/// The state in a facilitator answer's `extra` (itself, or under `channelState`).
	pub(crate) fn from_extra(extra: Option<&serde_json::Value>) -> Result<Self, String> {
		let extra = extra.ok_or("the facilitator reported no channel state")?;
		let state = extra.get("channelState").unwrap_or(extra);
		let wire: ChannelStateWire = serde_json::from_value(state.clone())
			.map_err(|e| format!("the facilitator's channel state is malformed: {e}"))?;
		let amount = |s: &str, field: &str| {
			s.parse::<u128>()
				.map_err(|_| format!("the facilitator's channel {field} {s:?} is not an amount"))
		};
		Ok(Self {
			balance: amount(&wire.balance, "balance")?,
			total_claimed: amount(&wire.total_claimed, "totalClaimed")?,
			withdraw_requested_at: wire.withdraw_requested_at,
			refund_nonce: wire.refund_nonce,
		})
	}
}

/// A channel payment checked against the channel, ready to serve.
#[derive(Debug)]
pub(crate) struct ChannelSale {
	pub verified: VerifiedVoucher,
	/// The record as it is before this request; the charge is added once it is answered.
	pub record: ChannelRecord,
	/// The request's price: what the voucher adds to the charged total.
	pub price: u128,
	/// The deposit the payment brings (0 if none), which must land (settle) before the
	/// answer leaves.
	pub deposit: u128,
	/// The buyer retries a request whose answer it never got, with the voucher already
	/// charged for it: served again, charged nothing.
	pub repeat: bool,
}

impl ChannelSale {
	/// The record once this request is charged `charge` (at most its price), with its
	/// deposit's state mirrored (`landed`: the deposit settled; `state`: the chain's state after
	/// it, if reported).
	pub(crate) fn charged(
		&self,
		charge: u128,
		landed: bool,
		state: Option<&OnChain>,
	) -> ChannelRecord {
		let mut record = self.record.clone();
		match state {
			Some(state) => record.mirror(state),
			// The deposit landed, but its state was not reported: it is in the balance.
			None if landed => record.balance = record.balance.saturating_add(self.deposit),
			None => {},
		}
		if !self.repeat {
			record.charged += charge.min(self.price);
			record.signed = self.verified.max_claimable;
			record.signature = self.payload_signature().to_owned();
			record.requests += 1;
			record.unclaimed_requests += 1;
		}
		record
	}

	fn payload_signature(&self) -> &str {
		&self.verified.payload.voucher().signature
	}
}

/// Why a channel payment is not served.
#[derive(Debug)]
pub(crate) enum ChannelStop {
	/// Refused for good (this payment will never pass).
	Refused(Problem),
	/// The voucher is not `charged + price`: the buyer must resume from the corrected offer,
	/// which carries the channel's state and the last voucher.
	Corrective(Problem, Box<PaymentRequirements>),
}

/// The pure half of accepting a voucher: given what the seller holds of the channel (`known`,
/// with the chain's state mirrored when it was read), either the sale to serve or why not.
pub(crate) fn check(
	verified: VerifiedVoucher,
	requirements: &PaymentRequirements,
	known: ChannelRecord,
	deposit_amount: u128,
	retry: bool,
) -> Result<ChannelSale, ChannelStop> {
	let price =
		rules::amount(&requirements.amount, "amount", ErrorReason::InvalidPaymentRequirements)
			.map_err(ChannelStop::Refused)?;
	let deposit = deposit_amount;
	let voucher = verified.max_claimable;
	// The buyer's retry of a request that was charged but whose answer was lost.
	let repeat = retry && known.signed == voucher && signature_eq(&known.signature, &verified);
	if repeat {
		return Ok(ChannelSale { verified, record: known, price, deposit, repeat });
	}
	let mut view = known.view();
	view.balance = view.balance.saturating_add(deposit_amount);
	if let Err(problem) = rules::check_cumulative(&view, voucher, price, false) {
		return Err(stop(problem, requirements, &known));
	}
	if known.withdraw_requested_at != 0 && deposit_amount == 0 {
		tracing::info!(channel = %known.channel_id, "serving a channel whose payer is withdrawing");
	}
	Ok(ChannelSale { verified, record: known, price, deposit, repeat: false })
}

/// A voucher that does not add up: refused, or, when it is only stale, a corrective 402
/// with the channel's state and the last voucher held.
fn stop(
	problem: Problem,
	requirements: &PaymentRequirements,
	known: &ChannelRecord,
) -> ChannelStop {
	if problem.reason != ErrorReason::ChannelCumulativeAmountMismatch {
		return ChannelStop::Refused(problem);
	}
	let last = (!known.signature.is_empty())
		.then(|| {
			rules::signature(
				&known.signature,
				"stored voucher",
				ErrorReason::ChannelVoucherSignature,
			)
			.ok()
		})
		.flatten()
		.map(|signature| (known.signed, signature));
	let corrected = rules::corrective(requirements, known.state(), last);
	ChannelStop::Corrective(problem, Box::new(corrected))
}

/// A payer's refund request checked against the channel, ready to settle.
#[derive(Debug)]
pub(crate) struct ChannelRefund {
	pub verified: VerifiedVoucher,
	/// The record with the chain's state mirrored.
	pub record: ChannelRecord,
	/// What goes back to the payer.
	pub amount: u128,
	/// The chain shows a refund landed since this seller's record: the answer to a retry of
	/// a refund whose settlement was left uncertain.
	pub landed: bool,
}

impl ChannelRefund {
	/// The refund as the facilitator settles it: everything charged claimed first, then
	/// `amount` back to the payer under the channel's refund nonce, with the receiver's own
	/// signature of it (`receiver_signature`).
	pub(crate) fn payload(&self, receiver_signature: Option<String>) -> ReceiverPayload {
		let record = &self.record;
		let claims =
			if record.charged > record.total_claimed { vec![record.claim_row()] } else { vec![] };
		ReceiverPayload::Refund(Box::new(EnrichedRefund {
			channel_config: record.config.clone(),
			voucher: self.verified.payload.voucher().clone(),
			amount: self.amount.to_string(),
			refund_nonce: record.refund_nonce.clone(),
			claims,
			refund_authorizer_signature: None,
			claim_authorizer_signature: None,
			receiver_signature,
		}))
	}

	/// The record once the refund landed, with the chain's state after it (`state`, when
	/// reported): everything charged is claimed, by `transaction` if it claimed anything.
	pub(crate) fn refunded(&self, state: Option<&OnChain>, transaction: &str) -> ChannelRecord {
		let mut record = self.record.clone();
		if record.charged > record.total_claimed {
			record.total_claimed = record.charged;
			record.unclaimed_requests = 0;
			record.last_claim = transaction.to_owned();
		}
		match state {
			Some(state) => record.mirror(state),
			None if !self.landed => {
				record.balance = record.balance.saturating_sub(self.amount);
				let nonce = record.refund_nonce.parse::<u64>().unwrap_or(0);
				record.refund_nonce = (nonce + 1).to_string();
			},
			None => {},
		}
		record
	}
}

/// The pure half of accepting a refund request: its voucher is exactly what was charged (a
/// stale one gets the corrective 402), and something is left to refund. `before` is the
/// refund nonce this seller knew before the chain was read: a retry that finds the chain
/// past it finds its own refund landed.
pub(crate) fn check_refund(
	verified: VerifiedVoucher,
	requirements: &PaymentRequirements,
	known: ChannelRecord,
	before: &str,
	retry: bool,
) -> Result<ChannelRefund, ChannelStop> {
	let nonce = |s: &str| s.parse::<u128>().unwrap_or(0);
	if retry && nonce(&known.refund_nonce) > nonce(before) {
		return Ok(ChannelRefund { verified, record: known, amount: 0, landed: true });
	}
	let requested = match &verified.payload {
		ChannelPayload::Refund { amount, .. } => amount.clone(),
		ChannelPayload::Deposit { .. } | ChannelPayload::Voucher { .. } => {
			unreachable!("checked as a refund")
		},
	};
	rules::check_cumulative(&known.view(), verified.max_claimable, 0, true)
		.map_err(|problem| stop(problem, requirements, &known))?;
	let amount =
		rules::refund_amount(&known.view(), requested.as_deref()).map_err(ChannelStop::Refused)?;
	Ok(ChannelRefund { verified, record: known, amount, landed: false })
}

fn signature_eq(stored: &str, verified: &VerifiedVoucher) -> bool {
	stored.eq_ignore_ascii_case(&verified.payload.voucher().signature)
}

/// The deposit a channel payment brings, in base units (0 for a bare voucher).
pub(crate) fn deposit_amount(verified: &VerifiedVoucher) -> Result<u128, Problem> {
	match &verified.payload {
		ChannelPayload::Deposit { deposit, .. } => {
			rules::amount(&deposit.amount, "deposit.amount", ErrorReason::ChannelDepositPayload)
		},
		ChannelPayload::Voucher { .. } | ChannelPayload::Refund { .. } => Ok(0),
	}
}

/// The same payment with its deposit taken out: what is left to check when the deposit may
/// have landed already (its authorization is then used, so the deposit itself cannot pass).
pub(crate) fn without_deposit(payment: &PaymentPayload) -> Option<PaymentPayload> {
	match payment.payload.decode::<ChannelPayload>().ok()? {
		ChannelPayload::Deposit { channel_config, voucher, .. } => {
			let mut bare = payment.clone();
			bare.payload =
				SchemePayload::encode(&ChannelPayload::Voucher { channel_config, voucher });
			Some(bare)
		},
		ChannelPayload::Voucher { .. } | ChannelPayload::Refund { .. } => None,
	}
}

/// The first-contact record, with the chain's state mirrored.
pub(crate) fn known(
	stored: Option<ChannelRecord>,
	verified: &VerifiedVoucher,
	requirements: &PaymentRequirements,
	chain: Option<&OnChain>,
) -> ChannelRecord {
	let mut record = stored.unwrap_or_else(|| ChannelRecord::first_seen(verified, requirements));
	if let Some(state) = chain {
		record.mirror(state);
	}
	record
}

/// What one run of claims did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClaimReport {
	/// Channels whose claim landed: the amount and requests it newly covers, and the claim's
	/// transaction.
	pub claimed: Vec<ClaimedChannel>,
	/// Channels whose claim did not land, with why (retried on the next run).
	pub failed: Vec<(B256, String)>,
	/// The settle transactions that moved the claimed tokens to the receiver.
	pub settled: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedChannel {
	pub channel_id: B256,
	/// What this claim added to the channel's claimed total.
	pub amount: u128,
	/// The requests it pays for (served since the previous claim).
	pub requests: u64,
	/// The channel's claimed total after it.
	pub total_claimed: u128,
	pub transaction: String,
}

/// What a receiver's refund did.
#[derive(Clone, Debug, PartialEq)]
pub struct RefundedChannel {
	pub channel_id: B256,
	/// Returned to the payer.
	pub refunded: u128,
	/// Claimed by the same transaction (what was charged and not claimed yet).
	pub claimed: u128,
	/// What the channel holds after it.
	pub balance: u128,
	pub transaction: String,
}

/// Channels with something to claim, grouped by the offer they will be claimed under (one
/// batch per network, asset and receiver), in batches of at most [`MAX_CLAIMS_PER_BATCH`].
pub(crate) fn claim_batches(records: Vec<ChannelRecord>) -> Vec<Vec<ChannelRecord>> {
	let mut groups: HashMap<(String, String, String), Vec<ChannelRecord>> = HashMap::new();
	for record in records.into_iter().filter(|r| r.unclaimed() > 0 && !r.signature.is_empty()) {
		let r = &record.requirements;
		let key = (r.network.clone(), r.asset.to_ascii_lowercase(), r.pay_to.to_ascii_lowercase());
		groups.entry(key).or_default().push(record);
	}
	let mut keys: Vec<_> = groups.keys().cloned().collect();
	keys.sort();
	let mut batches = Vec::new();
	for key in keys {
		let mut group = groups.remove(&key).unwrap_or_default();
		group.sort_by_key(|r| r.channel_id);
		while !group.is_empty() {
			let rest = group.split_off(group.len().min(MAX_CLAIMS_PER_BATCH));
			batches.push(std::mem::replace(&mut group, rest));
		}
	}
	batches
}

/// The receiver's request to the facilitator: claim these channels, or settle their receiver.
pub(crate) fn receiver_payment(
	requirements: &PaymentRequirements,
	payload: &ReceiverPayload,
) -> PaymentPayload {
	PaymentPayload {
		x402_version: m2m_x402::X402_VERSION,
		resource: None,
		accepted: requirements.clone(),
		payload: SchemePayload::encode(payload),
		extensions: None,
		other: Default::default(),
	}
}

pub(crate) fn claim_payload(batch: &[ChannelRecord]) -> ReceiverPayload {
	ReceiverPayload::Claim {
		claims: batch.iter().map(ChannelRecord::claim_row).collect(),
		claim_authorizer_signature: None,
	}
}

/// The rows (by index in the batch) a successful claim reports as failed, with why.
pub(crate) fn failed_rows(extra: Option<&serde_json::Value>) -> HashMap<usize, String> {
	let rows = extra.and_then(|e| e.get("failedClaims")).and_then(|f| f.as_array());
	rows.into_iter()
		.flatten()
		.filter_map(|row| {
			let index = row.get("index")?.as_u64()? as usize;
			let error = row.get("error").and_then(|e| e.as_str()).unwrap_or("").to_owned();
			Some((index, error))
		})
		.collect()
}

impl crate::Seller {
	/// Claims what every channel charged and has not claimed yet, in batches of at most
	/// [`MAX_CLAIMS_PER_BATCH`], then settles (moves the claimed tokens to the receiver).
	///
	/// A batch or a row that fails is reported and claimed again on the next run: claims are
	/// cumulative, so a claim that landed unseen is a no-op the next time. A row's claim is
	/// mirrored into its record under the channel's lock, so that a request being served on
	/// it is never overwritten; a channel busy at that moment is reported as failed and
	/// mirrored on the next run.
	pub async fn claim_channels(&self) -> Result<ClaimReport, String> {
		let records =
			self.channels.all().map_err(|e| format!("the channels cannot be read: {e}"))?;
		let mut report = ClaimReport::default();
		let mut receivers: Vec<PaymentRequirements> = Vec::new();
		for batch in claim_batches(records) {
			let requirements = batch[0].requirements.clone();
			let settlement = match self.claim(&batch).await {
				Ok(s) => s,
				Err(why) => {
					tracing::warn!(rows = batch.len(), %why, "a claim batch did not land; retried on the next run");
					report.failed.extend(batch.iter().map(|r| (r.channel_id, why.clone())));
					continue;
				},
			};
			let failed = failed_rows(settlement.extra.as_ref());
			for (index, row) in batch.iter().enumerate() {
				if let Some(error) = failed.get(&index) {
					tracing::warn!(channel = %row.channel_id, %error, "a claim row failed; retried on the next run");
					report.failed.push((row.channel_id, error.clone()));
					continue;
				}
				match self.mirror_claim(row, &settlement.transaction) {
					Ok((amount, total_claimed)) => report.claimed.push(ClaimedChannel {
						channel_id: row.channel_id,
						amount,
						requests: row.unclaimed_requests,
						total_claimed,
						transaction: settlement.transaction.clone(),
					}),
					Err(error) => report.failed.push((row.channel_id, error)),
				}
			}
			if !receivers.iter().any(|r| {
				r.network == requirements.network
					&& r.asset == requirements.asset
					&& r.pay_to == requirements.pay_to
			}) {
				receivers.push(requirements);
			}
		}
		for requirements in receivers {
			let payload = ReceiverPayload::Settle {
				receiver: requirements.pay_to.clone(),
				token: requirements.asset.clone(),
			};
			let payment = receiver_payment(&requirements, &payload);
			match self.facilitator.settle(&payment, &requirements).await {
				Ok(s) if s.success => {
					tracing::info!(receiver = %requirements.pay_to, tx = %s.transaction, amount = s.amount.as_deref().unwrap_or(""), "claimed channel funds settled");
					if !s.transaction.is_empty() {
						report.settled.push(s.transaction);
					}
				},
				// The claims stand: the next run settles them.
				Ok(s) => {
					tracing::warn!(receiver = %requirements.pay_to, reason = ?s.error_reason, message = s.error_message.as_deref().unwrap_or(""), "settle of claimed funds failed; retried on the next run")
				},
				Err(e) => {
					tracing::warn!(receiver = %requirements.pay_to, error = %e, "settle of claimed funds could not be sent; retried on the next run")
				},
			}
		}
		Ok(report)
	}

	/// The refund as this receiver asks the facilitator to settle it, signed with the
	/// receiver's key when the seller has it.
	pub(crate) fn refund_payment(
		&self,
		requirements: &PaymentRequirements,
		refund: &ChannelRefund,
	) -> Result<PaymentPayload, Problem> {
		let receiver_signature = match &self.receiver_key {
			Some(key) => {
				let chain_id =
					m2m_x402::network::evm_chain_id(&requirements.network).unwrap_or_default();
				let nonce = refund.record.refund_nonce.parse().unwrap_or_default();
				let channel_id = refund.verified.channel_id;
				Some(rules::sign_refund(key, channel_id, nonce, refund.amount, chain_id)?)
			},
			None => None,
		};
		Ok(receiver_payment(requirements, &refund.payload(receiver_signature)))
	}

	/// Refunds a payer on the receiver's own initiative (an idle channel, a device being
	/// retired): claims everything charged, and gives back the rest of the deposit, in one
	/// transaction. The channel stays usable: a payer that deposits again pays on from what
	/// it was charged.
	pub async fn refund_channel(&self, channel_id: &B256) -> Result<RefundedChannel, String> {
		let key = crate::SaleKey::channel(channel_id);
		let Some(_lock) = crate::Selling::begin(&self.selling, &key) else {
			return Err(
				"a request is being served on the channel; retry when it is answered".into()
			);
		};
		let record = self
			.channels
			.load(channel_id)?
			.ok_or_else(|| format!("this device sells from no channel {channel_id}"))?;
		if record.signature.is_empty() {
			return Err(format!("channel {channel_id} holds no voucher yet: nothing was bought"));
		}
		let requirements = record.requirements.clone();
		let payload = ChannelPayload::Refund {
			channel_config: record.config.clone(),
			voucher: VoucherWire {
				channel_id: channel_id.to_string(),
				max_claimable_amount: record.signed.to_string(),
				signature: record.signature.clone(),
			},
			amount: None,
		};
		let payment = rules::payment(&requirements, &payload);
		let verified = rules::verify(&payment, &requirements).map_err(|p| p.to_string())?;
		let accepted = Accepted {
			version: m2m_x402::X402_VERSION,
			payment,
			requirement: requirements.clone(),
		};
		// The same checks as a payer's refund request: the record, the chain, what is left.
		let refund = match self.verify_refund(&accepted, verified, Some(record), false).await {
			Ok(crate::Checked::Refund(refund)) => *refund,
			Ok(_) => unreachable!("a refund payment checks as a refund"),
			Err(stop) => return Err(stop.describe()),
		};
		let payment = self.refund_payment(&requirements, &refund).map_err(|p| p.to_string())?;
		let settled = self
			.settle_as_receiver(&payment, &requirements)
			.await
			.map_err(|why| format!("the refund did not land: {why}"))?;
		let state = OnChain::from_extra(settled.extra.as_ref()).ok();
		let claimed_before = refund.record.total_claimed;
		let after = refund.refunded(state.as_ref(), &settled.transaction);
		self.channels.save(&after)?;
		tracing::info!(
			channel = %channel_id, refunded = settled.amount.as_deref().unwrap_or(""),
			tx = %settled.transaction, "refunded the payer on this device's initiative"
		);
		Ok(RefundedChannel {
			channel_id: *channel_id,
			refunded: settled
				.amount
				.as_deref()
				.and_then(|a| a.parse().ok())
				.unwrap_or(refund.amount),
			claimed: after.total_claimed - claimed_before,
			balance: after.balance,
			transaction: settled.transaction,
		})
	}

	/// Sends one claim batch: the facilitator's successful answer, or why it did not land.
	async fn claim(&self, batch: &[ChannelRecord]) -> Result<SettleResponse, String> {
		let requirements = &batch[0].requirements;
		self.settle_as_receiver(
			&receiver_payment(requirements, &claim_payload(batch)),
			requirements,
		)
		.await
	}

	/// Has the facilitator settle a receiver's request: its successful answer, or why it did
	/// not land (with the transaction, if one was sent).
	async fn settle_as_receiver(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<SettleResponse, String> {
		match self.facilitator.settle(payment, requirements).await {
			Ok(s) if s.success => Ok(s),
			Ok(s) => Err(format!(
				"{}: {}{}",
				s.error_reason.map(|r| r.to_string()).unwrap_or_default(),
				s.error_message.unwrap_or_default(),
				if s.transaction.is_empty() {
					String::new()
				} else {
					format!(" (tx {})", s.transaction)
				}
			)),
			Err(e) => Err(e.to_string()),
		}
	}

	/// Claims `record`'s channel now, while its sale holds the channel: a channel whose
	/// unclaimed charge would pass the bound is claimed before it serves more. Updates
	/// `record` (and the store) with the claim.
	pub(crate) async fn claim_before_serving(
		&self,
		record: &mut ChannelRecord,
	) -> Result<(), String> {
		let batch = std::slice::from_ref(record);
		let settlement = self.claim(batch).await?;
		if let Some(error) = failed_rows(settlement.extra.as_ref()).remove(&0) {
			return Err(error);
		}
		let before = record.total_claimed;
		record.total_claimed = before.max(record.charged);
		record.unclaimed_requests = 0;
		record.last_claim = settlement.transaction.clone();
		self.channels.save(record)?;
		tracing::info!(
			channel = %record.channel_id, amount = record.total_claimed - before,
			tx = %settlement.transaction, "unclaimed exposure at its bound: claimed before serving"
		);
		Ok(())
	}

	/// Mirrors a landed claim of `claimed` (the record it was built from) into the channel's
	/// current record: what it added, and the channel's claimed total after it.
	fn mirror_claim(
		&self,
		claimed: &ChannelRecord,
		transaction: &str,
	) -> Result<(u128, u128), String> {
		let key = crate::SaleKey::channel(&claimed.channel_id);
		let Some(_lock) = crate::Selling::begin(&self.selling, &key) else {
			return Err(
				"claimed, but a request was being served on the channel: mirrored on the next run"
					.into(),
			);
		};
		let mut current = self
			.channels
			.load(&claimed.channel_id)?
			.ok_or_else(|| format!("channel {} vanished from the store", claimed.channel_id))?;
		let before = current.total_claimed;
		current.total_claimed = before.max(claimed.charged);
		current.charged = current.charged.max(current.total_claimed);
		current.unclaimed_requests =
			current.unclaimed_requests.saturating_sub(claimed.unclaimed_requests);
		current.last_claim = transaction.to_owned();
		self.channels.save(&current)?;
		Ok((current.total_claimed - before, current.total_claimed))
	}
}

#[cfg(test)]
mod tests {
	use m2m_x402::{
		schemes::batch_settlement::rules::{
			config_for, config_wire, requirements, sign_voucher, Offer,
		},
		Address, B256,
	};

	use super::*;

	fn offer() -> Offer {
		Offer {
			chain_id: 33380,
			asset: Address::repeat_byte(0x11),
			token_domain: ("Tether USD".into(), "1".into()),
			pay_to: Address::repeat_byte(0x22),
			receiver_authorizer: Address::repeat_byte(0x33),
			withdraw_delay: 900,
			max_price: 1_000,
			max_timeout_seconds: 60,
		}
	}

	/// A payer's voucher of `max` on a fresh channel, checked as a seller would.
	fn voucher(max: u128) -> (VerifiedVoucher, PaymentRequirements) {
		let signer =
			alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
		let offer = offer();
		let requirements = requirements(&offer);
		let config = config_for(&offer, signer.address(), B256::ZERO);
		let voucher = sign_voucher(&signer, &config, max, offer.chain_id).unwrap();
		let payload = ChannelPayload::Voucher { channel_config: config_wire(&config), voucher };
		let payment = rules::payment(&requirements, &payload);
		(rules::verify(&payment, &requirements).unwrap(), requirements)
	}

	fn known(
		charged: u128,
		balance: u128,
	) -> (VerifiedVoucher, PaymentRequirements, ChannelRecord) {
		let (verified, requirements) = voucher(charged + 1_000);
		let mut record = ChannelRecord::first_seen(&verified, &requirements);
		record.balance = balance;
		record.charged = charged;
		(verified, requirements, record)
	}

	#[test]
	fn a_voucher_of_charged_plus_price_is_served_and_charged_its_price() {
		let (verified, requirements, record) = known(3_000, 10_000);
		let sale = check(verified, &requirements, record, 0, false).unwrap();
		let after = sale.charged(1_000, false, None);
		assert_eq!((after.charged, after.signed, after.requests), (4_000, 4_000, 1));
		assert_eq!(after.unclaimed(), 4_000);
	}

	#[test]
	fn a_metered_interval_cut_short_is_charged_what_it_delivered_and_keeps_its_voucher() {
		let (verified, requirements, record) = known(3_000, 10_000);
		let sale = check(verified, &requirements, record, 0, false).unwrap();
		let after = sale.charged(250, false, None);
		assert_eq!((after.charged, after.signed), (3_250, 4_000), "claimable up to the voucher");
		assert_eq!(sale.charged(5_000, false, None).charged, 4_000, "never above the price");
	}

	#[test]
	fn a_stale_voucher_gets_the_corrective_offer_with_the_state() {
		let (verified, requirements, record) = known(3_000, 10_000);
		let mut ahead = record.clone();
		ahead.charged = 5_000;
		match check(verified, &requirements, ahead, 0, false) {
			Err(ChannelStop::Corrective(problem, corrected)) => {
				assert_eq!(problem.reason, ErrorReason::ChannelCumulativeAmountMismatch);
				let state = &corrected.extra.as_ref().unwrap()["channelState"];
				assert_eq!(state["chargedCumulativeAmount"], "5000");
			},
			other => panic!("expected a corrective 402, got {other:?}"),
		}
	}

	#[test]
	fn a_voucher_beyond_the_balance_is_refused_unless_a_deposit_covers_it() {
		let (verified, requirements, record) = known(3_000, 3_500);
		match check(verified.clone(), &requirements, record.clone(), 0, false) {
			Err(ChannelStop::Refused(p)) => {
				assert_eq!(p.reason, ErrorReason::ChannelCumulativeExceedsBalance)
			},
			other => panic!("expected a refusal, got {other:?}"),
		}
		assert!(check(verified, &requirements, record, 1_000, false).is_ok());
	}

	#[test]
	fn a_retry_of_a_charged_voucher_is_served_again_without_a_second_charge() {
		let (verified, requirements, record) = known(3_000, 10_000);
		let charged = check(verified.clone(), &requirements, record, 0, false)
			.unwrap()
			.charged(1_000, false, None);
		// The same voucher again, as the retry of a request whose answer was lost.
		let again = check(verified.clone(), &requirements, charged.clone(), 0, true).unwrap();
		assert!(again.repeat);
		assert_eq!(again.charged(1_000, false, None), charged);
		// Without the retry mark it is a stale voucher.
		assert!(matches!(
			check(verified, &requirements, charged, 0, false),
			Err(ChannelStop::Corrective(..))
		));
	}

	#[test]
	fn a_record_survives_its_json_with_amounts_above_2_to_the_53() {
		let (_, _, mut record) = known(0, 0);
		record.charged = u128::MAX - 1;
		let json = serde_json::to_string(&record).unwrap();
		assert!(json.contains(&format!("\"charged\":\"{}\"", u128::MAX - 1)), "{json}");
		assert_eq!(serde_json::from_str::<ChannelRecord>(&json).unwrap(), record);
	}

	#[test]
	fn claims_are_batched_per_receiver_and_asset_at_most_a_hundred_rows_each() {
		let (_, _, template) = known(0, 0);
		let mut records = Vec::new();
		for i in 0..205u16 {
			let mut r = template.clone();
			r.channel_id = B256::left_padding_from(&i.to_be_bytes());
			r.charged = 10;
			r.signed = 10;
			r.signature = "0x01".into();
			if i == 0 {
				r.total_claimed = 10; // nothing left to claim
			}
			if i == 1 {
				r.requirements.pay_to = format!("{}", Address::repeat_byte(0x44));
			}
			records.push(r);
		}
		let sizes: Vec<usize> = claim_batches(records).iter().map(Vec::len).collect();
		assert_eq!(sizes.iter().sum::<usize>(), 204);
		assert!(sizes.iter().all(|&n| n <= MAX_CLAIMS_PER_BATCH), "{sizes:?}");
		assert!(sizes.contains(&1), "the other receiver's channel is its own batch: {sizes:?}");
	}
}
