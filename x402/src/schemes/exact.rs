//! The `exact` scheme on EVM with EIP-3009: the payer signs a `TransferWithAuthorization` for
//! exactly the required amount to exactly the payee, and anyone may submit it.
//!
//! This module holds everything about it that needs no chain: the EIP-712 digest, signing (as
//! a buyer does), and the off-chain verification checks in the order the spec gives them,
//! cheap ones first. A facilitator adds the on-chain checks (nonce unused, balance, simulation).

use alloy_primitives::{Address, Signature, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{sol, Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

use crate::{
	matching, network,
	v2::{PaymentPayload, PaymentRequirements, SchemePayload},
	ErrorReason, Problem, X402_VERSION,
};

/// The scheme's name on the wire.
pub const SCHEME: &str = "exact";
/// A buyer dates its authorization this far back, against clock skew.
pub const VALID_AFTER_SKEW_SECS: u64 = 600;
/// An authorization must stay valid this long after verification, to leave time to settle.
pub const SETTLE_MARGIN_SECS: u64 = 6;

sol! {
	/// EIP-3009 `TransferWithAuthorization`, as the token hashes it.
	#[derive(Debug, PartialEq, Eq)]
	struct TransferWithAuthorization {
		address from;
		address to;
		uint256 value;
		uint256 validAfter;
		uint256 validBefore;
		bytes32 nonce;
	}
}

/// The exact/EVM `payload` of a [`PaymentPayload`], as on the wire (all strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEvmPayload {
	/// `0x` + 65 bytes, `r ‖ s ‖ v`.
	pub signature: String,
	pub authorization: AuthorizationWire,
}

/// The authorization with every field a string: addresses, decimal uint256s, 0x-bytes32 nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationWire {
	pub from: String,
	pub to: String,
	pub value: String,
	pub valid_after: String,
	pub valid_before: String,
	pub nonce: String,
}

/// A v2 payment of `accepted` (echoed verbatim, as matching requires) with an exact/EVM
/// payload.
pub fn payment(accepted: PaymentRequirements, payload: &ExactEvmPayload) -> PaymentPayload {
	PaymentPayload {
		x402_version: X402_VERSION,
		resource: None,
		accepted,
		payload: SchemePayload::encode(payload),
		extensions: None,
		other: Default::default(),
	}
}

/// The exact/EVM payload `payment` carries (whatever scheme it claims: the caller chose
/// this scheme by `accepted.scheme`).
pub fn payload(payment: &PaymentPayload) -> Result<ExactEvmPayload, Problem> {
	payment.payload.decode().map_err(|e| {
		invalid(
			ErrorReason::InvalidPayload,
			format!("the payload is not an exact/EVM payload ({{signature, authorization}}): {e}"),
		)
	})
}

fn invalid(reason: ErrorReason, message: impl Into<String>) -> Problem {
	Problem::new(reason, message)
}

/// A payload that passed every off-chain check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
	pub payer: Address,
	pub token: Address,
	pub chain_id: u64,
	pub authorization: TransferWithAuthorization,
	/// With `v` normalised to 27/28, as `transferWithAuthorization` takes it.
	pub signature: Signature,
}

/// An exact/EVM offer: `amount` base units of the token at `asset` (whose EIP-712 domain is
/// `name`, `version`) to `pay_to` on chain `chain_id`, payable within `max_timeout_seconds`.
pub fn requirements(
	chain_id: u64,
	asset: Address,
	(name, version): (&str, &str),
	pay_to: Address,
	amount: U256,
	max_timeout_seconds: u64,
) -> PaymentRequirements {
	PaymentRequirements {
		scheme: SCHEME.into(),
		network: network::caip2(chain_id),
		amount: amount.to_string(),
		asset: asset.to_checksum(None),
		pay_to: pay_to.to_checksum(None),
		max_timeout_seconds,
		extra: Some(serde_json::json!({ "name": name, "version": version })),
		other: Default::default(),
	}
}

/// The token's EIP-712 domain for `requirements` (name and version from `extra`, chain id from
/// the network, verifying contract = asset).
pub fn domain(requirements: &PaymentRequirements) -> Result<Eip712Domain, Problem> {
	let chain_id = network::evm_chain_id(&requirements.network).ok_or_else(|| {
		invalid(
			ErrorReason::InvalidNetwork,
			format!("{:?} is not an eip155 network", requirements.network),
		)
	})?;
	let (name, version) = requirements.eip712_name_version().ok_or_else(|| {
		invalid(
			ErrorReason::InvalidPaymentRequirements,
			"extra.name and extra.version (the token's EIP-712 domain) are required",
		)
	})?;
	let token =
		parse_address(&requirements.asset, "asset", ErrorReason::InvalidPaymentRequirements)?;
	Ok(Eip712Domain::new(
		Some(name.to_string().into()),
		Some(version.to_string().into()),
		Some(U256::from(chain_id)),
		Some(token),
		None,
	))
}

