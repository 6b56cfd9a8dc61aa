//! Testnet tooling: what `m2m-devnet` does, as a library for tests and scripts.
//!
//! A local m2m-pay testnet needs three things before devices can pay each other in USDT:
//! 1. USDT deployed on the EVM side and registered as an accepted asset of the receipts pallet
//!    ([`deploy_usdt`]);
//! 2. devices funded: native tokens for chain fees and EVM gas, and USDT to spend ([`fund`]);
//! 3. their addresses, to configure agents ([`addresses`]).
//!
//! Every step is idempotent. All keys involved are DEV keys: Alice is sudo and the native
//! faucet, Faith deploys and mints USDT, devices get deterministic keys from their names
//! ([`DeviceKeys::dev`]).

use anyhow::{bail, Context, Result};
use m2m_chain_client::{
	ChainClient, DeviceId, DeviceKeys, PaymentProof, ReceiptInput, SettlementCheck,
};
use m2m_evm::{
	alloy::{
		primitives::{Address, U256},
		providers::{DynProvider, Provider},
		signers::local::PrivateKeySigner,
	},
	dev, usdt,
};
use m2m_primitives::{
	eip712::{domain_separator, TransferWithAuthorization},
	receipt::AssetKey,
	H160, H256,
};
use subxt::utils::Static;
use subxt_signer::sr25519::dev as sr_dev;

pub mod demo;

/// Planck per native token (18 decimals).
pub const NATIVE_UNIT: u128 = 1_000_000_000_000_000_000;

/// Where the testnet answers.
#[derive(Clone, Debug)]
pub struct Endpoints {
	/// Node WebSocket RPC, e.g. `ws://127.0.0.1:9944`.
	pub node: String,
	/// Ethereum JSON-RPC (`m2m-eth-rpc` or anvil), e.g. `http://127.0.0.1:8545`.
	pub eth_rpc: String,
}

/// The device whose DEV keys derive from `name`; the name is namespaced so that devnet devices
/// never collide with test fixtures.
pub fn device_keys(name: &str) -> DeviceKeys {
	DeviceKeys::dev(&format!("devnet/{name}"))
}

pub fn to_address(h: H160) -> Address {
	Address::from(h.0)
}

pub fn to_h160(a: Address) -> H160 {
	H160(a.0 .0)
}

/// A device's EVM key as an alloy signer.
pub fn evm_signer(keys: &DeviceKeys) -> PrivateKeySigner {
	PrivateKeySigner::from_bytes(&keys.evm.secret().into()).expect("device keys are valid")
}

/// USDT as the testnet knows it.
#[derive(Clone, Debug)]
pub struct UsdtInfo {
	pub address: Address,
	pub domain: usdt::Domain,
	/// Whether this call deployed the token (else it was found).
	pub deployed_now: bool,
	/// Whether this call registered it with the receipts pallet (else it was registered).
	pub registered_now: bool,
}

impl UsdtInfo {
	pub fn asset(&self) -> AssetKey {
		AssetKey { chain_id: self.domain.chain_id, token: to_h160(self.address) }
	}

	/// The token's EIP-712 domain separator, from the domain it reports.
	pub fn domain_separator(&self) -> H256 {
		domain_separator(
			self.domain.name.as_bytes(),
			self.domain.version.as_bytes(),
			self.domain.chain_id,
			to_h160(self.address),
		)
	}
}

/// One USDT payment, authorized off-chain by the payer: the settlement the payee submits and
/// the receipt it records once the settlement is in (set `settlement_tx` then).
pub struct SignedPayment {
	pub settlement: usdt::SignedTransfer,
	pub receipt: ReceiptInput,
}

