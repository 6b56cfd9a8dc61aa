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

/// A scheme's payload. Typed for the schemes this crate knows, so that it re-encodes in the
/// spec's field order; anything else is kept as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SchemePayload {
	ExactEvm(crate::exact::ExactEvmPayload),
	Other(Value),
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

impl PaymentPayload {
	/// A v2 payment of `accepted` (echoed verbatim, as matching requires) with an exact/EVM
	/// payload.
	pub fn exact(accepted: PaymentRequirements, payload: crate::exact::ExactEvmPayload) -> Self {
		Self {
			x402_version: crate::X402_VERSION,
			resource: None,
			accepted,
			payload: SchemePayload::ExactEvm(payload),
			extensions: None,
			other: Map::new(),
		}
	}
}

impl PaymentPayload {
	/// The exact/EVM payload, if that is what this payment carries.
	pub fn exact_evm(&self) -> Option<&crate::exact::ExactEvmPayload> {
		match &self.payload {
			SchemePayload::ExactEvm(p) => Some(p),
			SchemePayload::Other(_) => None,
		}
	}

	/// The payer the authorization names (exact/EVM); unverified until checked.
	pub fn payer(&self) -> Option<&str> {
		self.exact_evm().map(|p| p.authorization.from.as_str())
	}
}

impl PaymentRequirements {
	/// `extra.name` and `extra.version`: the token's EIP-712 domain, if present.
	pub fn eip712_name_version(&self) -> Option<(&str, &str)> {
		let extra = self.extra.as_ref()?;
		Some((extra.get("name")?.as_str()?, extra.get("version")?.as_str()?))
	}
}
