//! The scheme's rules that need no chain, for all three roles.
//!
//! - An offer ([`requirements`]) names the receiver, its authorizer, the withdraw delay and
//!   the per-request maximum; [`offer`] reads one back.
//! - A payer builds its channel's config from the offer ([`config_for`]) and signs vouchers of
//!   `charged + price` ([`sign_voucher`], [`next_voucher_amount`]).
//! - A receiver (and a facilitator) checks a payment ([`verify`]): the config is the one
//!   offered and hashes to the voucher's channel id, and the voucher is the payer
//!   authorizer's. Then, against the channel's state, [`check_cumulative`]: the voucher is
//!   exactly what was charged plus this price (otherwise a corrective 402, [`corrective`]),
//!   within the balance, and above what was claimed.
//!
//! The checks run in the specification's order and each refusal has its own reason.

use alloy_primitives::{aliases::U40, Address, Signature, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{Eip712Domain, SolStruct};

use super::{
	digest::{self, ChannelConfig},
	payload::{
		ChannelConfigWire, ChannelExtra, ChannelPayload, ChannelStateWire, DepositAuthorization,
		DepositWire, Erc3009DepositAuthorization, VoucherStateWire, VoucherWire,
	},
	DEPOSIT_COLLECTOR_ADDRESS, MAX_WITHDRAW_DELAY, MIN_WITHDRAW_DELAY, SCHEME, SETTLEMENT_ADDRESS,
};
use crate::{
	network,
	schemes::exact::recover_signer,
	v2::{PaymentPayload, PaymentRequirements},
	ErrorReason, Problem, X402_VERSION,
};

/// What a receiver offers: channels into the settlement contract on `chain_id`, in `asset`
/// (whose EIP-712 domain is `token_domain`), to `pay_to`, whose claims `receiver_authorizer`
/// signs, with payers' withdrawals waiting `withdraw_delay` seconds; each request costs at
/// most `max_price`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
	pub chain_id: u64,
	pub asset: Address,
	pub token_domain: (String, String),
	pub pay_to: Address,
	pub receiver_authorizer: Address,
	pub withdraw_delay: u64,
	pub max_price: u128,
	pub max_timeout_seconds: u64,
}

/// The offer as x402 requirements.
pub fn requirements(offer: &Offer) -> PaymentRequirements {
	let extra = ChannelExtra {
		receiver_authorizer: offer.receiver_authorizer.to_checksum(None),
		withdraw_delay: offer.withdraw_delay,
		name: offer.token_domain.0.clone(),
		version: offer.token_domain.1.clone(),
		asset_transfer_method: Some("eip3009".into()),
		channel_state: None,
		voucher_state: None,
	};
	PaymentRequirements {
		scheme: SCHEME.into(),
		network: network::caip2(offer.chain_id),
		amount: offer.max_price.to_string(),
		asset: offer.asset.to_checksum(None),
		pay_to: offer.pay_to.to_checksum(None),
		max_timeout_seconds: offer.max_timeout_seconds,
		extra: Some(serde_json::to_value(extra).expect("plain data serializes")),
		other: Default::default(),
	}
}

/// The offer `requirements` make, or why they are not a batch-settlement offer.
pub fn offer(requirements: &PaymentRequirements) -> Result<Offer, Problem> {
	if requirements.scheme != SCHEME {
		return Err(problem(
			ErrorReason::ChannelScheme,
			format!("scheme {:?} is not {SCHEME:?}", requirements.scheme),
		));
	}
	let chain_id = network::evm_chain_id(&requirements.network).ok_or_else(|| {
		problem(
			ErrorReason::InvalidNetwork,
			format!("{:?} is not an eip155 network", requirements.network),
		)
	})?;
	let extra: ChannelExtra = requirements
		.extra
		.clone()
		.ok_or_else(|| "extra is missing".to_string())
		.and_then(|e| serde_json::from_value(e).map_err(|e| e.to_string()))
		.map_err(|e| {
			problem(
				ErrorReason::InvalidPaymentRequirements,
				format!(
					"extra must carry receiverAuthorizer, withdrawDelay, name and version: {e}"
				),
			)
		})?;
	let requirement = ErrorReason::InvalidPaymentRequirements;
	let receiver_authorizer =
		address(&extra.receiver_authorizer, "extra.receiverAuthorizer", requirement.clone())?;
	if receiver_authorizer.is_zero() {
		return Err(problem(
			ErrorReason::ChannelReceiverAuthorizerMismatch,
			"extra.receiverAuthorizer is the zero address",
		));
	}
	Ok(Offer {
		chain_id,
		asset: address(&requirements.asset, "asset", requirement.clone())?,
		token_domain: (extra.name, extra.version),
		pay_to: address(&requirements.pay_to, "payTo", requirement.clone())?,
		receiver_authorizer,
		withdraw_delay: extra.withdraw_delay,
		max_price: amount(&requirements.amount, "amount", requirement)?,
		max_timeout_seconds: requirements.max_timeout_seconds,
	})
}

/// The settlement contract's domain on the offer's chain.
pub fn domain(chain_id: u64) -> Eip712Domain {
	digest::domain(chain_id, SETTLEMENT_ADDRESS)
}

/// The channel a payer opens for `offer`: it pays, and signs vouchers itself
/// (`payerAuthorizer` = the payer, so that vouchers verify off-chain); `salt` tells apart
/// several channels of one payer to one receiver.
pub fn config_for(offer: &Offer, payer: Address, salt: B256) -> ChannelConfig {
	ChannelConfig {
		payer,
		payerAuthorizer: payer,
		receiver: offer.pay_to,
		receiverAuthorizer: offer.receiver_authorizer,
		token: offer.asset,
		withdrawDelay: U40::from(offer.withdraw_delay),
		salt,
	}
}

/// The voucher a payer signs for its next request: what it was charged so far plus the
/// offer's maximum price (the receiver may charge less, and says how much).
pub fn next_voucher_amount(charged: u128, max_price: u128) -> Option<u128> {
	charged.checked_add(max_price)
}

