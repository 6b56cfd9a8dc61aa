//! A seller's rules, independent of the transport: what a payment must be to be considered
//! at all, before a facilitator looks at it.
//!
//! HTTP carries payments in headers and libp2p in messages, but both hand the seller the same
//! [`IncomingPayment`], and both ask [`accept`] which offered requirement it pays, with the same
//! precise [`Problem`]s. Idempotency keys (the `payment-identifier` extension) and payment
//! fingerprints are here too, so that every transport deduplicates alike.

use alloy_primitives::{keccak256, B256};
use serde_json::{json, Value};

use crate::{
	matching, network,
	v1::{self, PaymentPayloadV1},
	v2::{PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo},
	ErrorReason, Problem, X402_VERSION,
};

/// The `payment-identifier` extension's key.
pub const PAYMENT_IDENTIFIER: &str = "payment-identifier";
/// The length bounds of a payment id, as the extension's schema sets them.
pub const PAYMENT_ID_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// A payment as a buyer sent it, in either protocol version. (Short-lived and moved once, so
/// the size difference between the variants does not matter.)
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum IncomingPayment {
	V2(PaymentPayload),
	V1(PaymentPayloadV1),
}

/// A payment matched to the requirement it pays, in v2 terms.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
	/// The protocol version the buyer spoke (1 or 2); answers use the same.
	pub version: u32,
	pub payment: PaymentPayload,
	pub requirement: PaymentRequirements,
}

/// What a 402 offers for `resource`. The `payment-identifier` extension is advertised as
/// optional, so buyers may make retries idempotent.
pub fn payment_required(
	resource: ResourceInfo,
	offers: Vec<PaymentRequirements>,
	error: Option<String>,
) -> PaymentRequired {
	PaymentRequired {
		x402_version: X402_VERSION,
		error,
		resource,
		accepts: offers,
		extensions: Some(json!({ PAYMENT_IDENTIFIER: { "info": { "required": false } } })),
		other: Default::default(),
	}
}

/// Parses a payment message of either version: the JSON's `x402Version` decides.
pub fn parse_payment(json: &[u8]) -> Result<IncomingPayment, Problem> {
	let value: Value = serde_json::from_slice(json)
		.map_err(|e| Problem::new(ErrorReason::InvalidPayload, format!("not JSON: {e}")))?;
	let version = value.get("x402Version").and_then(Value::as_u64);
	let shape = |e: serde_json::Error| {
		Problem::new(ErrorReason::InvalidPayload, format!("not an x402 payment payload: {e}"))
	};
	match version {
		Some(2) => serde_json::from_value(value).map(IncomingPayment::V2).map_err(shape),
		Some(1) => serde_json::from_value(value).map(IncomingPayment::V1).map_err(shape),
		Some(v) => Err(Problem::new(
			ErrorReason::InvalidX402Version,
			format!("x402Version {v} is not supported (1 or 2)"),
		)),
		None => Err(Problem::new(
			ErrorReason::InvalidX402Version,
			"x402Version is missing or not a number",
		)),
	}
}

/// The offered requirement that `incoming` pays, or the most specific reason it pays none.
pub fn accept(
	incoming: IncomingPayment,
	offers: &[PaymentRequirements],
) -> Result<Accepted, Problem> {
	match incoming {
		IncomingPayment::V2(payment) => {
			if let Some(r) = matching::find_accepted(offers, &payment.accepted) {
				return Ok(Accepted { version: 2, requirement: r.clone(), payment });
			}
			Err(mismatch(&payment.accepted.scheme, &payment.accepted.network, offers)
				.unwrap_or_else(|| {
					Problem::new(
						ErrorReason::InvalidPaymentRequirements,
						"the accepted requirement is not one this resource offers: echo an offer \
						 verbatim (amount, asset, payTo, extra)",
					)
				}))
		},
		IncomingPayment::V1(payment) => {
			let network = network::v1_chain_id(&payment.network).map(network::caip2);
			let payment_v2 = v1::payload_to_v2(&payment, offers).ok_or_else(|| {
				mismatch(&payment.scheme, network.as_deref().unwrap_or(&payment.network), offers)
					.unwrap_or_else(|| {
						Problem::new(ErrorReason::InvalidNetwork, "no offer on this network")
					})
			})?;
			Ok(Accepted {
				version: 1,
				requirement: payment_v2.accepted.clone(),
				payment: payment_v2,
			})
		},
	}
}

/// The first of scheme and network that no offer has.
fn mismatch(scheme: &str, network: &str, offers: &[PaymentRequirements]) -> Option<Problem> {
	let list = |f: fn(&PaymentRequirements) -> &str| {
		let mut v: Vec<&str> = offers.iter().map(f).collect();
		v.dedup();
		v.join(", ")
	};
	if !offers.iter().any(|r| r.scheme == scheme) {
		return Some(Problem::new(
			ErrorReason::UnsupportedScheme,
			format!("scheme {scheme:?} is not offered (offered: {})", list(|r| &r.scheme)),
		));
	}
	if !offers.iter().any(|r| r.scheme == scheme && r.network == network) {
		return Some(Problem::new(
			ErrorReason::InvalidNetwork,
			format!("network {network:?} is not offered (offered: {})", list(|r| &r.network)),
		));
	}
	None
}

