//! The EVM side: pallet-revive running solc EVM bytecode, configured after the published
//! `revive-dev-runtime`, and the settlement oracle that lets the receipts pallet ask a token
//! contract exactly which authorization it executed.

use frame_support::{
	derive_impl, parameter_types,
	storage::{with_transaction, TransactionOutcome},
	traits::{ConstBool, ConstU32, ConstU64},
	weights::Weight,
};
use frame_system::{EnsureSigned, RawOrigin};
use m2m_primitives::{keccak_256, receipt::AssetKey, H160, H256};
use pallet_revive::{
	evm::fees::Info as FeeInfo, AccountId32Mapper, ExecConfig, TransactionLimits, U256,
};
use pallet_settlement_receipts::{AuthorizationRecord, SettlementOracle};
use sp_runtime::{DispatchError, Perbill};

use super::super::{
	AccountId, Address, Balance, Balances, EthExtraImpl, Revive, Runtime, RuntimeCall,
	RuntimeEvent, RuntimeHoldReason, RuntimeOrigin, Signature, Timestamp, EVM_CHAIN_ID, MICRO_UNIT,
	MILLI_UNIT,
};

parameter_types! {
	/// Storage deposits, in the native token (18 decimals, like wei): a contract storage slot
	/// costs 0.002 and a byte of code or storage 0.00001.
	pub const DepositPerItem: Balance = 2 * MILLI_UNIT;
	pub const DepositPerChildTrieItem: Balance = 2 * MILLI_UNIT / 100;
	pub const DepositPerByte: Balance = 10 * MICRO_UNIT;
	pub CodeHashLockupDepositPercent: Perbill = Perbill::from_percent(30);
}

#[derive_impl(pallet_revive::config_preludes::TestDefaultConfig)]
impl pallet_revive::Config for Runtime {
	type AddressMapper = AccountId32Mapper<Self>;
	type ChainId = ConstU64<EVM_CHAIN_ID>;
	type CodeHashLockupDepositPercent = CodeHashLockupDepositPercent;
	type DepositPerItem = DepositPerItem;
	type DepositPerChildTrieItem = DepositPerChildTrieItem;
	type DepositPerByte = DepositPerByte;
	type Balance = Balance;
	type Currency = Balances;
	/// The native token has 18 decimals, as ether does: one planck is one wei.
	type NativeToEthRatio = ConstU32<1>;
	type UploadOrigin = EnsureSigned<AccountId>;
	type InstantiateOrigin = EnsureSigned<AccountId>;
	type Time = Timestamp;
	type FeeInfo = FeeInfo<Address, Signature, EthExtraImpl>;
	type DebugEnabled = ConstBool<false>;
	type AutoMap = ConstBool<true>;
	/// Scales gas so that common contracts cost what Ethereum tools expect (a token transfer is
	/// tens of thousands of gas, not billions); the same factor as `revive-dev-runtime`.
	type GasScale = ConstU32<50_000>;
	type WeightInfo = pallet_revive::weights::SubstrateWeight<Self>;
}

/// Upper bound on one `authorizationDigest` call, charged per receipt up front; the call is
/// metered against it and counts as unverifiable beyond it. pallet-revive meters the real call
/// on our USDT well below this (the runtime test below prints it and keeps a 4x margin).
const SETTLEMENT_CHECK_WEIGHT: Weight = Weight::from_parts(500_000_000, 64 * 1024);

/// What `authorizationDigest` answers for a cancelled nonce (`USDT.CANCELED`).
const CANCELED: H256 = H256([
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
]);

/// Answers "which authorization did this token execute under (from, nonce)?" by calling the
/// token contract's `authorizationDigest(address,bytes32)` inside the runtime, for assets on
/// this chain's EVM. Tokens elsewhere cannot be asked.
pub struct ReviveSettlement;

impl ReviveSettlement {
	fn calldata(from: &H160, nonce: &H256) -> alloc::vec::Vec<u8> {
		let selector = keccak_256(b"authorizationDigest(address,bytes32)");
		let mut data = alloc::vec::Vec::with_capacity(4 + 64);
		data.extend_from_slice(&selector[..4]);
		data.extend_from_slice(&[0u8; 12]);
		data.extend_from_slice(from.as_bytes());
		data.extend_from_slice(nonce.as_bytes());
		data
	}
}

