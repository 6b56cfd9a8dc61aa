//! Benchmarks for the device identity pallet. Keys are generated in the benchmark keystore, so
//! every proof is really verified: the weights include the signature checks.

use super::*;
use crate::Pallet as DeviceIdentity;
use frame_benchmarking::v2::*;
use frame_support::traits::{fungible::Mutate, Get};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use m2m_primitives::{
	device::{peer_id_bytes, registration_challenge, rotation_challenge},
	eip712::{address_from_public_key, personal_message_digest},
};
use sp_core::{crypto::KeyTypeId, ecdsa, ed25519, sr25519};
use sp_runtime::traits::{Bounded, IdentifyAccount, Verify};

const KEY: KeyTypeId = KeyTypeId(*b"m2mb");

struct Keys {
	account: sr25519::Public,
	evm: ecdsa::Public,
	peer: ed25519::Public,
}

fn keys() -> Keys {
	Keys {
		account: sp_io::crypto::sr25519_generate(KEY, None),
		evm: sp_io::crypto::ecdsa_generate(KEY, None),
		peer: sp_io::crypto::ed25519_generate(KEY, None),
	}
}

fn evm_address(public: &ecdsa::Public) -> H160 {
	let digest = [1u8; 32];
	let sig = sp_io::crypto::ecdsa_sign_prehashed(KEY, public, &digest).expect("key in keystore");
	let full =
		sp_io::crypto::secp256k1_ecdsa_recover(&sig.0, &digest).ok().expect("fresh signature");
	address_from_public_key(&full)
}

fn evm_sign(public: &ecdsa::Public, message: &[u8; 32]) -> EcdsaSignature {
	let digest = personal_message_digest(message);
	EcdsaSignature(sp_io::crypto::ecdsa_sign_prehashed(KEY, public, &digest.0).expect("key").0)
}

fn peer_id(public: &ed25519::Public) -> PeerId {
	peer_id_bytes(&public.0).try_into().expect("38 bytes fit")
}

#[benchmarks(where
	T::Signature: From<sr25519::Signature>,
	<T::Signature as Verify>::Signer: From<sr25519::Public>,
)]
mod benchmarks {
	use super::*;

	fn account_of<T: Config>(public: sr25519::Public) -> T::AccountId
	where
		<T::Signature as Verify>::Signer: From<sr25519::Public>,
	{
		<T::Signature as Verify>::Signer::from(public).into_account()
	}

	fn funded_owner<T: Config>() -> T::AccountId {
		let owner: T::AccountId = whitelisted_caller();
		T::Currency::set_balance(&owner, BalanceOf::<T>::max_value() / 4u32.into());
		owner
	}

	/// A device registered through the real call, with its keys in the keystore.
	fn registered<T: Config>(owner: &T::AccountId) -> (DeviceId, Keys)
	where
		T::Signature: From<sr25519::Signature>,
		<T::Signature as Verify>::Signer: From<sr25519::Public>,
	{
		let k = keys();
		let account = account_of::<T>(k.account);
		let evm = evm_address(&k.evm);
		let peer = peer_id(&k.peer);
		let challenge = registration_challenge(
			&DeviceIdentity::<T>::genesis_hash(),
			owner,
			&account,
			&evm,
			&peer,
			ProofNonces::<T>::get(owner),
		);
		let proof = RegistrationProof {
			account_signature: sp_io::crypto::sr25519_sign(KEY, &k.account, &challenge)
				.expect("key")
				.into(),
			evm_signature: evm_sign(&k.evm, &challenge),
			peer_signature: sp_io::crypto::ed25519_sign(KEY, &k.peer, &challenge).expect("key").0,
		};
		let id = NextDeviceId::<T>::get();
		DeviceIdentity::<T>::register(
			RawOrigin::Signed(owner.clone()).into(),
			account,
			evm,
			peer,
			proof,
		)
		.expect("benchmark registration succeeds");
		(id, k)
	}

	fn attribute_name(i: u32) -> AttributeName {
		let mut name = alloc::vec![b'a'; MAX_ATTRIBUTE_NAME_LEN as usize];
		name[..4].copy_from_slice(&i.to_be_bytes());
		name.try_into().expect("bounded")
	}

	#[benchmark]
	fn register() {
		let owner = funded_owner::<T>();
		let k = keys();
		let account = account_of::<T>(k.account);
		let evm = evm_address(&k.evm);
		let peer = peer_id(&k.peer);
		let challenge = registration_challenge(
			&DeviceIdentity::<T>::genesis_hash(),
			&owner,
			&account,
			&evm,
			&peer,
			ProofNonces::<T>::get(&owner),
		);
		let id = NextDeviceId::<T>::get();
		let proof = RegistrationProof {
			account_signature: sp_io::crypto::sr25519_sign(KEY, &k.account, &challenge)
				.expect("key")
				.into(),
			evm_signature: evm_sign(&k.evm, &challenge),
			peer_signature: sp_io::crypto::ed25519_sign(KEY, &k.peer, &challenge).expect("key").0,
		};

		#[extrinsic_call]
		_(RawOrigin::Signed(owner.clone()), account.clone(), evm, peer, proof);

		assert_eq!(DeviceByAccount::<T>::get(&account), Some(id));
	}