/// The EIP-712 digest the payer signs.
pub fn signing_hash(authorization: &TransferWithAuthorization, domain: &Eip712Domain) -> B256 {
	authorization.eip712_signing_hash(domain)
}

/// What a buyer sends for `requirements`: an authorization of exactly `amount` to `payTo`,
/// valid from `now - 600 s` until `now + maxTimeoutSeconds`, signed by `signer`. `nonce`
/// must be fresh random bytes.
pub fn sign(
	signer: &PrivateKeySigner,
	requirements: &PaymentRequirements,
	now: u64,
	nonce: B256,
) -> Result<ExactEvmPayload, Problem> {
	let domain = domain(requirements)?;
	let authorization = TransferWithAuthorization {
		from: signer.address(),
		to: parse_address(&requirements.pay_to, "payTo", ErrorReason::InvalidPaymentRequirements)?,
		value: parse_uint(&requirements.amount, "amount", ErrorReason::InvalidPaymentRequirements)?,
		validAfter: U256::from(now.saturating_sub(VALID_AFTER_SKEW_SECS)),
		validBefore: U256::from(now.saturating_add(requirements.max_timeout_seconds)),
		nonce,
	};
	let signature = signer
		.sign_hash_sync(&signing_hash(&authorization, &domain))
		.map_err(|e| invalid(ErrorReason::UnexpectedVerifyError, e.to_string()))?;
	Ok(ExactEvmPayload {
		signature: format!("0x{}", alloy_primitives::hex::encode(signature.as_bytes())),
		authorization: AuthorizationWire {
			from: authorization.from.to_checksum(None),
			to: authorization.to.to_checksum(None),
			value: authorization.value.to_string(),
			valid_after: authorization.validAfter.to_string(),
			valid_before: authorization.validBefore.to_string(),
			nonce: authorization.nonce.to_string(),
		},
	})
}

/// The typed authorization and signature of a wire payload.
pub fn parse(payload: &ExactEvmPayload) -> Result<(TransferWithAuthorization, Signature), Problem> {
	let a = &payload.authorization;
	let p = ErrorReason::InvalidPayload;
	let authorization = TransferWithAuthorization {
		from: parse_address(&a.from, "authorization.from", p.clone())?,
		to: parse_address(&a.to, "authorization.to", p.clone())?,
		value: parse_uint(&a.value, "authorization.value", p.clone())?,
		validAfter: parse_uint(&a.valid_after, "authorization.validAfter", p.clone())?,
		validBefore: parse_uint(&a.valid_before, "authorization.validBefore", p.clone())?,
		nonce: a.nonce.parse().map_err(|_| {
			invalid(p.clone(), format!("authorization.nonce {:?} is not 0x + 32 bytes", a.nonce))
		})?,
	};
	let bytes = alloy_primitives::hex::decode(&payload.signature)
		.ok()
		.filter(|b| b.len() == 65)
		.ok_or_else(|| {
			invalid(ErrorReason::InvalidSignature, "signature is not 0x + 65 bytes of hex")
		})?;
	// v may be 27/28 (wallets) or 0/1 (some libraries); both mean the same.
	let parity = match bytes[64] {
		0 | 27 => false,
		1 | 28 => true,
		v => return Err(invalid(ErrorReason::InvalidSignature, format!("signature v is {v}"))),
	};
	let signature = Signature::from_bytes_and_parity(&bytes[..64], parity);
	Ok((authorization, signature))
}

