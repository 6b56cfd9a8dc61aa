//! The payment schemes, sibling modules behind one seam.
//!
//! A scheme decides what a payer signs, what a payload carries and what paying puts at stake.
//! The wire types ([`crate::v2`], [`crate::v1`]) carry a payload as opaque JSON; this module
//! is the one place that maps a scheme's name to its module, and parses a payload by the
//! scheme its payment *accepted*, never by the JSON's shape.
//!
//! - [`exact`]: `exact` on EVM (EIP-3009 `transferWithAuthorization`), one payment per request.
//!
//! - [`batch_settlement`]: `batch-settlement` on EVM, payment channels with cumulative
//!   vouchers: its digests, wire types and pure rules, for payers, receivers and
//!   facilitators.
//!
//! A new scheme is a new sibling module, a [`Scheme`] variant and a [`Payload`] variant; the
//! seller and buyer cores, the spending policy and the transports then see it through this
//! seam.

pub mod batch_settlement;
pub mod exact;

use alloy_primitives::U256;

use crate::{
	v2::{PaymentPayload, PaymentRequirements},
	ErrorReason, Problem,
};

/// A scheme this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
	Exact,
	BatchSettlement,
}

impl Scheme {
	/// Every scheme implemented, in the order a buyer prefers them.
	pub const ALL: &'static [Scheme] = &[Scheme::Exact, Scheme::BatchSettlement];

	/// The scheme's name on the wire.
	pub fn name(self) -> &'static str {
		match self {
			Scheme::Exact => exact::SCHEME,
			Scheme::BatchSettlement => batch_settlement::SCHEME,
		}
	}

	/// The scheme named `name`, if implemented.
	pub fn from_name(name: &str) -> Option<Scheme> {
		Self::ALL.iter().copied().find(|s| s.name() == name)
	}

	/// The scheme `requirements` ask for, or `unsupported_scheme` naming those implemented.
	pub fn of(requirements: &PaymentRequirements) -> Result<Scheme, Problem> {
		Self::from_name(&requirements.scheme).ok_or_else(|| {
			Problem::new(
				ErrorReason::UnsupportedScheme,
				format!("scheme {:?} is not supported ({})", requirements.scheme, Self::names()),
			)
		})
	}

	/// `only "exact"`, or `"exact" or "batch-settlement"`: the implemented names, for messages.
	pub fn names() -> String {
		let names: Vec<String> = Self::ALL.iter().map(|s| format!("{:?}", s.name())).collect();
		match names.as_slice() {
			[only] => format!("only {only}"),
			all => all.join(" or "),
		}
	}

	/// What paying once under `requirements` puts at stake, in the asset's base units: what a
	/// spending policy caps and counts against the budget. For `exact` it is the price; for a
	/// channel it is the per-request maximum here, and the deposit when a buyer opens one.
	/// `None` if the amount is not a decimal integer.
	pub fn exposure(self, requirements: &PaymentRequirements) -> Option<U256> {
		match self {
			Scheme::Exact | Scheme::BatchSettlement => decimal(&requirements.amount),
		}
	}
}

/// A payment's scheme payload, parsed by the scheme its `accepted` requirement names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
	Exact(exact::ExactEvmPayload),
	BatchSettlement(Box<batch_settlement::payload::ChannelPayload>),
}

impl Payload {
	/// Parses `payment.payload` as the payload of `payment.accepted.scheme`.
	pub fn parse(payment: &PaymentPayload) -> Result<Payload, Problem> {
		match Scheme::of(&payment.accepted)? {
			Scheme::Exact => exact::payload(payment).map(Payload::Exact),
			Scheme::BatchSettlement => {
				payment.payload.decode().map(|p| Payload::BatchSettlement(Box::new(p))).map_err(
					|e| {
						Problem::new(
							ErrorReason::ChannelPayloadType,
							format!("the payload is not a deposit, voucher or refund: {e}"),
						)
					},
				)
			},
		}
	}

	/// The payer the payload names; unverified until its scheme checked it.
	pub fn payer(&self) -> &str {
		match self {
			Payload::Exact(p) => &p.authorization.from,
			Payload::BatchSettlement(p) => &p.channel_config().payer,
		}
	}
}

