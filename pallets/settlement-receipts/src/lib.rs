//! # Settlement receipts pallet
//!
//! Devices record here what they were paid, so that fleet owners can account for what their
//! machines spent and earned without trusting any device's word.
//!
//! ## Receipts cannot be invented
//!
//! A receipt carries the payer's signed EIP-3009 `TransferWithAuthorization`: all six fields and
//! the signature. The pallet recomputes the EIP-712 digest with the token's domain from the
//! registry of accepted assets ([`Assets`]) and checks that
//! - the signature recovers to the payer device's registered EVM address, and
//! - the authorization's recipient is the payee device's EVM address.
//!
//! So a receipt proves that the payer authorised exactly this payment to exactly this payee.
//!
//! ## Receipts for tokens on this chain are proven settled
//!
//! When the asset lives on this chain's own EVM, a signature is not the end of it: the pallet
//! asks the token contract itself, through [`Config::Settlement`], whether the cited
//! authorization was used (EIP-3009 `authorizationState(from, nonce)`). A receipt whose payment
//! has not settled is refused with [`Error::NotSettled`]; a recorded one carries
//! `settled_on_chain: true`. Assets on other chains stay payer-signed only.
//!
//! ## Idempotent
//!
//! The receipt id is derived from (chain id, token, payer, authorization nonce)
//! ([`m2m_primitives::receipt::exact_receipt_id`]): the same payment always has the same id.
//! [`Pallet::record_receipt`] refuses a second record with [`Error::DuplicateReceipt`];
//! [`Pallet::record_receipts`] skips duplicates with an event, so an agent can resubmit a whole
//! outbox batch after a crash without caring which part already landed.
//!
//! ## Fleet accounting
//!
//! Every recorded receipt updates running totals per device and per owner, per asset, and
//! per-day aggregates per device and per (owner, device). Range queries
//! ([`runtime_api::SettlementReceiptsApi`]) read one aggregate per day instead of scanning
//! receipts. Receipt bodies can be pruned after [`RetentionPeriod`]; aggregates and the
//! duplicate guard stay forever.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub mod runtime_api;
pub mod weights;
pub use weights::WeightInfo;

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame_support::{pallet_prelude::ConstU32, BoundedVec};
use m2m_primitives::{
	eip712::{EcdsaSignature, TransferWithAuthorization},
	receipt::{AssetKey, ReceiptId},
	H256,
};
use pallet_device_identity::DeviceId;
use scale_info::TypeInfo;

/// Longest EIP-712 domain name of an asset, in bytes.
pub const MAX_ASSET_NAME_LEN: u32 = 64;
/// Longest EIP-712 domain version or ticker symbol, in bytes.
pub const MAX_ASSET_LABEL_LEN: u32 = 16;

/// An accepted asset: its EIP-712 domain (as the token reports it on-chain) and display data.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct AssetInfo {
	/// The token's EIP-712 domain `name` (UTF-8, e.g. `USD₮0`).
	pub name: BoundedVec<u8, ConstU32<MAX_ASSET_NAME_LEN>>,
	/// The token's EIP-712 domain `version`.
	pub version: BoundedVec<u8, ConstU32<MAX_ASSET_LABEL_LEN>>,
	pub decimals: u8,
	pub symbol: BoundedVec<u8, ConstU32<MAX_ASSET_LABEL_LEN>>,
	/// Derived from name, version, chain id and token address at registration.
	pub domain_separator: H256,
	/// Disabled assets accept no new receipts; their history stays.
	pub enabled: bool,
}

/// What the payer signed, by payment scheme.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub enum PaymentProof {
	/// x402 `exact`: an EIP-3009 `TransferWithAuthorization` and its signature.
	#[codec(index = 0)]
	Exact { authorization: TransferWithAuthorization, signature: EcdsaSignature },
	// Index 1 is reserved for `Channel { channel_id, cumulative_amount, voucher_nonce,
	// signature }`: payment-channel vouchers, added with the payment-channel issue.
}

