//! The scheme's wire types, exactly as the specification writes them: amounts are decimal
//! strings, `withdrawDelay` is a JSON number, bytes are `0x`-hex, and a payload's `type` names
//! what it carries.

use serde::{Deserialize, Serialize};

/// A channel's configuration as a payload carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelConfigWire {
	pub payer: String,
	pub payer_authorizer: String,
	pub receiver: String,
	pub receiver_authorizer: String,
	pub token: String,
	pub withdraw_delay: u64,
	pub salt: String,
}

/// A signed cumulative voucher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoucherWire {
	pub channel_id: String,
	pub max_claimable_amount: String,
	pub signature: String,
}

/// The payer's EIP-3009 `ReceiveWithAuthorization` of a deposit, to the deposit collector, with
/// the nonce `keccak256(abi.encode(channelId, salt))`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Erc3009DepositAuthorization {
	pub valid_after: String,
	pub valid_before: String,
	/// `0x` + 32 bytes, read as a `uint256`.
	pub salt: String,
	pub signature: String,
}

/// How a deposit is authorized: EIP-3009 (the only method this implementation settles; a
/// Permit2 authorization is recognised and refused with a precise reason).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositAuthorization {
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub erc3009_authorization: Option<Erc3009DepositAuthorization>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub permit2_authorization: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositWire {
	pub amount: String,
	pub authorization: DepositAuthorization,
}

/// What a payer sends with a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChannelPayload {
	/// Opens or tops up the channel, and pays this request with the bundled voucher.
	#[serde(rename_all = "camelCase")]
	Deposit { channel_config: ChannelConfigWire, voucher: VoucherWire, deposit: DepositWire },
	/// Pays this request with a voucher of `charged + price`.
	#[serde(rename_all = "camelCase")]
	Voucher { channel_config: ChannelConfigWire, voucher: VoucherWire },
	/// Asks the receiver to return `amount` (everything unclaimed, without it); the voucher's
	/// bound equals what was charged so far.
	#[serde(rename_all = "camelCase")]
	Refund {
		channel_config: ChannelConfigWire,
		voucher: VoucherWire,
		#[serde(default, skip_serializing_if = "Option::is_none")]
		amount: Option<String>,
	},
}

impl ChannelPayload {
	pub fn channel_config(&self) -> &ChannelConfigWire {
		match self {
			ChannelPayload::Deposit { channel_config, .. }
			| ChannelPayload::Voucher { channel_config, .. }
			| ChannelPayload::Refund { channel_config, .. } => channel_config,
		}
	}

	pub fn voucher(&self) -> &VoucherWire {
		match self {
			ChannelPayload::Deposit { voucher, .. }
			| ChannelPayload::Voucher { voucher, .. }
			| ChannelPayload::Refund { voucher, .. } => voucher,
		}
	}
}

/// A voucher claim row as a receiver sends it to a facilitator: the voucher (its channel's
/// config and bound), its signature, and the channel's new claimed total (at most the bound).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoucherClaimWire {
	pub voucher: ClaimedVoucherWire,
	pub signature: String,
	pub total_claimed: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedVoucherWire {
	pub channel: ChannelConfigWire,
	pub max_claimable_amount: String,
}

/// What a receiver asks a facilitator to do with its channels (never sent by a payer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ReceiverPayload {
	/// Claim these vouchers; without `claimAuthorizerSignature` the facilitator signs the batch
	/// itself, which it may only do as the rows' receiver authorizer.
	#[serde(rename_all = "camelCase")]
	Claim {
		claims: Vec<VoucherClaimWire>,
		#[serde(default, skip_serializing_if = "Option::is_none")]
		claim_authorizer_signature: Option<String>,
	},
	/// Pay `receiver` everything claimed for it in `token`.
	Settle { receiver: String, token: String },
	/// A payer's refund request, enriched by the receiver (see [`EnrichedRefund`]).
	Refund(Box<EnrichedRefund>),
}

/// A payer's refund request, enriched by the receiver: first claim what was charged
/// (`claims`), then return `amount` to the payer under `refundNonce` (one `multicall`). The
/// receiver authorizer's signatures may come with it; without them the facilitator signs as
/// the receiver authorizer, and then only with `receiverSignature`: the channel receiver's own
/// EIP-712 signature of the same `Refund` message. That field is ours: without it, anyone (the
/// payer first) could have a facilitator refund what was served and not claimed yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrichedRefund {
	pub channel_config: ChannelConfigWire,
	pub voucher: VoucherWire,
	pub amount: String,
	pub refund_nonce: String,
	pub claims: Vec<VoucherClaimWire>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub refund_authorizer_signature: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub claim_authorizer_signature: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub receiver_signature: Option<String>,
}

/// A channel's state as a receiver reports it (`PAYMENT-RESPONSE.extra.channelState`, the
/// corrective 402's `extra.channelState`, the facilitator's `channelState`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStateWire {
	pub channel_id: String,
	pub balance: String,
	pub total_claimed: String,
	/// Unix seconds a pending withdrawal was initiated at; 0 when none is pending.
	pub withdraw_requested_at: u64,
	pub refund_nonce: String,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub charged_cumulative_amount: Option<String>,
}

/// The last voucher a receiver holds, shown in a corrective 402 so that a payer that lost its
/// state can check the signature (its own) and resume from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoucherStateWire {
	pub signed_max_claimable: String,
	pub signature: String,
}

