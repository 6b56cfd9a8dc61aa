use crate::{mock::*, *};
use frame_support::{
	assert_noop, assert_ok,
	traits::fungible::{Inspect, InspectHold},
};
use m2m_primitives::device::{peer_id_bytes, registration_challenge, rotation_challenge};
use sp_core::{ecdsa, ed25519, sr25519, Pair, H256};
use sp_runtime::{DispatchError, MultiSignature, TokenError};

fn origin(seed: u8) -> RuntimeOrigin {
	RuntimeOrigin::signed(account(seed))
}

fn register(owner: u8, keys: &DeviceKeys) -> DeviceId {
	let id = NextDeviceId::<Test>::get();
	assert_ok!(DeviceIdentity::register(
		origin(owner),
		keys.account_id(),
		keys.evm_address(),
		keys.peer_id(),
		keys.proof::<Test>(&account(owner)),
	));
	id
}

fn held(seed: u8, reason: HoldReason) -> Balance {
	Balances::balance_on_hold(&RuntimeHoldReason::DeviceIdentity(reason), &account(seed))
}

fn name(s: &str) -> AttributeName {
	s.as_bytes().to_vec().try_into().unwrap()
}

fn last_event() -> Event<Test> {
	System::events()
		.into_iter()
		.rev()
		.find_map(|r| match r.event {
			RuntimeEvent::DeviceIdentity(e) => Some(e),
			_ => None,
		})
		.expect("an identity event")
}

mod register {
	use super::*;

