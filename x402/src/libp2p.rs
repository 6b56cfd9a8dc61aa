//! x402 over libp2p: the messages of the request-response protocol [`PROTOCOL`], for sellers
//! and buyers alike. The twin of [`crate::http`]: pure mapping between the messages and the
//! protocol types, with no I/O. The libp2p codec and swarm (`m2m-p2p`) are thin shells around
//! it. The written specification is `docs/transports/libp2p.md`.
//!
//! - One stream carries one exchange: a [`X402Request`] out, a [`X402Response`] back.
//! - Each message is framed as an unsigned-varint length, then that many bytes of UTF-8
//!   JSON ([`frame`]).
//! - The x402 objects travel as the same JSON objects as on HTTP, not base64: `payment` is the
//!   `PaymentPayload`; `paymentRequired` is the `PaymentRequired`; `paymentResponse` is the
//!   `SettleResponse`.
//! - A response's `status` has HTTP's meaning (200, 402, 409, 413, 502, …), so that one rule
//!   reads a seller's answer on either transport.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod stream;

use crate::{
	paywall::{self, IncomingPayment},
	v2::{PaymentPayload, PaymentRequired, SettleResponse},
	ErrorReason, Problem,
};

/// The protocol id, negotiated by multistream-select. Its version changes with any
/// incompatible change of the messages.
pub const PROTOCOL: &str = "/x402/1.0.0";

/// The largest request accepted, in bytes (its JSON, without the length prefix). A payment is
/// about 2 KiB; 64 KiB leaves room for any extension without letting a stranger make the seller
/// buffer much.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The largest response accepted, in bytes: a 16 MiB resource (what the HTTP layer buffers),
/// base64-encoded, and its settlement.
pub const MAX_RESPONSE_BYTES: usize = 24 * 1024 * 1024;

/// Statuses, with HTTP's meaning.
pub mod status {
	pub const OK: u16 = 200;
	pub const BAD_REQUEST: u16 = 400;
	pub const PAYMENT_REQUIRED: u16 = 402;
	pub const FORBIDDEN: u16 = 403;
	pub const NOT_FOUND: u16 = 404;
	pub const CONFLICT: u16 = 409;
	pub const TOO_LARGE: u16 = 413;
	pub const INTERNAL: u16 = 500;
	pub const BAD_GATEWAY: u16 = 502;
	pub const UNAVAILABLE: u16 = 503;
}

/// A buyer's request for a resource, with its payment when it pays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X402Request {
	/// The resource's path and query, as on HTTP: `/energy?kwh=3`.
	pub resource: String,
	/// The `PaymentPayload`, as a JSON object. Kept as JSON until the seller reads it, so that a
	/// malformed payment gets x402's precise reason, not a framing error.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payment: Option<Value>,
}

impl X402Request {
	/// An unpaid request: the seller answers what it costs.
	pub fn unpaid(resource: impl Into<String>) -> Self {
		Self { resource: resource.into(), payment: None }
	}

	/// A request carrying `payment`.
	pub fn paid(resource: impl Into<String>, payment: &PaymentPayload) -> Self {
		let payment = serde_json::to_value(payment).expect("x402 types always serialize");
		Self { resource: resource.into(), payment: Some(payment) }
	}

	/// Seller: the request's path and its query (without `?`).
	pub fn path_and_query(&self) -> (&str, Option<&str>) {
		match self.resource.split_once('?') {
			Some((path, query)) => (path, Some(query)),
			None => (self.resource.as_str(), None),
		}
	}

	/// Seller: the payment, if any, read by the same rules as an HTTP payment header.
	pub fn read_payment(&self) -> Option<Result<IncomingPayment, Problem>> {
		Some(read_payment_value(self.payment.as_ref()?))
	}
}

/// A message's `payment`, read by the same rules as an HTTP payment header.
fn read_payment_value(payment: &Value) -> Result<IncomingPayment, Problem> {
	if !payment.is_object() {
		return Err(Problem::new(
			ErrorReason::InvalidPayload,
			"payment: must be the PaymentPayload JSON object (not base64, not a string)",
		));
	}
	let json = serde_json::to_vec(payment).expect("a JSON value always serializes");
	paywall::parse_payment(&json)
		.map_err(|r| Problem { message: format!("payment: {}", r.message), ..r })
}