/// A receipt as the payee submits it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct ReceiptInput {
	/// The device that was paid.
	pub payee: DeviceId,
	/// The token and its chain.
	pub asset: AssetKey,
	pub proof: PaymentProof,
	/// The EVM transaction that settled the payment.
	pub settlement_tx: H256,
	/// Hash of the service or resource identifier that was sold.
	pub resource: H256,
	/// How many requests the payment covered.
	pub request_count: u32,
	/// The period of service covered, Unix milliseconds, inclusive.
	pub period_start: u64,
	pub period_end: u64,
}

/// How a recorded receipt was paid, kept with its body.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub enum SchemeRecord {
	#[codec(index = 0)]
	Exact { authorization: TransferWithAuthorization, signature: EcdsaSignature },
}

/// A recorded receipt.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct Receipt<AccountId> {
	pub payer: DeviceId,
	pub payee: DeviceId,
	/// Owners at the time of recording: accounting follows the owner who held the device.
	pub payer_owner: AccountId,
	pub payee_owner: AccountId,
	pub asset: AssetKey,
	/// Token base units.
	pub amount: u128,
	pub scheme: SchemeRecord,
	pub settlement_tx: H256,
	pub resource: H256,
	pub request_count: u32,
	pub period_start: u64,
	pub period_end: u64,
	/// Chain time of recording, Unix milliseconds.
	pub recorded_at: u64,
	/// The token on this chain confirmed that the authorization was used: the money moved.
	/// `false` for assets on other chains, whose receipts are payer-signed only.
	pub settled_on_chain: bool,
}

/// What the token contract says about an EIP-3009 authorization.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SettlementState {
	/// The asset does not live on this chain; settlement cannot be checked here.
	NotLocal,
	/// `authorizationState(from, nonce)` is true: the transfer happened.
	Used,
	/// `authorizationState(from, nonce)` is false: nothing was transferred (yet).
	Unused,
	/// The asset should live on this chain, but its contract could not answer (no code, revert,
	/// malformed answer or out of weight).
	Unavailable,
}

/// Asks the chain's EVM whether a payment settled. The runtime implements it over
/// pallet-revive; `()` treats every asset as living elsewhere.
pub trait SettlementOracle {
	/// Weight charged per receipt for one [`Self::authorization_state`] call: an upper bound,
	/// because the call is metered against it.
	fn check_weight() -> frame_support::weights::Weight;
	/// The state of `from`'s authorization `nonce` on `asset`'s token contract.
	fn authorization_state(
		asset: &AssetKey,
		from: &m2m_primitives::H160,
		nonce: &H256,
	) -> SettlementState;
}

impl SettlementOracle for () {
	fn check_weight() -> frame_support::weights::Weight {
		frame_support::weights::Weight::zero()
	}
	fn authorization_state(_: &AssetKey, _: &m2m_primitives::H160, _: &H256) -> SettlementState {
		SettlementState::NotLocal
	}
}

/// Which side of a receipt a device was on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub enum Role {
	Payer,
	Payee,
}

/// Running totals for one asset.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct Totals {
	/// Paid out, token base units.
	pub spent: u128,
	/// Received, token base units.
	pub earned: u128,
	pub payments_made: u32,
	pub payments_received: u32,
	pub requests_bought: u64,
	pub requests_sold: u64,
}

impl Totals {
	fn add_spend(&mut self, amount: u128, requests: u32) {
		self.spent = self.spent.saturating_add(amount);
		self.payments_made = self.payments_made.saturating_add(1);
		self.requests_bought = self.requests_bought.saturating_add(requests as u64);
	}

	fn add_earning(&mut self, amount: u128, requests: u32) {
		self.earned = self.earned.saturating_add(amount);
		self.payments_received = self.payments_received.saturating_add(1);
		self.requests_sold = self.requests_sold.saturating_add(requests as u64);
	}