impl SettlementOracle for ReviveSettlement {
	fn check_weight() -> Weight {
		SETTLEMENT_CHECK_WEIGHT
	}

	fn authorization_record(asset: &AssetKey, from: &H160, nonce: &H256) -> AuthorizationRecord {
		if asset.chain_id != EVM_CHAIN_ID {
			return AuthorizationRecord::Unavailable;
		}
		match Self::view(asset.token, Self::calldata(from, nonce)) {
			Some(data) if data.len() == 32 => match H256::from_slice(&data) {
				d if d.is_zero() => AuthorizationRecord::Unused,
				d if d == CANCELED => AuthorizationRecord::Cancelled,
				digest => AuthorizationRecord::Executed(digest),
			},
			_ => AuthorizationRecord::Unavailable,
		}
	}

	fn channel_claimed(asset: &AssetKey, channel_id: &H256) -> Option<u128> {
		if asset.chain_id != EVM_CHAIN_ID {
			return None;
		}
		// `channels(bytes32)` answers `(uint128 balance, uint128 totalClaimed)`.
		let selector = keccak_256(b"channels(bytes32)");
		let mut data = alloc::vec::Vec::with_capacity(4 + 32);
		data.extend_from_slice(&selector[..4]);
		data.extend_from_slice(channel_id.as_bytes());
		let answer = Self::view(m2m_primitives::channel::SETTLEMENT_ADDRESS, data)?;
		if answer.len() != 64 || answer[32..48].iter().any(|b| *b != 0) {
			return None;
		}
		Some(u128::from_be_bytes(answer[48..64].try_into().expect("16 bytes")))
	}
}

