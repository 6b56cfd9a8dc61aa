//! The USDT contract suite, run against any Ethereum JSON-RPC endpoint whose DEV accounts are
//! funded: `m2m-eth-rpc` in front of a real node, and anvil. The same code passing on both is
//! the evidence that our EVM code is portable across endpoints.
//!
//! Typed data is hashed with alloy's own EIP-712 implementation here, independent of
//! `m2m-primitives`, so the suite also cross-checks the contract against alloy.

use anyhow::{anyhow, ensure, Context, Result};
use m2m_evm::{
	alloy::{
		primitives::{Address, B256, U256},
		providers::{DynProvider, Provider},
		rpc::types::{BlockNumberOrTag, Filter},
		signers::{local::PrivateKeySigner, SignerSync},
		sol,
		sol_types::{eip712_domain, Eip712Domain, SolEvent, SolStruct},
	},
	dev, usdt,
	usdt::USDT,
};

/// The x402 crate's EIP-3009 struct: what buyers sign is what this suite submits.
pub use m2m_x402::schemes::exact::TransferWithAuthorization;

sol! {
	struct ReceiveWithAuthorization {
		address from;
		address to;
		uint256 value;
		uint256 validAfter;
		uint256 validBefore;
		bytes32 nonce;
	}
	struct CancelAuthorization {
		address authorizer;
		bytes32 nonce;
	}
	struct Permit {
		address owner;
		address spender;
		uint256 value;
		uint256 nonce;
		uint256 deadline;
	}
}

/// `(v, r, s)` of a signature over `hash`, v in {27, 28}.
pub fn sign(signer: &PrivateKeySigner, hash: B256) -> (u8, B256, B256) {
	let sig = signer.sign_hash_sync(&hash).expect("signing a hash cannot fail");
	(27 + sig.v() as u8, B256::from(sig.r()), B256::from(sig.s()))
}

/// The token's EIP-712 domain on `chain_id`.
pub fn domain(chain_id: u64, token: Address) -> Eip712Domain {
	eip712_domain! {
		name: "Tether USD",
		version: "1",
		chain_id: chain_id,
		verifying_contract: token,
	}
}

/// A fresh random-looking nonce per call.
pub fn nonce(tag: &str) -> B256 {
	use std::sync::atomic::{AtomicU64, Ordering};
	static COUNTER: AtomicU64 = AtomicU64::new(0);
	let n = COUNTER.fetch_add(1, Ordering::Relaxed);
	m2m_evm::alloy::primitives::keccak256(format!("{tag}/{n}/{}", crate::now_ms()))
}

/// An EIP-3009 authorization and its signature.
pub struct SignedAuthorization {
	pub auth: TransferWithAuthorization,
	pub v: u8,
	pub r: B256,
	pub s: B256,
}

impl SignedAuthorization {
	pub fn new(
		signer: &PrivateKeySigner,
		domain: &Eip712Domain,
		to: Address,
		value: U256,
		valid: (u64, u64),
		nonce: B256,
	) -> Self {
		let auth = TransferWithAuthorization {
			from: signer.address(),
			to,
			value,
			validAfter: U256::from(valid.0),
			validBefore: U256::from(valid.1),
			nonce,
		};
		let (v, r, s) = sign(signer, auth.eip712_signing_hash(domain));
		Self { auth, v, r, s }
	}

	/// As the token takes it.
	pub fn transfer(&self) -> usdt::SignedTransfer {
		let a = &self.auth;
		usdt::SignedTransfer {
			from: a.from,
			to: a.to,
			value: a.value,
			valid_after: a.validAfter,
			valid_before: a.validBefore,
			nonce: a.nonce,
			v: self.v,
			r: self.r,
			s: self.s,
		}
	}

	/// Submits `transferWithAuthorization` from `submitter`'s provider.
	pub async fn submit(&self, token: Address, submitter: &DynProvider) -> Result<B256> {
		Ok(self.transfer().submit(token, submitter).await?)
	}
}

