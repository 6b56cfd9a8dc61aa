//! One purchase, whatever the transport: the payment's journal and the rule that turns the
//! seller's answer into an outcome.
//!
//! A transport (the reqwest client in [`crate::client`], the libp2p messages in
//! [`crate::messages`]) only carries messages.
//! The order that protects money is fixed here:
//!
//! 1. [`Buyer::begin`](crate::Buyer::begin) chooses, counts and signs, and journals the
//!    signed payment **before** it can leave the device;
//! 2. [`Buyer::sending`](crate::Buyer::sending) marks it submitted: from now on the seller
//!    may have it;
//! 3. [`Buyer::answered`](crate::Buyer::answered) classifies the answer with [`classify`] and
//!    journals the outcome.
//!
//! A payment whose answer never came, or came without saying what happened to the money,
//! stays in flight: it is sent again exactly as signed (its `payment-identifier` makes the
//! retry idempotent at the seller), and never signed again.

use m2m_x402::{v2::SettleResponse, ErrorReason};
use serde::{Deserialize, Serialize};

use crate::Payment;

/// Where a purchase is sent, whatever the transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase")]
pub enum Locator {
	/// `method url` over HTTP.
	Http { method: String, url: String },
	/// `resource` of the libp2p peer `peer`, dialled at `addresses` (or as discovery finds
	/// it); `target` is the address as the buyer gave it.
	Libp2p { target: String, peer: String, addresses: Vec<String>, resource: String },
}

impl Locator {
	/// `GET http://…`, for logs and listings.
	pub fn describe(&self) -> String {
		match self {
			Locator::Http { method, url } => format!("{method} {url}"),
			Locator::Libp2p { peer, resource, .. } => format!("libp2p {peer} {resource}"),
		}
	}

	/// The resource's address as the buyer gave it (the URL over HTTP).
	pub fn resource(&self) -> &str {
		match self {
			Locator::Http { url, .. } => url,
			Locator::Libp2p { target, .. } => target,
		}
	}
}

/// A signed payment on its way to the seller: everything needed to send it again after a
/// crash, so that it is re-sent and never re-signed.
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
	/// Unique per signed payment: the authorization's nonce (0x + 64 hex).
	pub key: String,
	pub locator: Locator,
	/// The protocol version the seller spoke (1 or 2): the payment is sent again in kind.
	pub version: u32,
	pub payment: Payment,
}

/// A seller's answer to a paid request, as a transport reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct SellerAnswer {
	pub kind: AnswerKind,
	/// The settlement the seller attached: none, unreadable (why), or read.
	pub settlement: Option<Result<SettleResponse, String>>,
}

/// What the seller did with the request, in transport-neutral terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerKind {
	/// The resource was delivered (HTTP 2xx/3xx).
	Delivered,
	/// Asked to pay again (HTTP 402), with the seller's reason.
	PaymentRequired { reason: Option<String> },
	/// The payment is being processed right now, or its id belongs to another payment (409).
	Conflict { message: String },
	/// The seller could not reach its facilitator: nothing was taken (HTTP 502).
	FacilitatorUnavailable { message: String },
	/// The seller, or something between, gave no verdict (HTTP 504, …): it may still be
	/// working on the payment.
	NoVerdict { message: String },
	/// The resource was not served and nothing was settled (HTTP 4xx/5xx from the handler).
	NotServed { status: u16 },
}

/// How a payment ended, as far as the buyer can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
	/// Settled on-chain in `transaction`, and the resource delivered.
	Settled { transaction: String },
	/// Settled on-chain (the money moved), but the resource was not delivered: resumed, so
	/// the seller serves it without a second charge.
	Unserved { transaction: String },
	/// Sent for settlement, not confirmed yet: it may still land. Resumed, never re-signed.
	Pending { transaction: String },
	/// Refused or failed; the authorization was not used (it stays counted until it expires).
	Failed { reason: String },
	/// The answer does not say what happened to the money: resumed, never re-signed.
	Unknown { reason: String },
}

impl Outcome {
	/// Nothing more will happen to this payment: it is not resumed.
	pub fn is_final(&self) -> bool {
		matches!(self, Outcome::Settled { .. } | Outcome::Failed { .. })
	}
}

/// What a seller did, from the status of its answer: HTTP's, which x402's libp2p messages
/// share. `settled`: the answer carries a settlement; `message`: the seller's reason.
pub fn answer_kind(status: u16, settled: bool, message: Option<String>) -> AnswerKind {
	if status == 402 {
		return AnswerKind::PaymentRequired { reason: message };
	}
	let message = message.unwrap_or_else(|| format!("the seller answered {status}"));
	match status {
		409 => AnswerKind::Conflict { message },
		502 => AnswerKind::FacilitatorUnavailable { message },
		504 => AnswerKind::NoVerdict { message },
		// Withheld after settling (503 sale_not_recorded): the message says why.
		s if s >= 400 && settled => AnswerKind::NoVerdict { message },
		s if s >= 400 => AnswerKind::NotServed { status: s },
		_ => AnswerKind::Delivered,
	}
}