impl ReviveSettlement {
	/// Calls `contract` with `data` as a view: whatever the contract does is rolled back.
	/// `None` if it could not answer (no contract, a revert, out of weight).
	fn view(contract: H160, data: alloc::vec::Vec<u8>) -> Option<alloc::vec::Vec<u8>> {
		let result = with_transaction(|| {
			let result = Revive::bare_call(
				RawOrigin::Root.into(),
				contract,
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: SETTLEMENT_CHECK_WEIGHT,
					deposit_limit: 0,
				},
				data,
				&ExecConfig::new_substrate_tx_without_bump(),
			);
			TransactionOutcome::Rollback(Ok::<_, DispatchError>(result))
		})
		.ok()?;
		match result.result {
			Ok(ret) if !ret.did_revert() => Some(ret.data),
			_ => None,
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::{DeviceIdentity, SettlementReceipts, System};
	use alloc::{boxed::Box, vec::Vec};
	use m2m_primitives::eip712::{
		domain_separator, typed_data_digest, EcdsaSignature, TransferWithAuthorization,
	};
	use pallet_device_identity::{
		testing::{evm_sign, DeviceKeys},
		DeviceId,
	};
	use pallet_revive::{AddressMapper, Code};
	use pallet_settlement_receipts::{
		Error as ReceiptError, Evidence, PaymentProof, ReceiptInput, Receipts, SettlementCheck,
	};
	use sp_keyring::Sr25519Keyring;
	use sp_runtime::DispatchResult;

	/// Chain time in the tests: 2026-12-01T00:00:00Z.
	const NOW_MS: u64 = 1_796_083_200_000;

	/// The creation code of `contracts/out/USDT.json`.
	fn usdt_init_code() -> Vec<u8> {
		let artifact: serde_json::Value =
			serde_json::from_str(include_str!("../../../contracts/out/USDT.json")).unwrap();
		let hex = artifact["bytecode"].as_str().unwrap().trim_start_matches("0x");
		(0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
	}

	fn word(bytes: &[u8]) -> [u8; 32] {
		let mut w = [0u8; 32];
		w[32 - bytes.len()..].copy_from_slice(bytes);
		w
	}

	fn abi_call(signature: &str, words: &[[u8; 32]]) -> Vec<u8> {
		let mut data = keccak_256(signature.as_bytes())[..4].to_vec();
		for w in words {
			data.extend_from_slice(w);
		}
		data
	}

	/// The real USDT on pallet-revive, two device owners, and the asset registered as provable.
	struct Chain {
		token: H160,
		domain: H256,
		alice: AccountId,
	}

	impl Chain {
		fn asset(&self) -> AssetKey {
			AssetKey { chain_id: EVM_CHAIN_ID, token: self.token }
		}

		/// Calls the token as `who`; returns whether it succeeded without reverting.
		fn call(&self, who: &AccountId, data: Vec<u8>) -> bool {
			let result = Revive::bare_call(
				RuntimeOrigin::signed(who.clone()),
				self.token,
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: Weight::from_parts(100_000_000_000, 10 * 1024 * 1024),
					deposit_limit: Balance::MAX,
				},
				data,
				&ExecConfig::new_substrate_tx(),
			);
			matches!(result.result, Ok(ret) if !ret.did_revert())
		}

		fn mint(&self, to: H160, amount: u128) {
			let data = abi_call(
				"mint(address,uint256)",
				&[word(to.as_bytes()), word(&amount.to_be_bytes())],
			);
			assert!(self.call(&self.alice, data), "the owner mints");
		}

		fn authorize(
			&self,
			payer: &DeviceKeys,
			to: H160,
			value: u128,
			nonce: u8,
		) -> (TransferWithAuthorization, EcdsaSignature) {
			let authorization = TransferWithAuthorization {
				from: payer.evm_address(),
				to,
				value: value.into(),
				valid_after: 0u64.into(),
				valid_before: (NOW_MS / 1000 + 3_600).into(),
				nonce: H256::repeat_byte(nonce),
			};
			let signature = evm_sign(&payer.evm, &authorization.signing_digest(&self.domain).0);
			(authorization, signature)
		}

		fn split(signature: &EcdsaSignature) -> ([u8; 32], [u8; 32], [u8; 32]) {
			let s = signature.to_ethereum().expect("a valid signature");
			(word(&[s[64]]), s[..32].try_into().unwrap(), s[32..64].try_into().unwrap())
		}

		/// Submits `transferWithAuthorization` as Alice, the way a facilitator does.
		fn execute(&self, (a, signature): &(TransferWithAuthorization, EcdsaSignature)) -> bool {
			let (v, r, s) = Self::split(signature);
			let value = |x: m2m_primitives::U256| {
				let mut w = [0u8; 32];
				for (i, limb) in x.0.iter().enumerate() {
					w[24 - 8 * i..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
				}
				w
			};
			let data = abi_call(
				"transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
				&[
					word(a.from.as_bytes()),
					word(a.to.as_bytes()),
					value(a.value),
					value(a.valid_after),
					value(a.valid_before),
					a.nonce.0,
					v,
					r,
					s,
				],
			);
			self.call(&self.alice, data)
		}

		/// EIP-3009's `authorizationState(from, nonce)`: what the v0 oracle took for "settled".
		fn authorization_state(&self, from: H160, nonce: u8) -> bool {
			let data = abi_call(
				"authorizationState(address,bytes32)",
				&[word(from.as_bytes()), [nonce; 32]],
			);
			let result = Revive::bare_call(
				RawOrigin::Root.into(),
				self.token,
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: SETTLEMENT_CHECK_WEIGHT,
					deposit_limit: 0,
				},
				data,
				&ExecConfig::new_substrate_tx_without_bump(),
			);
			let ret = result.result.expect("authorizationState answers");
			ret.data.last() == Some(&1)
		}

		/// The payer cancels `nonce`, signing EIP-3009's `CancelAuthorization`.
		fn cancel(&self, payer: &DeviceKeys, nonce: u8) -> bool {
			let typehash = keccak_256(b"CancelAuthorization(address authorizer,bytes32 nonce)");
			let mut encoded = typehash.to_vec();
			encoded.extend_from_slice(&word(payer.evm_address().as_bytes()));
			encoded.extend_from_slice(&[nonce; 32]);
			let digest = typed_data_digest(&self.domain, &H256(keccak_256(&encoded)));
			let (v, r, s) = Self::split(&evm_sign(&payer.evm, &digest.0));
			let data = abi_call(
				"cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)",
				&[word(payer.evm_address().as_bytes()), [nonce; 32], v, r, s],
			);
			self.call(&self.alice, data)
		}

		fn register(&self, owner: &AccountId, keys: &DeviceKeys) -> DeviceId {
			let id = pallet_device_identity::NextDeviceId::<Runtime>::get();
			DeviceIdentity::register(
				RuntimeOrigin::signed(owner.clone()),
				keys.account_id(),
				keys.evm_address(),
				keys.peer_id(),
				keys.proof::<Runtime>(owner),
			)
			.expect("registration succeeds");
			id
		}

		/// The payee device records `payment` as its receipt.
		fn record(
			&self,
			payee: &DeviceKeys,
			payee_id: DeviceId,
			(authorization, signature): &(TransferWithAuthorization, EcdsaSignature),
		) -> DispatchResult {
			SettlementReceipts::record_receipt(
				RuntimeOrigin::signed(payee.account_id()),
				Box::new(ReceiptInput {
					payee: payee_id,
					asset: self.asset(),
					proof: PaymentProof::Exact {
						authorization: authorization.clone(),
						signature: *signature,
					},
					settlement_tx: H256::repeat_byte(1),
					resource: H256::repeat_byte(2),
					request_count: 1,
					period_start: NOW_MS - 1_000,
					period_end: NOW_MS,
				}),
			)
		}
	}

	fn with_chain(test: impl FnOnce(&Chain)) {
		crate::genesis_config_presets::tests::build("development").execute_with(|| {
			System::set_block_number(1);
			pallet_timestamp::Now::<Runtime>::put(NOW_MS);
			let alice = Sr25519Keyring::Alice.to_account_id();
			let owner = <Runtime as pallet_revive::Config>::AddressMapper::to_address(&alice);
			let mut init = usdt_init_code();
			init.extend_from_slice(&word(owner.as_bytes()));
			let deployed = Revive::bare_instantiate(
				RuntimeOrigin::signed(alice.clone()),
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: Weight::from_parts(100_000_000_000, 10 * 1024 * 1024),
					deposit_limit: Balance::MAX,
				},
				Code::Upload(init),
				Vec::new(),
				None,
				&ExecConfig::new_substrate_tx(),
			);
			let token = deployed.result.expect("USDT deploys").addr;
			let domain = domain_separator(b"Tether USD", b"1", EVM_CHAIN_ID, token);
			let chain = Chain { token, domain, alice };
			SettlementReceipts::register_asset(
				RuntimeOrigin::root(),
				chain.asset(),
				b"Tether USD".to_vec(),
				b"1".to_vec(),
				6,
				b"USDT".to_vec(),
				SettlementCheck::TokenDigest,
			)
			.expect("root registers the asset");
			test(&chain);
		});
	}

