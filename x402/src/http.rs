//! x402 over HTTP: which header carries what, in both versions, for sellers and buyers alike.
//!
//! Pure mapping between header values (and the v1 402 body) and the protocol types; the axum
//! layer and the reqwest client are thin shells around it.

use crate::{
	codec,
	paywall::{self, IncomingPayment},
	v1::{self, PaymentRequiredV1, SettleResponseV1},
	v2::{PaymentPayload, PaymentRequired, SettleResponse},
	ErrorReason, Problem,
};

pub use crate::headers::*;

/// The headers that browsers must be allowed to read (CORS `Access-Control-Expose-Headers`).
pub const EXPOSED_HEADERS: &str = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE";

/// Seller: the payment in a request's `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1) header;
/// `Ok(None)` when there is none.
pub fn read_payment(
	payment_signature: Option<&str>,
	x_payment: Option<&str>,
) -> Result<Option<IncomingPayment>, Problem> {
	let Some((name, value)) =
		payment_signature.map(|v| (PAYMENT_SIGNATURE, v)).or(x_payment.map(|v| (X_PAYMENT, v)))
	else {
		return Ok(None);
	};
	let json = codec::decode_base64(value)
		.map_err(|e| Problem::new(ErrorReason::InvalidPayload, format!("{name}: {e}")))?;
	paywall::parse_payment(&json)
		.map(Some)
		.map_err(|r| Problem { message: format!("{name}: {}", r.message), ..r })
}

/// Seller: a 402's `PAYMENT-REQUIRED` header value and its body. The body is the v1 form of
/// the same offers, so that v1 buyers can pay too (offers on networks v1 cannot name are left
/// out of it).
pub fn payment_required(required: &PaymentRequired) -> (String, Vec<u8>) {
	let body = PaymentRequiredV1 {
		x402_version: 1,
		error: required.error.clone().unwrap_or_else(|| format!("{X_PAYMENT} header is required")),
		accepts: required
			.accepts
			.iter()
			.filter_map(|r| v1::requirements_to_v1(r, &required.resource))
			.collect(),
	};
	(codec::encode(required), serde_json::to_vec(&body).expect("x402 types always serialize"))
}

/// Seller: the settlement header for a buyer that spoke `version`.
pub fn settlement_header(version: u32, response: &SettleResponse) -> (&'static str, String) {
	if version == 1 {
		(X_PAYMENT_RESPONSE, codec::encode(&v1::settle_response_to_v1(response)))
	} else {
		(PAYMENT_RESPONSE, codec::encode(response))
	}
}

/// Why a buyer could not read what a 402 asks for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
	#[error("the 402 response has no {PAYMENT_REQUIRED} header and no v1 JSON body")]
	Missing,
	#[error("{PAYMENT_REQUIRED}: {0}")]
	Header(codec::HeaderError),
	#[error("the 402 body is not a v1 payment-required message: {0}")]
	Body(String),
}

/// What a 402 asks for, in v2 terms, and the version to answer in.
#[derive(Clone, Debug, PartialEq)]
pub struct Required {
	pub version: u32,
	pub required: PaymentRequired,
}

/// Buyer: reads `PAYMENT-REQUIRED` first and falls back to a v1 body.
pub fn read_payment_required(header: Option<&str>, body: &[u8]) -> Result<Required, ReadError> {
	if let Some(value) = header {
		let required = codec::decode(value, "PaymentRequired").map_err(ReadError::Header)?;
		return Ok(Required { version: 2, required });
	}
	if body.iter().all(u8::is_ascii_whitespace) {
		return Err(ReadError::Missing);
	}
	let v1: PaymentRequiredV1 =
		serde_json::from_slice(body).map_err(|e| ReadError::Body(e.to_string()))?;
	let mut resource = None;
	let accepts = v1
		.accepts
		.iter()
		.filter_map(v1::requirements_from_v1)
		.map(|(r, res)| {
			resource.get_or_insert(res);
			r
		})
		.collect();
	let required = PaymentRequired {
		x402_version: 1,
		error: (!v1.error.is_empty()).then_some(v1.error),
		resource: resource.unwrap_or_else(|| crate::v2::ResourceInfo {
			url: String::new(),
			description: None,
			mime_type: None,
		}),
		accepts,
		extensions: None,
		other: Default::default(),
	};
	Ok(Required { version: 1, required })
}