/// A voucher of `max_claimable` on `config`'s channel, signed by `signer` (its payer
/// authorizer).
pub fn sign_voucher(
	signer: &PrivateKeySigner,
	config: &ChannelConfig,
	max_claimable: u128,
	chain_id: u64,
) -> Result<VoucherWire, Problem> {
	let domain = domain(chain_id);
	let channel_id = digest::channel_id(config, &domain);
	let signature = signer
		.sign_hash_sync(&digest::voucher_digest(channel_id, max_claimable, &domain))
		.map_err(|e| problem(ErrorReason::UnexpectedVerifyError, e.to_string()))?;
	Ok(VoucherWire {
		channel_id: channel_id.to_string(),
		max_claimable_amount: max_claimable.to_string(),
		signature: format!("0x{}", alloy_primitives::hex::encode(signature.as_bytes())),
	})
}

/// The payment a payer sends: `payload` under the `requirements` it accepted (verbatim).
pub fn payment(requirements: &PaymentRequirements, payload: &ChannelPayload) -> PaymentPayload {
	PaymentPayload {
		x402_version: X402_VERSION,
		resource: None,
		accepted: requirements.clone(),
		payload: crate::v2::SchemePayload::encode(payload),
		extensions: None,
		other: Default::default(),
	}
}

/// The config as a payload carries it.
pub fn config_wire(config: &ChannelConfig) -> ChannelConfigWire {
	ChannelConfigWire {
		payer: config.payer.to_checksum(None),
		payer_authorizer: config.payerAuthorizer.to_checksum(None),
		receiver: config.receiver.to_checksum(None),
		receiver_authorizer: config.receiverAuthorizer.to_checksum(None),
		token: config.token.to_checksum(None),
		withdraw_delay: config.withdrawDelay.to::<u64>(),
		salt: config.salt.to_string(),
	}
}

/// The config a payload carries.
pub fn parse_config(wire: &ChannelConfigWire) -> Result<ChannelConfig, Problem> {
	let p = ErrorReason::ChannelVoucherPayload;
	if wire.withdraw_delay >= 1 << 40 {
		return Err(problem(p, "channelConfig.withdrawDelay does not fit in uint40"));
	}
	Ok(ChannelConfig {
		payer: address(&wire.payer, "channelConfig.payer", p.clone())?,
		payerAuthorizer: address(
			&wire.payer_authorizer,
			"channelConfig.payerAuthorizer",
			p.clone(),
		)?,
		receiver: address(&wire.receiver, "channelConfig.receiver", p.clone())?,
		receiverAuthorizer: address(
			&wire.receiver_authorizer,
			"channelConfig.receiverAuthorizer",
			p.clone(),
		)?,
		token: address(&wire.token, "channelConfig.token", p.clone())?,
		withdrawDelay: U40::from(wire.withdraw_delay),
		salt: bytes32(&wire.salt, "channelConfig.salt", p)?,
	})
}

/// A payment whose channel and voucher passed every check that needs no chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedVoucher {
	pub payload: ChannelPayload,
	pub config: ChannelConfig,
	pub channel_id: B256,
	pub max_claimable: u128,
	/// As the contract takes it, `r ‖ s ‖ v` with v in {27, 28}.
	pub signature: Signature,
	pub offer: Offer,
}

/// Every check of a channel payment that needs no chain, in the specification's order:
/// version, scheme and network; the payload's shape; the config is the offered one (receiver,
/// receiver authorizer, token, withdraw delay in range) and hashes to the voucher's channel
/// id; the voucher is signed by the payer authorizer.
///
/// A payer authorizer of zero delegates to the payer, which may be a contract (EIP-1271): only
/// an on-chain call can check that, so such a voucher is refused here with a message saying
/// so; payers built by [`config_for`] sign themselves.
pub fn verify(
	payment: &PaymentPayload,
	requirements: &PaymentRequirements,
) -> Result<VerifiedVoucher, Problem> {
	if payment.x402_version != X402_VERSION {
		return Err(problem(
			ErrorReason::InvalidX402Version,
			format!("x402Version {} is not supported for channels (2)", payment.x402_version),
		));
	}
	if payment.accepted.scheme != SCHEME || requirements.scheme != SCHEME {
		return Err(problem(
			ErrorReason::ChannelScheme,
			format!("paid with {:?}, required {:?}", payment.accepted.scheme, requirements.scheme),
		));
	}
	if payment.accepted.network != requirements.network {
		return Err(problem(
			ErrorReason::ChannelNetworkMismatch,
			format!("paid on {:?}, required {:?}", payment.accepted.network, requirements.network),
		));
	}
	let offer = offer(requirements)?;
	let payload: ChannelPayload = payment.payload.decode().map_err(|e| {
		problem(
			ErrorReason::ChannelPayloadType,
			format!("the payload is not a deposit, voucher or refund: {e}"),
		)
	})?;
	let config = parse_config(payload.channel_config())?;
	check_config(&config, &offer)?;
	let domain = domain(offer.chain_id);
	let channel_id = digest::channel_id(&config, &domain);
	let voucher = payload.voucher();
	let claimed_id =
		bytes32(&voucher.channel_id, "voucher.channelId", ErrorReason::ChannelVoucherPayload)?;
	if claimed_id != channel_id {
		return Err(problem(
			ErrorReason::ChannelIdMismatch,
			format!("the config hashes to channel {channel_id}, the voucher names {claimed_id}"),
		));
	}
	let max_claimable = amount(
		&voucher.max_claimable_amount,
		"voucher.maxClaimableAmount",
		ErrorReason::ChannelVoucherPayload,
	)?;
	let signature = signature(&voucher.signature, "voucher", ErrorReason::ChannelVoucherSignature)?;
	let signer = if config.payerAuthorizer.is_zero() {
		return Err(problem(
			ErrorReason::ChannelVoucherSignature,
			"payerAuthorizer is zero, so the payer's contract (EIP-1271) would have to approve \
			 the voucher; this receiver accepts vouchers of a non-zero payer authorizer only",
		));
	} else {
		config.payerAuthorizer
	};
	let recovered =
		recover_signer(&signature, &digest::voucher_digest(channel_id, max_claimable, &domain))
			.map_err(|e| problem(ErrorReason::ChannelVoucherSignature, e.message))?;
	if recovered != signer {
		return Err(problem(
			ErrorReason::ChannelVoucherSignature,
			format!("the voucher is signed by {recovered}, not by the payer authorizer {signer}"),
		));
	}
	Ok(VerifiedVoucher { payload, config, channel_id, max_claimable, signature, offer })
}

