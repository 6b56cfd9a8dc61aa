//! # Device identity pallet
//!
//! The on-chain identity of a machine: which owner it belongs to, and which three keys speak for
//! it: its chain account, its EVM address (where it pays and is paid in stablecoins) and its
//! libp2p PeerId (where it sells services peer-to-peer).
//!
//! ## Why not a flat attribute store
//!
//! peaq's DID pallet lets whoever writes an attribute for an account first become its owner, and
//! nothing checks that the writer controls the key. Here every key bound to a device proves
//! possession with a signature over a domain-separated challenge
//! ([`m2m_primitives::device::registration_challenge`]): the genesis hash, the owner, the whole
//! key set and a per-owner nonce. A signature is valid once, on one chain, for one owner.
//!
//! ## Calls
//!
//! - [`Pallet::register`]: bind a device key, EVM address and PeerId to the caller (the owner),
//!   holding [`Config::DeviceDeposit`].
//! - [`Pallet::set_attribute`], [`Pallet::remove_attribute`], [`Pallet::clear_expired_attribute`]:
//!   bounded attributes with a per-byte deposit and optional expiry.
//! - [`Pallet::rotate_key`]: replace one of the three keys, proven by the new key.
//! - [`Pallet::offer_transfer`], [`Pallet::cancel_transfer`], [`Pallet::accept_transfer`]:
//!   two-step ownership transfer; deposits move from the old owner to the new one.
//! - [`Pallet::suspend`], [`Pallet::reactivate`]: by the owner, or by [`Config::ForceOrigin`]
//!   (a forced suspension can only be lifted by that origin).
//! - [`Pallet::deregister`]: remove the device and its attributes, releasing every deposit.
//!
//! ## Indexes
//!
//! Devices can be found by id, by chain account, by EVM address, by PeerId, and enumerated per
//! owner in pages ([`runtime_api::DeviceIdentityApi`]).

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
#[cfg(feature = "std")]
pub mod testing;
pub mod weights;
pub use weights::WeightInfo;

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame_support::{pallet_prelude::ConstU32, BoundedVec};
use m2m_primitives::{eip712::EcdsaSignature, H160};
use scale_info::TypeInfo;

pub use m2m_primitives::device::{DeviceId, KeyKind};

/// Longest PeerId accepted, in bytes. ed25519 PeerIds are 38 bytes; the bound leaves room for
/// other inlined key types later.
pub const MAX_PEER_ID_LEN: u32 = 64;
/// Longest attribute name, in bytes (peaq's bound).
pub const MAX_ATTRIBUTE_NAME_LEN: u32 = 64;

/// A libp2p PeerId in its binary multihash form.
pub type PeerId = BoundedVec<u8, ConstU32<MAX_PEER_ID_LEN>>;
/// An attribute name.
pub type AttributeName = BoundedVec<u8, ConstU32<MAX_ATTRIBUTE_NAME_LEN>>;

/// Whether a device may act (record receipts, be paid) right now.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
)]
pub enum DeviceStatus {
	Active,
	/// Suspended by its owner; the owner may reactivate it.
	SuspendedByOwner,
	/// Suspended by the privileged origin; only that origin may reactivate it.
	SuspendedByForce,
}

/// A registered device.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct DeviceRecord<AccountId, Balance, BlockNumber> {
	pub owner: AccountId,
	/// The device's own chain account (its sr25519 device key).
	pub account: AccountId,
	pub evm_address: H160,
	pub peer_id: PeerId,
	pub status: DeviceStatus,
	pub registered_at: BlockNumber,
	/// Held from the owner for the device record itself.
	pub deposit: Balance,
	pub attribute_count: u32,
	/// Sum of the deposits held for the device's attributes, so that transfers and
	/// deregistration move them without reading every attribute.
	pub attribute_deposits: Balance,
}

/// A device attribute.
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo)]
#[codec(mel_bound(Balance: MaxEncodedLen, BlockNumber: MaxEncodedLen))]
#[scale_info(skip_type_params(MaxValueLen))]
pub struct Attribute<Balance, BlockNumber, MaxValueLen: frame_support::traits::Get<u32>> {
	pub value: BoundedVec<u8, MaxValueLen>,
	/// Last block at which the attribute is valid; `None` never expires.
	pub valid_until: Option<BlockNumber>,
	pub updated_at: BlockNumber,
	/// Held from the owner for this attribute.
	pub deposit: Balance,
}

