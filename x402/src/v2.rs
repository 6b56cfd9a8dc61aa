//! x402 v2 wire types. Field order follows the spec's examples, so that encoding them
//! reproduces the published headers byte for byte. Unknown fields are kept (`other`) and
//! round-trip untouched, as are `extra` and `extensions`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ErrorReason;

/// What a 402 response offers (`PAYMENT-REQUIRED`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
	pub x402_version: u32,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub error: Option<String>,
	pub resource: ResourceInfo,
	pub accepts: Vec<PaymentRequirements>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extensions: Option<Value>,
	#[serde(flatten)]
	pub other: Map<String, Value>,
}

/// The paid resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
	pub url: String,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub description: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub mime_type: Option<String>,
}

/// One way to pay: scheme, network, amount (decimal string, token base units), asset, payee.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
	pub scheme: String,
	pub network: String,
	pub amount: String,
	pub asset: String,
	pub pay_to: String,
	pub max_timeout_seconds: u64,
	/// exact/EVM: `{name, version}` of the token's EIP-712 domain (and optionally
	/// `assetTransferMethod`).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extra: Option<Value>,
	#[serde(flatten)]
	pub other: Map<String, Value>,
}

/// What the buyer sends (`PAYMENT-SIGNATURE`): the requirement it accepted, verbatim, and the
/// scheme's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
	pub x402_version: u32,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub resource: Option<ResourceInfo>,
	pub accepted: PaymentRequirements,
	pub payload: SchemePayload,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extensions: Option<Value>,
	#[serde(flatten)]
	pub other: Map<String, Value>,
}

/// A scheme's payload: a JSON value this layer does not interpret. Which scheme's type it is
/// follows from `accepted.scheme`, so [`crate::schemes`] parses it, never the shape of the
/// JSON (two schemes' payloads may look alike: both exact and batch-settlement deposits carry
/// an EIP-3009 authorization).
///
/// It is kept as the exact text that arrived (or that a scheme's type encoded to), so that a
/// payment re-encodes byte for byte and in the spec's field order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchemePayload(Box<serde_json::value::RawValue>);

impl SchemePayload {
	/// A scheme's typed payload, encoded in its fields' order.
	pub fn encode<T: Serialize>(payload: &T) -> Self {
		Self(serde_json::value::to_raw_value(payload).expect("scheme payloads encode as JSON"))
	}

	/// The payload as a scheme's type.
	pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
		serde_json::from_str(self.0.get())
	}

	/// The JSON text.
	pub fn json(&self) -> &str {
		self.0.get()
	}
}

/// Equal as JSON values: the same payload re-encoded by a path that does not keep field order
/// (through `serde_json::Value`) is the same payment.
impl PartialEq for SchemePayload {
	fn eq(&self, other: &Self) -> bool {
		self.0.get() == other.0.get()
			|| serde_json::from_str::<Value>(self.0.get()).ok()
				== serde_json::from_str::<Value>(other.0.get()).ok()
	}
}

/// The settlement result (`PAYMENT-RESPONSE`), sent on success and on failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
	pub success: bool,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub error_reason: Option<ErrorReason>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub error_message: Option<String>,
	/// The settlement transaction hash; empty on failure.
	#[serde(default)]
	pub transaction: String,
	pub network: String,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payer: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub amount: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extensions: Option<Value>,
	/// Scheme-specific results: a channel's state for `batch-settlement`.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extra: Option<Value>,
}

/// A facilitator's verification answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
	pub is_valid: bool,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub invalid_reason: Option<ErrorReason>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub invalid_message: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payer: Option<String>,
	/// Scheme-specific results: the channel's on-chain state for `batch-settlement`.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extra: Option<Value>,
}

/// The body of a facilitator's `POST /verify` and `POST /settle`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FacilitatorRequest {
	pub x402_version: u32,
	pub payment_payload: PaymentPayload,
	pub payment_requirements: PaymentRequirements,
}

/// One payment kind a facilitator supports (`GET /supported`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
	pub x402_version: u32,
	pub scheme: String,
	pub network: String,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extra: Option<Value>,
}

/// `GET /supported`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedResponse {
	pub kinds: Vec<SupportedKind>,
	#[serde(default)]
	pub extensions: Vec<Value>,
	/// CAIP-2 pattern (e.g. `eip155:*`) to the addresses that submit settlements.
	#[serde(default)]
	pub signers: Map<String, Value>,
}

impl PaymentRequirements {
	/// `extra.name` and `extra.version`: the token's EIP-712 domain, if present.
	pub fn eip712_name_version(&self) -> Option<(&str, &str)> {
		let extra = self.extra.as_ref()?;
		Some((extra.get("name")?.as_str()?, extra.get("version")?.as_str()?))
	}
}