/// The config against the offer: the checks a facilitator and a receiver both run.
pub fn check_config(config: &ChannelConfig, offer: &Offer) -> Result<(), Problem> {
	if config.receiver != offer.pay_to {
		return Err(problem(
			ErrorReason::ChannelReceiverMismatch,
			format!("the channel pays {}, required payTo {}", config.receiver, offer.pay_to),
		));
	}
	if config.receiverAuthorizer != offer.receiver_authorizer {
		return Err(problem(
			ErrorReason::ChannelReceiverAuthorizerMismatch,
			format!(
				"the channel's receiver authorizer is {}, offered {}",
				config.receiverAuthorizer, offer.receiver_authorizer
			),
		));
	}
	if config.token != offer.asset {
		return Err(problem(
			ErrorReason::ChannelTokenMismatch,
			format!("the channel holds {}, required asset {}", config.token, offer.asset),
		));
	}
	let delay = config.withdrawDelay.to::<u64>();
	if delay != offer.withdraw_delay {
		return Err(problem(
			ErrorReason::ChannelWithdrawDelayMismatch,
			format!(
				"the channel's withdraw delay is {delay} s, offered {} s",
				offer.withdraw_delay
			),
		));
	}
	if !(MIN_WITHDRAW_DELAY..=MAX_WITHDRAW_DELAY).contains(&delay) {
		return Err(problem(
			ErrorReason::ChannelWithdrawDelayOutOfRange,
			format!(
				"a withdraw delay of {delay} s is outside {MIN_WITHDRAW_DELAY}..={MAX_WITHDRAW_DELAY} s"
			),
		));
	}
	if config.payer.is_zero() || config.token.is_zero() {
		return Err(problem(
			ErrorReason::ChannelVoucherPayload,
			"the channel's payer and token must not be the zero address",
		));
	}
	Ok(())
}

/// What a receiver knows of a channel when a voucher arrives: its on-chain `balance` and
/// `total_claimed` (confirmed state only), plus a deposit the payment itself brings, and what
/// it has charged so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChannelView {
	pub balance: u128,
	pub total_claimed: u128,
	pub charged: u128,
}

/// A voucher against the channel: it must be exactly `charged + price` (anything else is a
/// stale or confused payer, answered with a corrective 402 carrying the state), within the
/// balance (with the deposit it brings), and above what was claimed. A refund's voucher
/// equals `charged` and may equal the claimed total.
pub fn check_cumulative(
	view: &ChannelView,
	voucher: u128,
	price: u128,
	refund: bool,
) -> Result<(), Problem> {
	if view.balance == 0 {
		return Err(problem(ErrorReason::ChannelNotFound, "the channel holds no deposit"));
	}
	let expected = if refund { Some(view.charged) } else { view.charged.checked_add(price) };
	if expected != Some(voucher) {
		return Err(problem(
			ErrorReason::ChannelCumulativeAmountMismatch,
			format!(
				"the voucher is for {voucher} in total, but {} was charged so far{}",
				view.charged,
				if refund { String::new() } else { format!(" and this request costs {price}") }
			),
		));
	}
	if voucher > view.balance {
		return Err(problem(
			ErrorReason::ChannelCumulativeExceedsBalance,
			format!("the voucher is for {voucher} in total, the channel holds {}", view.balance),
		));
	}
	let below = if refund { voucher < view.total_claimed } else { voucher <= view.total_claimed };
	if below {
		return Err(problem(
			ErrorReason::ChannelCumulativeBelowClaimed,
			format!("the voucher is for {voucher}, {} was already claimed", view.total_claimed),
		));
	}
	Ok(())
}

/// What a cooperative refund returns: `requested` (everything not charged, without it),
/// never more than the deposit left over once everything charged is claimed. A refund with
/// nothing to return, or of nothing, is refused with the spec's reason.
pub fn refund_amount(view: &ChannelView, requested: Option<&str>) -> Result<u128, Problem> {
	let remainder = view.balance.saturating_sub(view.charged.max(view.total_claimed));
	let requested =
		match requested {
			None => None,
			Some(s) => match amount(s, "amount", ErrorReason::ChannelRefundAmountInvalid)? {
				0 => return Err(problem(
					ErrorReason::ChannelRefundAmountInvalid,
					"a refund of 0 returns nothing: leave `amount` out to refund everything left",
				)),
				n => Some(n),
			},
		};
	if remainder == 0 {
		return Err(problem(
			ErrorReason::ChannelRefundNoBalance,
			format!(
				"nothing is left to refund: the channel holds {} and {} of it was charged",
				view.balance, view.charged
			),
		));
	}
	Ok(requested.map_or(remainder, |n| n.min(remainder)))
}

/// The channel receiver's (or its authorizer's) signature of a refund of `amount` under
/// `nonce`, `0x`-hex.
pub fn sign_refund(
	signer: &PrivateKeySigner,
	channel_id: B256,
	nonce: U256,
	amount: u128,
	chain_id: u64,
) -> Result<String, Problem> {
	let digest = digest::refund_digest(channel_id, nonce, amount, &domain(chain_id));
	let signature = signer
		.sign_hash_sync(&digest)
		.map_err(|e| problem(ErrorReason::UnexpectedSettleError, e.to_string()))?;
	Ok(format!("0x{}", alloy_primitives::hex::encode(signature.as_bytes())))
}

/// Checks that `signature` is `signer`'s over the refund of `amount` under `nonce`: how a
/// facilitator that signs refunds as the receiver authorizer knows the receiver asked for it.
pub fn check_refund_signature(
	signature: &str,
	signer: Address,
	channel_id: B256,
	nonce: U256,
	amount: u128,
	chain_id: u64,
) -> Result<(), Problem> {
	let reason = ErrorReason::ChannelRefundPayload;
	let parsed = self::signature(signature, "refund", reason.clone())?;
	let digest = digest::refund_digest(channel_id, nonce, amount, &domain(chain_id));
	let recovered = recover_signer(&parsed, &digest)?;
	if recovered != signer {
		return Err(problem(
			reason,
			format!(
				"the refund of {amount} under nonce {nonce} is signed by {recovered}, not by the \
				 channel's receiver {signer}"
			),
		));
	}
	Ok(())
}