	#[test]
	fn binds_three_keys_holds_deposit_and_indexes_the_device() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let id = register(OWNER, &keys);
			let record = Devices::<Test>::get(id).unwrap();
			assert_eq!(record.owner, account(OWNER));
			assert_eq!(record.account, keys.account_id());
			assert_eq!(record.evm_address, keys.evm_address());
			assert_eq!(record.status, DeviceStatus::Active);
			assert_eq!(held(OWNER, HoldReason::DeviceDeposit), DEVICE_DEPOSIT);
			assert_eq!(DeviceByAccount::<Test>::get(keys.account_id()), Some(id));
			assert_eq!(DeviceByEvm::<Test>::get(keys.evm_address()), Some(id));
			assert_eq!(DeviceByPeer::<Test>::get(keys.peer_id()), Some(id));
			assert_eq!(OwnerDeviceCount::<Test>::get(account(OWNER)), 1);
			assert_eq!(ProofNonces::<Test>::get(account(OWNER)), 1);
			assert_eq!(
				last_event(),
				Event::DeviceRegistered {
					device: id,
					owner: account(OWNER),
					account: keys.account_id(),
					evm_address: keys.evm_address(),
					peer_id: keys.peer_id(),
				}
			);
		});
	}

	#[test]
	fn accepts_ethereum_style_recovery_ids() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let mut proof = keys.proof::<Test>(&account(OWNER));
			proof.evm_signature.0[64] += 27;
			assert_ok!(DeviceIdentity::register(
				origin(OWNER),
				keys.account_id(),
				keys.evm_address(),
				keys.peer_id(),
				proof,
			));
		});
	}

	#[test]
	fn refuses_keys_already_bound() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			register(OWNER, &keys);
			let fresh = DeviceKeys::new(2);
			let try_with = |account, evm, peer: PeerId| {
				let challenge = registration_challenge(
					&DeviceIdentity::genesis_hash(),
					&mock::account(OWNER),
					&account,
					&evm,
					&peer,
					ProofNonces::<Test>::get(mock::account(OWNER)),
				);
				// Signatures are irrelevant: the uniqueness checks come first.
				DeviceIdentity::register(origin(OWNER), account, evm, peer, fresh.sign(&challenge))
			};
			assert_noop!(
				try_with(keys.account_id(), fresh.evm_address(), fresh.peer_id()),
				Error::<Test>::AccountInUse
			);
			assert_noop!(
				try_with(fresh.account_id(), keys.evm_address(), fresh.peer_id()),
				Error::<Test>::EvmAddressInUse
			);
			assert_noop!(
				try_with(fresh.account_id(), fresh.evm_address(), keys.peer_id()),
				Error::<Test>::PeerIdInUse
			);
		});
	}

	#[test]
	fn each_key_must_sign() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let impostor = DeviceKeys::new(9);
			let owner = account(OWNER);
			let genuine = keys.proof::<Test>(&owner);
			let forged = impostor.proof::<Test>(&owner);

			let mut proof = genuine.clone();
			proof.account_signature = forged.account_signature.clone();
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					proof
				),
				Error::<Test>::BadAccountProof
			);
			let mut proof = genuine.clone();
			proof.evm_signature = forged.evm_signature;
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					proof
				),
				Error::<Test>::BadEvmProof
			);
			let mut proof = genuine.clone();
			proof.evm_signature.0[64] = 5;
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					proof
				),
				Error::<Test>::BadEvmProof
			);
			let mut proof = genuine;
			proof.peer_signature = forged.peer_signature;
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					proof
				),
				Error::<Test>::BadPeerProof
			);
		});
	}

	#[test]
	fn a_proof_made_for_one_owner_cannot_be_used_by_another() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			// A squatter who intercepted the owner's proof submits it as their own.
			let stolen = keys.proof::<Test>(&account(OWNER));
			assert_noop!(
				DeviceIdentity::register(
					origin(OTHER_OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					stolen,
				),
				Error::<Test>::BadAccountProof
			);
		});
	}

	#[test]
	fn a_proof_made_for_another_chain_is_refused() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let owner = account(OWNER);
			let challenge = registration_challenge(
				&H256::repeat_byte(0xAB),
				&owner,
				&keys.account_id(),
				&keys.evm_address(),
				&keys.peer_id(),
				0,
			);
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					keys.sign(&challenge),
				),
				Error::<Test>::BadAccountProof
			);
		});
	}

	#[test]
	fn a_used_proof_cannot_be_replayed_after_deregistration() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let proof = keys.proof::<Test>(&account(OWNER));
			let id = register(OWNER, &keys);
			assert_ok!(DeviceIdentity::deregister(origin(OWNER), id));
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					proof,
				),
				Error::<Test>::BadAccountProof
			);
			// A fresh proof, at the new nonce, works.
			register(OWNER, &keys);
		});
	}

	#[test]
	fn hashed_peer_ids_are_unsupported() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let mut rsa_like = vec![0x12, 0x20];
			rsa_like.extend_from_slice(&[1u8; 32]);
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					keys.account_id(),
					keys.evm_address(),
					rsa_like.try_into().unwrap(),
					keys.proof::<Test>(&account(OWNER)),
				),
				Error::<Test>::UnsupportedPeerId
			);
		});
	}

	#[test]
	fn owners_are_bounded() {
		new_test_ext().execute_with(|| {
			for seed in 0..MAX_DEVICES as u8 {
				register(OWNER, &DeviceKeys::new(seed));
			}
			let extra = DeviceKeys::new(50);
			assert_noop!(
				DeviceIdentity::register(
					origin(OWNER),
					extra.account_id(),
					extra.evm_address(),
					extra.peer_id(),
					extra.proof::<Test>(&account(OWNER)),
				),
				Error::<Test>::TooManyDevices
			);
		});
	}

	#[test]
	fn the_deposit_must_be_affordable() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			assert_noop!(
				DeviceIdentity::register(
					origin(POOR_OWNER),
					keys.account_id(),
					keys.evm_address(),
					keys.peer_id(),
					keys.proof::<Test>(&account(POOR_OWNER)),
				),
				Error::<Test>::InsufficientDeposit
			);
		});
	}
}

mod attributes {
	use super::*;

	#[test]
	fn set_update_and_remove_track_the_deposit() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_ok!(DeviceIdentity::set_attribute(
				origin(OWNER),
				id,
				name("kind"),
				b"charger".to_vec(),
				None
			));
			assert_eq!(held(OWNER, HoldReason::AttributeDeposit), ATTRIBUTE_BASE + 4 + 7);
			assert_eq!(Devices::<Test>::get(id).unwrap().attribute_count, 1);