/// `payer` authorizes `value` base units to `payee` (device `payee_id`) at `now_ms`: valid from
/// ten minutes before to five minutes after, covering the minute up to `now_ms`.
pub fn sign_payment(
	token: &UsdtInfo,
	payer: &DeviceKeys,
	payee: &DeviceKeys,
	payee_id: DeviceId,
	value: u64,
	now_ms: u64,
	nonce: H256,
) -> SignedPayment {
	let now = now_ms / 1000;
	let authorization = TransferWithAuthorization {
		from: payer.evm_address(),
		to: payee.evm_address(),
		value: value.into(),
		valid_after: (now - 600).into(),
		valid_before: (now + 300).into(),
		nonce,
	};
	let signature = payer.evm.sign_authorization(&authorization, &token.domain_separator());
	let sig = signature.to_ethereum().expect("our signer emits v in {27, 28}");
	SignedPayment {
		settlement: usdt::SignedTransfer {
			from: to_address(authorization.from),
			to: to_address(authorization.to),
			value: U256::from(value),
			valid_after: U256::from(now - 600),
			valid_before: U256::from(now + 300),
			nonce: nonce.0.into(),
			v: sig[64],
			r: m2m_evm::alloy::primitives::B256::from_slice(&sig[..32]),
			s: m2m_evm::alloy::primitives::B256::from_slice(&sig[32..64]),
		},
		receipt: ReceiptInput {
			payee: payee_id,
			asset: Static(token.asset()),
			proof: PaymentProof::Exact {
				authorization: Static(authorization),
				signature: Static(signature),
			},
			settlement_tx: H256::zero(),
			resource: H256(m2m_primitives::blake2_256(b"m2m-devnet/payment")),
			request_count: 1,
			period_start: now_ms - 60_000,
			period_end: now_ms,
		},
	}
}

/// The USDT deployer's provider.
fn deployer(eth_rpc: &str) -> Result<DynProvider> {
	Ok(m2m_evm::connect(eth_rpc, Some(dev::signer(dev::USDT_DEPLOYER)))?)
}

/// Finds or deploys USDT, then makes sure the receipts pallet accepts it with the EIP-712
/// domain the contract reports.
pub async fn deploy_usdt(endpoints: &Endpoints) -> Result<UsdtInfo> {
	let eth = deployer(&endpoints.eth_rpc)?;
	let deployer = dev::account(dev::USDT_DEPLOYER).expect("dev account").address();
	let deployment = usdt::find_or_deploy(&eth, deployer)
		.await
		.with_context(|| format!("deploying USDT through {}", endpoints.eth_rpc))?;
	let address = deployment.address();
	let domain = usdt::domain(&eth, address).await?;

	let chain = ChainClient::connect(&endpoints.node).await?;
	let asset = AssetKey { chain_id: domain.chain_id, token: to_h160(address) };
	let expected = domain_separator(
		domain.name.as_bytes(),
		domain.version.as_bytes(),
		domain.chain_id,
		asset.token,
	);
	let registered = chain.asset(asset).await?;
	let registered_now = match registered {
		Some(info)
			if info.domain_separator == expected
				&& info.enabled
				&& info.settlement == SettlementCheck::TokenDigest =>
		{
			false
		},
		_ => {
			chain
				.register_asset_sudo(
					&sr_dev::alice(),
					asset,
					&domain.name,
					&domain.version,
					usdt::USDT::new(address, &eth).decimals().call().await?,
					&usdt::USDT::new(address, &eth).symbol().call().await?,
					// Our USDT remembers the digest of every authorization it executes, so
					// its receipts are proven on this chain.
					SettlementCheck::TokenDigest,
				)
				.await
				.context("registering USDT with the receipts pallet (sudo: Alice)")?;
			true
		},
	};
	Ok(UsdtInfo {
		address,
		domain,
		deployed_now: matches!(deployment, usdt::Deployment::Deployed { .. }),
		registered_now,
	})
}

/// USDT at its canonical address, or an error that says how to deploy it.
pub async fn find_usdt(eth_rpc: &str) -> Result<Address> {
	let eth = m2m_evm::connect(eth_rpc, None)?;
	let deployer = dev::account(dev::USDT_DEPLOYER).expect("dev account").address();
	let address = usdt::canonical_address(deployer);
	if eth.get_code_at(address).await?.is_empty() {
		bail!("USDT is not deployed at {address}; run `m2m-devnet deploy-usdt` first");
	}
	Ok(address)
}

/// What [`fund`] gave one device.
#[derive(Clone, Debug)]
pub struct Funded {
	pub name: String,
	pub account: String,
	pub evm_address: Address,
	/// Native planck on the chain account and on the EVM address, and USDT base units.
	pub native: u128,
	pub gas: U256,
	pub usdt: U256,
}