/// Every check that needs no chain, in the spec's order: version, scheme and network; the
/// accepted requirement is the one offered; the token domain is known; the signature is the
/// payer's (low-s); the payee, the amount and the validity window (`now`, Unix seconds, with
/// [`SETTLE_MARGIN_SECS`] to spare) are right.
pub fn verify(
	payment: &PaymentPayload,
	requirements: &PaymentRequirements,
	now: u64,
) -> Result<Verified, Problem> {
	if payment.x402_version != X402_VERSION && payment.x402_version != 1 {
		return Err(invalid(
			ErrorReason::InvalidX402Version,
			format!("x402Version {} is not supported (1 or 2)", payment.x402_version),
		));
	}
	if requirements.scheme != SCHEME {
		return Err(invalid(
			ErrorReason::UnsupportedScheme,
			format!("scheme {:?} is not supported", requirements.scheme),
		));
	}
	if payment.accepted.scheme != requirements.scheme {
		return Err(invalid(
			ErrorReason::InvalidScheme,
			format!("paid with {:?}, required {:?}", payment.accepted.scheme, requirements.scheme),
		));
	}
	if payment.accepted.network != requirements.network {
		return Err(invalid(
			ErrorReason::InvalidNetwork,
			format!("paid on {:?}, required {:?}", payment.accepted.network, requirements.network),
		));
	}
	if matching::find_accepted(std::slice::from_ref(requirements), &payment.accepted).is_none() {
		return Err(invalid(
			ErrorReason::InvalidPaymentRequirements,
			"the accepted requirement differs from the one offered",
		));
	}
	let domain = domain(requirements)?;
	let wire = payload(payment)?;
	let (authorization, signature) = parse(&wire)?;

	// Malleable (high-s) signatures are refused, as the token refuses them.
	if signature.normalize_s().is_some() {
		return Err(invalid(ErrorReason::InvalidSignature, "signature s is not in the lower half"));
	}
	let recovered = recover_signer(&signature, &signing_hash(&authorization, &domain))?;
	if recovered != authorization.from {
		return Err(invalid(
			ErrorReason::InvalidSignature,
			format!(
				"signed by {recovered}, not by authorization.from {} under this token's domain",
				authorization.from
			),
		));
	}
	let pay_to =
		parse_address(&requirements.pay_to, "payTo", ErrorReason::InvalidPaymentRequirements)?;
	if authorization.to != pay_to {
		return Err(invalid(
			ErrorReason::RecipientMismatch,
			format!("pays {}, required payTo {pay_to}", authorization.to),
		));
	}
	let amount =
		parse_uint(&requirements.amount, "amount", ErrorReason::InvalidPaymentRequirements)?;
	if authorization.value != amount {
		return Err(invalid(
			ErrorReason::ValueMismatch,
			format!("authorizes {}, required exactly {amount}", authorization.value),
		));
	}
	if authorization.validAfter > U256::from(now) {
		return Err(invalid(
			ErrorReason::ValidAfter,
			format!("valid after {}, now is {now}", authorization.validAfter),
		));
	}
	if authorization.validBefore < U256::from(now.saturating_add(SETTLE_MARGIN_SECS)) {
		return Err(invalid(
			ErrorReason::ValidBefore,
			format!(
				"valid before {}, which leaves less than {SETTLE_MARGIN_SECS} s after {now}",
				authorization.validBefore
			),
		));
	}
	let chain_id = network::evm_chain_id(&requirements.network).expect("domain() checked it");
	let token =
		parse_address(&requirements.asset, "asset", ErrorReason::InvalidPaymentRequirements)?;
	Ok(Verified {
		payer: authorization.from,
		token,
		chain_id,
		signature: Signature::new(signature.r(), signature.s(), signature.v()),
		authorization,
	})
}

/// The address whose key signed `digest`, recovered with libsecp256k1.
///
/// This is the hot path of every verification. libsecp256k1 (the C library, already in the
/// build for the node) recovers several times faster than the pure-Rust k256 that alloy uses;
/// `examples/verify_throughput` measures both, and a test checks that they agree.
pub fn recover_signer(signature: &Signature, digest: &B256) -> Result<Address, Problem> {
	use secp256k1::{
		ecdsa::{RecoverableSignature, RecoveryId},
		Message, SECP256K1,
	};
	let bad = |e: secp256k1::Error| invalid(ErrorReason::InvalidSignature, e.to_string());
	let mut compact = [0u8; 64];
	compact[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
	compact[32..].copy_from_slice(&signature.s().to_be_bytes::<32>());
	let id = RecoveryId::from_i32(signature.v() as i32).map_err(bad)?;
	let recoverable = RecoverableSignature::from_compact(&compact, id).map_err(bad)?;
	let key =
		SECP256K1.recover_ecdsa(&Message::from_digest(digest.0), &recoverable).map_err(bad)?;
	Ok(Address::from_raw_public_key(&key.serialize_uncompressed()[1..]))
}

fn parse_address(s: &str, field: &str, reason: ErrorReason) -> Result<Address, Problem> {
	s.parse().map_err(|_| invalid(reason, format!("{field} {s:?} is not an address")))
}

fn parse_uint(s: &str, field: &str, reason: ErrorReason) -> Result<U256, Problem> {
	if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
		return Err(invalid(reason, format!("{field} {s:?} is not a decimal integer")));
	}
	U256::from_str_radix(s, 10)
		.map_err(|_| invalid(reason, format!("{field} {s:?} does not fit in uint256")))
}