	/// A payer and a payee device of different owners, the payer funded with 10 USDT.
	fn parties(chain: &Chain) -> (DeviceKeys, DeviceKeys, DeviceId) {
		let (payer, payee) = (DeviceKeys::new(1), DeviceKeys::new(2));
		chain.register(&Sr25519Keyring::Bob.to_account_id(), &payer);
		let payee_id = chain.register(&Sr25519Keyring::Charlie.to_account_id(), &payee);
		chain.mint(payer.evm_address(), 10_000_000);
		(payer, payee, payee_id)
	}

	/// The oracle asks a real USDT and its metered cost stays well inside the weight the
	/// receipts pallet charges for it.
	#[test]
	fn the_settlement_oracle_reads_a_real_token_within_its_weight() {
		with_chain(|chain| {
			let (from, nonce) = (H160::repeat_byte(1), H256::repeat_byte(2));
			assert_eq!(
				ReviveSettlement::authorization_record(&chain.asset(), &from, &nonce),
				AuthorizationRecord::Unused
			);
			let other_chain = AssetKey { chain_id: 3338, token: chain.token };
			assert_eq!(
				ReviveSettlement::authorization_record(&other_chain, &from, &nonce),
				AuthorizationRecord::Unavailable
			);
			let no_contract = AssetKey { chain_id: EVM_CHAIN_ID, token: H160::repeat_byte(9) };
			assert_eq!(
				ReviveSettlement::authorization_record(&no_contract, &from, &nonce),
				AuthorizationRecord::Unavailable
			);

			let metered = Revive::bare_call(
				RawOrigin::Root.into(),
				chain.token,
				U256::zero(),
				TransactionLimits::WeightAndDeposit {
					weight_limit: SETTLEMENT_CHECK_WEIGHT,
					deposit_limit: 0,
				},
				ReviveSettlement::calldata(&from, &nonce),
				&ExecConfig::new_substrate_tx_without_bump(),
			);
			assert!(metered.result.is_ok());
			let used = metered.weight_required;
			println!("authorizationDigest weight: {used} (charged {SETTLEMENT_CHECK_WEIGHT})");
			assert!(
				used.ref_time() * 4 <= SETTLEMENT_CHECK_WEIGHT.ref_time()
					&& used.proof_size() * 4 <= SETTLEMENT_CHECK_WEIGHT.proof_size(),
				"the charged weight must leave a 4x margin over {used}"
			);
		});
	}