/// `PaymentRequirements.extra` of a batch-settlement offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelExtra {
	pub receiver_authorizer: String,
	pub withdraw_delay: u64,
	/// The token's EIP-712 domain (for the deposit's EIP-3009 signature).
	pub name: String,
	pub version: String,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub asset_transfer_method: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub channel_state: Option<ChannelStateWire>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub voucher_state: Option<VoucherStateWire>,
}

/// `PAYMENT-RESPONSE.extra` for a request paid from a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeExtra {
	/// What this request cost (at most the offer's `amount`).
	pub charged_amount: String,
	pub channel_state: ChannelStateWire,
}

/// Serde for an amount kept as a `u128` and written as the wire writes amounts: a decimal
/// string (`#[serde(with = "decimal")]`), so that stored records read like the payloads.
pub mod decimal {
	use serde::{Deserialize, Deserializer, Serializer};

	pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
		s.collect_str(value)
	}

	pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
		let s = String::deserialize(d)?;
		s.parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is not an amount")))
	}
}

#[cfg(test)]
mod tests {
	use serde_json::json;

	use super::*;

	#[test]
	fn the_specs_deposit_example_parses_and_writes_back_identically() {
		let example = json!({
			"type": "deposit",
			"channelConfig": {
				"payer": "0xClientAddress",
				"payerAuthorizer": "0xClientPayerAuthorizerEOA",
				"receiver": "0xServerReceiverAddress",
				"receiverAuthorizer": "0xReceiverAuthorizerAddress",
				"token": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
				"withdrawDelay": 900,
				"salt": "0x0000000000000000000000000000000000000000000000000000000000000000"
			},
			"voucher": {
				"channelId": "0xabc123...channelId",
				"maxClaimableAmount": "1000",
				"signature": "0x...EIP-712 voucher signature"
			},
			"deposit": {
				"amount": "100000",
				"authorization": { "erc3009Authorization": {
					"validAfter": "0",
					"validBefore": "1770000000",
					"salt": "0x...authorization salt",
					"signature": "0x...ERC-3009 signature"
				} }
			}
		});
		let payload: ChannelPayload = serde_json::from_value(example.clone()).unwrap();
		let ChannelPayload::Deposit { deposit, voucher, .. } = &payload else {
			panic!("a deposit: {payload:?}")
		};
		assert_eq!(deposit.amount, "100000");
		assert_eq!(voucher.max_claimable_amount, "1000");
		assert_eq!(payload.channel_config().withdraw_delay, 900);
		assert_eq!(serde_json::to_value(&payload).unwrap(), example);
	}

	#[test]
	fn a_refund_without_an_amount_refunds_everything_and_an_unknown_type_is_refused() {
		let refund: ChannelPayload = serde_json::from_value(json!({
			"type": "refund",
			"channelConfig": {"payer": "0x1", "payerAuthorizer": "0x1", "receiver": "0x2",
				"receiverAuthorizer": "0x3", "token": "0x4", "withdrawDelay": 900, "salt": "0x0"},
			"voucher": {"channelId": "0x5", "maxClaimableAmount": "0", "signature": "0x6"}
		}))
		.unwrap();
		assert!(matches!(refund, ChannelPayload::Refund { amount: None, .. }));
		let unknown = serde_json::from_value::<ChannelPayload>(json!({"type": "claim"}));
		assert!(unknown.unwrap_err().to_string().contains("unknown variant `claim`"));
	}

	#[test]
	fn a_payers_refund_is_not_a_receivers_and_the_enriched_one_is() {
		let bare = json!({
			"type": "refund",
			"channelConfig": {"payer": "0x1", "payerAuthorizer": "0x1", "receiver": "0x2",
				"receiverAuthorizer": "0x3", "token": "0x4", "withdrawDelay": 900, "salt": "0x0"},
			"voucher": {"channelId": "0x5", "maxClaimableAmount": "70", "signature": "0x6"}
		});
		// A payer cannot pass its own refund off as the receiver's: it lacks the nonce and
		// the claims the receiver adds.
		assert!(serde_json::from_value::<ReceiverPayload>(bare.clone()).is_err());
		let mut enriched = bare;
		enriched["amount"] = json!("30");
		enriched["refundNonce"] = json!("0");
		enriched["claims"] = json!([]);
		enriched["receiverSignature"] = json!("0x7");
		let parsed: ReceiverPayload = serde_json::from_value(enriched.clone()).unwrap();
		let ReceiverPayload::Refund(refund) = &parsed else {
			panic!("an enriched refund: {parsed:?}")
		};
		assert_eq!(
			(refund.amount.as_str(), refund.receiver_signature.as_deref()),
			("30", Some("0x7"))
		);
		assert_eq!(serde_json::to_value(&parsed).unwrap(), enriched);
	}

	#[test]
	fn the_specs_corrective_extra_parses() {
		let extra: ChannelExtra = serde_json::from_value(json!({
			"receiverAuthorizer": "0xReceiverAuthorizerAddress", "withdrawDelay": 900,
			"name": "USDC", "version": "2",
			"channelState": {"channelId": "0xabc123...channelId", "balance": "100000",
				"totalClaimed": "500", "withdrawRequestedAt": 0, "refundNonce": "1",
				"chargedCumulativeAmount": "3200"},
			"voucherState": {"signedMaxClaimable": "3200", "signature": "0x...last voucher signature"}
		}))
		.unwrap();
		let state = extra.channel_state.unwrap();
		assert_eq!(state.charged_cumulative_amount.as_deref(), Some("3200"));
		assert_eq!(extra.voucher_state.unwrap().signed_max_claimable, "3200");
	}
}