	#[benchmark]
	fn set_attribute(v: Linear<0, { T::MaxAttributeValueLen::get() }>) {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		let name = attribute_name(0);

		#[extrinsic_call]
		_(
			RawOrigin::Signed(owner),
			id,
			name.clone(),
			alloc::vec![7u8; v as usize],
			Some(BlockNumberFor::<T>::from(100u32)),
		);

		assert_eq!(Attributes::<T>::get(id, &name).expect("set").value.len(), v as usize);
	}

	#[benchmark]
	fn remove_attribute() {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		let name = attribute_name(0);
		let value = alloc::vec![7u8; T::MaxAttributeValueLen::get() as usize];
		DeviceIdentity::<T>::set_attribute(
			RawOrigin::Signed(owner.clone()).into(),
			id,
			name.clone(),
			value,
			None,
		)
		.expect("set");

		#[extrinsic_call]
		_(RawOrigin::Signed(owner), id, name.clone());

		assert!(Attributes::<T>::get(id, &name).is_none());
	}

	/// Rotating the EVM address is the most expensive rotation: secp256k1 recovery.
	#[benchmark]
	fn rotate_key() {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		let new = sp_io::crypto::ecdsa_generate(KEY, None);
		let address = evm_address(&new);
		let challenge = rotation_challenge(
			&DeviceIdentity::<T>::genesis_hash(),
			&owner,
			id,
			&KeyKind::Evm,
			&address.encode(),
			ProofNonces::<T>::get(&owner),
		);
		let signature = evm_sign(&new, &challenge);

		#[extrinsic_call]
		_(RawOrigin::Signed(owner), id, NewKey::Evm { address, signature });

		assert_eq!(DeviceByEvm::<T>::get(address), Some(id));
	}

	#[benchmark]
	fn offer_transfer() {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		let to: T::AccountId = account("recipient", 0, 0);

		#[extrinsic_call]
		_(RawOrigin::Signed(owner), id, to.clone());

		assert_eq!(PendingTransfers::<T>::get(id), Some(to));
	}

	#[benchmark]
	fn cancel_transfer() {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		let to: T::AccountId = account("recipient", 0, 0);
		DeviceIdentity::<T>::offer_transfer(RawOrigin::Signed(owner.clone()).into(), id, to)
			.expect("offer");

		#[extrinsic_call]
		_(RawOrigin::Signed(owner), id);

		assert!(PendingTransfers::<T>::get(id).is_none());
	}

	#[benchmark]
	fn accept_transfer() {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		DeviceIdentity::<T>::set_attribute(
			RawOrigin::Signed(owner.clone()).into(),
			id,
			attribute_name(0),
			alloc::vec![1u8; 8],
			None,
		)
		.expect("set");
		let to: T::AccountId = account("recipient", 0, 0);
		T::Currency::set_balance(&to, BalanceOf::<T>::max_value() / 4u32.into());
		DeviceIdentity::<T>::offer_transfer(RawOrigin::Signed(owner).into(), id, to.clone())
			.expect("offer");

		#[extrinsic_call]
		_(RawOrigin::Signed(to.clone()), id);

		assert_eq!(Devices::<T>::get(id).expect("device").owner, to);
	}

	#[benchmark]
	fn suspend() {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);

		#[extrinsic_call]
		_(RawOrigin::Signed(owner), id);

		assert_eq!(Devices::<T>::get(id).expect("device").status, DeviceStatus::SuspendedByOwner);
	}

	#[benchmark]
	fn reactivate() {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		DeviceIdentity::<T>::suspend(RawOrigin::Signed(owner.clone()).into(), id).expect("suspend");

		#[extrinsic_call]
		_(RawOrigin::Signed(owner), id);

		assert_eq!(Devices::<T>::get(id).expect("device").status, DeviceStatus::Active);
	}

	#[benchmark]
	fn deregister(a: Linear<0, { T::MaxAttributesPerDevice::get() }>) {
		let owner = funded_owner::<T>();
		let (id, _) = registered::<T>(&owner);
		for i in 0..a {
			DeviceIdentity::<T>::set_attribute(
				RawOrigin::Signed(owner.clone()).into(),
				id,
				attribute_name(i),
				alloc::vec![1u8; T::MaxAttributeValueLen::get() as usize],
				None,
			)
			.expect("set");
		}

		#[extrinsic_call]
		_(RawOrigin::Signed(owner), id);

		assert!(Devices::<T>::get(id).is_none());
	}

	impl_benchmark_test_suite!(DeviceIdentity, crate::mock::new_test_ext(), crate::mock::Test);
}