/// The chain's latest block timestamp (seconds); authorizations are judged by it.
pub async fn chain_time(provider: &DynProvider) -> Result<u64> {
	let block = provider
		.get_block_by_number(BlockNumberOrTag::Latest)
		.await?
		.ok_or_else(|| anyhow!("endpoint has no latest block"))?;
	Ok(block.header.timestamp)
}

/// Asserts that `result` failed and its error mentions `reason` (the contract's revert string).
fn expect_revert<T: std::fmt::Debug>(result: Result<T>, reason: &str, what: &str) -> Result<()> {
	match result {
		Ok(v) => Err(anyhow!("{what}: expected a revert with {reason:?}, but it succeeded: {v:?}")),
		Err(e) => {
			let message = format!("{e:#}");
			ensure!(
				message.contains(reason),
				"{what}: expected a revert with {reason:?}, got: {message}"
			);
			Ok(())
		},
	}
}

async fn balance(token: &USDT::USDTInstance<&DynProvider>, who: Address) -> Result<U256> {
	Ok(token.balanceOf(who).call().await?)
}

fn provider(url: &str, name: &str) -> Result<DynProvider> {
	Ok(m2m_evm::connect(url, Some(dev::signer(name)))?)
}

/// Runs every check against the endpoint at `url`; returns the token address.
pub async fn run(url: &str) -> Result<Address> {
	let deployer = provider(url, dev::USDT_DEPLOYER)?;
	let alith = provider(url, "alith")?;
	let baltathar = provider(url, "baltathar")?;
	let dorothy = provider(url, "dorothy")?;
	let ethan = provider(url, "ethan")?;
	let (alith_key, alith_addr) = (dev::signer("alith"), dev::signer("alith").address());
	let (baltathar_addr, dorothy_addr) =
		(dev::signer("baltathar").address(), dev::signer("dorothy").address());
	let chain_id = alith.get_chain_id().await.context("eth_chainId")?;

	// Deploy: lands at the deployer's canonical (nonce-0 CREATE) address, and a second call
	// finds it instead of deploying again.
	let faith = dev::account(dev::USDT_DEPLOYER).unwrap().address();
	let deployment = usdt::find_or_deploy(&deployer, faith).await.context("deploy")?;
	ensure!(
		matches!(deployment, usdt::Deployment::Deployed { .. }),
		"a fresh endpoint must deploy, got {deployment:?}"
	);
	let token_addr = deployment.address();
	ensure!(token_addr == usdt::canonical_address(faith), "deployed off the canonical address");
	ensure!(
		usdt::find_or_deploy(&deployer, faith).await? == usdt::Deployment::Found(token_addr),
		"the second deployment must find the first"
	);

	// Metadata and the EIP-712 domain, three ways that must agree.
	let token = USDT::new(token_addr, &alith);
	ensure!(token.decimals().call().await? == 6, "6 decimals");
	ensure!(token.symbol().call().await? == "USDT", "symbol");
	let onchain = usdt::domain(&alith, token_addr).await?;
	ensure!(
		onchain
			== usdt::Domain {
				name: "Tether USD".into(),
				version: "1".into(),
				chain_id,
				verifying_contract: token_addr
			},
		"eip712Domain() reports {onchain:?}"
	);
	let domain = domain(chain_id, token_addr);
	ensure!(token.DOMAIN_SEPARATOR().call().await? == domain.separator(), "DOMAIN_SEPARATOR()");
	ensure!(
		token.DOMAIN_SEPARATOR().call().await?.0
			== m2m_primitives::eip712::domain_separator(
				b"Tether USD",
				b"1",
				chain_id,
				m2m_primitives::H160(token_addr.0 .0)
			)
			.0,
		"m2m-primitives computes the same domain separator"
	);

	// Only the owner mints.
	expect_revert(
		usdt::mint(&alith, token_addr, alith_addr, U256::from(1)).await.map_err(Into::into),
		"caller is not the owner",
		"mint by a non-owner",
	)?;
	let thousand = U256::from(1_000 * usdt::UNIT);
	usdt::mint(&deployer, token_addr, alith_addr, thousand).await?;
	ensure!(balance(&token, alith_addr).await? == thousand, "minted");

	// transfer
	let ten = U256::from(10 * usdt::UNIT);
	m2m_evm::confirm(token.transfer(baltathar_addr, ten).send().await?).await?;
	ensure!(balance(&token, baltathar_addr).await? == ten, "transfer arrived");
	expect_revert(
		async {
			Ok(USDT::new(token_addr, &baltathar).transfer(alith_addr, thousand).call().await?)
		}
		.await,
		"transfer amount exceeds balance",
		"overdraft",
	)?;

	// permit: Alith signs, Dorothy submits and spends.
	let now = chain_time(&alith).await?;
	let five = U256::from(5 * usdt::UNIT);
	let permit = Permit {
		owner: alith_addr,
		spender: dorothy_addr,
		value: five,
		nonce: token.nonces(alith_addr).call().await?,
		deadline: U256::from(now + 3_600),
	};
	let (v, r, s) = sign(&alith_key, permit.eip712_signing_hash(&domain));
	let as_dorothy = USDT::new(token_addr, &dorothy);
	m2m_evm::confirm(
		as_dorothy.permit(alith_addr, dorothy_addr, five, permit.deadline, v, r, s).send().await?,
	)
	.await?;
	ensure!(token.allowance(alith_addr, dorothy_addr).call().await? == five, "permit allowance");
	ensure!(token.nonces(alith_addr).call().await? == U256::from(1), "permit nonce used");
	expect_revert(
		async {
			Ok(as_dorothy
				.permit(alith_addr, dorothy_addr, five, permit.deadline, v, r, s)
				.call()
				.await?)
		}
		.await,
		"invalid signature",
		"a replayed permit",
	)?;
	m2m_evm::confirm(as_dorothy.transferFrom(alith_addr, dorothy_addr, five).send().await?).await?;
	ensure!(balance(&token, dorothy_addr).await? == five, "spent the permit");

	// transferWithAuthorization: signed off-chain by Alith, submitted (and paid for) by Ethan.
	let one = U256::from(usdt::UNIT);
	let window = (now - 600, now + 3_600);
	let before = balance(&token, baltathar_addr).await?;
	let signed =
		SignedAuthorization::new(&alith_key, &domain, baltathar_addr, one, window, nonce("twa"));
	ensure!(
		!token.authorizationState(alith_addr, signed.auth.nonce).call().await?,
		"fresh nonce is unused"
	);
	let first_block = alith.get_block_number().await?;
	let settle_tx = signed.submit(token_addr, &ethan).await.context("transferWithAuthorization")?;
	ensure!(balance(&token, baltathar_addr).await? == before + one, "authorized transfer arrived");
	ensure!(
		token.authorizationState(alith_addr, signed.auth.nonce).call().await?,
		"authorizationState is true after use"
	);

	// The same authorization again: refused.
	expect_revert(
		signed.submit(token_addr, &ethan).await,
		"authorization is used or canceled",
		"replay",
	)?;

	// Expired (validBefore in the past) and not yet valid (validAfter in the future).
	let expired = SignedAuthorization::new(
		&alith_key,
		&domain,
		baltathar_addr,
		one,
		(now - 7_200, now - 3_600),
		nonce("expired"),
	);
	expect_revert(expired.submit(token_addr, &ethan).await, "authorization is expired", "expired")?;
	let early = SignedAuthorization::new(
		&alith_key,
		&domain,
		baltathar_addr,
		one,
		(now + 3_600, now + 7_200),
		nonce("early"),
	);
	expect_revert(early.submit(token_addr, &ethan).await, "not yet valid", "not yet valid")?;

	// Signed for another chain, or another token name: the signature does not verify here.
	for (what, wrong) in [
		("another chain id", self::domain(chain_id + 1, token_addr)),
		(
			"another token name",
			eip712_domain! { name: "USD Coin", version: "1", chain_id: chain_id, verifying_contract: token_addr, },
		),
	] {
		let forged =
			SignedAuthorization::new(&alith_key, &wrong, baltathar_addr, one, window, nonce(what));
		expect_revert(forged.submit(token_addr, &ethan).await, "invalid signature", what)?;
	}

	// receiveWithAuthorization: only the payee may submit.
	let receive = ReceiveWithAuthorization {
		from: alith_addr,
		to: baltathar_addr,
		value: one,
		validAfter: U256::from(window.0),
		validBefore: U256::from(window.1),
		nonce: nonce("receive"),
	};
	let (v, r, s) = sign(&alith_key, receive.eip712_signing_hash(&domain));
	let (as_ethan, as_baltathar) =
		(USDT::new(token_addr, &ethan), USDT::new(token_addr, &baltathar));
	let receive_call = |token: &'_ USDT::USDTInstance<&DynProvider>| {
		token
			.receiveWithAuthorization(
				receive.from,
				receive.to,
				receive.value,
				receive.validAfter,
				receive.validBefore,
				receive.nonce,
				v,
				r,
				s,
			)
			.into_transaction_request()
	};
	let third_party =
		ethan.call(receive_call(&as_ethan).from(dev::signer("ethan").address())).await;
	expect_revert(
		third_party.map_err(Into::into),
		"caller must be the payee",
		"receiveWithAuthorization by a third party",
	)?;
	m2m_evm::confirm(baltathar.send_transaction(receive_call(&as_baltathar)).await?).await?;
	ensure!(balance(&token, baltathar_addr).await? == before + one + one, "received");

	// cancelAuthorization: a canceled authorization can no longer be used.
	let canceled =
		SignedAuthorization::new(&alith_key, &domain, baltathar_addr, one, window, nonce("cancel"));
	let cancel = CancelAuthorization { authorizer: alith_addr, nonce: canceled.auth.nonce };
	let (v, r, s) = sign(&alith_key, cancel.eip712_signing_hash(&domain));
	m2m_evm::confirm(
		USDT::new(token_addr, &ethan)
			.cancelAuthorization(alith_addr, canceled.auth.nonce, v, r, s)
			.send()
			.await?,
	)
	.await?;
	expect_revert(
		canceled.submit(token_addr, &ethan).await,
		"authorization is used or canceled",
		"a canceled authorization",
	)?;

	// eth_getLogs shows the settlement's Transfer and AuthorizationUsed events.
	let logs = alith
		.get_logs(&Filter::new().address(token_addr).from_block(first_block))
		.await
		.context("eth_getLogs")?;
	let of_settlement: Vec<_> =
		logs.iter().filter(|l| l.transaction_hash == Some(settle_tx)).collect();
	let transfer = of_settlement
		.iter()
		.find_map(|l| USDT::Transfer::decode_log(&l.inner).ok())
		.ok_or_else(|| anyhow!("no Transfer log for {settle_tx} in {} logs", logs.len()))?;
	ensure!(
		(transfer.from, transfer.to, transfer.value) == (alith_addr, baltathar_addr, one),
		"Transfer log {:?}",
		transfer.data
	);
	let used = of_settlement
		.iter()
		.find_map(|l| USDT::AuthorizationUsed::decode_log(&l.inner).ok())
		.ok_or_else(|| anyhow!("no AuthorizationUsed log for {settle_tx}"))?;
	ensure!(
		(used.authorizer, used.nonce) == (alith_addr, signed.auth.nonce),
		"AuthorizationUsed log {:?}",
		used.data
	);
	// Topic filtering works too (what a facilitator uses to find its settlements).
	let by_topic = alith
		.get_logs(
			&Filter::new()
				.address(token_addr)
				.event_signature(USDT::AuthorizationUsed::SIGNATURE_HASH)
				.from_block(first_block),
		)
		.await?;
	ensure!(
		by_topic.iter().all(|l| l.topic0() == Some(&USDT::AuthorizationUsed::SIGNATURE_HASH))
			&& by_topic.len() >= 2,
		"topic filter returned {} logs",
		by_topic.len()
	);
	Ok(token_addr)
}
