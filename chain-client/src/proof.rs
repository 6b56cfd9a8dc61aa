//! Receipt proofs from x402 payments: the one place where a wire payment becomes what the
//! receipts pallet checks.

use m2m_primitives::{
	eip712::{EcdsaSignature, TransferWithAuthorization},
	H160, H256, U256,
};
use m2m_x402::{schemes::exact, v2::PaymentPayload, Problem};

/// The EIP-3009 authorization and signature of an x402 `exact` payment, as the receipts pallet
/// takes them.
pub fn exact_authorization(
	payment: &PaymentPayload,
) -> Result<(TransferWithAuthorization, EcdsaSignature), Problem> {
	let (a, signature) = exact::parse(&exact::payload(payment)?)?;
	let u256 = |v: m2m_x402::U256| U256::from_big_endian(&v.to_be_bytes::<32>());
	let authorization = TransferWithAuthorization {
		from: H160(a.from.0 .0),
		to: H160(a.to.0 .0),
		value: u256(a.value),
		valid_after: u256(a.validAfter),
		valid_before: u256(a.validBefore),
		nonce: H256(a.nonce.0),
	};
	let mut sig = [0u8; 65];
	sig.copy_from_slice(&signature.as_bytes());
	Ok((authorization, EcdsaSignature(sig)))
}
