//! Paying from payment channels (`batch-settlement`): the channel's steps of the one purchase
//! in [`crate::Buyer`], and the channel state they keep.
//!
//! A buyer deposits into a channel once and pays each request with a cumulative voucher,
//! "the receiver may claim up to N in total", of what it was charged so far plus the offer's
//! per-request maximum. It keeps, per channel, what the seller says it charged and the
//! highest voucher it signed ([`BuyerChannel`], in a [`BuyerChannelStore`]), and:
//!
//! - saves the channel with its new voucher **before** the voucher can leave;
//! - checks the channel state the seller returns with every answer, and stops paying from
//!   a channel whose state does not add up ([`BuyerChannel::stopped`]);
//! - adopts a seller's corrective 402 (its `charged`) only after checking that the voucher it
//!   shows is one this buyer signed for this channel;
//! - deposits (again) when the next voucher would exceed the channel's balance; the deposit,
//!   not the voucher, is what counts against the day's budget.
//!
//! A channel's salt is its generation (0, 1, …) among the buyer's channels to one receiver, so
//! a buyer that lost its store rebuilds the same channel id, and a corrective 402 gives it
//! back its state.

use std::{collections::BTreeMap, sync::Mutex};

use alloy_signer_local::PrivateKeySigner;
use m2m_x402::{
	schemes::batch_settlement::{
		digest::{self, ChannelConfig},
		payload::{decimal, ChannelConfigWire, ChannelExtra, ChannelPayload, ChargeExtra},
		rules::{self, Offer},
	},
	v2::{PaymentRequirements, SettleResponse},
	Problem, B256, U256,
};
use serde::{Deserialize, Serialize};

/// What a buyer knows of one channel it pays from. Amounts are the asset's base units
/// (decimal strings on disk, as on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuyerChannel {
	pub channel_id: B256,
	pub config: ChannelConfigWire,
	/// The offer the channel was opened for: it pays offers with the same network, asset,
	/// receiver, receiver authorizer and withdraw delay.
	pub requirements: PaymentRequirements,
	/// Deposits that landed, in total.
	#[serde(with = "decimal")]
	pub deposited: u128,
	/// What the seller says it charged, in total (checked against the vouchers signed).
	#[serde(with = "decimal")]
	pub charged: u128,
	/// The highest voucher signed, and its signature (`0x`-hex, empty before the first).
	#[serde(with = "decimal")]
	pub signed: u128,
	pub signature: String,
	/// The channel's state as the seller last reported it.
	#[serde(with = "decimal")]
	pub balance: u128,
	#[serde(with = "decimal")]
	pub total_claimed: u128,
	pub withdraw_requested_at: u64,
	/// Requests paid from this channel.
	pub requests: u64,
	/// Why this buyer stopped paying from the channel (a seller's state that did not add
	/// up); such a channel is left for withdrawal, and a new one is opened.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub stopped: Option<String>,
}

impl BuyerChannel {
	/// A channel not deposited into yet.
	pub fn open(
		channel_id: B256,
		config: ChannelConfigWire,
		requirements: PaymentRequirements,
	) -> Self {
		Self {
			channel_id,
			config,
			requirements: rules::without_state(requirements),
			deposited: 0,
			charged: 0,
			signed: 0,
			signature: String::new(),
			balance: 0,
			total_claimed: 0,
			withdraw_requested_at: 0,
			requests: 0,
			stopped: None,
		}
	}

	/// Vouchers of this channel can pay `offer`.
	fn pays(&self, offer: &Offer, network: &str) -> bool {
		let Ok(config) = rules::parse_config(&self.config) else { return false };
		self.requirements.network == network
			&& config.token == offer.asset
			&& config.receiver == offer.pay_to
			&& config.receiverAuthorizer == offer.receiver_authorizer
			&& config.withdrawDelay.to::<u64>() == offer.withdraw_delay
	}

	/// Open for more vouchers: not stopped and no withdrawal under way.
	fn usable(&self) -> bool {
		self.stopped.is_none() && self.withdraw_requested_at == 0
	}

	/// Unspent: the balance the seller has not charged.
	pub fn available(&self) -> u128 {
		self.balance.saturating_sub(self.charged)
	}
}

/// Where a buyer keeps its channels.
///
/// `save` must be durable when it returns (on disk, synced): it runs before a voucher leaves,
/// so that the buyer never signs a cumulative amount for two different requests. `load` and
/// `all` return what was saved last; an error means "cannot tell", never "no channel".
pub trait BuyerChannelStore: Send + Sync {
	fn load(&self, channel_id: &B256) -> Result<Option<BuyerChannel>, String>;
	fn save(&self, channel: &BuyerChannel) -> Result<(), String>;
	fn all(&self) -> Result<Vec<BuyerChannel>, String>;
}