			assert_ok!(DeviceIdentity::set_attribute(
				origin(OWNER),
				id,
				name("kind"),
				b"dc-fast-charger".to_vec(),
				None
			));
			assert_eq!(held(OWNER, HoldReason::AttributeDeposit), ATTRIBUTE_BASE + 4 + 15);
			assert_ok!(DeviceIdentity::set_attribute(
				origin(OWNER),
				id,
				name("kind"),
				b"ac".to_vec(),
				None
			));
			assert_eq!(held(OWNER, HoldReason::AttributeDeposit), ATTRIBUTE_BASE + 4 + 2);
			assert_eq!(Devices::<Test>::get(id).unwrap().attribute_count, 1);
			assert_eq!(
				Attributes::<Test>::get(id, name("kind")).unwrap().value.to_vec(),
				b"ac".to_vec()
			);

			assert_ok!(DeviceIdentity::remove_attribute(origin(OWNER), id, name("kind")));
			assert_eq!(held(OWNER, HoldReason::AttributeDeposit), 0);
			assert_eq!(Devices::<Test>::get(id).unwrap().attribute_count, 0);
			assert_eq!(last_event(), Event::AttributeRemoved { device: id, name: name("kind") });
			assert_noop!(
				DeviceIdentity::remove_attribute(origin(OWNER), id, name("kind")),
				Error::<Test>::UnknownAttribute
			);
		});
	}

	#[test]
	fn only_the_owner_may_write() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_noop!(
				DeviceIdentity::set_attribute(origin(OTHER_OWNER), id, name("kind"), vec![1], None),
				Error::<Test>::NotOwner
			);
			assert_noop!(
				DeviceIdentity::set_attribute(origin(OWNER), 99, name("kind"), vec![1], None),
				Error::<Test>::UnknownDevice
			);
		});
	}

	#[test]
	fn bounds_are_enforced() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_noop!(
				DeviceIdentity::set_attribute(origin(OWNER), id, name(""), vec![1], None),
				Error::<Test>::EmptyAttributeName
			);
			assert_noop!(
				DeviceIdentity::set_attribute(
					origin(OWNER),
					id,
					name("k"),
					vec![0; MAX_VALUE_LEN as usize + 1],
					None
				),
				Error::<Test>::AttributeValueTooLong
			);
			assert_ok!(DeviceIdentity::set_attribute(
				origin(OWNER),
				id,
				name("k"),
				vec![0; MAX_VALUE_LEN as usize],
				None
			));
			let too_long_name: Result<AttributeName, _> =
				vec![b'n'; MAX_ATTRIBUTE_NAME_LEN as usize + 1].try_into();
			assert!(too_long_name.is_err());
			for i in 1..MAX_ATTRIBUTES {
				assert_ok!(DeviceIdentity::set_attribute(
					origin(OWNER),
					id,
					name(&format!("a{i}")),
					vec![1],
					None
				));
			}
			assert_noop!(
				DeviceIdentity::set_attribute(
					origin(OWNER),
					id,
					name("one-too-many"),
					vec![1],
					None
				),
				Error::<Test>::TooManyAttributes
			);
			// Updating an existing attribute is still possible at the bound.
			assert_ok!(DeviceIdentity::set_attribute(origin(OWNER), id, name("a1"), vec![2], None));
		});
	}

	#[test]
	fn the_deposit_must_be_affordable() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			let spendable = Balances::reducible_balance(
				&account(OWNER),
				frame_support::traits::tokens::Preservation::Preserve,
				frame_support::traits::tokens::Fortitude::Polite,
			);
			assert_ok!(Balances::transfer_allow_death(
				origin(OWNER),
				account(OTHER_OWNER),
				spendable - 50
			));
			assert_noop!(
				DeviceIdentity::set_attribute(origin(OWNER), id, name("kind"), vec![1], None),
				Error::<Test>::InsufficientDeposit
			);
		});
	}

	#[test]
	fn expiry_hides_the_attribute_and_lets_anyone_clear_it() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_noop!(
				DeviceIdentity::set_attribute(origin(OWNER), id, name("lease"), vec![1], Some(0)),
				Error::<Test>::ZeroValidity
			);
			assert_ok!(DeviceIdentity::set_attribute(
				origin(OWNER),
				id,
				name("lease"),
				vec![1],
				Some(10)
			));
			assert_eq!(
				last_event(),
				Event::AttributeSet { device: id, name: name("lease"), valid_until: Some(11) }
			);
			System::set_block_number(11);
			assert_eq!(DeviceIdentity::live_attributes(id).len(), 1);
			assert_noop!(
				DeviceIdentity::clear_expired_attribute(origin(OTHER_OWNER), id, name("lease")),
				Error::<Test>::AttributeNotExpired
			);
			System::set_block_number(12);
			assert!(DeviceIdentity::live_attributes(id).is_empty());
			let free_before = Balances::balance(&account(OWNER));
			assert_ok!(DeviceIdentity::clear_expired_attribute(
				origin(OTHER_OWNER),
				id,
				name("lease")
			));
			assert_eq!(Balances::balance(&account(OWNER)), free_before + ATTRIBUTE_BASE + 5 + 1);
			assert_noop!(
				DeviceIdentity::clear_expired_attribute(origin(OTHER_OWNER), id, name("lease")),
				Error::<Test>::UnknownAttribute
			);
		});
	}
}