/// Gives each named device `native` tokens on its chain account (fees), `native` tokens on
/// its EVM address (gas), and mints `usdt` USDT to it. The three funding streams (Alice,
/// Alith, Faith) run concurrently.
pub async fn fund(
	endpoints: &Endpoints,
	names: &[String],
	native: u128,
	usdt_amount: U256,
) -> Result<Vec<Funded>> {
	let token = find_usdt(&endpoints.eth_rpc).await?;
	let chain = ChainClient::connect(&endpoints.node).await?;
	let faucet = m2m_evm::connect(&endpoints.eth_rpc, Some(dev::signer(dev::FAUCET)))?;
	let minter = deployer(&endpoints.eth_rpc)?;
	let devices: Vec<(String, DeviceKeys)> =
		names.iter().map(|n| (n.clone(), device_keys(n))).collect();

	let native_transfers = async {
		let alice = sr_dev::alice();
		for (name, keys) in &devices {
			chain
				.transfer(&alice, keys.account_id(), native)
				.await
				.with_context(|| format!("native transfer to {name}"))?;
		}
		anyhow::Ok(())
	};
	let gas_transfers = async {
		for (name, keys) in &devices {
			m2m_evm::send_native(&faucet, to_address(keys.evm_address()), U256::from(native))
				.await
				.with_context(|| format!("EVM gas transfer to {name}"))?;
		}
		anyhow::Ok(())
	};
	let mints = async {
		for (name, keys) in &devices {
			usdt::mint(&minter, token, to_address(keys.evm_address()), usdt_amount)
				.await
				.with_context(|| format!("minting USDT to {name}"))?;
		}
		anyhow::Ok(())
	};
	tokio::try_join!(native_transfers, gas_transfers, mints)?;

	let reader = usdt::USDT::new(token, &faucet);
	let mut funded = Vec::new();
	for (name, keys) in devices {
		let evm_address = to_address(keys.evm_address());
		funded.push(Funded {
			account: keys.account_id().to_string(),
			native: chain.free_balance(keys.account_id()).await?,
			gas: faucet.get_balance(evm_address).await?,
			usdt: reader.balanceOf(evm_address).call().await?,
			evm_address,
			name,
		});
	}
	Ok(funded)
}

/// The testnet's addresses as JSON: EVM chain id, USDT (if deployed), dev accounts, devices.
pub async fn addresses(endpoints: &Endpoints, devices: &[String]) -> Result<serde_json::Value> {
	let eth = m2m_evm::connect(&endpoints.eth_rpc, None)?;
	let chain_id = eth.get_chain_id().await.with_context(|| {
		format!("asking {} for its chain id (is m2m-eth-rpc running?)", endpoints.eth_rpc)
	})?;
	let usdt = find_usdt(&endpoints.eth_rpc).await.ok();
	let dev_accounts: Vec<_> = dev::DEV_ACCOUNTS
		.iter()
		.map(|a| {
			let role = match a.name {
				n if n == dev::FAUCET => "gas faucet",
				n if n == dev::USDT_DEPLOYER => "USDT deployer and minter",
				_ => "",
			};
			serde_json::json!({ "name": a.name, "address": a.address().to_string(), "role": role })
		})
		.collect();
	let devices: Vec<_> = devices
		.iter()
		.map(|name| {
			let keys = device_keys(name);
			serde_json::json!({
				"name": name,
				"account": keys.account_id().to_string(),
				"evm_address": to_address(keys.evm_address()).to_string(),
			})
		})
		.collect();
	Ok(serde_json::json!({
		"node": endpoints.node,
		"eth_rpc": endpoints.eth_rpc,
		"evm_chain_id": chain_id,
		"usdt": usdt.map(|a| a.to_string()),
		"dev_accounts": dev_accounts,
		"devices": devices,
	}))
}

/// `amount` base units of the testnet USDT, as people read it ("0.15 USDT").
pub fn usdt_amount(amount: U256) -> String {
	m2m_x402::policy::format_units(amount, m2m_evm::usdt::DECIMALS, "USDT")
}