	/// Component-wise sum.
	pub fn merge(&mut self, other: &Totals) {
		self.spent = self.spent.saturating_add(other.spent);
		self.earned = self.earned.saturating_add(other.earned);
		self.payments_made = self.payments_made.saturating_add(other.payments_made);
		self.payments_received = self.payments_received.saturating_add(other.payments_received);
		self.requests_bought = self.requests_bought.saturating_add(other.requests_bought);
		self.requests_sold = self.requests_sold.saturating_add(other.requests_sold);
	}
}

/// Position in a device's time-ordered receipt index: big-endian milliseconds, then the id, so
/// that storage order is chronological.
pub type ReceiptCursor = ([u8; 8], ReceiptId);

/// An asset to register at genesis.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct GenesisAsset {
	pub asset: AssetKey,
	pub name: alloc::string::String,
	pub version: alloc::string::String,
	pub decimals: u8,
	pub symbol: alloc::string::String,
}

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use alloc::{boxed::Box, vec::Vec};
	use frame_support::{pallet_prelude::*, traits::UnixTime};
	use frame_system::pallet_prelude::*;
	use m2m_primitives::{
		eip712::domain_separator,
		receipt::{day_of, exact_receipt_id},
		H160,
	};
	use pallet_device_identity::{pallet::recover_evm_address, DeviceDirectory};

	pub type ReceiptOf<T> = Receipt<<T as frame_system::Config>::AccountId>;

	#[pallet::pallet]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// The device registry.
		type Devices: DeviceDirectory<Self::AccountId>;
		/// Manages the accepted-asset registry and the retention period.
		type AdminOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Chain time.
		type UnixTime: UnixTime;
		/// Most receipts in one [`Pallet::record_receipts`] batch.
		#[pallet::constant]
		type MaxBatchSize: Get<u32>;
		/// Most receipts pruned in one call.
		#[pallet::constant]
		type MaxPruneBatch: Get<u32>;
		/// How far past chain time a receipt's period may end, in milliseconds (clock skew).
		#[pallet::constant]
		type MaxClockSkew: Get<u64>;
		/// Retention period used until [`Pallet::set_retention_period`] sets one, milliseconds.
		#[pallet::constant]
		type DefaultRetention: Get<u64>;
		/// Confirms on-chain settlement for assets on this chain's EVM.
		type Settlement: SettlementOracle;
		type WeightInfo: WeightInfo;
	}

	/// Assets whose receipts are accepted.
	#[pallet::storage]
	pub type Assets<T> = StorageMap<_, Blake2_128Concat, AssetKey, AssetInfo>;

	/// Receipt bodies (prunable).
	#[pallet::storage]
	pub type Receipts<T: Config> = StorageMap<_, Identity, ReceiptId, ReceiptOf<T>>;

	/// Every receipt id ever recorded, with its accounting day: the duplicate guard. Never pruned.
	#[pallet::storage]
	pub type Recorded<T> = StorageMap<_, Identity, ReceiptId, u32>;

	/// Per device, its receipts in chronological order (the key is big-endian time, then id).
	#[pallet::storage]
	pub type DeviceReceipts<T> =
		StorageDoubleMap<_, Twox64Concat, DeviceId, Identity, ReceiptCursor, Role>;

	/// All-time totals per device and asset.
	#[pallet::storage]
	pub type DeviceTotals<T> =
		StorageDoubleMap<_, Twox64Concat, DeviceId, Blake2_128Concat, AssetKey, Totals, ValueQuery>;

	/// All-time totals per owner and asset.
	#[pallet::storage]
	pub type OwnerTotals<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Blake2_128Concat,
		AssetKey,
		Totals,
		ValueQuery,
	>;

	/// Per device, UTC day and asset.
	#[pallet::storage]
	pub type DeviceDaily<T> = StorageNMap<
		_,
		(
			NMapKey<Twox64Concat, DeviceId>,
			NMapKey<Twox64Concat, u32>,
			NMapKey<Blake2_128Concat, AssetKey>,
		),
		Totals,
		ValueQuery,
	>;

	/// Per owner, UTC day, device and asset: an owner's range query reads its days only.
	#[pallet::storage]
	pub type OwnerDaily<T: Config> = StorageNMap<
		_,
		(
			NMapKey<Blake2_128Concat, T::AccountId>,
			NMapKey<Twox64Concat, u32>,
			NMapKey<Twox64Concat, DeviceId>,
			NMapKey<Blake2_128Concat, AssetKey>,
		),
		Totals,
		ValueQuery,
	>;

	/// Volume and receipt count per asset, across all devices.
	#[pallet::storage]
	pub type AssetTotals<T> = StorageMap<_, Blake2_128Concat, AssetKey, (u128, u64), ValueQuery>;

	/// How long receipt bodies are kept before anyone may prune them, milliseconds.
	#[pallet::storage]
	pub type RetentionPeriod<T: Config> =
		StorageValue<_, u64, ValueQuery, <T as Config>::DefaultRetention>;

	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		pub assets: Vec<GenesisAsset>,
		pub retention_period: Option<u64>,
		#[serde(skip)]
		pub _phantom: core::marker::PhantomData<T>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			for a in &self.assets {
				let info = Pallet::<T>::asset_info(
					&a.asset,
					a.name.as_bytes().to_vec(),
					a.version.as_bytes().to_vec(),
					a.decimals,
					a.symbol.as_bytes().to_vec(),
				)
				.expect("genesis asset labels fit their bounds");
				Assets::<T>::insert(a.asset, info);
			}
			if let Some(period) = self.retention_period {
				RetentionPeriod::<T>::put(period);
			}
		}
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		AssetRegistered {
			asset: AssetKey,
			domain_separator: H256,
		},
		AssetEnabled {
			asset: AssetKey,
			enabled: bool,
		},
		ReceiptRecorded {
			id: ReceiptId,
			payer: DeviceId,
			payee: DeviceId,
			asset: AssetKey,
			amount: u128,
			settlement_tx: H256,
			/// The token on this chain confirmed the transfer.
			settled_on_chain: bool,
		},
		/// A batch contained a receipt that was already recorded; it was skipped.
		DuplicateReceiptSkipped {
			id: ReceiptId,
		},
		ReceiptsPruned {
			count: u32,
		},
		RetentionPeriodSet {
			millis: u64,
		},
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The asset is not in the registry of accepted assets.
		UnknownAsset,
		/// The asset is registered but disabled.
		AssetDisabled,
		/// Asset name, version or symbol exceeds its bound.
		AssetLabelTooLong,
		/// This payment already has a receipt.
		DuplicateReceipt,
		/// No device has the payee id.
		UnknownPayee,
		/// The payee device is suspended.
		PayeeSuspended,
		/// Only the payee device or its owner may record its receipts.
		NotPayeeOrOwner,
		/// The authorization pays someone other than the payee device's EVM address.
		RecipientMismatch,
		/// No registered device has the authorization's `from` address.
		PayerNotRegistered,
		/// Payer and payee are the same device.
		SelfPayment,
		/// The signature is malformed or does not recover to the payer's EVM address under this
		/// asset's EIP-712 domain.
		InvalidSignature,
		/// The authorized value does not fit in 128 bits.
		AmountTooLarge,
		/// The authorized value is zero.
		ZeroAmount,
		/// A receipt covers at least one request.
		ZeroRequests,
		/// The period starts after it ends.
		InvalidPeriod,
		/// The period ends in the future (beyond the allowed clock skew).
		PeriodInFuture,
		/// The batch is empty.
		EmptyBatch,
		/// No receipt body has this id (never recorded, or already pruned).
		UnknownReceipt,
		/// The receipt is younger than the retention period.
		RetentionNotElapsed,
		/// The token lives on this chain and reports the authorization as unused: the payment
		/// has not settled. Record the receipt after the settlement transaction is included.
		NotSettled,
		/// The token should live on this chain's EVM, but its contract could not be asked
		/// whether the authorization was used (no contract at the address, or it reverted).
		SettlementUnverifiable,
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Record one receipt. Signed by the payee device's account or its owner.
		#[pallet::call_index(0)]
		#[pallet::weight(
			T::WeightInfo::record_receipt().saturating_add(T::Settlement::check_weight())
		)]
		pub fn record_receipt(origin: OriginFor<T>, receipt: Box<ReceiptInput>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_record(&who, *receipt).map_err(|e| match e {
				RecordError::Duplicate(_) => Error::<T>::DuplicateReceipt.into(),
				RecordError::Invalid(e) => e,
			})?;
			Ok(())
		}

		/// Record a batch of receipts. Receipts already recorded are skipped
		/// ([`Event::DuplicateReceiptSkipped`]); any other invalid receipt fails the whole batch.
		#[pallet::call_index(1)]
		#[pallet::weight(
			T::WeightInfo::record_receipts(receipts.len() as u32)
				.saturating_add(T::Settlement::check_weight().saturating_mul(receipts.len() as u64))
		)]
		pub fn record_receipts(
			origin: OriginFor<T>,
			receipts: BoundedVec<ReceiptInput, T::MaxBatchSize>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!receipts.is_empty(), Error::<T>::EmptyBatch);
			for receipt in receipts {
				match Self::do_record(&who, receipt) {
					Err(RecordError::Duplicate(id)) => {
						Self::deposit_event(Event::DuplicateReceiptSkipped { id })
					},
					Err(RecordError::Invalid(e)) => return Err(e),
					Ok(_) => {},
				}
			}
			Ok(())
		}

		/// Add or replace an accepted asset. `name` and `version` must be the token's EIP-712
		/// domain as its contract reports it (`eip712Domain()` / `name()`, `version()`).
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::register_asset())]
		pub fn register_asset(
			origin: OriginFor<T>,
			asset: AssetKey,
			name: Vec<u8>,
			version: Vec<u8>,
			decimals: u8,
			symbol: Vec<u8>,
		) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			let info = Self::asset_info(&asset, name, version, decimals, symbol)?;
			let domain_separator = info.domain_separator;
			Assets::<T>::insert(asset, info);
			Self::deposit_event(Event::AssetRegistered { asset, domain_separator });
			Ok(())
		}

		/// Enable or disable an accepted asset.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::set_asset_enabled())]
		pub fn set_asset_enabled(
			origin: OriginFor<T>,
			asset: AssetKey,
			enabled: bool,
		) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			Assets::<T>::try_mutate(asset, |info| {
				let info = info.as_mut().ok_or(Error::<T>::UnknownAsset)?;
				info.enabled = enabled;
				Ok::<_, DispatchError>(())
			})?;
			Self::deposit_event(Event::AssetEnabled { asset, enabled });
			Ok(())
		}

		/// Set how long receipt bodies are kept, in milliseconds.
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::set_retention_period())]
		pub fn set_retention_period(origin: OriginFor<T>, millis: u64) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			RetentionPeriod::<T>::put(millis);
			Self::deposit_event(Event::RetentionPeriodSet { millis });
			Ok(())
		}

		/// Remove the bodies of receipts older than the retention period. Anyone may call this;
		/// it is free when every id was prunable. Aggregates and the duplicate guard stay.
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::prune_receipts(ids.len() as u32))]
		pub fn prune_receipts(
			origin: OriginFor<T>,
			ids: BoundedVec<ReceiptId, T::MaxPruneBatch>,
		) -> DispatchResultWithPostInfo {
			ensure_signed(origin)?;
			let now = Self::now_millis();
			let retention = RetentionPeriod::<T>::get();
			let count = ids.len() as u32;
			for id in ids {
				let receipt = Receipts::<T>::get(id).ok_or(Error::<T>::UnknownReceipt)?;
				ensure!(
					receipt.recorded_at.saturating_add(retention) <= now,
					Error::<T>::RetentionNotElapsed
				);
				let key = (receipt.period_end.to_be_bytes(), id);
				DeviceReceipts::<T>::remove(receipt.payer, key);
				DeviceReceipts::<T>::remove(receipt.payee, key);
				Receipts::<T>::remove(id);
			}
			Self::deposit_event(Event::ReceiptsPruned { count });
			Ok(Pays::No.into())
		}
	}

	/// Why one receipt was not recorded: batches skip duplicates and fail on the rest.
	pub(crate) enum RecordError {
		Duplicate(ReceiptId),
		Invalid(DispatchError),
	}

	impl<T: Config> From<Error<T>> for RecordError {
		fn from(e: Error<T>) -> Self {
			RecordError::Invalid(e.into())
		}
	}

	impl<T: Config> Pallet<T> {
		/// Validates and stores one receipt; cheap checks first, then signature recovery, then
		/// the settlement check on the token contract.
		pub(crate) fn do_record(
			who: &T::AccountId,
			input: ReceiptInput,
		) -> Result<ReceiptId, RecordError> {
			let asset = Assets::<T>::get(input.asset).ok_or(Error::<T>::UnknownAsset)?;
			ensure!(asset.enabled, Error::<T>::AssetDisabled);
			let PaymentProof::Exact { authorization, signature } = input.proof;
			let id = exact_receipt_id(&input.asset, &authorization.from, &authorization.nonce);
			if Recorded::<T>::contains_key(id) {
				return Err(RecordError::Duplicate(id));
			}

			let payee = T::Devices::device(input.payee).ok_or(Error::<T>::UnknownPayee)?;
			ensure!(who == &payee.account || who == &payee.owner, Error::<T>::NotPayeeOrOwner);
			ensure!(payee.active, Error::<T>::PayeeSuspended);
			ensure!(authorization.to == payee.evm_address, Error::<T>::RecipientMismatch);
			let payer = T::Devices::device_by_evm(&authorization.from)
				.ok_or(Error::<T>::PayerNotRegistered)?;
			ensure!(payer.id != payee.id, Error::<T>::SelfPayment);

			ensure!(authorization.value <= u128::MAX.into(), Error::<T>::AmountTooLarge);
			let amount = authorization.value.low_u128();
			ensure!(amount > 0, Error::<T>::ZeroAmount);
			ensure!(input.request_count > 0, Error::<T>::ZeroRequests);
			ensure!(input.period_start <= input.period_end, Error::<T>::InvalidPeriod);
			let now = Self::now_millis();
			ensure!(
				input.period_end <= now.saturating_add(T::MaxClockSkew::get()),
				Error::<T>::PeriodInFuture
			);

			let digest = authorization.signing_digest(&asset.domain_separator);
			let signer: Option<H160> = recover_evm_address(&signature, &digest.0);
			ensure!(signer == Some(authorization.from), Error::<T>::InvalidSignature);

			let settled_on_chain = match T::Settlement::authorization_state(
				&input.asset,
				&authorization.from,
				&authorization.nonce,
			) {
				SettlementState::NotLocal => false,
				SettlementState::Used => true,
				SettlementState::Unused => return Err(Error::<T>::NotSettled.into()),
				SettlementState::Unavailable => {
					return Err(Error::<T>::SettlementUnverifiable.into())
				},
			};

			let day = day_of(input.period_end);
			let (key, requests) = ((input.period_end.to_be_bytes(), id), input.request_count);
			Recorded::<T>::insert(id, day);
			DeviceReceipts::<T>::insert(payer.id, key, Role::Payer);
			DeviceReceipts::<T>::insert(payee.id, key, Role::Payee);
			DeviceTotals::<T>::mutate(payer.id, input.asset, |t| t.add_spend(amount, requests));
			DeviceTotals::<T>::mutate(payee.id, input.asset, |t| t.add_earning(amount, requests));
			OwnerTotals::<T>::mutate(&payer.owner, input.asset, |t| t.add_spend(amount, requests));
			OwnerTotals::<T>::mutate(&payee.owner, input.asset, |t| {
				t.add_earning(amount, requests)
			});
			DeviceDaily::<T>::mutate((payer.id, day, input.asset), |t| {
				t.add_spend(amount, requests)
			});
			DeviceDaily::<T>::mutate((payee.id, day, input.asset), |t| {
				t.add_earning(amount, requests)
			});
			OwnerDaily::<T>::mutate((&payer.owner, day, payer.id, input.asset), |t| {
				t.add_spend(amount, requests)
			});
			OwnerDaily::<T>::mutate((&payee.owner, day, payee.id, input.asset), |t| {
				t.add_earning(amount, requests)
			});
			AssetTotals::<T>::mutate(input.asset, |(volume, count)| {
				*volume = volume.saturating_add(amount);
				*count = count.saturating_add(1);
			});
			Receipts::<T>::insert(
				id,
				Receipt {
					payer: payer.id,
					payee: payee.id,
					payer_owner: payer.owner,
					payee_owner: payee.owner,
					asset: input.asset,
					amount,
					scheme: SchemeRecord::Exact { authorization, signature },
					settlement_tx: input.settlement_tx,
					resource: input.resource,
					request_count: input.request_count,
					period_start: input.period_start,
					period_end: input.period_end,
					recorded_at: now,
					settled_on_chain,
				},
			);
			Self::deposit_event(Event::ReceiptRecorded {
				id,
				payer: payer.id,
				payee: payee.id,
				asset: input.asset,
				amount,
				settlement_tx: input.settlement_tx,
				settled_on_chain,
			});
			Ok(id)
		}

		pub(crate) fn asset_info(
			asset: &AssetKey,
			name: Vec<u8>,
			version: Vec<u8>,
			decimals: u8,
			symbol: Vec<u8>,
		) -> Result<AssetInfo, Error<T>> {
			let domain_separator = domain_separator(&name, &version, asset.chain_id, asset.token);
			Ok(AssetInfo {
				name: name.try_into().map_err(|_| Error::<T>::AssetLabelTooLong)?,
				version: version.try_into().map_err(|_| Error::<T>::AssetLabelTooLong)?,
				decimals,
				symbol: symbol.try_into().map_err(|_| Error::<T>::AssetLabelTooLong)?,
				domain_separator,
				enabled: true,
			})
		}

		pub(crate) fn now_millis() -> u64 {
			T::UnixTime::now().as_millis() as u64
		}
	}
}