/// Channels in memory: for tests, and for buyers that rebuild their channels from the
/// sellers' corrective 402s after a restart.
#[derive(Default)]
pub struct MemoryBuyerChannels(Mutex<BTreeMap<B256, BuyerChannel>>);

impl BuyerChannelStore for MemoryBuyerChannels {
	fn load(&self, channel_id: &B256) -> Result<Option<BuyerChannel>, String> {
		Ok(self.0.lock().expect("channels").get(channel_id).cloned())
	}

	fn save(&self, channel: &BuyerChannel) -> Result<(), String> {
		self.0.lock().expect("channels").insert(channel.channel_id, channel.clone());
		Ok(())
	}

	fn all(&self) -> Result<Vec<BuyerChannel>, String> {
		Ok(self.0.lock().expect("channels").values().cloned().collect())
	}
}

/// How much a buyer deposits when a channel needs money: enough for `requests_per_deposit`
/// requests at the offer's maximum price (less if the day's budget has less left).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelFunding {
	pub requests_per_deposit: u64,
}

impl Default for ChannelFunding {
	fn default() -> Self {
		Self { requests_per_deposit: 100 }
	}
}

/// The channel for `offer` among `known` (the buyer's channels): the usable one, or a new
/// one of the next generation. `payer` signs its vouchers.
pub(crate) fn channel_for(
	known: &[BuyerChannel],
	offer: &Offer,
	requirements: &PaymentRequirements,
	payer: alloy_signer_local::PrivateKeySigner,
) -> (BuyerChannel, ChannelConfig) {
	let mine: Vec<&BuyerChannel> =
		known.iter().filter(|c| c.pays(offer, &requirements.network)).collect();
	if let Some(open) = mine.iter().find(|c| c.usable()) {
		let config = rules::parse_config(&open.config).expect("pays() parsed it");
		return ((*open).clone(), config);
	}
	let generation = mine.len() as u64;
	let config = rules::config_for(offer, payer.address(), B256::from(U256::from(generation)));
	let id = digest::channel_id(&config, &rules::domain(offer.chain_id));
	(BuyerChannel::open(id, rules::config_wire(&config), requirements.clone()), config)
}

/// Takes a corrective 402's state for `channel`, if the offer carries one for it: the
/// seller's `charged`, once the voucher it shows checks out as this payer's, and the
/// channel's balance and claims. `Ok(false)` if the offer carries no state for this channel.
pub(crate) fn adopt(
	channel: &mut BuyerChannel,
	config: &ChannelConfig,
	offer: &Offer,
	requirements: &PaymentRequirements,
) -> Result<bool, Problem> {
	let Some(extra) =
		requirements.extra.clone().and_then(|e| serde_json::from_value::<ChannelExtra>(e).ok())
	else {
		return Ok(false);
	};
	let Some(state) = extra.channel_state else { return Ok(false) };
	if !state.channel_id.eq_ignore_ascii_case(&channel.channel_id.to_string()) {
		return Ok(false);
	}
	let amount = |s: &str, field: &str| {
		rules::amount(s, field, m2m_x402::ErrorReason::ChannelCumulativeAmountMismatch)
	};
	let balance = amount(&state.balance, "channelState.balance")?;
	let total_claimed = amount(&state.total_claimed, "channelState.totalClaimed")?;
	let charged = match &extra.voucher_state {
		Some(voucher) => {
			rules::adopt_corrective(config, offer.chain_id, &state, voucher, total_claimed)?
		},
		// No voucher yet, in the seller's view: nothing was charged.
		None => 0,
	};
	if charged != channel.charged {
		tracing::info!(
			channel = %channel.channel_id, ours = channel.charged, sellers = charged,
			"adopting the seller's charged total, proven by our own voucher"
		);
	}
	channel.charged = charged;
	channel.balance = balance;
	channel.total_claimed = total_claimed;
	channel.withdraw_requested_at = state.withdraw_requested_at;
	Ok(true)
}

/// A deposit to bundle with a voucher: its amount, signed at Unix time `now` under a fresh
/// `salt` (its EIP-3009 nonce).
pub(crate) struct DepositTerms {
	pub amount: u128,
	pub now: u64,
	pub salt: B256,
}