/// The state a receiver reports for a channel.
pub fn channel_state(
	channel_id: B256,
	view: &ChannelView,
	withdraw_requested_at: u64,
	refund_nonce: u64,
) -> ChannelStateWire {
	ChannelStateWire {
		channel_id: channel_id.to_string(),
		balance: view.balance.to_string(),
		total_claimed: view.total_claimed.to_string(),
		withdraw_requested_at,
		refund_nonce: refund_nonce.to_string(),
		charged_cumulative_amount: Some(view.charged.to_string()),
	}
}

/// The corrective 402's requirements: the offer with the channel's state and the last voucher
/// the receiver holds (`last_voucher`: its bound and signature), so that a payer that lost or
/// never had its state can check the signature and resume from `charged`.
pub fn corrective(
	requirements: &PaymentRequirements,
	state: ChannelStateWire,
	last_voucher: Option<(u128, Signature)>,
) -> PaymentRequirements {
	let mut corrected = requirements.clone();
	let mut extra = corrected.extra.take().unwrap_or_else(|| serde_json::json!({}));
	if let Some(map) = extra.as_object_mut() {
		map.insert("channelState".into(), serde_json::to_value(state).expect("plain data"));
		if let Some((signed, signature)) = last_voucher {
			let voucher = VoucherStateWire {
				signed_max_claimable: signed.to_string(),
				signature: format!("0x{}", alloy_primitives::hex::encode(signature.as_bytes())),
			};
			map.insert("voucherState".into(), serde_json::to_value(voucher).expect("plain data"));
		}
	}
	corrected.extra = Some(extra);
	corrected
}

/// The offer without a channel's state (`extra.channelState`, `extra.voucherState`): the
/// offer as first made, which a corrective 402 only annotates. Payers echo it, and receivers
/// match a payment's `accepted` against it.
pub fn without_state(mut requirements: PaymentRequirements) -> PaymentRequirements {
	if let Some(map) = requirements.extra.as_mut().and_then(|e| e.as_object_mut()) {
		map.remove("channelState");
		map.remove("voucherState");
	}
	requirements
}

/// What a payer does with a corrective 402: adopt the receiver's `charged` only if the last
/// voucher it shows is one the payer authorizer really signed for the payer's own channel, at
/// or above `charged`, and `charged` is not below what the chain shows claimed. Returns the
/// `charged` amount to resume from.
pub fn adopt_corrective(
	config: &ChannelConfig,
	chain_id: u64,
	state: &ChannelStateWire,
	voucher: &VoucherStateWire,
	on_chain_claimed: u128,
) -> Result<u128, Problem> {
	let p = ErrorReason::ChannelCumulativeAmountMismatch;
	let charged = amount(
		state.charged_cumulative_amount.as_deref().unwrap_or(""),
		"channelState.chargedCumulativeAmount",
		p.clone(),
	)?;
	let signed =
		amount(&voucher.signed_max_claimable, "voucherState.signedMaxClaimable", p.clone())?;
	if charged > signed {
		return Err(problem(
			p,
			format!(
				"the receiver says {charged} was charged, above the voucher of {signed} it shows"
			),
		));
	}
	if charged < on_chain_claimed {
		return Err(problem(
			p,
			format!(
				"the receiver says {charged} was charged, below the {on_chain_claimed} claimed"
			),
		));
	}
	let domain = domain(chain_id);
	let channel_id = digest::channel_id(config, &domain);
	let recovered = recover_signer(
		&signature(&voucher.signature, "receiver's voucher", ErrorReason::ChannelVoucherSignature)?,
		&digest::voucher_digest(channel_id, signed, &domain),
	)?;
	if recovered != config.payerAuthorizer {
		return Err(problem(
			ErrorReason::ChannelVoucherSignature,
			format!("the voucher the receiver shows is signed by {recovered}, not by this payer"),
		));
	}
	Ok(charged)
}

alloy_sol_types::sol! {
	/// EIP-3009 `ReceiveWithAuthorization`, as the token hashes it: a deposit's authorization,
	/// payable only to (and submittable only by) the deposit collector.
	#[derive(Debug, PartialEq, Eq)]
	struct ReceiveWithAuthorization {
		address from;
		address to;
		uint256 value;
		uint256 validAfter;
		uint256 validBefore;
		bytes32 nonce;
	}
}

/// The EIP-3009 nonce of a deposit: `keccak256(abi.encode(channelId, salt))`, so that an
/// authorization deposits into one channel, once.
pub fn deposit_nonce(channel_id: B256, salt: U256) -> B256 {
	use alloy_sol_types::SolValue;
	alloy_primitives::keccak256((channel_id, salt).abi_encode())
}

/// A deposit of `amount` into `config`'s channel, as checked: the payer's authorization to
/// the collector, and its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDeposit {
	pub amount: u128,
	pub authorization: ReceiveWithAuthorization,
	pub salt: U256,
	/// `r ‖ s ‖ v`, v in {27, 28}: what the collector takes.
	pub signature: Signature,
}

impl VerifiedDeposit {
	/// `collectorData`: `abi.encode(validAfter, validBefore, salt, signature)`.
	pub fn collector_data(&self) -> alloy_primitives::Bytes {
		use alloy_sol_types::SolValue;
		let signature = alloy_primitives::Bytes::from(self.signature.as_bytes().to_vec());
		(self.authorization.validAfter, self.authorization.validBefore, self.salt, signature)
			.abi_encode_params()
			.into()
	}
}