mod rotation {
	use super::*;

	fn rotation_signature_sr(
		pair: &sr25519::Pair,
		device: DeviceId,
		kind: KeyKind,
		key: &[u8],
	) -> MultiSignature {
		let challenge = rotation_challenge(
			&DeviceIdentity::genesis_hash(),
			&account(OWNER),
			device,
			&kind,
			key,
			ProofNonces::<Test>::get(account(OWNER)),
		);
		pair.sign(&challenge).into()
	}

	fn challenge(device: DeviceId, kind: KeyKind, key: &[u8]) -> [u8; 32] {
		rotation_challenge(
			&DeviceIdentity::genesis_hash(),
			&account(OWNER),
			device,
			&kind,
			key,
			ProofNonces::<Test>::get(account(OWNER)),
		)
	}

	#[test]
	fn each_key_can_be_rotated_by_proving_the_new_key() {
		new_test_ext().execute_with(|| {
			let old = DeviceKeys::new(1);
			let new = DeviceKeys::new(2);
			let id = register(OWNER, &old);

			let signature = rotation_signature_sr(
				&new.account,
				id,
				KeyKind::Account,
				&new.account_id().encode(),
			);
			assert_ok!(DeviceIdentity::rotate_key(
				origin(OWNER),
				id,
				NewKey::Account { account: new.account_id(), signature }
			));
			assert_eq!(DeviceByAccount::<Test>::get(old.account_id()), None);
			assert_eq!(DeviceByAccount::<Test>::get(new.account_id()), Some(id));
			assert_eq!(last_event(), Event::KeyRotated { device: id, kind: KeyKind::Account });

			let c = challenge(id, KeyKind::Evm, &new.evm_address().encode());
			let signature =
				evm_sign(&new.evm, &m2m_primitives::eip712::personal_message_digest(&c).0);
			assert_ok!(DeviceIdentity::rotate_key(
				origin(OWNER),
				id,
				NewKey::Evm { address: new.evm_address(), signature }
			));
			assert_eq!(DeviceByEvm::<Test>::get(old.evm_address()), None);
			assert_eq!(DeviceByEvm::<Test>::get(new.evm_address()), Some(id));

			let c = challenge(id, KeyKind::Peer, &new.peer_id().encode());
			assert_ok!(DeviceIdentity::rotate_key(
				origin(OWNER),
				id,
				NewKey::Peer { peer_id: new.peer_id(), signature: new.peer.sign(&c).0 }
			));
			assert_eq!(DeviceByPeer::<Test>::get(old.peer_id()), None);
			assert_eq!(DeviceByPeer::<Test>::get(new.peer_id()), Some(id));
			let record = Devices::<Test>::get(id).unwrap();
			assert_eq!(
				(record.account, record.evm_address, record.peer_id),
				(new.account_id(), new.evm_address(), new.peer_id())
			);
		});
	}