/// Signatures proving that the caller controls all three keys of a device being registered.
/// Each signs [`m2m_primitives::device::registration_challenge`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct RegistrationProof<Signature> {
	/// By the device account, over the raw challenge.
	pub account_signature: Signature,
	/// By the EVM key, EIP-191 `personal_sign` of the challenge, `r ‖ s ‖ v`.
	pub evm_signature: EcdsaSignature,
	/// By the libp2p ed25519 key, over the raw challenge.
	pub peer_signature: [u8; 64],
}

/// A replacement key and the new key's signature over
/// [`m2m_primitives::device::rotation_challenge`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub enum NewKey<AccountId, Signature> {
	Account { account: AccountId, signature: Signature },
	Evm { address: H160, signature: EcdsaSignature },
	Peer { peer_id: PeerId, signature: [u8; 64] },
}

/// What other pallets need to know about a device.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct DeviceRef<AccountId> {
	pub id: DeviceId,
	pub owner: AccountId,
	pub account: AccountId,
	pub evm_address: H160,
	pub active: bool,
}

/// Read access to the device registry, for pallets that account for devices (receipts).
pub trait DeviceDirectory<AccountId> {
	fn device(id: DeviceId) -> Option<DeviceRef<AccountId>>;
	fn device_by_evm(address: &H160) -> Option<DeviceRef<AccountId>>;

