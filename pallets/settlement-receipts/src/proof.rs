//! Checking a payment proof: one arm per proof kind. Each arm answers the same two questions,
//! what the proof claims (cheaply, before anything is verified) and what it proves, so that
//! everything after it is one accounting path whatever the scheme.

use m2m_primitives::{
	receipt::{exact_receipt_id, AssetKey, ReceiptId},
	H160, U256,
};
use pallet_device_identity::pallet::recover_evm_address;

use crate::{
	AssetInfo, AuthorizationRecord, Config, Error, Evidence, PaymentProof, SchemeRecord,
	SettlementCheck, SettlementOracle,
};

/// What a proof says, before it is verified.
pub(crate) struct Claim {
	/// The receipt id: the same payment always has the same one.
	pub id: ReceiptId,
	/// Who paid.
	pub payer: H160,
	/// Who was paid.
	pub to: H160,
	value: U256,
}

impl Claim {
	/// The claimed value in token base units: non-zero, and within 128 bits.
	pub fn amount<T: Config>(&self) -> Result<u128, Error<T>> {
		if self.value > U256::from(u128::MAX) {
			return Err(Error::<T>::AmountTooLarge);
		}
		let amount = self.value.low_u128();
		if amount == 0 {
			return Err(Error::<T>::ZeroAmount);
		}
		Ok(amount)
	}
}

impl PaymentProof {
	/// What this proof claims, read without verifying anything.
	pub(crate) fn claim(&self, asset: &AssetKey) -> Claim {
		match self {
			PaymentProof::Exact { authorization: a, .. } => Claim {
				id: exact_receipt_id(asset, &a.from, &a.nonce),
				payer: a.from,
				to: a.to,
				value: a.value,
			},
		}
	}
}

/// Verifies the payer's signature and, where the asset allows it, that the token executed
/// exactly this payment. Returns what the receipt proves and the record to keep.
pub(crate) fn verify<T: Config>(
	key: &AssetKey,
	asset: &AssetInfo,
	proof: PaymentProof,
) -> Result<(Evidence, SchemeRecord), Error<T>> {
	match proof {
		PaymentProof::Exact { authorization, signature } => {
			let digest = authorization.signing_digest(&asset.domain_separator);
			let signer = recover_evm_address(&signature, &digest.0);
			if signer != Some(authorization.from) {
				return Err(Error::<T>::InvalidSignature);
			}
			let evidence = match asset.settlement {
				SettlementCheck::SignedOnly => Evidence::SignedOnly,
				SettlementCheck::TokenDigest => match T::Settlement::authorization_record(
					key,
					&authorization.from,
					&authorization.nonce,
				) {
					AuthorizationRecord::Executed(executed) if executed == digest => {
						Evidence::Proven
					},
					AuthorizationRecord::Executed(_) => {
						return Err(Error::<T>::DifferentAuthorizationExecuted)
					},
					AuthorizationRecord::Cancelled => {
						return Err(Error::<T>::AuthorizationCancelled)
					},
					AuthorizationRecord::Unused => return Err(Error::<T>::NotSettled),
					AuthorizationRecord::Unavailable => {
						return Err(Error::<T>::SettlementUnverifiable)
					},
				},
			};
			Ok((evidence, SchemeRecord::Exact { authorization, signature }))
		},
	}
}