	#[test]
	fn refusals() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let other = DeviceKeys::new(2);
			let id = register(OWNER, &keys);
			let other_id = register(OWNER, &other);
			let sig = rotation_signature_sr(
				&keys.account,
				id,
				KeyKind::Account,
				&keys.account_id().encode(),
			);
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Account { account: keys.account_id(), signature: sig.clone() }
				),
				Error::<Test>::KeyUnchanged
			);
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OTHER_OWNER),
					id,
					NewKey::Account { account: keys.account_id(), signature: sig }
				),
				Error::<Test>::NotOwner
			);
			let sig = rotation_signature_sr(
				&other.account,
				id,
				KeyKind::Account,
				&other.account_id().encode(),
			);
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Account { account: other.account_id(), signature: sig }
				),
				Error::<Test>::AccountInUse
			);
			// The new key must be the signer: a signature by the old key does not do.
			let fresh = DeviceKeys::new(3);
			let sig = rotation_signature_sr(
				&keys.account,
				id,
				KeyKind::Account,
				&fresh.account_id().encode(),
			);
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Account { account: fresh.account_id(), signature: sig }
				),
				Error::<Test>::BadAccountProof
			);
			let c = challenge(id, KeyKind::Evm, &fresh.evm_address().encode());
			let wrong = evm_sign(&keys.evm, &m2m_primitives::eip712::personal_message_digest(&c).0);
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Evm { address: fresh.evm_address(), signature: wrong }
				),
				Error::<Test>::BadEvmProof
			);
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Evm { address: other.evm_address(), signature: wrong }
				),
				Error::<Test>::EvmAddressInUse
			);
			let c = challenge(id, KeyKind::Peer, &fresh.peer_id().encode());
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Peer { peer_id: fresh.peer_id(), signature: keys.peer.sign(&c).0 }
				),
				Error::<Test>::BadPeerProof
			);
			let hashed: PeerId = vec![0x12, 0x20, 1, 2, 3].try_into().unwrap();
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Peer { peer_id: hashed, signature: [0; 64] }
				),
				Error::<Test>::UnsupportedPeerId
			);
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					other_id,
					NewKey::Peer { peer_id: keys.peer_id(), signature: [0; 64] }
				),
				Error::<Test>::PeerIdInUse
			);
		});
	}

	#[test]
	fn a_rotation_proof_works_once() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let a = DeviceKeys::new(2);
			let id = register(OWNER, &keys);
			let sig =
				rotation_signature_sr(&a.account, id, KeyKind::Account, &a.account_id().encode());
			assert_ok!(DeviceIdentity::rotate_key(
				origin(OWNER),
				id,
				NewKey::Account { account: a.account_id(), signature: sig.clone() }
			));
			let back = rotation_signature_sr(
				&keys.account,
				id,
				KeyKind::Account,
				&keys.account_id().encode(),
			);
			assert_ok!(DeviceIdentity::rotate_key(
				origin(OWNER),
				id,
				NewKey::Account { account: keys.account_id(), signature: back }
			));
			assert_noop!(
				DeviceIdentity::rotate_key(
					origin(OWNER),
					id,
					NewKey::Account { account: a.account_id(), signature: sig }
				),
				Error::<Test>::BadAccountProof
			);
		});
	}
}

mod transfer {
	use super::*;