/// The payer signs a deposit of `amount` into `config`'s channel for `offer`: an EIP-3009
/// `ReceiveWithAuthorization` to the collector, valid from `now - 600 s` for the offer's
/// timeout, under a fresh random `salt`.
pub fn sign_deposit(
	signer: &PrivateKeySigner,
	offer: &Offer,
	config: &ChannelConfig,
	amount: u128,
	now: u64,
	salt: B256,
) -> Result<DepositWire, Problem> {
	let channel_id = digest::channel_id(config, &domain(offer.chain_id));
	let authorization = ReceiveWithAuthorization {
		from: signer.address(),
		to: DEPOSIT_COLLECTOR_ADDRESS,
		value: U256::from(amount),
		validAfter: U256::from(now.saturating_sub(crate::schemes::exact::VALID_AFTER_SKEW_SECS)),
		validBefore: U256::from(now.saturating_add(offer.max_timeout_seconds)),
		nonce: deposit_nonce(channel_id, salt.into()),
	};
	let digest = authorization.eip712_signing_hash(&token_domain(offer));
	let signature = signer
		.sign_hash_sync(&digest)
		.map_err(|e| problem(ErrorReason::UnexpectedVerifyError, e.to_string()))?;
	Ok(DepositWire {
		amount: amount.to_string(),
		authorization: DepositAuthorization {
			erc3009_authorization: Some(Erc3009DepositAuthorization {
				valid_after: authorization.validAfter.to_string(),
				valid_before: authorization.validBefore.to_string(),
				salt: salt.to_string(),
				signature: format!("0x{}", alloy_primitives::hex::encode(signature.as_bytes())),
			}),
			permit2_authorization: None,
		},
	})
}

/// The token's EIP-712 domain for the offer (deposits are signed under it).
pub fn token_domain(offer: &Offer) -> Eip712Domain {
	Eip712Domain::new(
		Some(offer.token_domain.0.clone().into()),
		Some(offer.token_domain.1.clone().into()),
		Some(U256::from(offer.chain_id)),
		Some(offer.asset),
		None,
	)
}

/// A deposit's checks that need no chain, in the specification's order: an EIP-3009
/// authorization is present, valid now with [`crate::schemes::exact::SETTLE_MARGIN_SECS`] to
/// spare, and signed by the payer for exactly this amount to the collector under this
/// channel's nonce.
pub fn verify_deposit(
	verified: &VerifiedVoucher,
	deposit: &DepositWire,
	now: u64,
) -> Result<VerifiedDeposit, Problem> {
	use crate::schemes::exact::SETTLE_MARGIN_SECS;
	let Some(auth) = &deposit.authorization.erc3009_authorization else {
		return Err(problem(
			if deposit.authorization.permit2_authorization.is_some() {
				ErrorReason::ChannelPayloadType
			} else {
				ErrorReason::ChannelErc3009AuthorizationRequired
			},
			"a deposit needs authorization.erc3009Authorization (Permit2 deposits are not \
			 accepted on this chain)",
		));
	};
	let p = ErrorReason::ChannelDepositPayload;
	let amount = amount(&deposit.amount, "deposit.amount", p.clone())?;
	if amount == 0 {
		return Err(problem(p, "deposit.amount is zero"));
	}
	let valid_after = uint(&auth.valid_after, "validAfter", p.clone())?;
	let valid_before = uint(&auth.valid_before, "validBefore", p.clone())?;
	let salt: U256 = bytes32(&auth.salt, "erc3009Authorization.salt", p.clone())?.into();
	if valid_before < U256::from(now.saturating_add(SETTLE_MARGIN_SECS)) {
		return Err(problem(
			ErrorReason::ChannelValidBefore,
			format!("the deposit is valid before {valid_before}, which leaves less than {SETTLE_MARGIN_SECS} s after {now}"),
		));
	}
	if valid_after > U256::from(now) {
		return Err(problem(
			ErrorReason::ChannelValidAfter,
			format!("the deposit is valid after {valid_after}, now is {now}"),
		));
	}
	let authorization = ReceiveWithAuthorization {
		from: verified.config.payer,
		to: DEPOSIT_COLLECTOR_ADDRESS,
		value: U256::from(amount),
		validAfter: valid_after,
		validBefore: valid_before,
		nonce: deposit_nonce(verified.channel_id, salt),
	};
	let signature =
		signature(&auth.signature, "deposit", ErrorReason::ChannelReceiveAuthorizationSignature)?;
	let recovered = recover_signer(
		&signature,
		&authorization.eip712_signing_hash(&token_domain(&verified.offer)),
	)?;
	if recovered != verified.config.payer {
		return Err(problem(
			ErrorReason::ChannelReceiveAuthorizationSignature,
			format!(
				"the deposit is signed by {recovered}, not by the payer {} (for {amount} to the \
				 collector, under this channel's nonce and the token's domain)",
				verified.config.payer
			),
		));
	}
	Ok(VerifiedDeposit { amount, authorization, salt, signature })
}

fn uint(s: &str, field: &str, reason: ErrorReason) -> Result<U256, Problem> {
	if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
		return Err(problem(reason, format!("{field} {s:?} is not a decimal integer")));
	}
	U256::from_str_radix(s, 10)
		.map_err(|_| problem(reason, format!("{field} {s:?} does not fit in uint256")))
}

fn problem(reason: ErrorReason, message: impl Into<String>) -> Problem {
	Problem::new(reason, message)
}

fn address(s: &str, field: &str, reason: ErrorReason) -> Result<Address, Problem> {
	s.parse().map_err(|_| problem(reason, format!("{field} {s:?} is not an address")))
}

fn bytes32(s: &str, field: &str, reason: ErrorReason) -> Result<B256, Problem> {
	s.parse().map_err(|_| problem(reason, format!("{field} {s:?} is not 0x + 32 bytes")))
}

/// A decimal amount that fits the contract's `uint128`.
pub fn amount(s: &str, field: &str, reason: ErrorReason) -> Result<u128, Problem> {
	if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
		return Err(problem(reason, format!("{field} {s:?} is not a decimal integer")));
	}
	s.parse().map_err(|_| problem(reason, format!("{field} {s:?} does not fit in uint128")))
}

