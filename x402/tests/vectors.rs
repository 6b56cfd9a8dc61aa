//! The x402 specification's published examples (specs/transports-v2/http.md and
//! transports-v1/http.md of x402-foundation/x402), byte for byte, and the exact/EVM checks
//! against the genuine signature they carry.

use alloy_primitives::{address, b256, Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolStruct;
use m2m_x402::{
	codec,
	schemes::exact::{self, ExactEvmPayload},
	v1::{self, PaymentPayloadV1, PaymentRequiredV1},
	v2::{PaymentPayload, PaymentRequired, PaymentRequirements, SchemePayload, SettleResponse},
	ErrorReason,
};

const PAYMENT_REQUIRED: &str = "eyJ4NDAyVmVyc2lvbiI6MiwiZXJyb3IiOiJQQVlNRU5ULVNJR05BVFVSRSBoZWFkZXIgaXMgcmVxdWlyZWQiLCJyZXNvdXJjZSI6eyJ1cmwiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbS9wcmVtaXVtLWRhdGEiLCJkZXNjcmlwdGlvbiI6IkFjY2VzcyB0byBwcmVtaXVtIG1hcmtldCBkYXRhIiwibWltZVR5cGUiOiJhcHBsaWNhdGlvbi9qc29uIn0sImFjY2VwdHMiOlt7InNjaGVtZSI6ImV4YWN0IiwibmV0d29yayI6ImVpcDE1NTo4NDUzMiIsImFtb3VudCI6IjEwMDAwIiwiYXNzZXQiOiIweDAzNkNiRDUzODQyYzU0MjY2MzRlNzkyOTU0MWVDMjMxOGYzZENGN2UiLCJwYXlUbyI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsIm1heFRpbWVvdXRTZWNvbmRzIjo2MCwiZXh0cmEiOnsibmFtZSI6IlVTREMiLCJ2ZXJzaW9uIjoiMiJ9fV19";
const PAYMENT_SIGNATURE: &str = "eyJ4NDAyVmVyc2lvbiI6MiwicmVzb3VyY2UiOnsidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwiZGVzY3JpcHRpb24iOiJBY2Nlc3MgdG8gcHJlbWl1bSBtYXJrZXQgZGF0YSIsIm1pbWVUeXBlIjoiYXBwbGljYXRpb24vanNvbiJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJhbW91bnQiOiIxMDAwMCIsImFzc2V0IjoiMHgwMzZDYkQ1Mzg0MmM1NDI2NjM0ZTc5Mjk1NDFlQzIzMThmM2RDRjdlIiwicGF5VG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJtYXhUaW1lb3V0U2Vjb25kcyI6NjAsImV4dHJhIjp7Im5hbWUiOiJVU0RDIiwidmVyc2lvbiI6IjIifX0sInBheWxvYWQiOnsic2lnbmF0dXJlIjoiMHgyZDZhNzU4OGQ2YWNjYTUwNWNiZjBkOWE0YTIyN2UwYzUyYzZjMzQwMDhjOGU4OTg2YTEyODMyNTk3NjQxNzM2MDhhMmNlNjQ5NjY0MmUzNzdkNmRhOGRiYmY1ODM2ZTliZDE1MDkyZjllY2FiMDVkZWQzZDYyOTNhZjE0OGI1NzFjIiwiYXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJ2YWx1ZSI6IjEwMDAwIiwidmFsaWRBZnRlciI6IjE3NDA2NzIwODkiLCJ2YWxpZEJlZm9yZSI6IjE3NDA2NzIxNTQiLCJub25jZSI6IjB4ZjM3NDY2MTNjMmQ5MjBiNWZkYWJjMDg1NmYyYWViMmQ0Zjg4ZWU2MDM3YjhjYzVkMDRhNzFhNDQ2MmYxMzQ4MCJ9fX0=";
const PAYMENT_RESPONSE_OK: &str = "eyJzdWNjZXNzIjp0cnVlLCJ0cmFuc2FjdGlvbiI6IjB4MTIzNDU2Nzg5MGFiY2RlZjEyMzQ1Njc4OTBhYmNkZWYxMjM0NTY3ODkwYWJjZGVmMTIzNDU2Nzg5MGFiY2RlZiIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJwYXllciI6IjB4ODU3YjA2NTE5RTkxZTNBNTQ1Mzg3OTFiRGJiMEUyMjM3M2UzNmI2NiJ9";
const PAYMENT_RESPONSE_FAILED: &str = "eyJzdWNjZXNzIjpmYWxzZSwiZXJyb3JSZWFzb24iOiJpbnN1ZmZpY2llbnRfZnVuZHMiLCJ0cmFuc2FjdGlvbiI6IiIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJwYXllciI6IjB4ODU3YjA2NTE5RTkxZTNBNTQ1Mzg3OTFiRGJiMEUyMjM3M2UzNmI2NiJ9";
const X_PAYMENT: &str = "eyJ4NDAyVmVyc2lvbiI6MSwic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiYmFzZS1zZXBvbGlhIiwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweDJkNmE3NTg4ZDZhY2NhNTA1Y2JmMGQ5YTRhMjI3ZTBjNTJjNmMzNDAwOGM4ZTg5ODZhMTI4MzI1OTc2NDE3MzYwOGEyY2U2NDk2NjQyZTM3N2Q2ZGE4ZGJiZjU4MzZlOWJkMTUwOTJmOWVjYWIwNWRlZDNkNjI5M2FmMTQ4YjU3MWMiLCJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweDg1N2IwNjUxOUU5MWUzQTU0NTM4NzkxYkRiYjBFMjIzNzNlMzZiNjYiLCJ0byI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsInZhbHVlIjoiMTAwMDAiLCJ2YWxpZEFmdGVyIjoiMTc0MDY3MjA4OSIsInZhbGlkQmVmb3JlIjoiMTc0MDY3MjE1NCIsIm5vbmNlIjoiMHhmMzc0NjYxM2MyZDkyMGI1ZmRhYmMwODU2ZjJhZWIyZDRmODhlZTYwMzdiOGNjNWQwNGE3MWE0NDYyZjEzNDgwIn19fQ==";

const PAYER: Address = address!("857b06519E91e3A54538791bDbb0E22373e36b66");
/// Inside the example authorization's window (2025-02-27T16:01:29Z … 16:02:34Z).
const IN_WINDOW: u64 = 1_740_672_100;

fn example() -> (PaymentPayload, PaymentRequirements) {
	let payment: PaymentPayload = codec::decode(PAYMENT_SIGNATURE, "PaymentPayload").unwrap();
	let required: PaymentRequired = codec::decode(PAYMENT_REQUIRED, "PaymentRequired").unwrap();
	(payment, required.accepts[0].clone())
}

#[test]
fn the_published_headers_decode_and_re_encode_byte_for_byte() {
	let required: PaymentRequired = codec::decode(PAYMENT_REQUIRED, "PaymentRequired").unwrap();
	assert_eq!(required.x402_version, 2);
	assert_eq!(required.resource.url, "https://api.example.com/premium-data");
	assert_eq!(required.accepts[0].amount, "10000");
	assert_eq!(required.accepts[0].eip712_name_version(), Some(("USDC", "2")));
	assert_eq!(codec::encode(&required), PAYMENT_REQUIRED);

	let payment: PaymentPayload = codec::decode(PAYMENT_SIGNATURE, "PaymentPayload").unwrap();
	assert_eq!(payment.accepted, required.accepts[0], "the buyer echoed the requirement");
	assert_eq!(codec::encode(&payment), PAYMENT_SIGNATURE);

	let ok: SettleResponse = codec::decode(PAYMENT_RESPONSE_OK, "SettleResponse").unwrap();
	assert!(ok.success);
	assert_eq!(codec::encode(&ok), PAYMENT_RESPONSE_OK);
	let failed: SettleResponse = codec::decode(PAYMENT_RESPONSE_FAILED, "SettleResponse").unwrap();
	assert_eq!(failed.error_reason, Some(ErrorReason::InsufficientFunds));
	assert_eq!(failed.transaction, "");
	assert_eq!(codec::encode(&failed), PAYMENT_RESPONSE_FAILED);

	let v1: PaymentPayloadV1 = codec::decode(X_PAYMENT, "PaymentPayloadV1").unwrap();
	assert_eq!((v1.x402_version, v1.network.as_str()), (1, "base-sepolia"));
	assert_eq!(codec::encode(&v1), X_PAYMENT);
}

#[test]
fn the_example_signature_recovers_to_its_payer() {
	let (payment, requirements) = example();
	let domain = exact::domain(&requirements).unwrap();
	assert_eq!(
		domain.separator(),
		b256!("71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818")
	);
	let (authorization, _) = exact::parse(&exact_of(&payment)).unwrap();
	assert_eq!(
		authorization.eip712_signing_hash(&domain),
		b256!("f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6")
	);
	let verified = exact::verify(&payment, &requirements, IN_WINDOW).unwrap();
	assert_eq!(verified.payer, PAYER);
	assert_eq!((verified.chain_id, verified.authorization.value), (84532, U256::from(10_000)));
}

fn exact_of(payment: &PaymentPayload) -> ExactEvmPayload {
	exact::payload(payment).unwrap_or_else(|p| panic!("not exact: {p}"))
}

/// `payment` with its exact payload changed by `change`.
fn with_exact(
	payment: &PaymentPayload,
	change: impl FnOnce(&mut ExactEvmPayload),
) -> PaymentPayload {
	let mut wire = exact_of(payment);
	change(&mut wire);
	let mut changed = payment.clone();
	changed.payload = SchemePayload::encode(&wire);
	changed
}

fn reason(payment: &PaymentPayload, requirements: &PaymentRequirements, now: u64) -> ErrorReason {
	exact::verify(payment, requirements, now).unwrap_err().reason
}

#[test]
fn every_off_chain_check_refuses_with_the_spec_reason() {
	let (payment, requirements) = example();

	// The window, judged by the clock: expired today, not valid before it began, and too close
	// to its end to settle.
	assert_eq!(reason(&payment, &requirements, 1_795_262_400), ErrorReason::ValidBefore);
	assert_eq!(reason(&payment, &requirements, 1_740_672_000), ErrorReason::ValidAfter);
	assert_eq!(reason(&payment, &requirements, 1_740_672_150), ErrorReason::ValidBefore);

	// Signed under another domain: the same signature belongs to someone else.
	for (name, network) in [("USD Coin", "eip155:84532"), ("USDC", "eip155:8453")] {
		let mut r = requirements.clone();
		r.extra = Some(serde_json::json!({"name": name, "version": "2"}));
		r.network = network.into();
		let mut p = payment.clone();
		p.accepted = r.clone();
		assert_eq!(reason(&p, &r, IN_WINDOW), ErrorReason::InvalidSignature, "{name} {network}");
	}

	// A requirement that was not offered.
	let mut other = requirements.clone();
	other.max_timeout_seconds = 61;
	assert_eq!(reason(&payment, &other, IN_WINDOW), ErrorReason::InvalidPaymentRequirements);
	let mut lowercase = requirements.clone();
	lowercase.pay_to = lowercase.pay_to.to_lowercase();
	assert_eq!(reason(&payment, &lowercase, IN_WINDOW), ErrorReason::InvalidPaymentRequirements);

	// Consistent requirements that the authorization does not satisfy.
	let with = |f: &dyn Fn(&mut PaymentRequirements)| {
		let mut r = requirements.clone();
		f(&mut r);
		let mut p = payment.clone();
		p.accepted = r.clone();
		reason(&p, &r, IN_WINDOW)
	};
	assert_eq!(with(&|r| r.amount = "10001".into()), ErrorReason::ValueMismatch);
	assert_eq!(with(&|r| r.amount = "9999".into()), ErrorReason::ValueMismatch);
	assert_eq!(
		with(&|r| r.pay_to = "0x0000000000000000000000000000000000000001".into()),
		ErrorReason::RecipientMismatch
	);
	assert_eq!(with(&|r| r.network = "solana:mainnet".into()), ErrorReason::InvalidNetwork);
	assert_eq!(with(&|r| r.scheme = "upto".into()), ErrorReason::UnsupportedScheme);
	assert_eq!(with(&|r| r.extra = None), ErrorReason::InvalidPaymentRequirements);

	let mut v3 = payment.clone();
	v3.x402_version = 3;
	assert_eq!(reason(&v3, &requirements, IN_WINDOW), ErrorReason::InvalidX402Version);

	// Malformed payloads.
	let p = with_exact(&payment, |e| e.signature = "0x1234".into());
	assert_eq!(reason(&p, &requirements, IN_WINDOW), ErrorReason::InvalidSignature);
	let p = with_exact(&payment, |e| e.authorization.value = "-1".into());
	assert_eq!(reason(&p, &requirements, IN_WINDOW), ErrorReason::InvalidPayload);
	let mut p = payment.clone();
	p.payload = SchemePayload::encode(&serde_json::json!({"transaction": "0x"}));
	assert_eq!(reason(&p, &requirements, IN_WINDOW), ErrorReason::InvalidPayload);
}

#[test]
fn malformed_headers_are_errors_not_panics() {
	for bad in ["", "%%%", "bm90IGpzb24="] {
		assert!(codec::decode::<PaymentPayload>(bad, "PaymentPayload").is_err(), "{bad:?}");
	}
	// Valid JSON, wrong shape: a PaymentRequired is not a PaymentPayload.
	assert!(matches!(
		codec::decode::<PaymentPayload>(PAYMENT_REQUIRED, "PaymentPayload"),
		Err(codec::HeaderError::Json { what: "PaymentPayload", .. })
	));
}

#[test]
fn a_buyer_signature_verifies_and_pays_exactly_what_was_asked() {
	let (_, requirements) = example();
	let signer = PrivateKeySigner::random();
	let now = 1_800_000_000;
	let nonce = B256::repeat_byte(7);
	let wire = exact::sign(&signer, &requirements, now, nonce).unwrap();
	assert_eq!(wire.authorization.value, requirements.amount);
	assert_eq!(wire.authorization.to, requirements.pay_to);
	assert_eq!(wire.authorization.valid_after, (now - 600).to_string());
	assert_eq!(wire.authorization.valid_before, (now + 60).to_string());
	let payment = exact::payment(requirements.clone(), &wire);
	let verified = exact::verify(&payment, &requirements, now).unwrap();
	assert_eq!(verified.payer, signer.address());
	assert_eq!(verified.authorization.nonce, nonce);
	// v as 0/1 is accepted too.
	let sig = wire.signature.clone();
	let v = u8::from_str_radix(&sig[sig.len() - 2..], 16).unwrap();
	let zero_one =
		with_exact(&payment, |e| e.signature = format!("{}{:02x}", &sig[..sig.len() - 2], v - 27));
	assert_eq!(exact::verify(&zero_one, &requirements, now).unwrap().payer, signer.address());
}

#[test]
fn a_v1_payment_maps_onto_the_v2_core() {
	let body = serde_json::json!({
		"x402Version": 1,
		"error": "Payment required to access this resource",
		"accepts": [{
			"scheme": "exact",
			"network": "base-sepolia",
			"maxAmountRequired": "10000",
			"asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
			"payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
			"resource": "https://api.example.com/premium-data",
			"description": "Access to premium market data",
			"mimeType": "application/json",
			"outputSchema": null,
			"maxTimeoutSeconds": 60,
			"extra": {"name": "USDC", "version": "2"}
		}]
	});
	let v1_required: PaymentRequiredV1 = serde_json::from_value(body.clone()).unwrap();
	let (_, requirements) = example();
	let required: PaymentRequired = codec::decode(PAYMENT_REQUIRED, "PaymentRequired").unwrap();
	let as_v1 = v1::requirements_to_v1(&requirements, &required.resource).unwrap();
	assert_eq!(as_v1, v1_required.accepts[0], "v2 requirements offered to v1 clients");

	let v1_payment: PaymentPayloadV1 = codec::decode(X_PAYMENT, "PaymentPayloadV1").unwrap();
	let v2_payment = v1::payload_to_v2(&v1_payment, std::slice::from_ref(&requirements)).unwrap();
	assert_eq!(exact::verify(&v2_payment, &requirements, IN_WINDOW).unwrap().payer, PAYER);
}

#[test]
fn libsecp256k1_and_k256_recover_the_same_signer() {
	// The published example first, then fresh keys and digests.
	let (payment, requirements) = example();
	let (authorization, signature) = exact::parse(&exact_of(&payment)).unwrap();
	let digest = exact::signing_hash(&authorization, &exact::domain(&requirements).unwrap());
	assert_eq!(exact::recover_signer(&signature, &digest).unwrap(), PAYER);
	for i in 0..32u8 {
		let signer = PrivateKeySigner::random();
		let digest = alloy_primitives::keccak256([i]);
		let signature = alloy_signer::SignerSync::sign_hash_sync(&signer, &digest).unwrap();
		let k256 = signature.recover_address_from_prehash(&digest).unwrap();
		assert_eq!(exact::recover_signer(&signature, &digest).unwrap(), k256);
		assert_eq!(k256, signer.address());
	}
	// A signature over another digest recovers someone else, never the signer.
	let other = B256::repeat_byte(0xee);
	assert_ne!(exact::recover_signer(&signature, &other).ok(), Some(PAYER));
}