	#[test]
	fn offer_accept_moves_ownership_and_deposits() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_ok!(DeviceIdentity::set_attribute(
				origin(OWNER),
				id,
				name("kind"),
				b"robot".to_vec(),
				None
			));
			let attribute_deposit = ATTRIBUTE_BASE + 4 + 5;
			assert_ok!(DeviceIdentity::offer_transfer(origin(OWNER), id, account(OTHER_OWNER)));
			assert_eq!(
				last_event(),
				Event::TransferOffered {
					device: id,
					from: account(OWNER),
					to: account(OTHER_OWNER)
				}
			);
			assert_ok!(DeviceIdentity::accept_transfer(origin(OTHER_OWNER), id));
			assert_eq!(Devices::<Test>::get(id).unwrap().owner, account(OTHER_OWNER));
			assert_eq!(held(OWNER, HoldReason::DeviceDeposit), 0);
			assert_eq!(held(OWNER, HoldReason::AttributeDeposit), 0);
			assert_eq!(held(OTHER_OWNER, HoldReason::DeviceDeposit), DEVICE_DEPOSIT);
			assert_eq!(held(OTHER_OWNER, HoldReason::AttributeDeposit), attribute_deposit);
			assert_eq!(
				DeviceIdentity::devices_of_owner(&account(OWNER), None, 10),
				Vec::<DeviceId>::new()
			);
			assert_eq!(DeviceIdentity::devices_of_owner(&account(OTHER_OWNER), None, 10), vec![id]);
			assert_eq!(OwnerDeviceCount::<Test>::get(account(OWNER)), 0);
			assert_eq!(PendingTransfers::<Test>::get(id), None);
			// The new owner now controls the device.
			assert_ok!(DeviceIdentity::remove_attribute(origin(OTHER_OWNER), id, name("kind")));
			assert_noop!(DeviceIdentity::suspend(origin(OWNER), id), Error::<Test>::NotOwner);
		});
	}

	#[test]
	fn refusals_and_cancellation() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_noop!(
				DeviceIdentity::offer_transfer(origin(OWNER), id, account(OWNER)),
				Error::<Test>::TransferToSelf
			);
			assert_noop!(
				DeviceIdentity::offer_transfer(origin(OTHER_OWNER), id, account(OTHER_OWNER)),
				Error::<Test>::NotOwner
			);
			assert_noop!(
				DeviceIdentity::accept_transfer(origin(OTHER_OWNER), id),
				Error::<Test>::NoPendingTransfer
			);
			assert_noop!(
				DeviceIdentity::cancel_transfer(origin(OWNER), id),
				Error::<Test>::NoPendingTransfer
			);
			assert_ok!(DeviceIdentity::offer_transfer(origin(OWNER), id, account(OTHER_OWNER)));
			assert_noop!(
				DeviceIdentity::accept_transfer(origin(POOR_OWNER), id),
				Error::<Test>::NotTransferRecipient
			);
			assert_ok!(DeviceIdentity::cancel_transfer(origin(OWNER), id));
			assert_eq!(last_event(), Event::TransferCancelled { device: id });
			assert_noop!(
				DeviceIdentity::accept_transfer(origin(OTHER_OWNER), id),
				Error::<Test>::NoPendingTransfer
			);
			assert_noop!(
				DeviceIdentity::accept_transfer(origin(OTHER_OWNER), 99),
				Error::<Test>::UnknownDevice
			);
		});
	}

	/// The recipient accepts the device as offered: any owner-side change in between (an
	/// attribute, a key, a suspension) withdraws the offer, so acceptance then fails.
	#[test]
	fn an_owner_change_after_the_offer_withdraws_it() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			let offer = || {
				assert_ok!(DeviceIdentity::offer_transfer(origin(OWNER), id, account(OTHER_OWNER)));
			};
			let changes: [&dyn Fn(); 4] = [
				&|| {
					assert_ok!(DeviceIdentity::set_attribute(
						origin(OWNER),
						id,
						name("kind"),
						b"robot".to_vec(),
						None
					));
				},
				&|| {
					assert_ok!(DeviceIdentity::remove_attribute(origin(OWNER), id, name("kind")));
				},
				&|| {
					assert_ok!(DeviceIdentity::suspend(origin(OWNER), id));
				},
				&|| {
					assert_ok!(DeviceIdentity::reactivate(origin(OWNER), id));
				},
			];
			for change in changes {
				offer();
				change();
				assert!(System::events().iter().any(|r| r.event
					== RuntimeEvent::DeviceIdentity(Event::TransferCancelled { device: id })));
				assert_eq!(PendingTransfers::<Test>::get(id), None);
				assert_noop!(
					DeviceIdentity::accept_transfer(origin(OTHER_OWNER), id),
					Error::<Test>::NoPendingTransfer
				);
				System::reset_events();
			}
			assert_eq!(Devices::<Test>::get(id).unwrap().owner, account(OWNER));

			// Offered again and left alone, the same device transfers.
			offer();
			assert_ok!(DeviceIdentity::accept_transfer(origin(OTHER_OWNER), id));
			assert_eq!(Devices::<Test>::get(id).unwrap().owner, account(OTHER_OWNER));
		});
	}

	#[test]
	fn the_recipient_must_afford_the_deposit_and_have_room() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_ok!(DeviceIdentity::offer_transfer(origin(OWNER), id, account(POOR_OWNER)));
			assert_noop!(
				DeviceIdentity::accept_transfer(origin(POOR_OWNER), id),
				Error::<Test>::InsufficientDeposit
			);

			for seed in 10..10 + MAX_DEVICES as u8 {
				register(OTHER_OWNER, &DeviceKeys::new(seed));
			}
			assert_ok!(DeviceIdentity::offer_transfer(origin(OWNER), id, account(OTHER_OWNER)));
			assert_noop!(
				DeviceIdentity::accept_transfer(origin(OTHER_OWNER), id),
				Error::<Test>::TooManyDevices
			);
		});
	}
}

