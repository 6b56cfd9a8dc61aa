//! The spec's error reasons (x402 v2 §9), plus the two that clients must act on.
//!
//! Reasons from other implementations differ (`invalid_exact_evm_signature` in TypeScript,
//! `invalid_signature` in x402-rs); incoming ones are kept verbatim as [`ErrorReason::Other`]
//! and treated as opaque, except the two with a protocol meaning.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! reasons {
	($($variant:ident => $text:literal, $doc:literal;)*) => {
		/// Why a payment was not verified or not settled.
		#[derive(Clone, Debug, PartialEq, Eq, Hash)]
		pub enum ErrorReason {
			$(#[doc = $doc] $variant,)*
			/// A reason this crate does not define, kept as received.
			Other(String),
		}

		impl ErrorReason {
			/// The wire string.
			pub fn as_str(&self) -> &str {
				match self {
					$(ErrorReason::$variant => $text,)*
					ErrorReason::Other(s) => s,
				}
			}

			/// Parses a wire string; unknown ones become [`ErrorReason::Other`].
			pub fn parse(s: &str) -> Self {
				match s {
					$($text => ErrorReason::$variant,)*
					other => ErrorReason::Other(other.to_string()),
				}
			}
		}
	};
}

reasons! {
	InsufficientFunds => "insufficient_funds", "The payer's balance is below the amount.";
	ValidAfter => "invalid_exact_evm_payload_authorization_valid_after", "The authorization is not valid yet.";
	ValidBefore => "invalid_exact_evm_payload_authorization_valid_before", "The authorization has expired, or expires too soon to settle.";
	ValueMismatch => "invalid_exact_evm_payload_authorization_value_mismatch", "The authorized value is not the required amount.";
	InvalidSignature => "invalid_exact_evm_payload_signature", "The signature is malformed or not the payer's.";
	RecipientMismatch => "invalid_exact_evm_payload_recipient_mismatch", "The authorization pays someone other than `payTo`.";
	InvalidNetwork => "invalid_network", "The network is malformed or not supported.";
	InvalidPayload => "invalid_payload", "The payload is malformed.";
	InvalidPaymentRequirements => "invalid_payment_requirements", "The requirements are malformed, or the payment accepted requirements that were not offered.";
	InvalidScheme => "invalid_scheme", "The scheme does not match the requirements.";
	UnsupportedScheme => "unsupported_scheme", "The scheme is not supported.";
	InvalidX402Version => "invalid_x402_version", "The protocol version is not supported.";
	InvalidTransactionState => "invalid_transaction_state", "The authorization was already used or canceled, or the settlement failed on-chain.";
	UnexpectedVerifyError => "unexpected_verify_error", "Verification failed for an unexpected reason.";
	UnexpectedSettleError => "unexpected_settle_error", "Settlement failed for an unexpected reason.";
	SettlementPending => "settlement_pending", "The settlement transaction was sent but is not confirmed yet; retry later, do not pay again.";
	Permit2AllowanceRequired => "permit2_allowance_required", "The payer must first approve Permit2 (answered with HTTP 412).";
	// batch-settlement on EVM (payment channels): the spec's codes.
	ChannelScheme => "invalid_batch_settlement_evm_scheme", "The scheme is not `batch-settlement`.";
	ChannelNetworkMismatch => "invalid_batch_settlement_evm_network_mismatch", "The payment accepted another network than required.";
	ChannelPayloadType => "invalid_batch_settlement_evm_payload_type", "The payload type is unknown, or wrong for this operation.";
	ChannelVoucherPayload => "invalid_batch_settlement_evm_voucher_payload", "The voucher or channel config is malformed.";
	ChannelDepositPayload => "invalid_batch_settlement_evm_deposit_payload", "The deposit is malformed.";
	ChannelIdMismatch => "invalid_batch_settlement_evm_channel_id_mismatch", "The channel config does not hash to the voucher's channel id.";
	ChannelReceiverMismatch => "invalid_batch_settlement_evm_receiver_mismatch", "The channel pays someone other than `payTo`.";
	ChannelReceiverAuthorizerMismatch => "invalid_batch_settlement_evm_receiver_authorizer_mismatch", "The channel's receiver authorizer is not the one offered.";
	ChannelTokenMismatch => "invalid_batch_settlement_evm_token_mismatch", "The channel's token is not the required asset.";
	ChannelWithdrawDelayMismatch => "invalid_batch_settlement_evm_withdraw_delay_mismatch", "The channel's withdraw delay is not the one offered.";
	ChannelWithdrawDelayOutOfRange => "invalid_batch_settlement_evm_withdraw_delay_out_of_range", "The withdraw delay is outside 900 s to 30 days.";
	ChannelVoucherSignature => "invalid_batch_settlement_evm_voucher_signature", "The voucher is not signed by the channel's payer authorizer.";
	ChannelMissingEip712Domain => "invalid_batch_settlement_evm_missing_eip712_domain", "extra.name and extra.version (the token's EIP-712 domain) are missing.";
	ChannelValidAfter => "invalid_batch_settlement_evm_payload_authorization_valid_after", "The deposit authorization is not valid yet.";
	ChannelValidBefore => "invalid_batch_settlement_evm_payload_authorization_valid_before", "The deposit authorization expires too soon to settle.";
	ChannelReceiveAuthorizationSignature => "invalid_batch_settlement_evm_receive_authorization_signature", "The deposit's EIP-3009 signature is not the payer's.";
	ChannelErc3009AuthorizationRequired => "invalid_batch_settlement_evm_erc3009_authorization_required", "The deposit carries no EIP-3009 authorization.";
	ChannelNotFound => "invalid_batch_settlement_evm_channel_not_found", "The channel holds no deposit.";
	ChannelCumulativeAmountMismatch => "invalid_batch_settlement_evm_cumulative_amount_mismatch", "The voucher's cumulative amount is not what was charged plus this price (a corrective 402 carries the state).";
	ChannelCumulativeBelowClaimed => "invalid_batch_settlement_evm_cumulative_below_claimed", "The voucher is not above what was already claimed.";
	ChannelCumulativeExceedsBalance => "invalid_batch_settlement_evm_cumulative_exceeds_balance", "The voucher exceeds the channel's balance.";
	ChannelChargeExceedsSigned => "invalid_batch_settlement_evm_charge_exceeds_signed_cumulative", "The charge would exceed the signed cumulative amount.";
	ChannelBusy => "invalid_batch_settlement_evm_channel_busy", "Another request on this channel is being served; retry.";
	ChannelInsufficientBalance => "invalid_batch_settlement_evm_insufficient_balance", "The payer's token balance is below the deposit.";
	ChannelRefundAmountInvalid => "invalid_batch_settlement_evm_refund_amount_invalid", "The refund amount is not a positive decimal integer.";
	ChannelRefundNoBalance => "invalid_batch_settlement_evm_refund_no_balance", "Nothing is left to refund.";
	ChannelRefundPayload => "invalid_batch_settlement_evm_refund_payload", "The refund payload is malformed, or not authorized by the channel's receiver.";
	ChannelRefundSimulationFailed => "invalid_batch_settlement_evm_refund_simulation_failed", "The refund would fail on-chain.";
	ChannelRefundTransactionFailed => "invalid_batch_settlement_evm_refund_transaction_failed", "The refund transaction failed.";
	ChannelMissing => "invalid_batch_settlement_evm_missing_channel", "The receiver holds no record of this channel.";
	ChannelRpcReadFailed => "invalid_batch_settlement_evm_rpc_read_failed", "The channel's on-chain state could not be read.";
	ChannelDepositSimulationFailed => "invalid_batch_settlement_evm_deposit_simulation_failed", "The deposit would fail on-chain.";
	ChannelDepositTransactionFailed => "invalid_batch_settlement_evm_deposit_transaction_failed", "The deposit transaction failed.";
	ChannelClaimPayload => "invalid_batch_settlement_evm_claim_payload", "The claim payload is malformed.";
	ChannelClaimSimulationFailed => "invalid_batch_settlement_evm_claim_simulation_failed", "Every claim row would fail on-chain.";
	ChannelClaimTransactionFailed => "invalid_batch_settlement_evm_claim_transaction_failed", "The claim transaction failed.";
	ChannelSettlePayload => "invalid_batch_settlement_evm_settle_payload", "The settle payload is malformed.";
	ChannelSettleSimulationFailed => "invalid_batch_settlement_evm_settle_simulation_failed", "The settle would fail on-chain.";
	ChannelSettleTransactionFailed => "invalid_batch_settlement_evm_settle_transaction_failed", "The settle transaction failed.";
	ChannelAuthorizerAddressMismatch => "invalid_batch_settlement_evm_authorizer_address_mismatch", "The facilitator was asked to sign for a receiver authorizer that is not its own.";
}