/// The buyer's idempotency key, if it sent one; malformed keys are refused rather than
/// ignored, since ignoring one would silently lose the protection the buyer asked for.
pub fn payment_id(payment: &PaymentPayload) -> Result<Option<String>, Problem> {
	let Some(ext) = payment.extensions.as_ref().and_then(|e| e.get(PAYMENT_IDENTIFIER)) else {
		return Ok(None);
	};
	let id = ext.pointer("/info/id").or_else(|| ext.get("id"));
	let Some(id) = id else { return Ok(None) };
	let valid = id.as_str().filter(|s| {
		PAYMENT_ID_LEN.contains(&s.len())
			&& s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
	});
	valid.map(|s| Some(s.to_string())).ok_or_else(|| {
		Problem::new(
			ErrorReason::InvalidPayload,
			format!(
				"{PAYMENT_IDENTIFIER} id must be {}–{} characters of [A-Za-z0-9_-]",
				PAYMENT_ID_LEN.start(),
				PAYMENT_ID_LEN.end()
			),
		)
	})
}

/// Adds an idempotency key to a payment (buyer side).
pub fn set_payment_id(payment: &mut PaymentPayload, id: &str) {
	let extensions = payment.extensions.get_or_insert_with(|| json!({}));
	if let Some(map) = extensions.as_object_mut() {
		map.insert(PAYMENT_IDENTIFIER.into(), json!({ "info": { "id": id } }));
	}
}

/// A digest of everything a payment says: two presentations under one id are "the same
/// payment" exactly when their fingerprints are equal.
pub fn fingerprint(payment: &PaymentPayload) -> B256 {
	keccak256(serde_json::to_vec(payment).expect("x402 types always serialize"))
}

#[cfg(test)]
mod tests {
	use super::*;
	use serde_json::json;

	fn offer(network: &str, amount: &str) -> PaymentRequirements {
		serde_json::from_value(json!({
			"scheme": "exact", "network": network, "amount": amount,
			"asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
			"payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
			"maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}
		}))
		.unwrap()
	}

	fn paying(accepted: PaymentRequirements) -> PaymentPayload {
		serde_json::from_value(json!({
			"x402Version": 2, "accepted": accepted, "payload": {"anything": true}
		}))
		.unwrap()
	}

	#[test]
	fn the_version_field_decides_the_shape() {
		let v2 = serde_json::to_vec(&paying(offer("eip155:84532", "1"))).unwrap();
		assert!(matches!(parse_payment(&v2), Ok(IncomingPayment::V2(_))));
		let v1 = br#"{"x402Version":1,"scheme":"exact","network":"base-sepolia","payload":{}}"#;
		assert!(matches!(parse_payment(v1), Ok(IncomingPayment::V1(_))));
		let e = parse_payment(br#"{"x402Version":3}"#).unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidX402Version);
		assert_eq!(e.message, "x402Version 3 is not supported (1 or 2)");
		let e = parse_payment(b"{}").unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidX402Version);
		let e = parse_payment(br#"{"x402Version":2,"accepted":1}"#).unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidPayload);
		assert_eq!(parse_payment(b"{").unwrap_err().reason, ErrorReason::InvalidPayload);
	}

	#[test]
	fn only_an_offered_requirement_is_accepted() {
		let offers = [offer("eip155:84532", "1000")];
		let ok = accept(IncomingPayment::V2(paying(offers[0].clone())), &offers).unwrap();
		assert_eq!((ok.version, &ok.requirement), (2, &offers[0]));

		let mut cheaper = offers[0].clone();
		cheaper.amount = "999".into();
		let e = accept(IncomingPayment::V2(paying(cheaper)), &offers).unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidPaymentRequirements);

		let e =
			accept(IncomingPayment::V2(paying(offer("eip155:1", "1000"))), &offers).unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidNetwork);
		assert_eq!(e.message, "network \"eip155:1\" is not offered (offered: eip155:84532)");

		let mut upto = offers[0].clone();
		upto.scheme = "upto".into();
		let e = accept(IncomingPayment::V2(paying(upto)), &offers).unwrap_err();
		assert_eq!(e.reason, ErrorReason::UnsupportedScheme);
	}

	#[test]
	fn a_v1_payment_pays_the_offer_on_its_network() {
		let offers = [offer("eip155:1", "5"), offer("eip155:84532", "1000")];
		let v1 = |network: &str| {
			IncomingPayment::V1(PaymentPayloadV1 {
				x402_version: 1,
				scheme: "exact".into(),
				network: network.into(),
				payload: crate::v2::SchemePayload::encode(&json!({})),
			})
		};
		let ok = accept(v1("base-sepolia"), &offers).unwrap();
		assert_eq!((ok.version, &ok.requirement), (1, &offers[1]));
		assert_eq!(accept(v1("peaq"), &offers).unwrap_err().reason, ErrorReason::InvalidNetwork);
		assert_eq!(accept(v1("nowhere"), &offers).unwrap_err().reason, ErrorReason::InvalidNetwork);
	}

	#[test]
	fn payment_ids_are_read_checked_and_written() {
		let mut p = paying(offer("eip155:84532", "1"));
		assert_eq!(payment_id(&p), Ok(None));
		set_payment_id(&mut p, "pay_0123456789abcdef");
		assert_eq!(payment_id(&p), Ok(Some("pay_0123456789abcdef".into())));
		let before = fingerprint(&p);
		set_payment_id(&mut p, "pay_0123456789abcdeX");
		assert_ne!(fingerprint(&p), before);
		for bad in ["short", "has space in it!!", &"x".repeat(129)] {
			set_payment_id(&mut p, bad);
			assert_eq!(payment_id(&p).unwrap_err().reason, ErrorReason::InvalidPayload, "{bad}");
		}
	}
}