mod suspension {
	use super::*;

	#[test]
	fn owner_suspends_and_reactivates() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_noop!(
				DeviceIdentity::reactivate(origin(OWNER), id),
				Error::<Test>::DeviceNotSuspended
			);
			assert_ok!(DeviceIdentity::suspend(origin(OWNER), id));
			assert_eq!(last_event(), Event::DeviceSuspended { device: id, by_force: false });
			assert_eq!(Devices::<Test>::get(id).unwrap().status, DeviceStatus::SuspendedByOwner);
			assert!(!<DeviceIdentity as DeviceDirectory<_>>::device(id).unwrap().active);
			assert_noop!(
				DeviceIdentity::suspend(origin(OWNER), id),
				Error::<Test>::DeviceSuspended
			);
			assert_ok!(DeviceIdentity::reactivate(origin(OWNER), id));
			assert_eq!(last_event(), Event::DeviceReactivated { device: id });
			assert_noop!(DeviceIdentity::suspend(origin(OTHER_OWNER), id), Error::<Test>::NotOwner);
			assert_noop!(DeviceIdentity::suspend(origin(OWNER), 99), Error::<Test>::UnknownDevice);
		});
	}

	#[test]
	fn a_forced_suspension_binds_the_owner() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_ok!(DeviceIdentity::suspend(RuntimeOrigin::root(), id));
			assert_eq!(last_event(), Event::DeviceSuspended { device: id, by_force: true });
			assert_noop!(
				DeviceIdentity::reactivate(origin(OWNER), id),
				Error::<Test>::ForcedSuspension
			);
			assert_noop!(
				DeviceIdentity::deregister(origin(OWNER), id),
				Error::<Test>::ForcedSuspension
			);
			assert_ok!(DeviceIdentity::reactivate(RuntimeOrigin::root(), id));
			assert_eq!(Devices::<Test>::get(id).unwrap().status, DeviceStatus::Active);
			assert_noop!(
				DeviceIdentity::suspend(RuntimeOrigin::none(), id),
				DispatchError::BadOrigin
			);
		});
	}
}

mod deregister {
	use super::*;