/// Signs `channel`'s next voucher, `charged + price`, bundled with `deposit` (if its amount
/// is not 0), and records the voucher in `channel`.
pub(crate) fn sign(
	signer: &PrivateKeySigner,
	offer: &Offer,
	config: &ChannelConfig,
	channel: &mut BuyerChannel,
	price: u128,
	deposit: DepositTerms,
) -> Result<ChannelPayload, Problem> {
	let voucher = rules::next_voucher_amount(channel.charged, price).ok_or_else(|| {
		Problem::new(
			m2m_x402::ErrorReason::ChannelCumulativeAmountMismatch,
			"the channel's cumulative amount would overflow",
		)
	})?;
	let signed = rules::sign_voucher(signer, config, voucher, offer.chain_id)?;
	if voucher >= channel.signed {
		channel.signed = voucher;
		channel.signature = signed.signature.clone();
	}
	let channel_config = channel.config.clone();
	Ok(if deposit.amount > 0 {
		let DepositTerms { amount, now, salt } = deposit;
		let wire = rules::sign_deposit(signer, offer, config, amount, now, salt)?;
		ChannelPayload::Deposit { channel_config, voucher: signed, deposit: wire }
	} else {
		ChannelPayload::Voucher { channel_config, voucher: signed }
	})
}

/// What the deposit must be for a voucher of `voucher` on a channel of `balance`: 0 if it
/// fits, otherwise `funding` requests' worth, at least the shortfall, at most `budget_left`.
/// `Err(shortfall)` if even the shortfall exceeds the budget.
pub(crate) fn deposit_needed(
	voucher: u128,
	balance: u128,
	price: u128,
	funding: ChannelFunding,
	budget_left: u128,
) -> Result<u128, u128> {
	if voucher <= balance {
		return Ok(0);
	}
	let shortfall = voucher - balance;
	if shortfall > budget_left {
		return Err(shortfall);
	}
	let wanted = price.saturating_mul(funding.requests_per_deposit.max(1) as u128);
	Ok(wanted.max(shortfall).min(budget_left))
}

/// The seller's answer to a voucher-paid request, checked against the voucher: the state it
/// reports must be this channel's, the charge at most the price, and the charged total what
/// was charged before plus this charge, never above the voucher.
pub(crate) fn check_charge(
	channel: &BuyerChannel,
	voucher: u128,
	price: u128,
	settlement: &SettleResponse,
) -> Result<ChargeExtra, String> {
	let extra = settlement
		.extra
		.clone()
		.ok_or("the seller reported no channel state with the voucher's answer")?;
	let charge: ChargeExtra = serde_json::from_value(extra)
		.map_err(|e| format!("the seller's channel state is malformed: {e}"))?;
	let state = &charge.channel_state;
	if !state.channel_id.eq_ignore_ascii_case(&channel.channel_id.to_string()) {
		return Err(format!(
			"the seller reported channel {}, not {}",
			state.channel_id, channel.channel_id
		));
	}
	let amount = |s: &str, what: &str| {
		s.parse::<u128>().map_err(|_| format!("the seller's {what} {s:?} is not an amount"))
	};
	let charged_now = amount(&charge.charged_amount, "chargedAmount")?;
	let cumulative = amount(
		state.charged_cumulative_amount.as_deref().unwrap_or(""),
		"chargedCumulativeAmount",
	)?;
	if charged_now > price {
		return Err(format!("the seller charged {charged_now}, above the price of {price}"));
	}
	let before = voucher - price;
	if cumulative != before + charged_now || cumulative > voucher {
		return Err(format!(
			"the seller says {cumulative} was charged in total; with {before} charged before \
			 and {charged_now} now, that does not add up (voucher {voucher})"
		));
	}
	amount(&state.balance, "balance")?;
	amount(&state.total_claimed, "totalClaimed")?;
	Ok(charge)
}