/// Queries behind the runtime API; see [`runtime_api::SettlementReceiptsApi`].
pub mod queries {
	use super::*;
	use crate::runtime_api::{DeviceSummary, OwnerSummary, QueryError, ReceiptPage};
	use alloc::{collections::btree_map::BTreeMap, vec::Vec};
	use m2m_primitives::receipt::day_of;

	/// Longest range a summary covers, in days.
	pub const MAX_RANGE_DAYS: u32 = 366;
	/// Largest page of receipts.
	pub const MAX_PAGE: u32 = 100;

	fn days(from_ms: u64, to_ms: u64) -> Result<(u32, u32), QueryError> {
		if from_ms > to_ms {
			return Err(QueryError::InvalidRange);
		}
		let (from, to) = (day_of(from_ms), day_of(to_ms));
		if to - from >= MAX_RANGE_DAYS {
			return Err(QueryError::RangeTooLong { max_days: MAX_RANGE_DAYS });
		}
		Ok((from, to))
	}

	fn into_vec(map: BTreeMap<AssetKey, Totals>) -> Vec<(AssetKey, Totals)> {
		map.into_iter().collect()
	}

	/// An owner's totals per asset and per device, over the UTC days that `from_ms..=to_ms`
	/// touches. Reads the owner's per-day aggregates only.
	pub fn owner_summary<T: Config>(
		owner: &T::AccountId,
		from_ms: u64,
		to_ms: u64,
	) -> Result<OwnerSummary, QueryError> {
		let (from_day, to_day) = days(from_ms, to_ms)?;
		let mut totals = BTreeMap::<AssetKey, Totals>::new();
		let mut per_device = BTreeMap::<(DeviceId, AssetKey), Totals>::new();
		for day in from_day..=to_day {
			for ((device, asset), t) in OwnerDaily::<T>::iter_prefix((owner, day)) {
				totals.entry(asset).or_default().merge(&t);
				per_device.entry((device, asset)).or_default().merge(&t);
			}
		}
		Ok(OwnerSummary {
			from_day,
			to_day,
			totals: into_vec(totals),
			devices: per_device.into_iter().map(|((d, a), t)| (d, a, t)).collect(),
		})
	}

