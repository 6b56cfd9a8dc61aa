//! Benchmarks for the settlement receipts pallet. Payer signatures are made with keys in the
//! benchmark keystore, so recording pays for a real secp256k1 recovery.

use super::*;
use crate::Pallet as SettlementReceipts;
use alloc::{boxed::Box, vec::Vec};
use frame_benchmarking::v2::*;
use frame_support::traits::{EnsureOrigin, Get, UnixTime};
use frame_support::BoundedVec;
use frame_system::RawOrigin;
use m2m_primitives::{
	eip712::{address_from_public_key, domain_separator},
	H160, U256,
};
use m2m_primitives::{
	eip712::{EcdsaSignature, TransferWithAuthorization},
	receipt::AssetKey,
	H256,
};
use pallet_device_identity::DeviceDirectory;
use pallet_device_identity::DeviceId;
use sp_core::{crypto::KeyTypeId, ecdsa};

const KEY: KeyTypeId = KeyTypeId(*b"m2mr");

fn asset() -> AssetKey {
	AssetKey { chain_id: 9990, token: H160::repeat_byte(0x55) }
}

fn evm_address(public: &ecdsa::Public) -> H160 {
	let digest = [1u8; 32];
	let sig = sp_io::crypto::ecdsa_sign_prehashed(KEY, public, &digest).expect("key in keystore");
	let full =
		sp_io::crypto::secp256k1_ecdsa_recover(&sig.0, &digest).ok().expect("fresh signature");
	address_from_public_key(&full)
}

struct Parties<AccountId> {
	payer_key: ecdsa::Public,
	payer_evm: H160,
	payee: DeviceId,
	payee_account: AccountId,
	payee_evm: H160,
}

#[benchmarks]
mod benchmarks {
	use super::*;

	fn setup<T: Config>() -> Parties<T::AccountId> {
		Assets::<T>::insert(
			asset(),
			AssetInfo {
				name: b"Tether USD".to_vec().try_into().expect("fits"),
				version: b"1".to_vec().try_into().expect("fits"),
				decimals: 6,
				symbol: b"USDT".to_vec().try_into().expect("fits"),
				domain_separator: domain_separator(b"Tether USD", b"1", 9990, asset().token),
				enabled: true,
				settlement: SettlementCheck::SignedOnly,
			},
		);
		let payer_key = sp_io::crypto::ecdsa_generate(KEY, None);
		let payer_evm = evm_address(&payer_key);
		let payee_key = sp_io::crypto::ecdsa_generate(KEY, None);
		let payee_evm = evm_address(&payee_key);
		let payee_owner: T::AccountId = account("payee-owner", 0, 0);
		let payee_account: T::AccountId = account("payee-device", 0, 0);
		register_payer::<T>(0, payer_evm);
		let payee =
			T::Devices::register_for_benchmark(payee_owner, payee_account.clone(), payee_evm);
		Parties { payer_key, payer_evm, payee, payee_account, payee_evm }
	}

	/// A payer device with its own owner, so that its totals are separate storage entries.
	fn register_payer<T: Config>(i: u32, evm: H160) {
		T::Devices::register_for_benchmark(
			account("payer-owner", i, 0),
			account("payer-device", i, 0),
			evm,
		);
	}

	/// A payer other than the one in `p`, registered, for batches of distinct payers.
	fn other_payer<T: Config>(p: &Parties<T::AccountId>, i: u32) -> Parties<T::AccountId> {
		let payer_key = sp_io::crypto::ecdsa_generate(KEY, None);
		let payer_evm = evm_address(&payer_key);
		register_payer::<T>(i, payer_evm);
		Parties { payer_key, payer_evm, payee_account: p.payee_account.clone(), ..*p }
	}