/// The payer `payment` names, whatever its scheme; `None` if its payload does not parse.
pub fn payer(payment: &PaymentPayload) -> Option<String> {
	Payload::parse(payment).ok().map(|p| p.payer().to_owned())
}

/// A non-empty decimal integer, as amounts are written on the wire.
pub(crate) fn decimal(amount: &str) -> Option<U256> {
	(!amount.is_empty() && amount.bytes().all(|b| b.is_ascii_digit()))
		.then(|| U256::from_str_radix(amount, 10).ok())
		.flatten()
}

#[cfg(test)]
mod tests {
	use serde_json::json;

	use super::*;
	use crate::v2::SchemePayload;

	fn offer(scheme: &str) -> PaymentRequirements {
		PaymentRequirements {
			scheme: scheme.into(),
			network: "eip155:84532".into(),
			amount: "1000".into(),
			asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
			pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
			max_timeout_seconds: 60,
			extra: None,
			other: Default::default(),
		}
	}

	fn payment(scheme: &str, payload: serde_json::Value) -> PaymentPayload {
		PaymentPayload {
			x402_version: 2,
			resource: None,
			accepted: offer(scheme),
			payload: SchemePayload::encode(&payload),
			extensions: None,
			other: Default::default(),
		}
	}

	const AUTHORIZATION: &str = r#"{"signature":"0x01","authorization":{"from":"0x857b06519E91e3A54538791bDbb0E22373e36b66","to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","value":"1000","validAfter":"0","validBefore":"9","nonce":"0x00"}}"#;

	#[test]
	fn a_payload_is_parsed_by_the_scheme_it_accepted_not_by_its_shape() {
		let value: serde_json::Value = serde_json::from_str(AUTHORIZATION).unwrap();
		let exact = Payload::parse(&payment("exact", value.clone())).unwrap();
		assert_eq!(exact.payer(), "0x857b06519E91e3A54538791bDbb0E22373e36b66");
		// The same JSON under another scheme is not an exact payment.
		let channel = Payload::parse(&payment("batch-settlement", value.clone())).unwrap_err();
		assert_eq!(channel.reason, ErrorReason::ChannelPayloadType);
		let other = Payload::parse(&payment("upto", value)).unwrap_err();
		assert_eq!(other.reason, ErrorReason::UnsupportedScheme);
		assert_eq!(
			other.message,
			r#"scheme "upto" is not supported ("exact" or "batch-settlement")"#
		);
	}

	#[test]
	fn a_payload_keeps_the_text_it_arrived_as_and_equals_itself_reordered() {
		let arrived: SchemePayload = serde_json::from_str(AUTHORIZATION).unwrap();
		assert_eq!(arrived.json(), AUTHORIZATION);
		let value: serde_json::Value = serde_json::from_str(AUTHORIZATION).unwrap();
		let reordered = SchemePayload::encode(&value);
		assert_ne!(reordered.json(), AUTHORIZATION, "serde_json::Value sorts the keys");
		assert_eq!(reordered, arrived);
		assert_ne!(SchemePayload::encode(&json!({"signature": "0x02"})), arrived);
	}

	#[test]
	fn an_exact_payment_without_an_authorization_is_an_invalid_payload() {
		let problem = Payload::parse(&payment("exact", json!({"transaction": "0x"}))).unwrap_err();
		assert_eq!(problem.reason, ErrorReason::InvalidPayload);
		assert_eq!(payer(&payment("exact", json!({}))), None);
	}

	#[test]
	fn the_exposure_of_an_exact_offer_is_its_price() {
		assert_eq!(Scheme::Exact.exposure(&offer("exact")), Some(U256::from(1000)));
		let mut malformed = offer("exact");
		malformed.amount = "1e3".into();
		assert_eq!(Scheme::Exact.exposure(&malformed), None);
		assert_eq!(Scheme::from_name("exact"), Some(Scheme::Exact));
		assert_eq!(Scheme::from_name("upto"), None);
	}
}