/// A seller's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X402Response {
	/// What happened, with HTTP's meaning: 200 delivered, 402 pay (again), 409 payment id in use
	/// or in progress, 400 malformed request, 403 peer refused, 404 no such resource, 413
	/// request too large, 502 the seller's facilitator unreachable, 503 settled but withheld, any
	/// other status of 400 or more the resource not produced (and not charged).
	pub status: u16,
	/// On 402: what to pay, with the reason the last payment was refused in its `error`.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payment_required: Option<PaymentRequired>,
	/// The settlement of the request's payment, on success and on failure.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payment_response: Option<SettleResponse>,
	/// A machine-readable error code, on statuses of 400 or more (`payment_id_conflict`,
	/// `facilitator_unavailable`, `sale_not_recorded`, `message_too_large`, …).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub error: Option<String>,
	/// A sentence for people.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub message: Option<String>,
	/// The resource's media type, when delivered.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub mime_type: Option<String>,
	/// The resource itself, standard base64 (it may be binary).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub body: Option<String>,
}

impl X402Response {
	fn status(status: u16) -> Self {
		Self {
			status,
			payment_required: None,
			payment_response: None,
			error: None,
			message: None,
			mime_type: None,
			body: None,
		}
	}

	/// 200 with nothing attached (a metered stream's interval close and end).
	pub fn ok() -> Self {
		Self::status(status::OK)
	}

	/// 402: what to pay.
	pub fn payment_required(required: PaymentRequired) -> Self {
		Self { payment_required: Some(required), ..Self::status(status::PAYMENT_REQUIRED) }
	}

	/// An error `code` with its sentence, at `status`.
	pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
		Self { error: Some(code.into()), message: Some(message.into()), ..Self::status(status) }
	}

	/// 200: the resource.
	pub fn delivered(body: &[u8], mime_type: Option<String>) -> Self {
		use base64::Engine;
		Self {
			body: Some(base64::engine::general_purpose::STANDARD.encode(body)),
			mime_type,
			..Self::status(status::OK)
		}
	}

	/// The same answer with the payment's settlement attached.
	pub fn with_settlement(mut self, settlement: SettleResponse) -> Self {
		self.payment_response = Some(settlement);
		self
	}

	/// Buyer: the resource's bytes (empty when there is none).
	pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
		use base64::Engine;
		match &self.body {
			None => Ok(Vec::new()),
			Some(b) => base64::engine::general_purpose::STANDARD
				.decode(b)
				.map_err(|e| format!("the response body is not base64: {e}")),
		}
	}

	/// Buyer: why the seller answered as it did, in one sentence (`code: message`), if it said.
	pub fn reason(&self) -> Option<String> {
		let required = self.payment_required.as_ref().and_then(|r| r.error.clone());
		required.or_else(|| match (&self.error, &self.message) {
			(Some(code), Some(message)) => Some(format!("{code}: {message}")),
			(Some(code), None) => Some(code.clone()),
			(None, message) => message.clone(),
		})
	}
}

/// Message framing: an unsigned-varint length (LEB128, at most 9 bytes, as multiformats
/// define it), then that many bytes.
pub mod frame {
	/// The longest length prefix read.
	pub const MAX_PREFIX: usize = 9;

	/// The length prefix of a message of `len` bytes.
	pub fn prefix(len: usize) -> Vec<u8> {
		let mut out = Vec::with_capacity(MAX_PREFIX);
		let mut n = len as u64;
		loop {
			let byte = (n & 0x7f) as u8;
			n >>= 7;
			if n == 0 {
				out.push(byte);
				return out;
			}
			out.push(byte | 0x80);
		}
	}

	/// Why a prefix is not a length.
	#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
	pub enum PrefixError {
		#[error("the length prefix is longer than {MAX_PREFIX} bytes")]
		TooLong,
		#[error("the length prefix is not minimal")]
		NotMinimal,
	}

