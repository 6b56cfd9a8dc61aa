//! Header codec: x402 headers carry base64 of JSON.
//!
//! Encoding is strict (standard alphabet, `=` padding, compact JSON), because the reference
//! TypeScript implementation rejects anything else. Decoding is lenient: surrounding
//! whitespace, missing padding and the URL-safe alphabet are accepted, since a buyer's or
//! seller's small deviation should not cost a sale.

use base64::{
	engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
	Engine,
};
use serde::{de::DeserializeOwned, Serialize};

/// Why a header could not be decoded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
	#[error("header is empty")]
	Empty,
	#[error("header is not base64: {0}")]
	Base64(String),
	#[error("header is not valid {what} JSON: {reason}")]
	Json { what: &'static str, reason: String },
}

/// Standard base64 of the compact JSON of `value`.
pub fn encode<T: Serialize>(value: &T) -> String {
	STANDARD.encode(serde_json::to_vec(value).expect("x402 types always serialize"))
}

/// The bytes behind a base64 header value, in any common base64 dialect.
pub fn decode_base64(header: &str) -> Result<Vec<u8>, HeaderError> {
	let trimmed = header.trim();
	if trimmed.is_empty() {
		return Err(HeaderError::Empty);
	}
	[&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
		.iter()
		.find_map(|engine| engine.decode(trimmed).ok())
		.ok_or_else(|| {
			HeaderError::Base64(
				STANDARD.decode(trimmed).err().map(|e| e.to_string()).unwrap_or_default(),
			)
		})
}

/// Decodes a header into `T`; `what` names the expected message in errors.
pub fn decode<T: DeserializeOwned>(header: &str, what: &'static str) -> Result<T, HeaderError> {
	let bytes = decode_base64(header)?;
	serde_json::from_slice(&bytes).map_err(|e| HeaderError::Json { what, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn decoding_accepts_the_common_dialects_and_reports_garbage() {
		let json = serde_json::json!({"a": "b?>"});
		let strict = encode(&json);
		assert_eq!(strict, "eyJhIjoiYj8+In0=");
		for variant in
			["eyJhIjoiYj8+In0=", " eyJhIjoiYj8+In0 ", "eyJhIjoiYj8-In0", "eyJhIjoiYj8-In0="]
		{
			assert_eq!(decode::<serde_json::Value>(variant, "test").unwrap(), json, "{variant}");
		}
		assert_eq!(decode::<serde_json::Value>("", "test"), Err(HeaderError::Empty));
		assert!(matches!(decode::<serde_json::Value>("!!!", "test"), Err(HeaderError::Base64(_))));
		assert!(matches!(
			decode::<serde_json::Value>(&STANDARD.encode("{not json"), "PaymentPayload"),
			Err(HeaderError::Json { what: "PaymentPayload", .. })
		));
	}
}