#[cfg(test)]
mod tests {
	use m2m_x402::{
		schemes::batch_settlement::{payload::ChannelStateWire, rules::corrective},
		Address,
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
			max_price: 10_000,
			max_timeout_seconds: 60,
		}
	}

	fn signer() -> PrivateKeySigner {
		PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap()
	}

	#[test]
	fn a_lost_channel_is_rebuilt_with_the_same_id_and_a_stopped_one_is_replaced() {
		let offer = offer();
		let requirements = rules::requirements(&offer);
		let (first, _) = channel_for(&[], &offer, &requirements, signer());
		let (again, _) = channel_for(&[], &offer, &requirements, signer());
		assert_eq!(first.channel_id, again.channel_id, "generation 0, the same salt");

		let mut stopped = first.clone();
		stopped.stopped = Some("the seller's state did not add up".into());
		let (next, _) = channel_for(&[stopped.clone()], &offer, &requirements, signer());
		assert_ne!(next.channel_id, first.channel_id, "a stopped channel is not paid from");
		let (kept, _) = channel_for(&[stopped, next.clone()], &offer, &requirements, signer());
		assert_eq!(kept.channel_id, next.channel_id, "the usable one is found again");

		let other = Offer { pay_to: Address::repeat_byte(0x99), ..offer.clone() };
		let (theirs, _) = channel_for(std::slice::from_ref(&next), &other, &requirements, signer());
		assert_ne!(theirs.channel_id, next.channel_id, "another receiver, another channel");
	}

	#[test]
	fn deposits_cover_the_shortfall_within_the_budget() {
		let funding = ChannelFunding { requests_per_deposit: 100 };
		assert_eq!(deposit_needed(10, 100, 10, funding, 0), Ok(0), "the voucher fits");
		assert_eq!(deposit_needed(10, 0, 10, funding, 5_000), Ok(1_000));
		assert_eq!(deposit_needed(10, 0, 10, funding, 500), Ok(500), "clipped to the budget");
		assert_eq!(deposit_needed(30, 0, 10, funding, 20), Err(30), "not even the shortfall");
	}

	#[test]
	fn the_sellers_charge_must_add_up_to_the_voucher() {
		let offer = offer();
		let requirements = rules::requirements(&offer);
		let (channel, _) = channel_for(&[], &offer, &requirements, signer());
		let answer = |charged: &str, cumulative: &str, id: B256| SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: String::new(),
			network: "eip155:33380".into(),
			payer: None,
			amount: None,
			extensions: None,
			extra: Some(
				serde_json::to_value(ChargeExtra {
					charged_amount: charged.into(),
					channel_state: ChannelStateWire {
						channel_id: id.to_string(),
						balance: "1000000".into(),
						total_claimed: "0".into(),
						withdraw_requested_at: 0,
						refund_nonce: "0".into(),
						charged_cumulative_amount: Some(cumulative.into()),
					},
				})
				.unwrap(),
			),
		};
		let id = channel.channel_id;
		assert!(check_charge(&channel, 30_000, 10_000, &answer("10000", "30000", id)).is_ok());
		assert!(
			check_charge(&channel, 30_000, 10_000, &answer("5000", "25000", id)).is_ok(),
			"charged less than the price"
		);
		for (charged, cumulative, id, why) in [
			("10000", "40000", id, "does not add up"),
			("20000", "40000", id, "above the price"),
			("10000", "30000", B256::repeat_byte(1), "not 0x"),
		] {
			let e = check_charge(&channel, 30_000, 10_000, &answer(charged, cumulative, id))
				.unwrap_err();
			assert!(e.contains(why), "{e}");
		}
		let mut bare = answer("10000", "30000", id);
		bare.extra = None;
		assert!(check_charge(&channel, 30_000, 10_000, &bare).unwrap_err().contains("no channel"));
	}

	#[test]
	fn a_corrective_is_adopted_only_with_a_voucher_this_payer_signed() {
		let offer = offer();
		let requirements = rules::requirements(&offer);
		let (mut channel, config) = channel_for(&[], &offer, &requirements, signer());
		let state = |charged: u128| ChannelStateWire {
			channel_id: channel.channel_id.to_string(),
			balance: "1000000".into(),
			total_claimed: "20000".into(),
			withdraw_requested_at: 0,
			refund_nonce: "0".into(),
			charged_cumulative_amount: Some(charged.to_string()),
		};
		let ours = rules::sign_voucher(&signer(), &config, 50_000, offer.chain_id).unwrap();
		let signature =
			rules::signature(&ours.signature, "v", m2m_x402::ErrorReason::ChannelVoucherSignature)
				.unwrap();
		let corrected = corrective(&requirements, state(50_000), Some((50_000, signature)));
		let mut adopted = channel.clone();
		assert_eq!(adopt(&mut adopted, &config, &offer, &corrected), Ok(true));
		assert_eq!(
			(adopted.charged, adopted.balance, adopted.total_claimed),
			(50_000, 1_000_000, 20_000)
		);

		// A voucher signed by someone else proves nothing.
		let thief = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x66)).unwrap();
		let theirs = rules::sign_voucher(&thief, &config, 90_000, offer.chain_id).unwrap();
		let signature = rules::signature(
			&theirs.signature,
			"v",
			m2m_x402::ErrorReason::ChannelVoucherSignature,
		)
		.unwrap();
		let forged = corrective(&requirements, state(90_000), Some((90_000, signature)));
		let e = adopt(&mut channel, &config, &offer, &forged).unwrap_err();
		assert!(e.message.contains("not by this payer"), "{e}");
		assert_eq!(channel.charged, 0, "nothing adopted");

		// State for another channel is not ours to adopt.
		assert_eq!(adopt(&mut channel, &config, &offer, &requirements), Ok(false));
	}
}