impl std::fmt::Display for ErrorReason {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.write_str(self.as_str())
	}
}

impl Serialize for ErrorReason {
	fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
		s.serialize_str(self.as_str())
	}
}

impl<'de> Deserialize<'de> for ErrorReason {
	fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
		Ok(ErrorReason::parse(&String::deserialize(d)?))
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn reasons_round_trip_and_unknown_ones_are_kept() {
		for r in [
			ErrorReason::InsufficientFunds,
			ErrorReason::SettlementPending,
			ErrorReason::ValidBefore,
		] {
			assert_eq!(ErrorReason::parse(r.as_str()), r);
			let json = serde_json::to_string(&r).unwrap();
			assert_eq!(serde_json::from_str::<ErrorReason>(&json).unwrap(), r);
		}
		assert_eq!(
			ErrorReason::parse("invalid_exact_evm_signature"),
			ErrorReason::Other("invalid_exact_evm_signature".into())
		);
		assert_eq!(
			ErrorReason::InvalidSignature.to_string(),
			"invalid_exact_evm_payload_signature"
		);
	}
}

/// Why a payment was refused, by any rule of any layer (the off-chain checks of a scheme,
/// the seller's matching, the facilitator's on-chain checks): the spec's reason, for
/// machines, and a sentence, for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Problem {
	pub reason: ErrorReason,
	pub message: String,
}

impl Problem {
	pub fn new(reason: ErrorReason, message: impl Into<String>) -> Self {
		Self { reason, message: message.into() }
	}
}