/// A 65-byte `r ‖ s ‖ v` signature, low-s, v in {27, 28} (or {0, 1}); `what` names it in
/// refusals. The contract takes v in {27, 28} only: re-encode with `as_bytes()`.
pub fn signature(s: &str, what: &str, reason: ErrorReason) -> Result<Signature, Problem> {
	let bad = |m: &str| problem(reason.clone(), format!("the {what} signature {m}"));
	let bytes = alloy_primitives::hex::decode(s)
		.ok()
		.filter(|b| b.len() == 65)
		.ok_or_else(|| bad("is not 0x + 65 bytes of hex"))?;
	let parity = match bytes[64] {
		0 | 27 => false,
		1 | 28 => true,
		_ => return Err(bad("has a v that is not 27 or 28")),
	};
	let signature = Signature::from_bytes_and_parity(&bytes[..64], parity);
	if signature.normalize_s().is_some() {
		return Err(bad("has an s in the upper half (malleable)"));
	}
	Ok(signature)
}

#[cfg(test)]
mod tests {
	use alloy_primitives::address;

	use super::*;
	use crate::v2::SchemePayload;

	/// Anvil's well-known account #1 (the published vectors' payer): a DEV key.
	const PAYER_KEY: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

	fn payer() -> PrivateKeySigner {
		PAYER_KEY.parse().unwrap()
	}

	fn test_offer() -> Offer {
		Offer {
			chain_id: 84532,
			asset: address!("036CbD53842c5426634e7929541eC2318f3dCF7e"),
			token_domain: ("USDC".into(), "2".into()),
			pay_to: address!("19ee5100D3a1e687F85B952bd3FbEc108Ab6A8d7"),
			receiver_authorizer: address!("d407e409E34E0b9afb99EcCeb609bDbcD5e7f1bf"),
			withdraw_delay: 900,
			max_price: 1000,
			max_timeout_seconds: 60,
		}
	}

	fn voucher_payment(
		requirements: &PaymentRequirements,
		config: &ChannelConfig,
		max: u128,
	) -> PaymentPayload {
		let voucher = sign_voucher(&payer(), config, max, 84532).unwrap();
		payment_with(
			requirements,
			ChannelPayload::Voucher { channel_config: config_wire(config), voucher },
		)
	}

	fn payment_with(requirements: &PaymentRequirements, payload: ChannelPayload) -> PaymentPayload {
		PaymentPayload {
			x402_version: 2,
			resource: None,
			accepted: requirements.clone(),
			payload: SchemePayload::encode(&payload),
			extensions: None,
			other: Default::default(),
		}
	}

	#[test]
	fn a_payer_signs_the_published_voucher_signature() {
		let config = config_for(&test_offer(), payer().address(), B256::ZERO);
		let voucher = sign_voucher(&payer(), &config, 1000, 84532).unwrap();
		assert_eq!(
			voucher.channel_id,
			"0x5fafb915f0dbee350d7f84d91802dea47e8e3a71929c3cd79da161c291fb28bd"
		);
		assert_eq!(
			voucher.signature,
			"0x6ad7a9c0cd0172b09704c56dd22de6d2877cf912de007dcdc7757a68756b84af2d2767327e6b84836fe2b48fd1b09675957c2fa4ec6c33a146dddd0e823cf1341c"
		);
	}

	#[test]
	fn an_offer_round_trips_through_its_requirements() {
		let offer = test_offer();
		assert_eq!(super::offer(&requirements(&offer)).unwrap(), offer);
		let mut exact = requirements(&offer);
		exact.scheme = "exact".into();
		assert_eq!(super::offer(&exact).unwrap_err().reason, ErrorReason::ChannelScheme);
		let mut bare = requirements(&offer);
		bare.extra = None;
		let refused = super::offer(&bare).unwrap_err();
		assert_eq!(refused.reason, ErrorReason::InvalidPaymentRequirements);
		assert!(refused.message.contains("extra is missing"), "{refused}");
	}

	#[test]
	fn a_voucher_of_the_payer_on_the_offered_channel_verifies() {
		let requirements = requirements(&test_offer());
		let config = config_for(&test_offer(), payer().address(), B256::repeat_byte(7));
		let verified =
			verify(&voucher_payment(&requirements, &config, 3000), &requirements).unwrap();
		assert_eq!(verified.max_claimable, 3000);
		assert_eq!(verified.config, config);
		assert_eq!(verified.channel_id, digest::channel_id(&config, &domain(84532)));
	}

	#[test]
	fn each_bad_channel_is_refused_with_its_own_reason() {
		let offer = test_offer();
		let requirements = requirements(&offer);
		let good = config_for(&offer, payer().address(), B256::ZERO);
		type Spoil = Box<dyn Fn(&mut ChannelConfig)>;
		let cases: Vec<(&str, Spoil, ErrorReason)> = vec![
			(
				"receiver",
				Box::new(|c| c.receiver = Address::repeat_byte(9)),
				ErrorReason::ChannelReceiverMismatch,
			),
			(
				"authorizer",
				Box::new(|c| c.receiverAuthorizer = Address::repeat_byte(9)),
				ErrorReason::ChannelReceiverAuthorizerMismatch,
			),
			(
				"token",
				Box::new(|c| c.token = Address::repeat_byte(9)),
				ErrorReason::ChannelTokenMismatch,
			),
			(
				"delay",
				Box::new(|c| c.withdrawDelay = U40::from(901u64)),
				ErrorReason::ChannelWithdrawDelayMismatch,
			),
		];
		for (what, change, reason) in cases {
			let mut config = good.clone();
			change(&mut config);
			let refused =
				verify(&voucher_payment(&requirements, &config, 1000), &requirements).unwrap_err();
			assert_eq!(refused.reason, reason, "{what}: {refused}");
		}
		// An offer whose delay the contract would refuse.
		let short = Offer { withdraw_delay: 60, ..offer.clone() };
		let config = config_for(&short, payer().address(), B256::ZERO);
		let short_requirements = super::requirements(&short);
		let refused =
			verify(&voucher_payment(&short_requirements, &config, 1000), &short_requirements)
				.unwrap_err();
		assert_eq!(refused.reason, ErrorReason::ChannelWithdrawDelayOutOfRange);
		assert_eq!(refused.message, "a withdraw delay of 60 s is outside 900..=2592000 s");
	}