	/// Reads a length from `bytes`, the prefix so far: `Ok(None)` while more bytes are needed,
	/// else the length and how many bytes the prefix took.
	pub fn read_prefix(bytes: &[u8]) -> Result<Option<(usize, usize)>, PrefixError> {
		let mut n: u64 = 0;
		for (i, byte) in bytes.iter().enumerate() {
			if i >= MAX_PREFIX {
				return Err(PrefixError::TooLong);
			}
			n |= u64::from(byte & 0x7f) << (7 * i);
			if byte & 0x80 == 0 {
				// A trailing zero byte would make two encodings of one length.
				if i > 0 && *byte == 0 {
					return Err(PrefixError::NotMinimal);
				}
				return Ok(Some((n as usize, i + 1)));
			}
		}
		if bytes.len() >= MAX_PREFIX {
			return Err(PrefixError::TooLong);
		}
		Ok(None)
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::v2::{PaymentRequirements, ResourceInfo};
	use serde_json::json;

	fn offer() -> PaymentRequirements {
		serde_json::from_value(json!({
			"scheme": "exact", "network": "eip155:33380", "amount": "10000",
			"asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
			"payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
			"maxTimeoutSeconds": 60, "extra": {"name": "Tether USD", "version": "1"}
		}))
		.unwrap()
	}

	#[test]
	fn messages_round_trip_as_plain_json_objects() {
		let payment: PaymentPayload = serde_json::from_value(json!({
			"x402Version": 2, "accepted": offer(), "payload": {"signature": "0x01"}
		}))
		.unwrap();
		let request = X402Request::paid("/energy?kwh=3", &payment);
		let wire = serde_json::to_value(&request).unwrap();
		assert_eq!(wire["payment"]["accepted"]["payTo"], json!(offer().pay_to));
		assert_eq!(serde_json::from_value::<X402Request>(wire).unwrap(), request);
		assert_eq!(request.path_and_query(), ("/energy", Some("kwh=3")));
		assert_eq!(request.read_payment(), Some(Ok(IncomingPayment::V2(payment))));
		assert_eq!(X402Request::unpaid("/reading").path_and_query(), ("/reading", None));

		let resource = ResourceInfo { url: "/reading".into(), description: None, mime_type: None };
		let required = paywall::payment_required(resource, vec![offer()], None);
		let answer = X402Response::payment_required(required.clone());
		let wire = serde_json::to_string(&answer).unwrap();
		assert!(wire.starts_with(r#"{"status":402,"paymentRequired":{"x402Version":2"#), "{wire}");
		assert_eq!(serde_json::from_str::<X402Response>(&wire).unwrap(), answer);

		let settled = SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: "0xabc".into(),
			network: "eip155:33380".into(),
			payer: Some("0x01".into()),
			amount: Some("10000".into()),
			extensions: None,
			extra: None,
		};
		let delivered = X402Response::delivered(b"21.5 \xc2\xb0C", Some("text/plain".into()))
			.with_settlement(settled.clone());
		let back: X402Response =
			serde_json::from_slice(&serde_json::to_vec(&delivered).unwrap()).unwrap();
		assert_eq!(back.body_bytes().unwrap(), "21.5 °C".as_bytes());
		assert_eq!(back.payment_response, Some(settled));
	}

	#[test]
	fn a_bad_payment_gets_x402s_reason() {
		let base64 = X402Request { resource: "/r".into(), payment: Some(json!("eyJ4NDAy")) };
		let e = base64.read_payment().unwrap().unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidPayload);
		assert!(e.message.contains("not base64"), "{}", e.message);
		let wrong = X402Request { resource: "/r".into(), payment: Some(json!({"x402Version": 7})) };
		let e = wrong.read_payment().unwrap().unwrap_err();
		assert_eq!(e.reason, ErrorReason::InvalidX402Version);
		assert_eq!(e.message, "payment: x402Version 7 is not supported (1 or 2)");
		assert_eq!(X402Request::unpaid("/r").read_payment(), None);
	}

	#[test]
	fn the_reason_of_an_answer_is_one_sentence() {
		let conflict = X402Response::error(status::CONFLICT, "payment_id_conflict", "in use");
		assert_eq!(conflict.reason().as_deref(), Some("payment_id_conflict: in use"));
		assert_eq!(X402Response::delivered(b"", None).reason(), None);
		let broken = X402Response { body: Some("!!".into()), ..X402Response::delivered(b"", None) };
		assert!(broken.body_bytes().unwrap_err().contains("not base64"));
	}

	#[test]
	fn length_prefixes_are_minimal_unsigned_varints() {
		// Vectors from the multiformats unsigned-varint spec.
		for (len, bytes) in [
			(1usize, vec![0x01]),
			(127, vec![0x7f]),
			(128, vec![0x80, 0x01]),
			(255, vec![0xff, 0x01]),
			(300, vec![0xac, 0x02]),
			(16384, vec![0x80, 0x80, 0x01]),
		] {
			assert_eq!(frame::prefix(len), bytes, "{len}");
			assert_eq!(frame::read_prefix(&bytes), Ok(Some((len, bytes.len()))));
		}
		assert_eq!(frame::read_prefix(&[0x80]), Ok(None), "more bytes are needed");
		assert_eq!(frame::read_prefix(&[0x81, 0x00]), Err(frame::PrefixError::NotMinimal));
		assert_eq!(frame::read_prefix(&[0xff; 10]), Err(frame::PrefixError::TooLong));
		assert_eq!(frame::read_prefix(&[0x2a, 0xff]), Ok(Some((42, 1))), "the body may follow");
	}
}