	/// Registers a device without proofs, for benchmarks of dependent pallets.
	#[cfg(feature = "runtime-benchmarks")]
	fn register_for_benchmark(owner: AccountId, account: AccountId, evm: H160) -> DeviceId;
}

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, Mutate, MutateHold},
			tokens::Precision,
		},
	};
	use frame_system::pallet_prelude::*;
	use m2m_primitives::{
		device::{ed25519_from_peer_id, registration_challenge, rotation_challenge},
		eip712::{address_from_public_key, personal_message_digest},
	};
	use sp_core::{ed25519, H256};
	use sp_runtime::{
		traits::{IdentifyAccount, Saturating, Verify, Zero},
		SaturatedConversion,
	};

	pub(crate) type BalanceOf<T> =
		<<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;
	pub type DeviceRecordOf<T> =
		DeviceRecord<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;
	pub type AttributeOf<T> =
		Attribute<BalanceOf<T>, BlockNumberFor<T>, <T as Config>::MaxAttributeValueLen>;
	pub type RegistrationProofOf<T> = RegistrationProof<<T as Config>::Signature>;
	pub type NewKeyOf<T> = NewKey<<T as frame_system::Config>::AccountId, <T as Config>::Signature>;

	#[pallet::pallet]
	pub struct Pallet<T>(_);

	/// Why funds are held by this pallet.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// The deposit for a device record.
		DeviceDeposit,
		/// The deposit for a device attribute.
		AttributeDeposit,
	}

	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// Holds deposits from owners.
		type Currency: MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
			+ Mutate<Self::AccountId>;
		type RuntimeHoldReason: From<HoldReason>;
		/// Signature by a device account (e.g. `MultiSignature`).
		type Signature: Parameter
			+ DecodeWithMemTracking
			+ Verify<Signer: IdentifyAccount<AccountId = Self::AccountId>>;
		/// May suspend and reactivate any device.
		type ForceOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Held per registered device.
		#[pallet::constant]
		type DeviceDeposit: Get<BalanceOf<Self>>;
		/// Held per attribute, plus [`Config::AttributeDepositPerByte`] per byte of name and value.
		#[pallet::constant]
		type AttributeDepositBase: Get<BalanceOf<Self>>;
		#[pallet::constant]
		type AttributeDepositPerByte: Get<BalanceOf<Self>>;
		#[pallet::constant]
		type MaxDevicesPerOwner: Get<u32>;
		#[pallet::constant]
		type MaxAttributesPerDevice: Get<u32>;
		#[pallet::constant]
		type MaxAttributeValueLen: Get<u32>;
		type WeightInfo: WeightInfo;
	}

	/// The id the next registered device gets.
	#[pallet::storage]
	pub type NextDeviceId<T> = StorageValue<_, DeviceId, ValueQuery>;

	/// Every registered device.
	#[pallet::storage]
	pub type Devices<T: Config> = StorageMap<_, Twox64Concat, DeviceId, DeviceRecordOf<T>>;

	/// Device by its chain account.
	#[pallet::storage]
	pub type DeviceByAccount<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, DeviceId>;

	/// Device by its EVM address.
	#[pallet::storage]
	pub type DeviceByEvm<T> = StorageMap<_, Blake2_128Concat, H160, DeviceId>;

	/// Device by its libp2p PeerId.
	#[pallet::storage]
	pub type DeviceByPeer<T> = StorageMap<_, Blake2_128Concat, PeerId, DeviceId>;

	/// The devices of each owner, enumerable by prefix.
	#[pallet::storage]
	pub type OwnerDevices<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, DeviceId, ()>;

	/// How many devices each owner holds (bounded by [`Config::MaxDevicesPerOwner`]).
	#[pallet::storage]
	pub type OwnerDeviceCount<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, u32, ValueQuery>;

	/// Device attributes.
	#[pallet::storage]
	pub type Attributes<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		DeviceId,
		Blake2_128Concat,
		AttributeName,
		AttributeOf<T>,
	>;

	/// Ownership offers awaiting acceptance: device → offered-to account.
	#[pallet::storage]
	pub type PendingTransfers<T: Config> = StorageMap<_, Twox64Concat, DeviceId, T::AccountId>;

	/// Per-owner nonce bound into every key-possession challenge; it advances whenever a proof
	/// is consumed, so each proof works once.
	#[pallet::storage]
	pub type ProofNonces<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, u64, ValueQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		DeviceRegistered {
			device: DeviceId,
			owner: T::AccountId,
			account: T::AccountId,
			evm_address: H160,
			peer_id: PeerId,
		},
		AttributeSet {
			device: DeviceId,
			name: AttributeName,
			valid_until: Option<BlockNumberFor<T>>,
		},
		AttributeRemoved {
			device: DeviceId,
			name: AttributeName,
		},
		KeyRotated {
			device: DeviceId,
			kind: KeyKind,
		},
		TransferOffered {
			device: DeviceId,
			from: T::AccountId,
			to: T::AccountId,
		},
		TransferCancelled {
			device: DeviceId,
		},
		OwnershipTransferred {
			device: DeviceId,
			from: T::AccountId,
			to: T::AccountId,
		},
		DeviceSuspended {
			device: DeviceId,
			by_force: bool,
		},
		DeviceReactivated {
			device: DeviceId,
		},
		DeviceDeregistered {
			device: DeviceId,
			owner: T::AccountId,
		},
	}

	#[pallet::error]
	pub enum Error<T> {
		/// No device has this id.
		UnknownDevice,
		/// The caller is not the device's owner.
		NotOwner,
		/// This chain account is already bound to a device.
		AccountInUse,
		/// This EVM address is already bound to a device.
		EvmAddressInUse,
		/// This PeerId is already bound to a device.
		PeerIdInUse,
		/// The PeerId is not an inlined ed25519 key, so its possession cannot be proven on-chain.
		UnsupportedPeerId,
		/// The device account's signature does not verify over the challenge.
		BadAccountProof,
		/// The EVM signature is malformed or does not recover to the EVM address.
		BadEvmProof,
		/// The libp2p signature does not verify over the challenge.
		BadPeerProof,
		/// The owner already holds `MaxDevicesPerOwner` devices.
		TooManyDevices,
		/// The device already has `MaxAttributesPerDevice` attributes.
		TooManyAttributes,
		/// The attribute value is longer than `MaxAttributeValueLen`.
		AttributeValueTooLong,
		/// The attribute name is empty.
		EmptyAttributeName,
		/// No attribute has this name.
		UnknownAttribute,
		/// The attribute has not expired yet.
		AttributeNotExpired,
		/// A validity period of zero blocks would expire immediately.
		ZeroValidity,
		/// The owner cannot afford the deposit.
		InsufficientDeposit,
		/// No ownership offer is pending for this device.
		NoPendingTransfer,
		/// The pending offer is addressed to someone else.
		NotTransferRecipient,
		/// Offering a device to its current owner.
		TransferToSelf,
		/// The device is suspended.
		DeviceSuspended,
		/// The device is not suspended.
		DeviceNotSuspended,
		/// Only the privileged origin may lift a forced suspension.
		ForcedSuspension,
		/// The new key is the same as the current one.
		KeyUnchanged,
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register a device owned by the caller.
		///
		/// `proof` carries a signature by each of the three keys over
		/// [`registration_challenge`]`(genesis, caller, account, evm_address, peer_id, nonce)`,
		/// where `nonce` is [`ProofNonces`] of the caller.
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register())]
		pub fn register(
			origin: OriginFor<T>,
			account: T::AccountId,
			evm_address: H160,
			peer_id: PeerId,
			proof: RegistrationProofOf<T>,
		) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			ensure!(!DeviceByAccount::<T>::contains_key(&account), Error::<T>::AccountInUse);
			ensure!(!DeviceByEvm::<T>::contains_key(evm_address), Error::<T>::EvmAddressInUse);
			ensure!(!DeviceByPeer::<T>::contains_key(&peer_id), Error::<T>::PeerIdInUse);
			let count = OwnerDeviceCount::<T>::get(&owner);
			ensure!(count < T::MaxDevicesPerOwner::get(), Error::<T>::TooManyDevices);
			let peer_key = ed25519_from_peer_id(&peer_id).ok_or(Error::<T>::UnsupportedPeerId)?;

			let nonce = ProofNonces::<T>::get(&owner);
			let challenge = registration_challenge(
				&Self::genesis_hash(),
				&owner,
				&account,
				&evm_address,
				&peer_id,
				nonce,
			);
			ensure!(
				proof.account_signature.verify(&challenge[..], &account),
				Error::<T>::BadAccountProof
			);
			Self::check_evm_proof(&challenge, &proof.evm_signature, &evm_address)?;
			Self::check_peer_proof(&challenge, &proof.peer_signature, &peer_key)?;

			let deposit = T::DeviceDeposit::get();
			T::Currency::hold(&HoldReason::DeviceDeposit.into(), &owner, deposit)
				.map_err(|_| Error::<T>::InsufficientDeposit)?;

			let id = NextDeviceId::<T>::get();
			NextDeviceId::<T>::put(id.saturating_add(1));
			ProofNonces::<T>::insert(&owner, nonce.saturating_add(1));
			OwnerDeviceCount::<T>::insert(&owner, count + 1);
			OwnerDevices::<T>::insert(&owner, id, ());
			DeviceByAccount::<T>::insert(&account, id);
			DeviceByEvm::<T>::insert(evm_address, id);
			DeviceByPeer::<T>::insert(&peer_id, id);
			Devices::<T>::insert(
				id,
				DeviceRecord {
					owner: owner.clone(),
					account: account.clone(),
					evm_address,
					peer_id: peer_id.clone(),
					status: DeviceStatus::Active,
					registered_at: frame_system::Pallet::<T>::block_number(),
					deposit,
					attribute_count: 0,
					attribute_deposits: Zero::zero(),
				},
			);
			Self::deposit_event(Event::DeviceRegistered {
				device: id,
				owner,
				account,
				evm_address,
				peer_id,
			});
			Ok(())
		}

		/// Set or update an attribute of a device the caller owns. The deposit follows the new
		/// size: more is held, or the difference released. `valid_for` (in blocks) makes the
		/// attribute expire; expired attributes read as absent and anyone may clear them.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::set_attribute(
			(value.len() as u32).min(T::MaxAttributeValueLen::get())
		))]
		pub fn set_attribute(
			origin: OriginFor<T>,
			device: DeviceId,
			name: AttributeName,
			value: Vec<u8>,
			valid_for: Option<BlockNumberFor<T>>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut record = Self::owned_device(&who, device)?;
			ensure!(!name.is_empty(), Error::<T>::EmptyAttributeName);
			Self::withdraw_offer(device);
			let value: BoundedVec<u8, T::MaxAttributeValueLen> =
				value.try_into().map_err(|_| Error::<T>::AttributeValueTooLong)?;
			let now = frame_system::Pallet::<T>::block_number();
			let valid_until = match valid_for {
				Some(blocks) if blocks.is_zero() => return Err(Error::<T>::ZeroValidity.into()),
				Some(blocks) => Some(now.saturating_add(blocks)),
				None => None,
			};
			let deposit = Self::attribute_deposit(name.len(), value.len());
			let reason: T::RuntimeHoldReason = HoldReason::AttributeDeposit.into();

			let old_deposit = match Attributes::<T>::get(device, &name) {
				Some(old) => old.deposit,
				None => {
					ensure!(
						record.attribute_count < T::MaxAttributesPerDevice::get(),
						Error::<T>::TooManyAttributes
					);
					record.attribute_count += 1;
					Zero::zero()
				},
			};
			if deposit > old_deposit {
				T::Currency::hold(&reason, &who, deposit.saturating_sub(old_deposit))
					.map_err(|_| Error::<T>::InsufficientDeposit)?;
			} else if deposit < old_deposit {
				T::Currency::release(
					&reason,
					&who,
					old_deposit.saturating_sub(deposit),
					Precision::BestEffort,
				)?;
			}
			record.attribute_deposits =
				record.attribute_deposits.saturating_sub(old_deposit).saturating_add(deposit);
			Devices::<T>::insert(device, &record);
			Attributes::<T>::insert(
				device,
				&name,
				Attribute { value, valid_until, updated_at: now, deposit },
			);
			Self::deposit_event(Event::AttributeSet { device, name, valid_until });
			Ok(())
		}

		/// Remove an attribute of a device the caller owns, releasing its deposit.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::remove_attribute())]
		pub fn remove_attribute(
			origin: OriginFor<T>,
			device: DeviceId,
			name: AttributeName,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let record = Self::owned_device(&who, device)?;
			Self::withdraw_offer(device);
			Self::take_attribute(device, record, &name)
		}

		/// Remove an expired attribute of any device. Anyone may call this; the deposit returns
		/// to the owner.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::remove_attribute())]
		pub fn clear_expired_attribute(
			origin: OriginFor<T>,
			device: DeviceId,
			name: AttributeName,
		) -> DispatchResult {
			ensure_signed(origin)?;
			let record = Devices::<T>::get(device).ok_or(Error::<T>::UnknownDevice)?;
			let attribute =
				Attributes::<T>::get(device, &name).ok_or(Error::<T>::UnknownAttribute)?;
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(
				attribute.valid_until.is_some_and(|until| until < now),
				Error::<T>::AttributeNotExpired
			);
			Self::take_attribute(device, record, &name)
		}

		/// Replace one key of a device the caller owns. The new key signs
		/// [`rotation_challenge`]`(genesis, caller, device, kind, new_key, nonce)`.
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::rotate_key())]
		pub fn rotate_key(
			origin: OriginFor<T>,
			device: DeviceId,
			new_key: NewKeyOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut record = Self::owned_device(&who, device)?;
			let nonce = ProofNonces::<T>::get(&who);
			let genesis = Self::genesis_hash();
			let kind = match new_key {
				NewKey::Account { account, signature } => {
					ensure!(account != record.account, Error::<T>::KeyUnchanged);
					ensure!(
						!DeviceByAccount::<T>::contains_key(&account),
						Error::<T>::AccountInUse
					);
					let challenge = rotation_challenge(
						&genesis,
						&who,
						device,
						&KeyKind::Account,
						&account.encode(),
						nonce,
					);
					ensure!(
						signature.verify(&challenge[..], &account),
						Error::<T>::BadAccountProof
					);
					DeviceByAccount::<T>::remove(&record.account);
					DeviceByAccount::<T>::insert(&account, device);
					record.account = account;
					KeyKind::Account
				},
				NewKey::Evm { address, signature } => {
					ensure!(address != record.evm_address, Error::<T>::KeyUnchanged);
					ensure!(!DeviceByEvm::<T>::contains_key(address), Error::<T>::EvmAddressInUse);
					let challenge = rotation_challenge(
						&genesis,
						&who,
						device,
						&KeyKind::Evm,
						&address.encode(),
						nonce,
					);
					Self::check_evm_proof(&challenge, &signature, &address)?;
					DeviceByEvm::<T>::remove(record.evm_address);
					DeviceByEvm::<T>::insert(address, device);
					record.evm_address = address;
					KeyKind::Evm
				},
				NewKey::Peer { peer_id, signature } => {
					ensure!(peer_id != record.peer_id, Error::<T>::KeyUnchanged);
					ensure!(!DeviceByPeer::<T>::contains_key(&peer_id), Error::<T>::PeerIdInUse);
					let key =
						ed25519_from_peer_id(&peer_id).ok_or(Error::<T>::UnsupportedPeerId)?;
					let challenge = rotation_challenge(
						&genesis,
						&who,
						device,
						&KeyKind::Peer,
						&peer_id.encode(),
						nonce,
					);
					Self::check_peer_proof(&challenge, &signature, &key)?;
					DeviceByPeer::<T>::remove(&record.peer_id);
					DeviceByPeer::<T>::insert(&peer_id, device);
					record.peer_id = peer_id;
					KeyKind::Peer
				},
			};
			ProofNonces::<T>::insert(&who, nonce.saturating_add(1));
			Devices::<T>::insert(device, record);
			Self::withdraw_offer(device);
			Self::deposit_event(Event::KeyRotated { device, kind });
			Ok(())
		}

		/// Offer a device the caller owns to `to`. Replaces any earlier offer.
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::offer_transfer())]
		pub fn offer_transfer(
			origin: OriginFor<T>,
			device: DeviceId,
			to: T::AccountId,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::owned_device(&who, device)?;
			ensure!(to != who, Error::<T>::TransferToSelf);
			PendingTransfers::<T>::insert(device, &to);
			Self::deposit_event(Event::TransferOffered { device, from: who, to });
			Ok(())
		}

		/// Withdraw a pending ownership offer.
		#[pallet::call_index(6)]
		#[pallet::weight(T::WeightInfo::cancel_transfer())]
		pub fn cancel_transfer(origin: OriginFor<T>, device: DeviceId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::owned_device(&who, device)?;
			ensure!(PendingTransfers::<T>::take(device).is_some(), Error::<T>::NoPendingTransfer);
			Self::deposit_event(Event::TransferCancelled { device });
			Ok(())
		}

		/// Accept a device offered to the caller. The caller starts holding the device's
		/// deposits; the previous owner's are released.
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::accept_transfer())]
		pub fn accept_transfer(origin: OriginFor<T>, device: DeviceId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut record = Devices::<T>::get(device).ok_or(Error::<T>::UnknownDevice)?;
			let offered_to =
				PendingTransfers::<T>::get(device).ok_or(Error::<T>::NoPendingTransfer)?;
			ensure!(offered_to == who, Error::<T>::NotTransferRecipient);
			let count = OwnerDeviceCount::<T>::get(&who);
			ensure!(count < T::MaxDevicesPerOwner::get(), Error::<T>::TooManyDevices);

			let attribute_deposits = record.attribute_deposits;
			let device_reason: T::RuntimeHoldReason = HoldReason::DeviceDeposit.into();
			let attribute_reason: T::RuntimeHoldReason = HoldReason::AttributeDeposit.into();
			T::Currency::hold(&device_reason, &who, record.deposit)
				.map_err(|_| Error::<T>::InsufficientDeposit)?;
			T::Currency::hold(&attribute_reason, &who, attribute_deposits)
				.map_err(|_| Error::<T>::InsufficientDeposit)?;
			let previous = record.owner.clone();
			T::Currency::release(&device_reason, &previous, record.deposit, Precision::BestEffort)?;
			T::Currency::release(
				&attribute_reason,
				&previous,
				attribute_deposits,
				Precision::BestEffort,
			)?;

			PendingTransfers::<T>::remove(device);
			OwnerDevices::<T>::remove(&previous, device);
			OwnerDeviceCount::<T>::mutate(&previous, |c| *c = c.saturating_sub(1));
			OwnerDevices::<T>::insert(&who, device, ());
			OwnerDeviceCount::<T>::insert(&who, count + 1);
			record.owner = who.clone();
			Devices::<T>::insert(device, record);
			Self::deposit_event(Event::OwnershipTransferred { device, from: previous, to: who });
			Ok(())
		}

		/// Suspend a device: it can no longer record receipts. The owner may suspend its own
		/// devices; [`Config::ForceOrigin`] may suspend any device.
		#[pallet::call_index(8)]
		#[pallet::weight(T::WeightInfo::suspend())]
		pub fn suspend(origin: OriginFor<T>, device: DeviceId) -> DispatchResult {
			let mut record = Devices::<T>::get(device).ok_or(Error::<T>::UnknownDevice)?;
			let by_force = Self::ensure_owner_or_force(origin, &record)?;
			ensure!(record.status == DeviceStatus::Active, Error::<T>::DeviceSuspended);
			record.status = if by_force {
				DeviceStatus::SuspendedByForce
			} else {
				DeviceStatus::SuspendedByOwner
			};
			Devices::<T>::insert(device, record);
			if !by_force {
				Self::withdraw_offer(device);
			}
			Self::deposit_event(Event::DeviceSuspended { device, by_force });
			Ok(())
		}

		/// Lift a suspension. A forced suspension can only be lifted by [`Config::ForceOrigin`].
		#[pallet::call_index(9)]
		#[pallet::weight(T::WeightInfo::reactivate())]
		pub fn reactivate(origin: OriginFor<T>, device: DeviceId) -> DispatchResult {
			let mut record = Devices::<T>::get(device).ok_or(Error::<T>::UnknownDevice)?;
			let by_force = Self::ensure_owner_or_force(origin, &record)?;
			match record.status {
				DeviceStatus::Active => return Err(Error::<T>::DeviceNotSuspended.into()),
				DeviceStatus::SuspendedByForce if !by_force => {
					return Err(Error::<T>::ForcedSuspension.into())
				},
				_ => {},
			}
			record.status = DeviceStatus::Active;
			Devices::<T>::insert(device, record);
			if !by_force {
				Self::withdraw_offer(device);
			}
			Self::deposit_event(Event::DeviceReactivated { device });
			Ok(())
		}

		/// Remove a device the caller owns, with all its attributes, releasing every deposit.
		/// Settlement receipts that name the device stay on-chain.
		#[pallet::call_index(10)]
		#[pallet::weight(T::WeightInfo::deregister(T::MaxAttributesPerDevice::get()))]
		pub fn deregister(origin: OriginFor<T>, device: DeviceId) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let record = Self::owned_device(&who, device)?;
			ensure!(record.status != DeviceStatus::SuspendedByForce, Error::<T>::ForcedSuspension);

			let removed = Attributes::<T>::drain_prefix(device).count() as u32;
			T::Currency::release(
				&HoldReason::AttributeDeposit.into(),
				&who,
				record.attribute_deposits,
				Precision::BestEffort,
			)?;
			T::Currency::release(
				&HoldReason::DeviceDeposit.into(),
				&who,
				record.deposit,
				Precision::BestEffort,
			)?;
			PendingTransfers::<T>::remove(device);
			DeviceByAccount::<T>::remove(&record.account);
			DeviceByEvm::<T>::remove(record.evm_address);
			DeviceByPeer::<T>::remove(&record.peer_id);
			OwnerDevices::<T>::remove(&who, device);
			OwnerDeviceCount::<T>::mutate_exists(&who, |c| {
				*c = c.and_then(|n| n.checked_sub(1)).filter(|n| *n > 0)
			});
			Devices::<T>::remove(device);
			Self::deposit_event(Event::DeviceDeregistered { device, owner: who });
			Ok(Some(T::WeightInfo::deregister(removed)).into())
		}
	}

	impl<T: Config> Pallet<T> {
		/// The hash of block 0, which frame-system keeps forever. Binding it into challenges
		/// stops a proof made for one chain from working on another.
		pub fn genesis_hash() -> H256 {
			let hash = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero());
			H256::from_slice(hash.as_ref())
		}

		/// The deposit for an attribute of the given sizes.
		pub fn attribute_deposit(name_len: usize, value_len: usize) -> BalanceOf<T> {
			let bytes: BalanceOf<T> = ((name_len + value_len) as u128).saturated_into();
			T::AttributeDepositBase::get()
				.saturating_add(T::AttributeDepositPerByte::get().saturating_mul(bytes))
		}

		/// An owner who changes a device after offering it withdraws the offer: the recipient
		/// accepted the device as it was offered, so acceptance must not hand over a different
		/// one. Emits [`Event::TransferCancelled`] when an offer was pending.
		fn withdraw_offer(device: DeviceId) {
			if PendingTransfers::<T>::take(device).is_some() {
				Self::deposit_event(Event::TransferCancelled { device });
			}
		}

		fn owned_device(
			who: &T::AccountId,
			device: DeviceId,
		) -> Result<DeviceRecordOf<T>, DispatchError> {
			let record = Devices::<T>::get(device).ok_or(Error::<T>::UnknownDevice)?;
			ensure!(&record.owner == who, Error::<T>::NotOwner);
			Ok(record)
		}

		/// `Ok(true)` for the force origin, `Ok(false)` for the owner.
		fn ensure_owner_or_force(
			origin: OriginFor<T>,
			record: &DeviceRecordOf<T>,
		) -> Result<bool, DispatchError> {
			if T::ForceOrigin::try_origin(origin.clone()).is_ok() {
				return Ok(true);
			}
			let who = ensure_signed(origin)?;
			ensure!(who == record.owner, Error::<T>::NotOwner);
			Ok(false)
		}

		fn take_attribute(
			device: DeviceId,
			mut record: DeviceRecordOf<T>,
			name: &AttributeName,
		) -> DispatchResult {
			let attribute =
				Attributes::<T>::take(device, name).ok_or(Error::<T>::UnknownAttribute)?;
			T::Currency::release(
				&HoldReason::AttributeDeposit.into(),
				&record.owner,
				attribute.deposit,
				Precision::BestEffort,
			)?;
			record.attribute_count = record.attribute_count.saturating_sub(1);
			record.attribute_deposits = record.attribute_deposits.saturating_sub(attribute.deposit);
			Devices::<T>::insert(device, record);
			Self::deposit_event(Event::AttributeRemoved { device, name: name.clone() });
			Ok(())
		}

		fn check_evm_proof(
			challenge: &[u8; 32],
			signature: &EcdsaSignature,
			expected: &H160,
		) -> DispatchResult {
			let digest = personal_message_digest(challenge);
			let recovered =
				recover_evm_address(signature, &digest.0).ok_or(Error::<T>::BadEvmProof)?;
			ensure!(&recovered == expected, Error::<T>::BadEvmProof);
			Ok(())
		}

		fn check_peer_proof(
			challenge: &[u8; 32],
			signature: &[u8; 64],
			key: &[u8; 32],
		) -> DispatchResult {
			ensure!(
				sp_io::crypto::ed25519_verify(
					&ed25519::Signature::from_raw(*signature),
					challenge,
					&ed25519::Public::from_raw(*key),
				),
				Error::<T>::BadPeerProof
			);
			Ok(())
		}

		/// The device record of `device`, if registered.
		pub fn device(device: DeviceId) -> Option<DeviceRecordOf<T>> {
			Devices::<T>::get(device)
		}

		/// Up to `limit` device ids of `owner`, after the cursor `after` (exclusive), in a
		/// stable order. Pass the last id of one page as `after` to get the next.
		pub fn devices_of_owner(
			owner: &T::AccountId,
			after: Option<DeviceId>,
			limit: u32,
		) -> Vec<DeviceId> {
			let iter = match after {
				Some(last) => OwnerDevices::<T>::iter_key_prefix_from(
					owner,
					OwnerDevices::<T>::hashed_key_for(owner, last),
				),
				None => OwnerDevices::<T>::iter_key_prefix(owner),
			};
			iter.take(limit as usize).collect()
		}

		/// The unexpired attributes of a device.
		pub fn live_attributes(device: DeviceId) -> Vec<(AttributeName, AttributeOf<T>)> {
			let now = frame_system::Pallet::<T>::block_number();
			Attributes::<T>::iter_prefix(device)
				.filter(|(_, a)| a.valid_until.is_none_or(|until| until >= now))
				.collect()
		}
	}

	/// Recovers the signer of a 32-byte digest, or `None` for a malformed signature.
	pub fn recover_evm_address(signature: &EcdsaSignature, digest: &[u8; 32]) -> Option<H160> {
		let sig = signature.to_recoverable().ok()?;
		let public = sp_io::crypto::secp256k1_ecdsa_recover(&sig, digest).ok()?;
		Some(address_from_public_key(&public))
	}

	impl<T: Config> DeviceDirectory<T::AccountId> for Pallet<T> {
		fn device(id: DeviceId) -> Option<DeviceRef<T::AccountId>> {
			Devices::<T>::get(id).map(|d| DeviceRef {
				id,
				active: d.status == DeviceStatus::Active,
				owner: d.owner,
				account: d.account,
				evm_address: d.evm_address,
			})
		}

		fn device_by_evm(address: &H160) -> Option<DeviceRef<T::AccountId>> {
			DeviceByEvm::<T>::get(address).and_then(<Self as DeviceDirectory<_>>::device)
		}

		#[cfg(feature = "runtime-benchmarks")]
		fn register_for_benchmark(
			owner: T::AccountId,
			account: T::AccountId,
			evm: H160,
		) -> DeviceId {
			let id = NextDeviceId::<T>::get();
			NextDeviceId::<T>::put(id + 1);
			let mut peer_key = [0u8; 32];
			peer_key[..8].copy_from_slice(&id.to_le_bytes());
			let peer_id: PeerId =
				m2m_primitives::device::peer_id_bytes(&peer_key).try_into().expect("38 bytes fit");
			OwnerDevices::<T>::insert(&owner, id, ());
			OwnerDeviceCount::<T>::mutate(&owner, |c| *c += 1);
			DeviceByAccount::<T>::insert(&account, id);
			DeviceByEvm::<T>::insert(evm, id);
			DeviceByPeer::<T>::insert(&peer_id, id);
			Devices::<T>::insert(
				id,
				DeviceRecord {
					owner,
					account,
					evm_address: evm,
					peer_id,
					status: DeviceStatus::Active,
					registered_at: frame_system::Pallet::<T>::block_number(),
					deposit: Zero::zero(),
					attribute_count: 0,
					attribute_deposits: Zero::zero(),
				},
			);
			id
		}
	}
}