	#[test]
	fn an_executed_authorization_is_recorded_as_proven() {
		with_chain(|chain| {
			let (payer, payee, payee_id) = parties(chain);
			let payment = chain.authorize(&payer, payee.evm_address(), 250_000, 1);
			assert_eq!(
				chain.record(&payee, payee_id, &payment),
				Err(ReceiptError::<Runtime>::NotSettled.into()),
				"nothing was executed yet"
			);
			assert!(chain.execute(&payment));
			assert_eq!(
				ReviveSettlement::authorization_record(
					&chain.asset(),
					&payer.evm_address(),
					&payment.0.nonce
				),
				AuthorizationRecord::Executed(payment.0.signing_digest(&chain.domain))
			);
			assert_eq!(chain.record(&payee, payee_id, &payment), Ok(()));
			let id = m2m_primitives::receipt::exact_receipt_id(
				&chain.asset(),
				&payer.evm_address(),
				&payment.0.nonce,
			);
			let stored = Receipts::<Runtime>::get(id).expect("recorded");
			assert_eq!((stored.amount, stored.evidence), (250_000, Evidence::Proven));
		});
	}

	/// Forgery 1: sign 1,000 USDT and 0.01 USDT under one nonce, execute the small one, record
	/// the large one. `authorizationState` says "used" for both.
	#[test]
	fn a_large_authorization_is_refused_when_a_small_one_was_executed_under_its_nonce() {
		with_chain(|chain| {
			let (payer, payee, payee_id) = parties(chain);
			let large = chain.authorize(&payer, payee.evm_address(), 1_000_000_000, 7);
			let small = chain.authorize(&payer, payee.evm_address(), 10_000, 7);
			assert!(chain.execute(&small));
			assert!(!chain.execute(&large), "the token refuses a second use of the nonce");
			assert!(
				chain.authorization_state(payer.evm_address(), 7),
				"the v0 oracle's check passes: the old pallet recorded this forgery"
			);
			assert_eq!(
				chain.record(&payee, payee_id, &large),
				Err(ReceiptError::<Runtime>::DifferentAuthorizationExecuted.into())
			);
			assert_eq!(chain.record(&payee, payee_id, &small), Ok(()));
		});
	}

	/// Forgery 2: sign, cancel, record. `authorizationState` says "used" for a cancellation.
	#[test]
	fn a_cancelled_authorization_is_refused() {
		with_chain(|chain| {
			let (payer, payee, payee_id) = parties(chain);
			let payment = chain.authorize(&payer, payee.evm_address(), 1_000_000_000, 8);
			assert!(chain.cancel(&payer, 8));
			assert!(
				chain.authorization_state(payer.evm_address(), 8),
				"the v0 oracle's check passes: the old pallet recorded this forgery"
			);
			assert_eq!(
				chain.record(&payee, payee_id, &payment),
				Err(ReceiptError::<Runtime>::AuthorizationCancelled.into())
			);
		});
	}