	fn input<T: Config>(p: &Parties<T::AccountId>, nonce: u32) -> ReceiptInput {
		let now = T::UnixTime::now().as_millis() as u64;
		let mut nonce_bytes = [0u8; 32];
		nonce_bytes[..4].copy_from_slice(&nonce.to_be_bytes());
		let authorization = TransferWithAuthorization {
			from: p.payer_evm,
			to: p.payee_evm,
			value: U256::from(1_000_000u64),
			valid_after: U256::zero(),
			valid_before: U256::from(u64::MAX),
			nonce: H256(nonce_bytes),
		};
		let domain = Assets::<T>::get(asset()).expect("registered").domain_separator;
		let digest = authorization.signing_digest(&domain);
		let signature = EcdsaSignature(
			sp_io::crypto::ecdsa_sign_prehashed(KEY, &p.payer_key, &digest.0).expect("key").0,
		);
		ReceiptInput {
			payee: p.payee,
			asset: asset(),
			proof: PaymentProof::Exact { authorization, signature },
			settlement_tx: H256::repeat_byte(1),
			resource: H256::repeat_byte(2),
			request_count: 10,
			period_start: now.saturating_sub(60_000),
			period_end: now,
		}
	}

	/// Worst case for the pallet's own work: the payer is a registered device with its own
	/// owner, so both sides are accounted and every aggregate row is a new entry. The token
	/// query of provable assets is charged on top ([`SettlementOracle::check_weight`]).
	#[benchmark]
	fn record_receipt() {
		let p = setup::<T>();
		let receipt = input::<T>(&p, 0);

		#[extrinsic_call]
		_(RawOrigin::Signed(p.payee_account.clone()), Box::new(receipt));

		assert_eq!(AssetTotals::<T>::get(asset()).signed_only.receipts, 1);
	}

	/// Worst case: every receipt has its own payer and payer owner, so no aggregate entry is
	/// shared between two receipts of the batch.
	#[benchmark]
	fn record_receipts(n: Linear<1, { T::MaxBatchSize::get() }>) {
		let p = setup::<T>();
		let receipts: Vec<_> =
			(0..n).map(|i| input::<T>(&other_payer::<T>(&p, i + 1), i)).collect();
		let receipts: BoundedVec<_, T::MaxBatchSize> = receipts.try_into().expect("within bound");

		#[extrinsic_call]
		_(RawOrigin::Signed(p.payee_account.clone()), receipts);

		assert_eq!(AssetTotals::<T>::get(asset()).signed_only.receipts, n as u64);
	}

	#[benchmark]
	fn register_asset() -> Result<(), BenchmarkError> {
		let origin =
			T::AdminOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let name = alloc::vec![b'n'; MAX_ASSET_NAME_LEN as usize];
		let label = alloc::vec![b'l'; MAX_ASSET_LABEL_LEN as usize];

		#[extrinsic_call]
		_(
			origin as T::RuntimeOrigin,
			asset(),
			name,
			label.clone(),
			6,
			label,
			SettlementCheck::TokenDigest,
		);

		assert!(Assets::<T>::contains_key(asset()));
		Ok(())
	}

	#[benchmark]
	fn set_asset_enabled() -> Result<(), BenchmarkError> {
		setup::<T>();
		let origin =
			T::AdminOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;

		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, asset(), false);

		assert!(!Assets::<T>::get(asset()).expect("registered").enabled);
		Ok(())
	}

	#[benchmark]
	fn set_retention_period() -> Result<(), BenchmarkError> {
		let origin =
			T::AdminOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;

		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, 1_000);

		assert_eq!(RetentionPeriod::<T>::get(), 1_000);
		Ok(())
	}

	#[benchmark]
	fn prune_receipts(n: Linear<1, { T::MaxPruneBatch::get() }>) {
		let p = setup::<T>();
		RetentionPeriod::<T>::put(0);
		let mut ids = Vec::new();
		for i in 0..n {
			let id = SettlementReceipts::<T>::do_record(&p.payee_account, input::<T>(&p, i))
				.unwrap_or_else(|_| panic!("benchmark receipt records"));
			ids.push(id);
		}
		let ids: BoundedVec<_, T::MaxPruneBatch> = ids.try_into().expect("within bound");
		let caller: T::AccountId = whitelisted_caller();

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), ids);

		assert_eq!(Receipts::<T>::iter().count(), 0);
	}

	impl_benchmark_test_suite!(SettlementReceipts, crate::mock::new_test_ext(), crate::mock::Test);
}