	#[test]
	fn removes_everything_and_releases_every_deposit() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let id = register(OWNER, &keys);
			for i in 0..MAX_ATTRIBUTES {
				assert_ok!(DeviceIdentity::set_attribute(
					origin(OWNER),
					id,
					name(&format!("a{i}")),
					vec![1, 2],
					None
				));
			}
			assert_ok!(DeviceIdentity::offer_transfer(origin(OWNER), id, account(OTHER_OWNER)));
			let before = Balances::balance(&account(OWNER));
			assert_ok!(DeviceIdentity::deregister(origin(OWNER), id));
			assert_eq!(
				last_event(),
				Event::DeviceDeregistered { device: id, owner: account(OWNER) }
			);
			assert_eq!(
				Balances::balance(&account(OWNER)),
				before + DEVICE_DEPOSIT + MAX_ATTRIBUTES as Balance * (ATTRIBUTE_BASE + 2 + 2)
			);
			assert_eq!(
				held(OWNER, HoldReason::DeviceDeposit) + held(OWNER, HoldReason::AttributeDeposit),
				0
			);
			assert!(Devices::<Test>::get(id).is_none());
			assert!(DeviceByAccount::<Test>::get(keys.account_id()).is_none());
			assert!(DeviceByEvm::<Test>::get(keys.evm_address()).is_none());
			assert!(DeviceByPeer::<Test>::get(keys.peer_id()).is_none());
			assert!(PendingTransfers::<Test>::get(id).is_none());
			assert_eq!(Attributes::<Test>::iter_prefix(id).count(), 0);
			assert!(!OwnerDeviceCount::<Test>::contains_key(account(OWNER)));
			assert_noop!(
				DeviceIdentity::deregister(origin(OWNER), id),
				Error::<Test>::UnknownDevice
			);
		});
	}

	#[test]
	fn only_the_owner_may_deregister() {
		new_test_ext().execute_with(|| {
			let id = register(OWNER, &DeviceKeys::new(1));
			assert_noop!(
				DeviceIdentity::deregister(origin(OTHER_OWNER), id),
				Error::<Test>::NotOwner
			);
		});
	}
}

mod queries {
	use super::*;

	#[test]
	fn devices_of_owner_pages_through_every_device_once() {
		new_test_ext().execute_with(|| {
			let ids: Vec<_> =
				(0..MAX_DEVICES as u8).map(|s| register(OWNER, &DeviceKeys::new(s))).collect();
			let mut seen = Vec::new();
			let mut cursor = None;
			loop {
				let page = DeviceIdentity::devices_of_owner(&account(OWNER), cursor, 2);
				if page.is_empty() {
					break;
				}
				assert!(page.len() <= 2);
				cursor = page.last().copied();
				seen.extend(page);
			}
			seen.sort();
			assert_eq!(seen, ids);
		});
	}

	#[test]
	fn the_directory_finds_devices_by_evm_address() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let id = register(OWNER, &keys);
			let found =
				<DeviceIdentity as DeviceDirectory<_>>::device_by_evm(&keys.evm_address()).unwrap();
			assert_eq!((found.id, found.owner, found.active), (id, account(OWNER), true));
			assert!(<DeviceIdentity as DeviceDirectory<_>>::device_by_evm(&H160::repeat_byte(1))
				.is_none());
		});
	}

	#[test]
	fn peer_ids_derive_from_the_ed25519_key() {
		let pair = ed25519::Pair::from_seed(&[1; 32]);
		assert_eq!(
			peer_id_bytes(&pair.public().0)[..6],
			m2m_primitives::device::ED25519_PEER_ID_PREFIX
		);
		let _ = ecdsa::Pair::from_seed(&[1; 32]);
	}

	#[test]
	fn rejected_calls_leave_no_trace() {
		new_test_ext().execute_with(|| {
			let keys = DeviceKeys::new(1);
			let mut proof = keys.proof::<Test>(&account(OWNER));
			proof.peer_signature[0] ^= 1;
			let result = DeviceIdentity::register(
				origin(OWNER),
				keys.account_id(),
				keys.evm_address(),
				keys.peer_id(),
				proof,
			);
			assert_eq!(result, Err(Error::<Test>::BadPeerProof.into()));
			assert_eq!(NextDeviceId::<Test>::get(), 0);
			assert_eq!(ProofNonces::<Test>::get(account(OWNER)), 0);
			assert_eq!(held(OWNER, HoldReason::DeviceDeposit), 0);
			let _ = TokenError::FundsUnavailable;
		});
	}
}
