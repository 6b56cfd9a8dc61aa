//! x402 v1, still met in the wild: requirements in the 402 JSON body, `X-PAYMENT` /
//! `X-PAYMENT-RESPONSE` headers, network names instead of CAIP-2, `maxAmountRequired`.
//! Conversions to and from v2 let one core serve both.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{network, v2};

/// The 402 response body of v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1 {
	pub x402_version: u32,
	#[serde(default)]
	pub error: String,
	pub accepts: Vec<PaymentRequirementsV1>,
}

/// v1 requirements: like v2's, with the resource inline and the amount as a maximum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV1 {
	pub scheme: String,
	pub network: String,
	pub max_amount_required: String,
	pub asset: String,
	pub pay_to: String,
	pub resource: String,
	#[serde(default)]
	pub description: String,
	/// Always present on the wire (possibly empty): the reference v1 client requires it.
	#[serde(default)]
	pub mime_type: String,
	/// Absent rather than `null`: the reference v1 client accepts an object or nothing.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub output_schema: Option<Value>,
	pub max_timeout_seconds: u64,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub extra: Option<Value>,
	#[serde(flatten)]
	pub other: Map<String, Value>,
}

/// The `X-PAYMENT` header of v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV1 {
	pub x402_version: u32,
	pub scheme: String,
	pub network: String,
	pub payload: v2::SchemePayload,
}

/// The `X-PAYMENT-RESPONSE` header of v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponseV1 {
	pub success: bool,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub error_reason: Option<crate::ErrorReason>,
	#[serde(default)]
	pub transaction: String,
	pub network: String,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payer: Option<String>,
}

/// A settlement result as the v1 `X-PAYMENT-RESPONSE` carries it.
pub fn settle_response_to_v1(r: &v2::SettleResponse) -> SettleResponseV1 {
	SettleResponseV1 {
		success: r.success,
		error_reason: r.error_reason.clone(),
		transaction: r.transaction.clone(),
		network: r.network.clone(),
		payer: r.payer.clone(),
	}
}

/// A v1 settlement result in v2 terms (v1 has no message or amount).
pub fn settle_response_from_v1(r: SettleResponseV1) -> v2::SettleResponse {
	v2::SettleResponse {
		success: r.success,
		error_reason: r.error_reason,
		error_message: None,
		transaction: r.transaction,
		network: r.network,
		payer: r.payer,
		amount: None,
		extensions: None,
		extra: None,
	}
}

/// v2 requirements as v1 offers them; `None` when the network has no v1 name.
pub fn requirements_to_v1(
	r: &v2::PaymentRequirements,
	resource: &v2::ResourceInfo,
) -> Option<PaymentRequirementsV1> {
	let name = network::v1_name(network::evm_chain_id(&r.network)?)?;
	Some(PaymentRequirementsV1 {
		scheme: r.scheme.clone(),
		network: name.to_string(),
		max_amount_required: r.amount.clone(),
		asset: r.asset.clone(),
		pay_to: r.pay_to.clone(),
		resource: resource.url.clone(),
		description: resource.description.clone().unwrap_or_default(),
		mime_type: resource.mime_type.clone().unwrap_or_default(),
		output_schema: None,
		max_timeout_seconds: r.max_timeout_seconds,
		extra: r.extra.clone(),
		other: Map::new(),
	})
}

/// A v1 payment as the v2 payment it stands for, given the v2 requirement it pays (matched
/// by scheme and network, since v1 payloads do not echo the requirement).
pub fn payload_to_v2(
	p: &PaymentPayloadV1,
	offered: &[v2::PaymentRequirements],
) -> Option<v2::PaymentPayload> {
	let chain_id = network::v1_chain_id(&p.network)?;
	let accepted = offered
		.iter()
		.find(|r| r.scheme == p.scheme && network::evm_chain_id(&r.network) == Some(chain_id))?;
	Some(v2::PaymentPayload {
		x402_version: 1,
		resource: None,
		accepted: accepted.clone(),
		payload: p.payload.clone(),
		extensions: None,
		other: Map::new(),
	})
}

/// A v1 requirement in v2 terms (CAIP-2 network, `amount`) with the resource it names;
/// `None` when the network name is unknown.
pub fn requirements_from_v1(
	r: &PaymentRequirementsV1,
) -> Option<(v2::PaymentRequirements, v2::ResourceInfo)> {
	let chain_id = network::v1_chain_id(&r.network)?;
	let requirement = v2::PaymentRequirements {
		scheme: r.scheme.clone(),
		network: network::caip2(chain_id),
		amount: r.max_amount_required.clone(),
		asset: r.asset.clone(),
		pay_to: r.pay_to.clone(),
		max_timeout_seconds: r.max_timeout_seconds,
		extra: r.extra.clone(),
		other: Map::new(),
	};
	let resource = v2::ResourceInfo {
		url: r.resource.clone(),
		description: (!r.description.is_empty()).then(|| r.description.clone()),
		mime_type: (!r.mime_type.is_empty()).then(|| r.mime_type.clone()),
	};
	Some((requirement, resource))
}

/// A v2 payment as the v1 `X-PAYMENT` header carries it; `None` when the network has no v1
/// name.
pub fn payload_from_v2(p: &v2::PaymentPayload) -> Option<PaymentPayloadV1> {
	let name = network::v1_name(network::evm_chain_id(&p.accepted.network)?)?;
	Some(PaymentPayloadV1 {
		x402_version: 1,
		scheme: p.accepted.scheme.clone(),
		network: name.to_string(),
		payload: p.payload.clone(),
	})
}
