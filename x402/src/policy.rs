//! A buyer's spending policy: which offers a device may pay, and how much.
//!
//! A machine pays without a human in the loop, so every payment must pass rules its owner
//! set: allowed networks and assets (each with its own per-request cap and daily budget) and,
//! optionally, allowed payees. [`SpendingPolicy::choose`] picks the first offer (the seller's
//! order is its preference) that passes all of them, or explains, offer by offer, why none
//! did, in amounts a human reads ("price 0.50 USDT exceeds per-request cap 0.10 USDT").

use alloy_primitives::{Address, U256};

use crate::{schemes::Scheme, v2::PaymentRequirements};

/// Seconds in the budget's day. Days are UTC days since the Unix epoch.
pub const DAY_SECS: u64 = 86_400;

/// The UTC day of a Unix time, as budgets count it.
pub fn day_of(unix_secs: u64) -> u64 {
	unix_secs / DAY_SECS
}

/// One asset a device may pay with, and its limits (in the token's base units).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetAllowance {
	/// CAIP-2 network, e.g. `eip155:33380`.
	pub network: String,
	pub asset: Address,
	/// For messages only: `USDT`.
	pub symbol: String,
	/// For messages only: 6 for USDT.
	pub decimals: u8,
	pub max_per_request: U256,
	pub daily_budget: U256,
}

/// What a device may spend. An empty `payees` list allows every payee.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpendingPolicy {
	pub assets: Vec<AssetAllowance>,
	pub payees: Vec<Address>,
}

/// Why one offer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
	#[error("scheme {0:?} is not supported ({names})", names = Scheme::names())]
	Scheme(String),
	#[error("network {network} is not allowed (allowed: {allowed})")]
	Network { network: String, allowed: String },
	#[error("asset {asset} on {network} is not allowed")]
	Asset { network: String, asset: String },
	#[error("payee {0} is not allowed")]
	Payee(String),
	#[error("amount {0:?} is not a decimal integer")]
	Amount(String),
	#[error("price {price} exceeds per-request cap {cap}")]
	OverCap { price: String, cap: String },
	#[error("price {price} exceeds the rest of today's budget: {spent} of {budget} spent")]
	OverBudget { price: String, spent: String, budget: String },
}

/// Why no offer was chosen: each offer's refusal, in the seller's order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct NothingPayable(pub Vec<Refusal>);

impl std::fmt::Display for NothingPayable {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		match self.0.as_slice() {
			[] => write!(f, "the seller offered no way to pay"),
			[only] => write!(f, "{only}"),
			all => {
				write!(f, "no offer is allowed by the spending policy: ")?;
				for (i, r) in all.iter().enumerate() {
					write!(f, "{}offer {}: {r}", if i == 0 { "" } else { "; " }, i + 1)?;
				}
				Ok(())
			},
		}
	}
}

/// The offer a policy allows, with the allowance it is counted against.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice<'a> {
	pub index: usize,
	pub requirement: &'a PaymentRequirements,
	pub allowance: &'a AssetAllowance,
	/// What paying it puts at stake ([`Scheme::exposure`]).
	pub amount: U256,
}

impl SpendingPolicy {
	/// The first offer allowed. `spent_today(network, asset)` is what was already committed
	/// today with that asset (settled and in flight alike).
	pub fn choose<'a>(
		&'a self,
		offers: &'a [PaymentRequirements],
		spent_today: impl Fn(&str, Address) -> U256,
	) -> Result<Choice<'a>, NothingPayable> {
		let mut refusals = Vec::new();
		for (index, requirement) in offers.iter().enumerate() {
			match self.check(requirement, &spent_today) {
				Ok((allowance, amount)) => {
					return Ok(Choice { index, requirement, allowance, amount })
				},
				Err(r) => refusals.push(r),
			}
		}
		Err(NothingPayable(refusals))
	}

	fn check(
		&self,
		r: &PaymentRequirements,
		spent_today: &impl Fn(&str, Address) -> U256,
	) -> Result<(&AssetAllowance, U256), Refusal> {
		let scheme =
			Scheme::from_name(&r.scheme).ok_or_else(|| Refusal::Scheme(r.scheme.clone()))?;
		if !self.assets.iter().any(|a| a.network == r.network) {
			let mut allowed: Vec<&str> = self.assets.iter().map(|a| a.network.as_str()).collect();
			allowed.dedup();
			return Err(Refusal::Network {
				network: r.network.clone(),
				allowed: if allowed.is_empty() { "none".into() } else { allowed.join(", ") },
			});
		}
		let asset = r.asset.parse::<Address>().ok();
		let allowance = self
			.assets
			.iter()
			.find(|a| a.network == r.network && Some(a.asset) == asset)
			.ok_or_else(|| Refusal::Asset { network: r.network.clone(), asset: r.asset.clone() })?;
		let payee = r.pay_to.parse::<Address>().ok();
		if !self.payees.is_empty() && !payee.is_some_and(|p| self.payees.contains(&p)) {
			return Err(Refusal::Payee(r.pay_to.clone()));
		}
		// What is at stake, as the scheme counts it: the price for exact, the deposit for a
		// channel. Caps and budgets apply to it.
		let amount = scheme.exposure(r).ok_or_else(|| Refusal::Amount(r.amount.clone()))?;
		let show = |v: U256| format_units(v, allowance.decimals, &allowance.symbol);
		if amount > allowance.max_per_request {
			return Err(Refusal::OverCap {
				price: show(amount),
				cap: show(allowance.max_per_request),
			});
		}
		// A channel's vouchers spend a deposit that was counted when it was signed: the
		// budget applies to deposits ([`AssetAllowance::fits_budget`], by the buyer, which
		// knows whether this request needs one), not to each voucher.
		if scheme == Scheme::Exact {
			allowance.fits_budget(spent_today(&r.network, allowance.asset), amount)?;
		}
		Ok((allowance, amount))
	}
}