/// The rule that turns a seller's answer into an outcome. What the settlement says wins over
/// the status: a `success: true` means the money moved, whatever else the answer says, and a
/// missing or broken answer is never taken for "not paid".
pub fn classify(answer: &SellerAnswer) -> Outcome {
	match &answer.settlement {
		Some(Ok(s)) if s.success => match answer.kind {
			AnswerKind::Delivered => Outcome::Settled { transaction: s.transaction.clone() },
			_ => Outcome::Unserved { transaction: s.transaction.clone() },
		},
		Some(Ok(s)) if s.error_reason == Some(ErrorReason::SettlementPending) => {
			Outcome::Pending { transaction: s.transaction.clone() }
		},
		Some(Ok(s)) => Outcome::Failed {
			reason: match (&s.error_reason, &s.error_message) {
				(Some(r), Some(m)) => format!("{r}: {m}"),
				(Some(r), None) => r.to_string(),
				(None, m) => m.clone().unwrap_or_else(|| "settlement failed".into()),
			},
		},
		Some(Err(broken)) => Outcome::Unknown {
			reason: format!("the seller's settlement answer is unreadable: {broken}"),
		},
		None => match &answer.kind {
			AnswerKind::Delivered => Outcome::Unknown {
				reason: "the seller delivered the resource without a settlement answer".into(),
			},
			AnswerKind::PaymentRequired { reason } => {
				let reason =
					reason.clone().unwrap_or_else(|| "the seller asked for payment again".into());
				// "Already used" is this very authorization on-chain: the money may have moved.
				if reason.starts_with(ErrorReason::InvalidTransactionState.as_str()) {
					Outcome::Unknown { reason }
				} else {
					Outcome::Failed { reason }
				}
			},
			AnswerKind::Conflict { message } => Outcome::Unknown { reason: message.clone() },
			AnswerKind::FacilitatorUnavailable { message } => Outcome::Failed {
				reason: format!("the seller cannot reach its facilitator: {message}"),
			},
			AnswerKind::NoVerdict { message } => Outcome::Unknown { reason: message.clone() },
			AnswerKind::NotServed { status } => {
				Outcome::Failed { reason: format!("the seller answered {status}; not settled") }
			},
		},
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn settlement(success: bool, reason: Option<ErrorReason>) -> SettleResponse {
		SettleResponse {
			success,
			error_reason: reason,
			error_message: Some("why".into()),
			transaction: if success { "0xaa".into() } else { String::new() },
			network: "eip155:33380".into(),
			payer: None,
			amount: None,
			extensions: None,
			extra: None,
		}
	}

	fn answer(kind: AnswerKind, settlement: Option<Result<SettleResponse, String>>) -> Outcome {
		classify(&SellerAnswer { kind, settlement })
	}

	#[test]
	fn success_true_means_the_money_moved_whatever_the_status() {
		let ok = Some(Ok(settlement(true, None)));
		assert_eq!(
			answer(AnswerKind::Delivered, ok.clone()),
			Outcome::Settled { transaction: "0xaa".into() }
		);
		for kind in [
			AnswerKind::NoVerdict { message: "504".into() },
			AnswerKind::FacilitatorUnavailable { message: "502".into() },
			AnswerKind::NotServed { status: 503 },
		] {
			let outcome = answer(kind, ok.clone());
			assert_eq!(outcome, Outcome::Unserved { transaction: "0xaa".into() });
			assert!(!outcome.is_final(), "resumed until served");
		}
	}

	#[test]
	fn a_missing_or_broken_answer_stays_in_flight() {
		let broken = answer(AnswerKind::Delivered, Some(Err("not base64".into())));
		assert!(matches!(broken, Outcome::Unknown { .. }) && !broken.is_final());
		assert!(!answer(AnswerKind::Delivered, None).is_final());
		assert!(!answer(AnswerKind::NoVerdict { message: "timeout".into() }, None).is_final());
		assert!(!answer(AnswerKind::Conflict { message: "in progress".into() }, None).is_final());
		let used = AnswerKind::PaymentRequired {
			reason: Some("invalid_transaction_state: this authorization was already used".into()),
		};
		assert!(!answer(used, None).is_final(), "its authorization was used: money may have moved");
	}

	#[test]
	fn pending_is_resumed_and_refusals_are_final() {
		let pending = answer(
			AnswerKind::PaymentRequired { reason: None },
			Some(Ok(settlement(false, Some(ErrorReason::SettlementPending)))),
		);
		assert_eq!(pending, Outcome::Pending { transaction: String::new() });
		assert!(!pending.is_final());
		let refused = answer(
			AnswerKind::PaymentRequired {
				reason: Some("invalid_exact_evm_payload_signature: wrong signer".into()),
			},
			None,
		);
		assert!(refused.is_final(), "{refused:?}");
		let failed = answer(
			AnswerKind::PaymentRequired { reason: None },
			Some(Ok(settlement(false, Some(ErrorReason::InsufficientFunds)))),
		);
		assert_eq!(failed, Outcome::Failed { reason: "insufficient_funds: why".into() });
		assert!(
			answer(AnswerKind::FacilitatorUnavailable { message: "down".into() }, None).is_final()
		);
		assert!(answer(AnswerKind::NotServed { status: 500 }, None).is_final());
	}
}
