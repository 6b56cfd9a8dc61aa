//! # Settlement receipts pallet
//!
//! Devices record here what they were paid, so that fleet owners can account for what their
//! machines spent and earned without trusting any device's word.
//!
//! ## What a receipt proves
//!
//! A receipt carries the payer's signed EIP-3009 `TransferWithAuthorization`: all six fields and
//! the signature. The pallet recomputes the EIP-712 digest with the token's domain from the
//! registry of accepted assets ([`Assets`]) and checks that the signature recovers to the
//! authorization's `from` and that its `to` is the payee device's EVM address. Every receipt
//! therefore proves at least that **the payer signed exactly this payment to exactly this
//! payee** ([`Evidence::SignedOnly`]).
//!
//! **"Proven" ([`Evidence::Proven`]) means more: the token on this chain executed exactly this
//! authorization, so this value moved from this payer to this payee.** For assets registered
//! with [`SettlementCheck::TokenDigest`], the pallet asks the token, through
//! [`Config::Settlement`], which authorization it executed under `(from, nonce)`
//! (`authorizationDigest(from, nonce)`): the EIP-712 digest of what it executed, a cancellation
//! mark, or nothing. The receipt is recorded only if that digest equals the digest of the cited
//! authorization. A digest covers from, to, value, validity and nonce, so none of these can
//! differ:
//! - a second, smaller authorization executed under the same nonce is refused
//!   ([`Error::DifferentAuthorizationExecuted`]);
//! - a cancelled nonce is refused ([`Error::AuthorizationCancelled`]);
//! - an authorization that was never executed is refused ([`Error::NotSettled`]).
//!
//! ### Why the token remembers digests (and the pallet does not settle itself)
//!
//! EIP-3009's `authorizationState(from, nonce)` only says that *something* used the nonce, and
//! cancellation sets it too, so it cannot prove an amount. Two fixes were possible: settle
//! through the pallet (a call that executes the transfer in pallet-revive and records the
//! receipt in the same extrinsic), or have the token remember what it executed. We chose the
//! second: x402 buyers, sellers and explorers keep seeing an ordinary EVM transaction with its
//! hash, the facilitator stays a plain EIP-3009 submitter that works on any chain, and the proof
//! costs the token nothing extra (the per-nonce slot it already writes now holds a digest
//! instead of `true`). Tokens that cannot prove it (another chain, or a token that keeps only
//! the flag, such as peaq's USDT today) are registered [`SettlementCheck::SignedOnly`], and
//! their receipts stay payer-signed only.
//!
//! ## Receipts from any payer
//!
//! The payee must be a registered device (it records its own earnings); the payer is whoever
//! signed: a device, a browser, another company's agent. The receipt names the payer's EVM
//! address, and the payer device when one is registered with that address. Per-payer totals
//! ([`PayerTotals`]) cover every payer.
//!
//! ## Accounting an auditor can trust
//!
//! - Proven and signed-only amounts are kept apart in every total ([`Totals`]).
//! - Signed-only receipts between two devices of one owner are refused
//!   ([`Error::UnprovenWithinOneOwner`]): an owner could otherwise sign itself any volume.
//! - Closed days stay closed: a receipt whose period ended more than [`Config::MaxBackdate`]
//!   ago is refused ([`Error::PeriodClosed`]).
//! - Receipt bodies live for the retention period ([`RetentionPeriod`], at most
//!   [`Config::MaxRetention`]), and the chain removes them itself in `on_idle`; the aggregates
//!   and the duplicate guard stay forever.
//! - `try_state` checks that the daily rows add up to the all-time totals.
//!
//! ## Idempotent
//!
//! The receipt id is derived from (chain id, token, payer, authorization nonce)
//! ([`m2m_primitives::receipt::exact_receipt_id`]): the same payment always has the same id.
//! [`Pallet::record_receipt`] refuses a second record with [`Error::DuplicateReceipt`];
//! [`Pallet::record_receipts`] skips duplicates with an event, so an agent can resubmit a whole
//! outbox batch after a crash without caring which part already landed.
//!
//! ## Layout
//!
//! `types.rs` holds the types, `proof.rs` checks a payment proof (one arm per proof kind),
//! `accounting.rs` is the single accounting path every proof kind ends in, `queries.rs` answers
//! the runtime API, and `migration/` upgrades stored data.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