impl AssetAllowance {
	/// `amount` more fits today's budget when `spent` is committed already.
	pub fn fits_budget(&self, spent: U256, amount: U256) -> Result<(), Refusal> {
		if spent.saturating_add(amount) > self.daily_budget {
			let show = |v: U256| format_units(v, self.decimals, &self.symbol);
			return Err(Refusal::OverBudget {
				price: show(amount),
				spent: show(spent),
				budget: show(self.daily_budget),
			});
		}
		Ok(())
	}

	/// What is left of today's budget when `spent` is committed already.
	pub fn budget_left(&self, spent: U256) -> U256 {
		self.daily_budget.saturating_sub(spent)
	}
}

/// `value` base units as a decimal amount with at least two decimals: `500000` with 6
/// decimals and `USDT` is `0.50 USDT`; `1` is `0.000001 USDT`.
pub fn format_units(value: U256, decimals: u8, symbol: &str) -> String {
	let scale = U256::from(10u8).pow(U256::from(decimals));
	let (whole, fraction) = value.div_rem(scale);
	let mut digits = if decimals == 0 {
		String::new()
	} else {
		format!("{fraction:0>width$}", width = decimals as usize)
	};
	while digits.len() > 2 && digits.ends_with('0') {
		digits.pop();
	}
	let amount = if digits.is_empty() { whole.to_string() } else { format!("{whole}.{digits}") };
	if symbol.is_empty() {
		amount
	} else {
		format!("{amount} {symbol}")
	}
}

/// Parses a decimal amount (`0.10`) into base units with `decimals`; `None` if malformed or
/// more precise than the token.
pub fn parse_units(amount: &str, decimals: u8) -> Option<U256> {
	let (whole, fraction) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
	if whole.is_empty() && fraction.is_empty()
		|| !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
		|| fraction.len() > decimals as usize
	{
		return None;
	}
	let digits = format!("{whole}{fraction:0<width$}", width = decimals as usize);
	let significant = digits.trim_start_matches('0');
	U256::from_str_radix(if significant.is_empty() { "0" } else { significant }, 10).ok()
}

#[cfg(test)]
mod tests {
	use super::*;
	use serde_json::json;

	const USDT: Address = Address::repeat_byte(0x11);
	const SELLER: Address = Address::repeat_byte(0x22);

	fn policy() -> SpendingPolicy {
		SpendingPolicy {
			assets: vec![AssetAllowance {
				network: "eip155:33380".into(),
				asset: USDT,
				symbol: "USDT".into(),
				decimals: 6,
				max_per_request: U256::from(100_000u64),
				daily_budget: U256::from(1_000_000u64),
			}],
			payees: vec![],
		}
	}

	fn offer(network: &str, asset: Address, pay_to: Address, amount: &str) -> PaymentRequirements {
		serde_json::from_value(json!({
			"scheme": "exact", "network": network, "amount": amount,
			"asset": asset.to_checksum(None), "payTo": pay_to.to_checksum(None),
			"maxTimeoutSeconds": 60, "extra": {"name": "Tether USD", "version": "1"}
		}))
		.unwrap()
	}

	fn nothing_spent(_: &str, _: Address) -> U256 {
		U256::ZERO
	}

	#[test]
	fn the_first_allowed_offer_is_chosen() {
		let p = policy();
		let offers = [
			offer("eip155:1", USDT, SELLER, "10"),
			offer("eip155:33380", USDT, SELLER, "100000"),
			offer("eip155:33380", USDT, SELLER, "5"),
		];
		let c = p.choose(&offers, nothing_spent).unwrap();
		assert_eq!((c.index, c.amount), (1, U256::from(100_000u64)));
	}

