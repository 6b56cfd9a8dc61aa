//! Checking a payment proof: one arm per proof kind. Each arm answers the same two questions,
//! what the proof claims (cheaply, before anything is verified) and what it proves, so that
//! everything after it is one accounting path whatever the scheme.

use frame_support::ensure;
use m2m_primitives::{
	channel::{settlement_domain, voucher_digest, SETTLEMENT_ADDRESS},
	receipt::{channel_receipt_id, exact_receipt_id, AssetKey, ReceiptId},
	H160, H256, U256,
};
use pallet_device_identity::pallet::recover_evm_address;

use crate::{
	AssetInfo, AuthorizationRecord, ChannelCursors, Config, Error, Evidence, PaymentProof,
	SchemeRecord, SettlementCheck, SettlementOracle,
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
	/// A channel claim whose total is not above the channel's recorded cursor.
	stale: bool,
}

impl Claim {
	/// The claimed value in token base units: non-zero, and within 128 bits.
	pub fn amount<T: Config>(&self) -> Result<u128, Error<T>> {
		if self.stale {
			return Err(Error::<T>::ClaimBelowCursor);
		}
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
	/// What this proof claims, read without verifying anything (a channel claim's value is
	/// what it adds to the channel's recorded total).
	pub(crate) fn claim<T: Config>(&self, asset: &AssetKey) -> Claim {
		match self {
			PaymentProof::Exact { authorization: a, .. } => Claim {
				id: exact_receipt_id(asset, &a.from, &a.nonce),
				payer: a.from,
				to: a.to,
				value: a.value,
				stale: false,
			},
			PaymentProof::Channel { config, total_claimed, .. } => {
				let channel_id = channel_id(asset, config);
				let cursor = ChannelCursors::<T>::get(channel_id);
				Claim {
					id: channel_receipt_id(asset, &channel_id, *total_claimed),
					payer: config.payer,
					to: config.receiver,
					value: U256::from(total_claimed.saturating_sub(cursor)),
					stale: *total_claimed <= cursor,
				}
			},
		}
	}
}

/// A channel's id under the settlement contract on `asset`'s chain.
pub(crate) fn channel_id(
	asset: &AssetKey,
	config: &m2m_primitives::channel::ChannelConfig,
) -> H256 {
	config.channel_id(asset.chain_id, SETTLEMENT_ADDRESS)
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
		PaymentProof::Channel { config, voucher_amount, signature, total_claimed } => {
			ensure!(config.token == key.token, Error::<T>::ChannelTokenMismatch);
			ensure!(total_claimed <= voucher_amount, Error::<T>::ClaimAboveVoucher);
			let channel_id = channel_id(key, &config);
			let cursor = ChannelCursors::<T>::get(channel_id);
			ensure!(total_claimed > cursor, Error::<T>::ClaimBelowCursor);
			// A zero payer authorizer delegates to the payer (EIP-1271 for a contract payer,
			// which only an EVM call could check: such vouchers are refused here).
			let authorizer = if config.payer_authorizer == H160::zero() {
				config.payer
			} else {
				config.payer_authorizer
			};
			let domain = settlement_domain(key.chain_id, SETTLEMENT_ADDRESS);
			let digest = voucher_digest(&channel_id, voucher_amount, &domain);
			if recover_evm_address(&signature, &digest.0) != Some(authorizer) {
				return Err(Error::<T>::InvalidSignature);
			}
			let evidence = match asset.settlement {
				SettlementCheck::SignedOnly => Evidence::SignedOnly,
				SettlementCheck::TokenDigest => {
					match T::Settlement::channel_claimed(key, &channel_id) {
						Some(claimed) if claimed >= total_claimed => Evidence::Proven,
						Some(_) => return Err(Error::<T>::NotSettled),
						None => return Err(Error::<T>::SettlementUnverifiable),
					}
				},
			};
			Ok((
				evidence,
				SchemeRecord::Channel {
					channel_id,
					claimed_from: cursor,
					claimed_to: total_claimed,
					voucher_amount,
					signature,
				},
			))
		},
	}
}