mod accounting;
#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
pub mod migration;
#[cfg(test)]
mod mock;
mod proof;
pub mod queries;
pub mod runtime_api;
#[cfg(test)]
mod tests;
mod types;
pub mod weights;

pub use types::*;
pub use weights::WeightInfo;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use alloc::{boxed::Box, vec::Vec};
	use frame_support::{pallet_prelude::*, traits::UnixTime};
	use frame_system::pallet_prelude::*;
	use m2m_primitives::{
		eip712::domain_separator,
		receipt::{day_of, AssetKey, ReceiptId},
		H160, H256,
	};
	use pallet_device_identity::{DeviceDirectory, DeviceId};

	pub type ReceiptOf<T> = Receipt<<T as frame_system::Config>::AccountId>;

	/// v1: digest-proven settlement, any payer, proven and signed-only totals apart, owner
	/// aggregates keyed by device first, and the expiry queue. See [`crate::migration`].
	pub const STORAGE_VERSION: StorageVersion = StorageVersion::new(1);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
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
		/// How long before chain time a receipt's period may have ended, in milliseconds. Older
		/// days are closed: their accounting no longer changes.
		#[pallet::constant]
		type MaxBackdate: Get<u64>;
		/// Retention period used until [`Pallet::set_retention_period`] sets one, milliseconds.
		#[pallet::constant]
		type DefaultRetention: Get<u64>;
		/// The longest retention period governance may set, milliseconds: receipt bodies never
		/// outlive it.
		#[pallet::constant]
		type MaxRetention: Get<u64>;
		/// Confirms on-chain settlement for assets on this chain's EVM.
		type Settlement: SettlementOracle;
		type WeightInfo: WeightInfo;
	}

	/// Per payment channel, the claimed total its receipts have recorded so far: the next
	/// channel receipt accounts only what its claim adds to it.
	#[pallet::storage]
	pub type ChannelCursors<T> = StorageMap<_, Identity, H256, u128, ValueQuery>;

	/// Assets whose receipts are accepted.
	#[pallet::storage]
	pub type Assets<T> = StorageMap<_, Blake2_128Concat, AssetKey, AssetInfo>;

	/// Receipt bodies, removed after the retention period.
	#[pallet::storage]
	pub type Receipts<T: Config> = StorageMap<_, Identity, ReceiptId, ReceiptOf<T>>;

	/// Every receipt id ever recorded, with its accounting day: the duplicate guard. Never pruned.
	#[pallet::storage]
	pub type Recorded<T> = StorageMap<_, Identity, ReceiptId, u32>;

	/// Receipt bodies by recording time (big-endian milliseconds), oldest first: what `on_idle`
	/// removes once the retention period has passed.
	#[pallet::storage]
	pub type Expiries<T> = StorageDoubleMap<_, Identity, [u8; 8], Identity, ReceiptId, ()>;

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

	/// All-time spending per payer address and asset, whether or not the payer is a device.
	#[pallet::storage]
	pub type PayerTotals<T> =
		StorageDoubleMap<_, Identity, H160, Blake2_128Concat, AssetKey, Totals, ValueQuery>;

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

	/// Per owner, UTC day and asset, across the owner's devices: an owner's summary reads one
	/// row per day and asset, however many devices it has.
	#[pallet::storage]
	pub type OwnerDaily<T: Config> = StorageNMap<
		_,
		(
			NMapKey<Blake2_128Concat, T::AccountId>,
			NMapKey<Twox64Concat, u32>,
			NMapKey<Blake2_128Concat, AssetKey>,
		),
		Totals,
		ValueQuery,
	>;

	/// Per owner, device, UTC day and asset: the per-device part of an owner's summary, one page
	/// of devices at a time.
	#[pallet::storage]
	pub type OwnerDeviceDaily<T: Config> = StorageNMap<
		_,
		(
			NMapKey<Blake2_128Concat, T::AccountId>,
			NMapKey<Identity, DeviceId>,
			NMapKey<Twox64Concat, u32>,
			NMapKey<Blake2_128Concat, AssetKey>,
		),
		Totals,
		ValueQuery,
	>;

	/// Every device an owner had receipts for while owning it, in id order (`Identity` keys
	/// iterate in order), for paging an owner's summary.
	#[pallet::storage]
	pub type OwnerDevices<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Identity, DeviceId, ()>;

	/// Volume and receipt count per asset, across all devices.
	#[pallet::storage]
	pub type AssetTotals<T> = StorageMap<_, Blake2_128Concat, AssetKey, AssetVolume, ValueQuery>;

	/// How long receipt bodies are kept, milliseconds.
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
					a.settlement,
				)
				.expect("genesis asset labels fit their bounds");
				Assets::<T>::insert(a.asset, info);
			}
			if let Some(period) = self.retention_period {
				assert!(period <= T::MaxRetention::get(), "genesis retention exceeds MaxRetention");
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
			settlement: SettlementCheck,
		},
		AssetEnabled {
			asset: AssetKey,
			enabled: bool,
		},
		ReceiptRecorded {
			id: ReceiptId,
			payer: H160,
			payer_device: Option<DeviceId>,
			payee: DeviceId,
			asset: AssetKey,
			amount: u128,
			settlement_tx: H256,
			evidence: Evidence,
		},
		/// A batch contained a receipt that was already recorded; it was skipped.
		DuplicateReceiptSkipped {
			id: ReceiptId,
		},
		/// Receipt bodies past the retention period were removed (by a call or by `on_idle`).
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
		/// The payer is the payee itself.
		SelfPayment,
		/// The signature is malformed or does not recover to the authorization's `from` under
		/// this asset's EIP-712 domain.
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
		/// The period ended before [`Config::MaxBackdate`]: that day's accounting is closed.
		PeriodClosed,
		/// The batch is empty.
		EmptyBatch,
		/// No receipt body has this id (never recorded, or already pruned).
		UnknownReceipt,
		/// The receipt is younger than the retention period.
		RetentionNotElapsed,
		/// The retention period exceeds [`Config::MaxRetention`].
		RetentionTooLong,
		/// The token executed nothing under this authorization's nonce: the payment has not
		/// settled. Record the receipt after the settlement transaction is included.
		NotSettled,
		/// The token executed a different authorization under this nonce (another value,
		/// recipient or validity): this one never moved any money.
		DifferentAuthorizationExecuted,
		/// The payer cancelled this authorization: no money moved.
		AuthorizationCancelled,
		/// The asset is registered as provable on this chain, but its token could not be asked
		/// what it executed (no contract at the address, it reverted, or answered nonsense).
		SettlementUnverifiable,
		/// Payer and payee devices belong to the same owner, and the asset cannot prove the
		/// payment moved: such a receipt would be an owner paying itself on paper.
		UnprovenWithinOneOwner,
		/// The channel's token is not the receipt's asset.
		ChannelTokenMismatch,
		/// The claimed total exceeds the voucher the payer signed.
		ClaimAboveVoucher,
		/// The claimed total is not above what this channel's receipts already recorded.
		ClaimBelowCursor,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		/// Removes receipt bodies past the retention period, oldest first, with the block's
		/// spare weight.
		fn on_idle(_n: BlockNumberFor<T>, remaining: Weight) -> Weight {
			Self::expire(remaining)
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Record one receipt.
		///
		/// Origin: signed by the payee device's account or its owner. Emits
		/// [`Event::ReceiptRecorded`]; a payment that already has a receipt is refused with
		/// [`Error::DuplicateReceipt`].
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

		/// Record a batch of receipts.
		///
		/// Origin: signed by the payee device's account or its owner, for every receipt. Emits
		/// [`Event::ReceiptRecorded`] per new receipt and [`Event::DuplicateReceiptSkipped`] per
		/// receipt already recorded; any other invalid receipt fails the whole batch.
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
		/// domain as its contract reports it (`eip712Domain()` / `name()`, `version()`);
		/// `settlement` says whether the token can prove what it executed.
		///
		/// Origin: [`Config::AdminOrigin`]. Emits [`Event::AssetRegistered`].
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::register_asset())]
		pub fn register_asset(
			origin: OriginFor<T>,
			asset: AssetKey,
			name: Vec<u8>,
			version: Vec<u8>,
			decimals: u8,
			symbol: Vec<u8>,
			settlement: SettlementCheck,
		) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			let info = Self::asset_info(&asset, name, version, decimals, symbol, settlement)?;
			let domain_separator = info.domain_separator;
			Assets::<T>::insert(asset, info);
			Self::deposit_event(Event::AssetRegistered { asset, domain_separator, settlement });
			Ok(())
		}

		/// Enable or disable an accepted asset.
		///
		/// Origin: [`Config::AdminOrigin`]. Emits [`Event::AssetEnabled`].
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

		/// Set how long receipt bodies are kept, in milliseconds, at most
		/// [`Config::MaxRetention`].
		///
		/// Origin: [`Config::AdminOrigin`]. Emits [`Event::RetentionPeriodSet`].
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::set_retention_period())]
		pub fn set_retention_period(origin: OriginFor<T>, millis: u64) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			ensure!(millis <= T::MaxRetention::get(), Error::<T>::RetentionTooLong);
			RetentionPeriod::<T>::put(millis);
			Self::deposit_event(Event::RetentionPeriodSet { millis });
			Ok(())
		}

		/// Remove the bodies of receipts older than the retention period now, rather than
		/// waiting for `on_idle`. Aggregates and the duplicate guard stay.
		///
		/// Origin: any signed account; free when every id was prunable. Emits
		/// [`Event::ReceiptsPruned`].
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
				Self::remove_body(id, &receipt);
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
		/// Validates and stores one receipt: cheap checks first, then the proof (signature and
		/// settlement), then the one accounting path.
		pub(crate) fn do_record(
			who: &T::AccountId,
			input: ReceiptInput,
		) -> Result<ReceiptId, RecordError> {
			let asset = Assets::<T>::get(input.asset).ok_or(Error::<T>::UnknownAsset)?;
			ensure!(asset.enabled, Error::<T>::AssetDisabled);
			let claim = input.proof.claim::<T>(&input.asset);
			if Recorded::<T>::contains_key(claim.id) {
				return Err(RecordError::Duplicate(claim.id));
			}

			let payee = T::Devices::device(input.payee).ok_or(Error::<T>::UnknownPayee)?;
			ensure!(who == &payee.account || who == &payee.owner, Error::<T>::NotPayeeOrOwner);
			ensure!(payee.active, Error::<T>::PayeeSuspended);
			ensure!(claim.to == payee.evm_address, Error::<T>::RecipientMismatch);
			ensure!(claim.payer != payee.evm_address, Error::<T>::SelfPayment);
			let amount = claim.amount::<T>()?;
			ensure!(input.request_count > 0, Error::<T>::ZeroRequests);
			ensure!(input.period_start <= input.period_end, Error::<T>::InvalidPeriod);
			let now = Self::now_millis();
			ensure!(
				input.period_end <= now.saturating_add(T::MaxClockSkew::get()),
				Error::<T>::PeriodInFuture
			);
			ensure!(
				input.period_end.saturating_add(T::MaxBackdate::get()) >= now,
				Error::<T>::PeriodClosed
			);

			let (evidence, scheme) = proof::verify::<T>(&input.asset, &asset, input.proof)?;
			let payer = T::Devices::device_by_evm(&claim.payer);
			if evidence == Evidence::SignedOnly {
				ensure!(
					payer.as_ref().is_none_or(|p| p.owner != payee.owner),
					Error::<T>::UnprovenWithinOneOwner
				);
			}

			let receipt = Receipt {
				payer: claim.payer,
				payer_device: payer.as_ref().map(|p| p.id),
				payee: payee.id,
				payer_owner: payer.map(|p| p.owner),
				payee_owner: payee.owner,
				asset: input.asset,
				amount,
				scheme,
				settlement_tx: input.settlement_tx,
				resource: input.resource,
				request_count: input.request_count,
				period_start: input.period_start,
				period_end: input.period_end,
				recorded_at: now,
				evidence,
			};
			accounting::record::<T>(claim.id, &receipt, day_of(input.period_end));
			if let SchemeRecord::Channel { channel_id, claimed_to, .. } = &receipt.scheme {
				ChannelCursors::<T>::insert(channel_id, claimed_to);
			}
			Self::deposit_event(Event::ReceiptRecorded {
				id: claim.id,
				payer: receipt.payer,
				payer_device: receipt.payer_device,
				payee: receipt.payee,
				asset: receipt.asset,
				amount,
				settlement_tx: receipt.settlement_tx,
				evidence,
			});
			Receipts::<T>::insert(claim.id, receipt);
			Ok(claim.id)
		}

		/// Removes bodies past retention, oldest first, within `remaining` weight.
		pub(crate) fn expire(remaining: Weight) -> Weight {
			let per_item = T::WeightInfo::prune_receipts(1);
			// Reading the retention period and the first expiry entry.
			let mut used = T::DbWeight::get().reads(2);
			if !remaining.all_gte(used.saturating_add(per_item)) {
				return Weight::zero();
			}
			let cutoff = Self::now_millis().saturating_sub(RetentionPeriod::<T>::get());
			let mut count = 0u32;
			let mut expired = Vec::new();
			for (at, id, ()) in Expiries::<T>::iter() {
				if u64::from_be_bytes(at) > cutoff
					|| !remaining.all_gte(used.saturating_add(per_item))
				{
					break;
				}
				used = used.saturating_add(per_item);
				expired.push((at, id));
			}
			for (at, id) in expired {
				match Receipts::<T>::get(id) {
					Some(receipt) => Self::remove_body(id, &receipt),
					None => Expiries::<T>::remove(at, id),
				}
				count += 1;
			}
			if count > 0 {
				Self::deposit_event(Event::ReceiptsPruned { count });
			}
			used
		}

		/// Removes one receipt body and its index entries; aggregates stay.
		fn remove_body(id: ReceiptId, receipt: &ReceiptOf<T>) {
			let key = (receipt.period_end.to_be_bytes(), id);
			if let Some(payer) = receipt.payer_device {
				DeviceReceipts::<T>::remove(payer, key);
			}
			DeviceReceipts::<T>::remove(receipt.payee, key);
			Expiries::<T>::remove(receipt.recorded_at.to_be_bytes(), id);
			Receipts::<T>::remove(id);
		}

		pub(crate) fn asset_info(
			asset: &AssetKey,
			name: Vec<u8>,
			version: Vec<u8>,
			decimals: u8,
			symbol: Vec<u8>,
			settlement: SettlementCheck,
		) -> Result<AssetInfo, Error<T>> {
			let domain_separator = domain_separator(&name, &version, asset.chain_id, asset.token);
			Ok(AssetInfo {
				name: name.try_into().map_err(|_| Error::<T>::AssetLabelTooLong)?,
				version: version.try_into().map_err(|_| Error::<T>::AssetLabelTooLong)?,
				decimals,
				symbol: symbol.try_into().map_err(|_| Error::<T>::AssetLabelTooLong)?,
				domain_separator,
				enabled: true,
				settlement,
			})
		}

		pub(crate) fn now_millis() -> u64 {
			T::UnixTime::now().as_millis() as u64
		}

		/// The daily rows add up to the all-time totals, for devices and owners, and every
		/// stored body is in the expiry queue.
		#[cfg(any(feature = "try-runtime", test))]
		pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
			use alloc::collections::btree_map::BTreeMap;
			let mut by_device = BTreeMap::<(DeviceId, AssetKey), Totals>::new();
			for ((device, _day, asset), t) in DeviceDaily::<T>::iter() {
				by_device.entry((device, asset)).or_default().merge(&t);
			}
			let device_totals: BTreeMap<_, _> =
				DeviceTotals::<T>::iter().map(|(d, a, t)| ((d, a), t)).collect();
			ensure!(by_device == device_totals, "device daily rows do not add up to device totals");

			let mut by_owner = BTreeMap::<(Vec<u8>, AssetKey), Totals>::new();
			for ((owner, _day, asset), t) in OwnerDaily::<T>::iter() {
				by_owner.entry((owner.encode(), asset)).or_default().merge(&t);
			}
			let owner_totals: BTreeMap<_, _> =
				OwnerTotals::<T>::iter().map(|(o, a, t)| ((o.encode(), a), t)).collect();
			ensure!(by_owner == owner_totals, "owner daily rows do not add up to owner totals");

			let mut by_owner_device = BTreeMap::<(Vec<u8>, AssetKey), Totals>::new();
			for ((owner, device, _day, asset), t) in OwnerDeviceDaily::<T>::iter() {
				ensure!(
					OwnerDevices::<T>::contains_key(&owner, device),
					"an owner's device rows are not indexed"
				);
				by_owner_device.entry((owner.encode(), asset)).or_default().merge(&t);
			}
			ensure!(
				by_owner_device == owner_totals,
				"owner per-device rows do not add up to owner totals"
			);

			for (id, receipt) in Receipts::<T>::iter() {
				ensure!(
					Expiries::<T>::contains_key(receipt.recorded_at.to_be_bytes(), id),
					"a receipt body is missing from the expiry queue"
				);
				ensure!(Recorded::<T>::contains_key(id), "a receipt body is not in the guard");
			}
			Ok(())
		}
	}
}