	/// A device's totals per asset and per day over the UTC days that `from_ms..=to_ms` touches.
	pub fn device_summary<T: Config>(
		device: DeviceId,
		from_ms: u64,
		to_ms: u64,
	) -> Result<DeviceSummary, QueryError> {
		let (from_day, to_day) = days(from_ms, to_ms)?;
		let mut totals = BTreeMap::<AssetKey, Totals>::new();
		let mut daily = Vec::new();
		for day in from_day..=to_day {
			for (asset, t) in DeviceDaily::<T>::iter_prefix((device, day)) {
				totals.entry(asset).or_default().merge(&t);
				daily.push((day, asset, t));
			}
		}
		Ok(DeviceSummary { from_day, to_day, totals: into_vec(totals), daily })
	}

	/// A device's receipts whose period ends within `from_ms..=to_ms`, oldest first, at most
	/// `limit`, starting after `after`. Pruned receipts are not listed.
	pub fn device_receipts<T: Config>(
		device: DeviceId,
		from_ms: u64,
		to_ms: u64,
		after: Option<ReceiptCursor>,
		limit: u32,
	) -> Result<ReceiptPage<T::AccountId>, QueryError> {
		if from_ms > to_ms {
			return Err(QueryError::InvalidRange);
		}
		if limit == 0 || limit > MAX_PAGE {
			return Err(QueryError::InvalidPageSize { max: MAX_PAGE });
		}
		let start = match after {
			Some(cursor) => cursor,
			// `iter_prefix_from` starts strictly after its key; one millisecond earlier with
			// the largest id covers every receipt at `from_ms`.
			None => match from_ms.checked_sub(1) {
				Some(before) => (before.to_be_bytes(), ReceiptId::repeat_byte(0xff)),
				None => ([0u8; 8], ReceiptId::zero()),
			},
		};
		let mut iter = if after.is_none() && from_ms == 0 {
			DeviceReceipts::<T>::iter_prefix(device)
		} else {
			DeviceReceipts::<T>::iter_prefix_from(
				device,
				DeviceReceipts::<T>::hashed_key_for(device, start),
			)
		};
		let mut receipts = Vec::new();
		let mut next = None;
		for (key, role) in iter.by_ref() {
			if u64::from_be_bytes(key.0) > to_ms {
				break;
			}
			if receipts.len() as u32 == limit {
				next = receipts.last().map(|(cursor, _, _, _)| *cursor);
				break;
			}
			if let Some(receipt) = Receipts::<T>::get(key.1) {
				receipts.push((key, key.1, role, receipt));
			}
		}
		Ok(ReceiptPage {
			receipts: receipts.into_iter().map(|(_, id, role, r)| (id, role, r)).collect(),
			next,
		})
	}
}