	#[test]
	fn a_voucher_for_another_channel_or_by_another_key_is_refused() {
		let requirements = requirements(&test_offer());
		let config = config_for(&test_offer(), payer().address(), B256::ZERO);
		// The voucher names another salt's channel.
		let other = config_for(&test_offer(), payer().address(), B256::repeat_byte(1));
		let voucher = sign_voucher(&payer(), &other, 1000, 84532).unwrap();
		let mixed = payment_with(
			&requirements,
			ChannelPayload::Voucher { channel_config: config_wire(&config), voucher },
		);
		assert_eq!(
			verify(&mixed, &requirements).unwrap_err().reason,
			ErrorReason::ChannelIdMismatch
		);
		// Signed by someone else for the payer's channel.
		let thief = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
		let voucher = sign_voucher(&thief, &config, 1000, 84532).unwrap();
		let forged = payment_with(
			&requirements,
			ChannelPayload::Voucher { channel_config: config_wire(&config), voucher },
		);
		let refused = verify(&forged, &requirements).unwrap_err();
		assert_eq!(refused.reason, ErrorReason::ChannelVoucherSignature);
		assert!(
			refused.message.starts_with(&format!("the voucher is signed by {}", thief.address())),
			"{refused}"
		);
		// A voucher signed on another chain is for another channel id.
		let voucher = sign_voucher(&payer(), &config, 1000, 1).unwrap();
		let elsewhere = payment_with(
			&requirements,
			ChannelPayload::Voucher { channel_config: config_wire(&config), voucher },
		);
		assert_eq!(
			verify(&elsewhere, &requirements).unwrap_err().reason,
			ErrorReason::ChannelIdMismatch
		);
	}

	#[test]
	fn a_malleable_or_malformed_signature_is_refused() {
		let requirements = requirements(&test_offer());
		let config = config_for(&test_offer(), payer().address(), B256::ZERO);
		let mut voucher = sign_voucher(&payer(), &config, 1000, 84532).unwrap();
		// The high-s twin of a valid signature: s' = n - s, v flipped.
		let bytes = alloy_primitives::hex::decode(&voucher.signature).unwrap();
		let n = U256::from_str_radix(
			"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
			16,
		)
		.unwrap();
		let s = U256::from_be_slice(&bytes[32..64]);
		let mut twin = bytes.clone();
		twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
		twin[64] = if bytes[64] == 27 { 28 } else { 27 };
		voucher.signature = format!("0x{}", alloy_primitives::hex::encode(&twin));
		let payment = payment_with(
			&requirements,
			ChannelPayload::Voucher {
				channel_config: config_wire(&config),
				voucher: voucher.clone(),
			},
		);
		let refused = verify(&payment, &requirements).unwrap_err();
		assert_eq!(refused.message, "the voucher signature has an s in the upper half (malleable)");
		voucher.signature = "0x1234".into();
		let payment = payment_with(
			&requirements,
			ChannelPayload::Voucher { channel_config: config_wire(&config), voucher },
		);
		assert_eq!(
			verify(&payment, &requirements).unwrap_err().message,
			"the voucher signature is not 0x + 65 bytes of hex"
		);
	}

	#[test]
	fn a_payment_of_another_scheme_network_or_shape_is_refused() {
		let requirements = requirements(&test_offer());
		let config = config_for(&test_offer(), payer().address(), B256::ZERO);
		let mut elsewhere = voucher_payment(&requirements, &config, 1000);
		elsewhere.accepted.network = "eip155:1".into();
		assert_eq!(
			verify(&elsewhere, &requirements).unwrap_err().reason,
			ErrorReason::ChannelNetworkMismatch
		);
		let mut garbage = voucher_payment(&requirements, &config, 1000);
		garbage.payload =
			SchemePayload::encode(&serde_json::json!({"type": "claim", "claims": []}));
		assert_eq!(
			verify(&garbage, &requirements).unwrap_err().reason,
			ErrorReason::ChannelPayloadType
		);
	}

	#[test]
	fn the_cumulative_rules_in_the_specs_order() {
		let view = ChannelView { balance: 10_000, total_claimed: 2_000, charged: 3_000 };
		assert_eq!(check_cumulative(&view, 4_000, 1_000, false), Ok(()));
		let stale = check_cumulative(&view, 3_500, 1_000, false).unwrap_err();
		assert_eq!(stale.reason, ErrorReason::ChannelCumulativeAmountMismatch);
		assert_eq!(stale.message, "the voucher is for 3500 in total, but 3000 was charged so far and this request costs 1000");
		let rich = ChannelView { balance: 3_500, ..view };
		assert_eq!(
			check_cumulative(&rich, 4_000, 1_000, false).unwrap_err().reason,
			ErrorReason::ChannelCumulativeExceedsBalance
		);
		let claimed = ChannelView { total_claimed: 4_000, ..view };
		assert_eq!(
			check_cumulative(&claimed, 4_000, 1_000, false).unwrap_err().reason,
			ErrorReason::ChannelCumulativeBelowClaimed
		);
		// A refund's voucher is what was charged, and may equal the claimed total.
		let settled = ChannelView { total_claimed: 3_000, ..view };
		assert_eq!(check_cumulative(&settled, 3_000, 1_000, true), Ok(()));
		let empty = ChannelView::default();
		assert_eq!(
			check_cumulative(&empty, 1_000, 1_000, false).unwrap_err().reason,
			ErrorReason::ChannelNotFound
		);
		assert_eq!(next_voucher_amount(u128::MAX, 1), None);
	}

	#[test]
	fn a_refund_returns_what_was_not_charged_and_never_more() {
		let view = ChannelView { balance: 1_000, total_claimed: 200, charged: 300 };
		assert_eq!(refund_amount(&view, None).unwrap(), 700, "everything not charged");
		assert_eq!(refund_amount(&view, Some("100")).unwrap(), 100);
		assert_eq!(refund_amount(&view, Some("5000")).unwrap(), 700, "capped to the remainder");
		for bad in ["0", "-1", "1.5", ""] {
			let refused = refund_amount(&view, Some(bad)).unwrap_err();
			assert_eq!(refused.reason, ErrorReason::ChannelRefundAmountInvalid, "{bad:?}");
		}
		let spent = ChannelView { balance: 300, total_claimed: 0, charged: 300 };
		let refused = refund_amount(&spent, None).unwrap_err();
		assert_eq!(refused.reason, ErrorReason::ChannelRefundNoBalance);
		assert!(refused.message.contains("holds 300 and 300 of it was charged"), "{refused}");
	}