/// Buyer: the header that carries `payment` in `version`; `None` if v1 cannot name its
/// network.
pub fn payment_header(version: u32, payment: &PaymentPayload) -> Option<(&'static str, String)> {
	if version == 1 {
		Some((X_PAYMENT, codec::encode(&v1::payload_from_v2(payment)?)))
	} else {
		Some((PAYMENT_SIGNATURE, codec::encode(payment)))
	}
}

/// Buyer: the settlement result in a response, if the seller sent one.
pub fn read_settlement(
	payment_response: Option<&str>,
	x_payment_response: Option<&str>,
) -> Option<Result<SettleResponse, codec::HeaderError>> {
	if let Some(v) = payment_response {
		return Some(codec::decode(v, "SettleResponse"));
	}
	let v1: Result<SettleResponseV1, _> = codec::decode(x_payment_response?, "SettleResponse");
	Some(v1.map(v1::settle_response_from_v1))
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::v2::{PaymentRequirements, ResourceInfo};
	use serde_json::json;

	fn offer(network: &str) -> PaymentRequirements {
		serde_json::from_value(json!({
			"scheme": "exact", "network": network, "amount": "10000",
			"asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
			"payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
			"maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}
		}))
		.unwrap()
	}

	#[test]
	fn a_402_reads_back_the_same_in_both_versions() {
		let resource = ResourceInfo {
			url: "http://127.0.0.1/reading".into(),
			description: Some("one reading".into()),
			mime_type: Some("application/json".into()),
		};
		let offers = vec![offer("eip155:84532"), offer("eip155:33380")];
		let required = paywall::payment_required(resource.clone(), offers.clone(), None);
		let (header, body) = payment_required(&required);

		let v2 = read_payment_required(Some(&header), &body).unwrap();
		assert_eq!(v2, Required { version: 2, required: required.clone() });

		// v1 cannot name eip155:33380, so only the Base Sepolia offer survives.
		let v1 = read_payment_required(None, &body).unwrap();
		assert_eq!(v1.version, 1);
		assert_eq!(v1.required.accepts, vec![offers[0].clone()]);
		assert_eq!(v1.required.resource, resource);
		assert_eq!(v1.required.error.as_deref(), Some("X-PAYMENT header is required"));
	}

	#[test]
	fn unreadable_402s_and_payments_say_where_the_problem_is() {
		assert_eq!(read_payment_required(None, b""), Err(ReadError::Missing));
		assert!(matches!(read_payment_required(Some("%%"), b""), Err(ReadError::Header(_))));
		assert!(matches!(read_payment_required(None, b"<html>"), Err(ReadError::Body(_))));

		assert_eq!(read_payment(None, None), Ok(None));
		let e = read_payment(Some("not base64!"), None).unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidPayload);
		assert!(e.message.starts_with("PAYMENT-SIGNATURE: header is not base64"), "{}", e.message);
		let e = read_payment(None, Some(&codec::encode(&json!({"x402Version": 7})))).unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidX402Version);
		assert_eq!(e.message, "X-PAYMENT: x402Version 7 is not supported (1 or 2)");
	}

	#[test]
	fn payments_and_settlements_travel_in_the_version_they_came_in() {
		let payment: PaymentPayload = serde_json::from_value(json!({
			"x402Version": 2, "accepted": offer("eip155:84532"), "payload": {"x": 1}
		}))
		.unwrap();
		let (name, value) = payment_header(2, &payment).unwrap();
		assert_eq!(name, PAYMENT_SIGNATURE);
		assert_eq!(
			read_payment(Some(&value), None),
			Ok(Some(IncomingPayment::V2(payment.clone())))
		);
		let (name, value) = payment_header(1, &payment).unwrap();
		assert_eq!(name, X_PAYMENT);
		let Ok(Some(IncomingPayment::V1(v1))) = read_payment(None, Some(&value)) else { panic!() };
		assert_eq!(v1.network, "base-sepolia");

		let settled = SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: "0xabc".into(),
			network: "eip155:84532".into(),
			payer: Some("0x01".into()),
			amount: Some("10000".into()),
			extensions: None,
			extra: None,
		};
		let (name, value) = settlement_header(2, &settled);
		assert_eq!(name, PAYMENT_RESPONSE);
		assert_eq!(read_settlement(Some(&value), None), Some(Ok(settled.clone())));
		let (name, value) = settlement_header(1, &settled);
		assert_eq!(name, X_PAYMENT_RESPONSE);
		let back = read_settlement(None, Some(&value)).unwrap().unwrap();
		assert_eq!((back.success, back.transaction), (true, "0xabc".to_string()));
		assert_eq!(read_settlement(None, None), None);
	}
}