	/// Forgery 3: a payment that really moved, but to someone else, claimed by the payee.
	#[test]
	fn a_payment_to_someone_else_is_refused() {
		with_chain(|chain| {
			let (payer, payee, payee_id) = parties(chain);
			let elsewhere = chain.authorize(&payer, H160::repeat_byte(0x77), 5_000, 9);
			assert!(chain.execute(&elsewhere));
			assert_eq!(
				chain.record(&payee, payee_id, &elsewhere),
				Err(ReceiptError::<Runtime>::RecipientMismatch.into())
			);
		});
	}

	/// Forgery 4: one owner's two devices sign each other volume they never pay.
	#[test]
	fn one_owner_cannot_inflate_its_volume_with_unsettled_receipts() {
		with_chain(|chain| {
			let owner = Sr25519Keyring::Dave.to_account_id();
			let (payer, payee) = (DeviceKeys::new(3), DeviceKeys::new(4));
			chain.register(&owner, &payer);
			let payee_id = chain.register(&owner, &payee);
			for nonce in 10..13 {
				let fake = chain.authorize(&payer, payee.evm_address(), 1_000_000_000_000, nonce);
				assert_eq!(
					chain.record(&payee, payee_id, &fake),
					Err(ReceiptError::<Runtime>::NotSettled.into())
				);
			}
			let totals =
				pallet_settlement_receipts::OwnerTotals::<Runtime>::get(&owner, chain.asset());
			assert_eq!(totals, Default::default(), "no volume was invented");
		});
	}

	/// The chain carries the x402 batch-settlement contracts from genesis at their canonical
	/// addresses, and they hash channels as the scheme (and `m2m-primitives`) does: the
	/// channel id binds this chain's id and the contract's address.
	#[test]
	fn the_channel_contracts_are_in_genesis_at_the_canonical_addresses() {
		use m2m_primitives::channel::{settlement_domain, voucher_digest, ChannelConfig};
		crate::genesis_config_presets::tests::build("development").execute_with(|| {
			System::set_block_number(1);
			let [(settlement, _), (collector, _)] =
				crate::genesis_config_presets::CHANNEL_CONTRACTS;
			let (settlement, collector): (H160, H160) =
				(settlement.parse().unwrap(), collector.parse().unwrap());
			let view = |to: H160, data: Vec<u8>| {
				let result = Revive::bare_call(
					RawOrigin::Root.into(),
					to,
					U256::zero(),
					TransactionLimits::WeightAndDeposit {
						weight_limit: Weight::from_parts(100_000_000_000, 10 * 1024 * 1024),
						deposit_limit: 0,
					},
					data,
					&ExecConfig::new_substrate_tx_without_bump(),
				);
				let ret = result.result.expect("the contract answers");
				assert!(!ret.did_revert(), "the view reverted");
				ret.data
			};
			let config = ChannelConfig {
				payer: H160::repeat_byte(1),
				payer_authorizer: H160::repeat_byte(1),
				receiver: H160::repeat_byte(2),
				receiver_authorizer: H160::repeat_byte(3),
				token: H160::repeat_byte(4),
				withdraw_delay: 900,
				salt: H256::repeat_byte(5),
			};
			let mut data = keccak_256(
				b"getChannelId((address,address,address,address,address,uint40,bytes32))",
			)[..4]
				.to_vec();
			for address in [
				config.payer,
				config.payer_authorizer,
				config.receiver,
				config.receiver_authorizer,
				config.token,
			] {
				data.extend_from_slice(&word(address.as_bytes()));
			}
			data.extend_from_slice(&word(&config.withdraw_delay.to_be_bytes()));
			data.extend_from_slice(config.salt.as_bytes());
			let id = config.channel_id(EVM_CHAIN_ID, settlement);
			assert_eq!(view(settlement, data), id.as_bytes());

			let digest = abi_call(
				"getVoucherDigest(bytes32,uint128)",
				&[id.0, word(&1_000u128.to_be_bytes())],
			);
			let domain = settlement_domain(EVM_CHAIN_ID, settlement);
			assert_eq!(view(settlement, digest), voucher_digest(&id, 1_000, &domain).as_bytes());
			// The collector knows the settlement contract without a constructor.
			let linked = view(collector, abi_call("x402BatchSettlement()", &[]));
			assert_eq!(&linked[12..], settlement.as_bytes());
		});
	}
}