	#[test]
	fn a_refund_signature_is_checked_against_the_receiver_nonce_and_amount() {
		let receiver = payer();
		let channel = B256::repeat_byte(9);
		let nonce = U256::from(3);
		let signed = sign_refund(&receiver, channel, nonce, 700, 84532).unwrap();
		let check = |signer, nonce, amount| {
			check_refund_signature(&signed, signer, channel, nonce, amount, 84532)
		};
		check(receiver.address(), nonce, 700).unwrap();
		for refused in [
			check(Address::repeat_byte(1), nonce, 700),
			check(receiver.address(), U256::from(4), 700),
			check(receiver.address(), nonce, 701),
		] {
			let refused = refused.unwrap_err();
			assert_eq!(refused.reason, ErrorReason::ChannelRefundPayload);
			assert!(refused.message.contains("not by the channel's receiver"), "{refused}");
		}
	}

	#[test]
	fn a_payer_adopts_a_corrective_402_only_with_its_own_signature() {
		let offer = test_offer();
		let config = config_for(&offer, payer().address(), B256::ZERO);
		let id = digest::channel_id(&config, &domain(84532));
		let view = ChannelView { balance: 10_000, total_claimed: 1_000, charged: 3_000 };
		let last = sign_voucher(&payer(), &config, 3_000, 84532).unwrap();
		let signature =
			super::signature(&last.signature, "test", ErrorReason::ChannelVoucherSignature)
				.unwrap();
		let corrected = corrective(
			&requirements(&offer),
			channel_state(id, &view, 0, 0),
			Some((3_000, signature)),
		);
		let extra: ChannelExtra = serde_json::from_value(corrected.extra.unwrap()).unwrap();
		let (state, voucher) = (extra.channel_state.unwrap(), extra.voucher_state.unwrap());
		assert_eq!(adopt_corrective(&config, 84532, &state, &voucher, 1_000), Ok(3_000));
		// The receiver claims a higher charge than the voucher it shows.
		let inflated =
			ChannelStateWire { charged_cumulative_amount: Some("3500".into()), ..state.clone() };
		assert!(adopt_corrective(&config, 84532, &inflated, &voucher, 1_000).is_err());
		// A voucher the payer never signed.
		let thief = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
		let forged = VoucherStateWire {
			signature: sign_voucher(&thief, &config, 3_000, 84532).unwrap().signature,
			..voucher.clone()
		};
		assert_eq!(
			adopt_corrective(&config, 84532, &state, &forged, 1_000).unwrap_err().reason,
			ErrorReason::ChannelVoucherSignature
		);
		// Below what the chain shows claimed.
		assert!(adopt_corrective(&config, 84532, &state, &voucher, 3_001).is_err());
	}

	#[test]
	fn a_deposit_is_the_payers_authorization_of_exactly_its_amount_to_the_collector() {
		let offer = test_offer();
		let requirements = requirements(&offer);
		let config = config_for(&offer, payer().address(), B256::ZERO);
		let now = 1_800_000_000;
		let deposit =
			sign_deposit(&payer(), &offer, &config, 5_000, now, B256::repeat_byte(3)).unwrap();
		let voucher = sign_voucher(&payer(), &config, 1_000, 84532).unwrap();
		let payload = ChannelPayload::Deposit {
			channel_config: config_wire(&config),
			voucher,
			deposit: deposit.clone(),
		};
		let verified = verify(&payment_with(&requirements, payload), &requirements).unwrap();
		let checked = verify_deposit(&verified, &deposit, now).unwrap();
		assert_eq!(checked.amount, 5_000);
		assert_eq!(checked.authorization.to, DEPOSIT_COLLECTOR_ADDRESS);
		assert_eq!(
			checked.authorization.nonce,
			deposit_nonce(verified.channel_id, U256::from_be_bytes([3u8; 32]))
		);
		// The collector's data decodes as (validAfter, validBefore, salt, signature).
		use alloy_sol_types::SolValue;
		let (after, before, salt, signature) =
			<(U256, U256, U256, alloy_primitives::Bytes)>::abi_decode_params(
				&checked.collector_data(),
			)
			.unwrap();
		assert_eq!((after, before), (U256::from(now - 600), U256::from(now + 60)));
		assert_eq!(salt, U256::from_be_bytes([3u8; 32]));
		assert_eq!(signature.len(), 65);

		// More than signed, a window that ends too soon, another signer, no authorization.
		let mut inflated = deposit.clone();
		inflated.amount = "5001".into();
		assert_eq!(
			verify_deposit(&verified, &inflated, now).unwrap_err().reason,
			ErrorReason::ChannelReceiveAuthorizationSignature
		);
		assert_eq!(
			verify_deposit(&verified, &deposit, now + 56).unwrap_err().reason,
			ErrorReason::ChannelValidBefore
		);
		let thief = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
		let foreign =
			sign_deposit(&thief, &offer, &config, 5_000, now, B256::repeat_byte(3)).unwrap();
		// The thief authorized a transfer from itself, so over the payer's authorization its
		// signature recovers to no one in particular: refused as not the payer's.
		let refused = verify_deposit(&verified, &foreign, now).unwrap_err();
		assert_eq!(refused.reason, ErrorReason::ChannelReceiveAuthorizationSignature);
		assert!(
			refused.message.ends_with(&format!(
				"not by the payer {} (for 5000 to the collector, under this channel's nonce and \
				 the token's domain)",
				payer().address()
			)),
			"{refused}"
		);
		let bare =
			DepositWire { amount: "5000".into(), authorization: DepositAuthorization::default() };
		assert_eq!(
			verify_deposit(&verified, &bare, now).unwrap_err().reason,
			ErrorReason::ChannelErc3009AuthorizationRequired
		);
	}
}