	#[test]
	fn every_refusal_reads_like_the_rule_it_broke() {
		let mut p = policy();
		let refusal = |p: &SpendingPolicy, o: PaymentRequirements, spent: u64| {
			p.choose(&[o], |_, _| U256::from(spent)).unwrap_err().to_string()
		};
		assert_eq!(
			refusal(&p, offer("eip155:33380", USDT, SELLER, "500000"), 0),
			"price 0.50 USDT exceeds per-request cap 0.10 USDT"
		);
		assert_eq!(
			refusal(&p, offer("eip155:33380", USDT, SELLER, "100000"), 950_000),
			"price 0.10 USDT exceeds the rest of today's budget: 0.95 USDT of 1.00 USDT spent"
		);
		assert_eq!(
			refusal(&p, offer("eip155:8453", USDT, SELLER, "1"), 0),
			"network eip155:8453 is not allowed (allowed: eip155:33380)"
		);
		let other = Address::repeat_byte(0x33);
		assert_eq!(
			refusal(&p, offer("eip155:33380", other, SELLER, "1"), 0),
			format!("asset {} on eip155:33380 is not allowed", other.to_checksum(None))
		);
		assert_eq!(
			refusal(&p, offer("eip155:33380", USDT, SELLER, "1.5"), 0),
			"amount \"1.5\" is not a decimal integer"
		);
		p.payees = vec![other];
		assert_eq!(
			refusal(&p, offer("eip155:33380", USDT, SELLER, "1"), 0),
			format!("payee {} is not allowed", SELLER.to_checksum(None))
		);
		let mut upto = offer("eip155:33380", USDT, other, "1");
		upto.scheme = "upto".into();
		assert_eq!(
			refusal(&p, upto, 0),
			"scheme \"upto\" is not supported (\"exact\" or \"batch-settlement\")"
		);
	}

	#[test]
	fn a_channel_offer_is_capped_per_request_and_its_deposits_against_the_budget() {
		let p = policy();
		let mut channel = offer("eip155:33380", USDT, SELLER, "200000");
		channel.scheme = "batch-settlement".into();
		assert_eq!(
			p.choose(std::slice::from_ref(&channel), nothing_spent).unwrap_err().to_string(),
			"price 0.20 USDT exceeds per-request cap 0.10 USDT",
			"the per-request maximum is capped like a price"
		);
		channel.amount = "10000".into();
		// A voucher spends a deposit counted when it was signed: a spent budget does not
		// refuse it here; the deposit itself is checked against what is left.
		let choice = p.choose(std::slice::from_ref(&channel), |_, _| U256::from(1_000_000u64));
		let allowance = choice.unwrap().allowance;
		assert_eq!(allowance.budget_left(U256::from(400_000u64)), U256::from(600_000u64));
		assert_eq!(
			allowance
				.fits_budget(U256::from(400_000u64), U256::from(700_000u64))
				.unwrap_err()
				.to_string(),
			"price 0.70 USDT exceeds the rest of today's budget: 0.40 USDT of 1.00 USDT spent"
		);
		assert!(allowance.fits_budget(U256::from(400_000u64), U256::from(600_000u64)).is_ok());
	}

	#[test]
	fn several_refusals_are_listed_offer_by_offer() {
		let p = policy();
		let offers =
			[offer("eip155:1", USDT, SELLER, "1"), offer("eip155:33380", USDT, SELLER, "200000")];
		assert_eq!(
			p.choose(&offers, nothing_spent).unwrap_err().to_string(),
			"no offer is allowed by the spending policy: offer 1: network eip155:1 is not allowed \
			 (allowed: eip155:33380); offer 2: price 0.20 USDT exceeds per-request cap 0.10 USDT"
		);
		assert_eq!(
			p.choose(&[], nothing_spent).unwrap_err().to_string(),
			"the seller offered no way to pay"
		);
	}

	#[test]
	fn the_budget_is_inclusive() {
		let p = policy();
		let o = [offer("eip155:33380", USDT, SELLER, "100000")];
		assert!(p.choose(&o, |_, _| U256::from(900_000u64)).is_ok());
		assert!(p.choose(&o, |_, _| U256::from(900_001u64)).is_err());
	}

	#[test]
	fn units_format_and_parse() {
		for (v, d, s) in [
			(500_000u64, 6, "0.50"),
			(1, 6, "0.000001"),
			(12_345_678, 6, "12.345678"),
			(3_000_000, 6, "3.00"),
			(7, 0, "7"),
		] {
			assert_eq!(format_units(U256::from(v), d, ""), s);
			assert_eq!(parse_units(s, d), Some(U256::from(v)), "{s}");
		}
		assert_eq!(format_units(U256::from(12_345_678u64), 6, "USDT"), "12.345678 USDT");
		assert_eq!(format_units(U256::from(5u64), 6, "USDT"), "0.000005 USDT");
		assert_eq!(parse_units("0.1", 6), Some(U256::from(100_000u64)));
		assert_eq!(parse_units("5", 6), Some(U256::from(5_000_000u64)));
		for bad in ["", ".", "1.2.3", "-1", "0.0000001", "1e6", "abc"] {
			assert_eq!(parse_units(bad, 6), None, "{bad}");
		}
		assert_eq!(day_of(86_399), 0);
		assert_eq!(day_of(86_400), 1);
	}
}
