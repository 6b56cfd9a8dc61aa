//! The channel contracts' suite (x402 batch-settlement: `contracts/src/BatchSettlement.sol` and
//! the EIP-3009 deposit collector), run against any endpoint that carries them at the canonical
//! addresses: the real node (from genesis) through `m2m-eth-rpc`, and anvil (`anvil_setCode`).
//!
//! Digests are computed with `m2m-x402` (alloy's EIP-712) and compared with the contract's own
//! views, so the suite also cross-checks the pure crate against the contract. Every refusal is
//! identified by its custom error's selector in the revert data.
//!
//! Parties (DEV keys): Baltathar pays, Charleth receives, Dorothy is the receiver's
//! authorizer, Ethan submits transactions for others (a facilitator), Alith is a stranger and
//! Faith owns the token.

use std::fmt::Debug;

use anyhow::{anyhow, ensure, Context, Result};
use m2m_evm::{
	alloy::{
		primitives::{aliases::U40, keccak256, Address, Bytes, B256, U256},
		providers::{DynProvider, Provider},
		signers::{local::PrivateKeySigner, SignerSync},
		sol,
		sol_types::{SolCall, SolError, SolEvent, SolStruct, SolValue},
	},
	channels::{self, BatchSettlement, DEPOSIT_COLLECTOR_ADDRESS, SETTLEMENT_ADDRESS},
	dev, usdt,
	usdt::USDT,
};
use m2m_x402::schemes::batch_settlement::{
	digest::{self, ChannelConfig, ClaimEntry},
	rules::{self, Offer},
};

use crate::usdt_suite::{chain_time, domain as token_domain, nonce};

sol! {
	struct ReceiveWithAuthorization {
		address from;
		address to;
		uint256 value;
		uint256 validAfter;
		uint256 validBefore;
		bytes32 nonce;
	}
}

mod hostile {
	m2m_evm::alloy::sol!(
		#[sol(rpc)]
		ReentrantCollector,
		"../contracts/out/ReentrantCollector.json"
	);
}

/// What the endpoint lets the suite do beyond standard JSON-RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
	/// Wall-clock time only: a withdrawal's 15-minute delay cannot pass within a test.
	Real,
	/// anvil's `evm_increaseTime`: the suite also finalizes a withdrawal after its delay.
	Warpable,
}

const UNIT: u128 = usdt::UNIT as u128;

fn provider(url: &str, name: &str) -> Result<DynProvider> {
	Ok(m2m_evm::connect(url, Some(dev::signer(name)))?)
}

/// The contract's form of a channel config.
pub fn contract_config(c: &ChannelConfig) -> BatchSettlement::ChannelConfig {
	BatchSettlement::ChannelConfig {
		payer: c.payer,
		payerAuthorizer: c.payerAuthorizer,
		receiver: c.receiver,
		receiverAuthorizer: c.receiverAuthorizer,
		token: c.token,
		withdrawDelay: c.withdrawDelay,
		salt: c.salt,
	}
}

fn signature_bytes(signer: &PrivateKeySigner, digest: B256) -> Bytes {
	Bytes::from(signer.sign_hash_sync(&digest).expect("signing a hash").as_bytes().to_vec())
}

/// A voucher claim row: `max` signed by `signer`, claiming `total`.
fn claim_row(
	config: &ChannelConfig,
	signer: &PrivateKeySigner,
	chain_id: u64,
	max: u128,
	total: u128,
) -> BatchSettlement::VoucherClaim {
	let domain = rules::domain(chain_id);
	let id = digest::channel_id(config, &domain);
	BatchSettlement::VoucherClaim {
		voucher: BatchSettlement::Voucher {
			channel: contract_config(config),
			maxClaimableAmount: max,
		},
		signature: signature_bytes(signer, digest::voucher_digest(id, max, &domain)),
		totalClaimed: total,
	}
}

/// Asserts that `result` failed with the custom error `E` (its selector is in the revert data).
fn reverted_with<E: SolError, T: Debug, X: Debug>(result: Result<T, X>, what: &str) -> Result<()> {
	match result {
		Ok(v) => Err(anyhow!("{what}: expected {}, but it succeeded: {v:?}", E::SIGNATURE)),
		Err(e) => {
			let message = format!("{e:?}");
			ensure!(
				message.contains(&m2m_evm::alloy::hex::encode(E::SELECTOR)),
				"{what}: expected {} (0x{}), got: {message}",
				E::SIGNATURE,
				m2m_evm::alloy::hex::encode(E::SELECTOR)
			);
			Ok(())
		},
	}
}

/// Asserts that `result` failed with a revert string containing `reason`.
fn reverted_saying<T: Debug, X: Debug>(
	result: Result<T, X>,
	reason: &str,
	what: &str,
) -> Result<()> {
	match result {
		Ok(v) => Err(anyhow!("{what}: expected a revert with {reason:?}, but it succeeded: {v:?}")),
		Err(e) => {
			let message = format!("{e:?}");
			// The revert string is ABI-encoded in the revert data, or spelled out by the endpoint.
			let encoded = m2m_evm::alloy::hex::encode(reason.as_bytes());
			ensure!(
				message.contains(reason) || message.contains(&encoded),
				"{what}: expected a revert with {reason:?}, got: {message}"
			);
			Ok(())
		},
	}
}

/// The logs of transaction `tx` that decode as event `E`, from the settlement contract.
async fn events<E: SolEvent>(provider: &DynProvider, tx: B256) -> Result<Vec<E>> {
	let receipt = provider
		.get_transaction_receipt(tx)
		.await?
		.ok_or_else(|| anyhow!("no receipt for {tx}"))?;
	Ok(receipt
		.inner
		.logs()
		.iter()
		.filter(|l| l.address() == SETTLEMENT_ADDRESS)
		.filter_map(|l| E::decode_log_data(l.data()).ok())
		.collect())
}

/// Runs every check; `clock` says whether the endpoint can skip a withdrawal's delay.
pub async fn run(url: &str, clock: Clock) -> Result<()> {
	let payer_key = dev::signer("baltathar");
	let authorizer_key = dev::signer("dorothy");
	let stranger_key = dev::signer("alith");
	let (payer, receiver, authorizer) =
		(payer_key.address(), dev::signer("charleth").address(), authorizer_key.address());
	let as_payer = provider(url, "baltathar")?;
	let as_receiver = provider(url, "charleth")?;
	let as_facilitator = provider(url, "ethan")?;
	let as_stranger = provider(url, "alith")?;
	let chain_id = as_payer.get_chain_id().await.context("eth_chainId")?;

	ensure!(channels::installed(&as_payer).await?, "the channel contracts are not installed");
	let faith = dev::account(dev::USDT_DEPLOYER).unwrap().address();
	let owner = provider(url, dev::USDT_DEPLOYER)?;
	let token_address = usdt::find_or_deploy(&owner, faith).await.context("USDT")?.address();
	usdt::mint(&owner, token_address, payer, U256::from(1_000 * UNIT)).await?;
	let token = USDT::new(token_address, &as_payer);
	let balance = |who: Address| {
		let token = token.clone();
		async move { token.balanceOf(who).call().await.map_err(anyhow::Error::from) }
	};

	let offer = Offer {
		chain_id,
		asset: token_address,
		token_domain: ("Tether USD".into(), "1".into()),
		pay_to: receiver,
		receiver_authorizer: authorizer,
		withdraw_delay: 900,
		max_price: UNIT,
		max_timeout_seconds: 60,
	};
	let config = rules::config_for(&offer, payer, nonce("channel"));
	let on_chain = contract_config(&config);
	let settlement = BatchSettlement::new(SETTLEMENT_ADDRESS, &as_facilitator);
	let domain = rules::domain(chain_id);

	// The contract hashes exactly as m2m-x402 does.
	let id = digest::channel_id(&config, &domain);
	ensure!(settlement.getChannelId(on_chain.clone()).call().await? == id, "getChannelId");
	ensure!(
		settlement.getVoucherDigest(id, 1234).call().await?
			== digest::voucher_digest(id, 1234, &domain),
		"getVoucherDigest"
	);
	ensure!(
		settlement.getRefundDigest(id, U256::from(3), 55).call().await?
			== digest::refund_digest(id, U256::from(3), 55, &domain),
		"getRefundDigest"
	);

	// 1. Deposit 100 USDT through the EIP-3009 collector, submitted (and paid for) by Ethan.
	let now = chain_time(&as_payer).await?;
	let deposit = 100 * UNIT;
	let collector_data = |signer: &PrivateKeySigner, amount: u128, salt: U256| {
		let authorization = ReceiveWithAuthorization {
			from: payer,
			to: DEPOSIT_COLLECTOR_ADDRESS,
			value: U256::from(amount),
			validAfter: U256::from(now - 600),
			validBefore: U256::from(now + 3_600),
			nonce: keccak256((id, salt).abi_encode()),
		};
		let signature = signature_bytes(
			signer,
			authorization.eip712_signing_hash(&token_domain(chain_id, token_address)),
		);
		Bytes::from(
			(authorization.validAfter, authorization.validBefore, salt, signature)
				.abi_encode_params(),
		)
	};
	let data = collector_data(&payer_key, deposit, U256::from(1));
	let before = balance(payer).await?;
	let tx = m2m_evm::confirm(
		settlement
			.deposit(on_chain.clone(), deposit, DEPOSIT_COLLECTOR_ADDRESS, data.clone())
			.send()
			.await?,
	)
	.await
	.context("deposit")?;
	let state = settlement.channels(id).call().await?;
	ensure!((state.balance, state.totalClaimed) == (deposit, 0), "channels(id) after deposit");
	ensure!(balance(payer).await? == before - U256::from(deposit), "the payer paid the deposit");
	ensure!(balance(SETTLEMENT_ADDRESS).await? >= U256::from(deposit), "the contract holds it");
	let created = events::<BatchSettlement::ChannelCreated>(&as_payer, tx).await?;
	ensure!(created.len() == 1 && created[0].channelId == id, "ChannelCreated: {created:?}");
	let deposited = events::<BatchSettlement::Deposited>(&as_payer, tx).await?;
	ensure!(
		deposited.len() == 1
			&& deposited[0].amount == deposit
			&& deposited[0].newBalance == deposit,
		"Deposited: {deposited:?}"
	);
	reverted_saying(
		settlement.deposit(on_chain.clone(), deposit, DEPOSIT_COLLECTOR_ADDRESS, data).call().await,
		"authorization is used or canceled",
		"a replayed deposit authorization",
	)?;
	let forged = collector_data(&stranger_key, deposit, U256::from(2));
	reverted_saying(
		settlement
			.deposit(on_chain.clone(), deposit, DEPOSIT_COLLECTOR_ADDRESS, forged)
			.call()
			.await,
		"invalid signature",
		"a deposit authorized by someone else",
	)?;
	reverted_with::<channels::ERC3009DepositCollector::OnlyX402BatchSettlement, _, _>(
		channels::ERC3009DepositCollector::new(DEPOSIT_COLLECTOR_ADDRESS, &as_stranger)
			.collect(payer, token_address, U256::from(1), id, Bytes::new())
			.call()
			.await,
		"the collector called by anyone but the settlement contract",
	)?;
	let mut short = on_chain.clone();
	short.withdrawDelay = U40::from(60u64);
	reverted_with::<BatchSettlement::WithdrawDelayOutOfRange, _, _>(
		settlement.deposit(short, 1, DEPOSIT_COLLECTOR_ADDRESS, Bytes::new()).call().await,
		"a channel with a one-minute withdraw delay",
	)?;

	// 2. Claims. The receiver claims 2 of a 3 USDT voucher.
	let as_receiver_settlement = BatchSettlement::new(SETTLEMENT_ADDRESS, &as_receiver);
	let three = claim_row(&config, &payer_key, chain_id, 3 * UNIT, 2 * UNIT);
	reverted_with::<BatchSettlement::NotAuthorizedToClaim, _, _>(
		BatchSettlement::new(SETTLEMENT_ADDRESS, &as_stranger)
			.claim(vec![three.clone()])
			.call()
			.await,
		"a claim by a stranger",
	)?;
	let over = claim_row(&config, &payer_key, chain_id, 3 * UNIT, 4 * UNIT);
	reverted_with::<BatchSettlement::ClaimExceedsCeiling, _, _>(
		as_receiver_settlement.claim(vec![over]).call().await,
		"a claim above its voucher",
	)?;
	let stolen = claim_row(&config, &stranger_key, chain_id, 3 * UNIT, 2 * UNIT);
	reverted_with::<BatchSettlement::InvalidSignature, _, _>(
		as_receiver_settlement.claim(vec![stolen]).call().await,
		"a voucher signed by someone other than the payer authorizer",
	)?;
	let rich = claim_row(&config, &payer_key, chain_id, 200 * UNIT, 150 * UNIT);
	reverted_with::<BatchSettlement::ClaimExceedsBalance, _, _>(
		as_receiver_settlement.claim(vec![rich]).call().await,
		"a claim above the channel's balance",
	)?;
	reverted_with::<BatchSettlement::EmptyBatch, _, _>(
		as_receiver_settlement.claim(vec![]).call().await,
		"an empty claim",
	)?;
	let tx = m2m_evm::confirm(as_receiver_settlement.claim(vec![three.clone()]).send().await?)
		.await
		.context("claim")?;
	let claimed = events::<BatchSettlement::Claimed>(&as_payer, tx).await?;
	ensure!(claimed.len() == 1 && claimed[0].claimAmount == 2 * UNIT, "Claimed: {claimed:?}");
	// A replay is a no-op, not a failure.
	let tx = m2m_evm::confirm(as_receiver_settlement.claim(vec![three]).send().await?).await?;
	ensure!(events::<BatchSettlement::Claimed>(&as_payer, tx).await?.is_empty(), "a replay claims");
	ensure!(settlement.channels(id).call().await?.totalClaimed == 2 * UNIT, "claimed 2");

	// The facilitator claims the rest of the voucher on the authorizer's batch signature.
	let row = claim_row(&config, &payer_key, chain_id, 3 * UNIT, 3 * UNIT);
	let entries =
		[ClaimEntry { channelId: id, maxClaimableAmount: 3 * UNIT, totalClaimed: 3 * UNIT }];
	let batch = digest::claim_batch_digest(&entries, &domain);
	ensure!(
		settlement.getClaimBatchDigest(vec![row.clone()]).call().await? == batch,
		"getClaimBatchDigest"
	);
	reverted_with::<BatchSettlement::InvalidSignature, _, _>(
		settlement
			.claimWithSignature(vec![row.clone()], signature_bytes(&stranger_key, batch))
			.call()
			.await,
		"a claim batch signed by someone other than the receiver authorizer",
	)?;
	m2m_evm::confirm(
		settlement
			.claimWithSignature(vec![row], signature_bytes(&authorizer_key, batch))
			.send()
			.await?,
	)
	.await
	.context("claimWithSignature")?;
	let totals = settlement.receivers(receiver, token_address).call().await?;
	ensure!((totals.totalClaimed, totals.totalSettled) == (3 * UNIT, 0), "receivers() {totals:?}");

	// 3. Settle: anyone may pay the receiver what was claimed; again, nothing happens.
	let receiver_before = balance(receiver).await?;
	let tx = m2m_evm::confirm(settlement.settle(receiver, token_address).send().await?).await?;
	ensure!(balance(receiver).await? == receiver_before + U256::from(3 * UNIT), "settled 3");
	let settled = events::<BatchSettlement::Settled>(&as_payer, tx).await?;
	ensure!(settled.len() == 1 && settled[0].amount == 3 * UNIT, "Settled: {settled:?}");
	let tx = m2m_evm::confirm(settlement.settle(receiver, token_address).send().await?).await?;
	ensure!(events::<BatchSettlement::Settled>(&as_payer, tx).await?.is_empty(), "settled twice");
	ensure!(balance(receiver).await? == receiver_before + U256::from(3 * UNIT), "paid once");

	// 4. Claim and settle in one transaction (multicall), as the receiver.
	let five = claim_row(&config, &payer_key, chain_id, 5 * UNIT, 5 * UNIT);
	let calls = vec![
		Bytes::from(BatchSettlement::claimCall { voucherClaims: vec![five] }.abi_encode()),
		Bytes::from(BatchSettlement::settleCall { receiver, token: token_address }.abi_encode()),
	];
	m2m_evm::confirm(as_receiver_settlement.multicall(calls).send().await?)
		.await
		.context("multicall of claim and settle")?;
	ensure!(balance(receiver).await? == receiver_before + U256::from(5 * UNIT), "settled 5");

	// 5. A cooperative refund on the authorizer's signature, once per nonce.
	let refund = 10 * UNIT;
	let refund_signature =
		signature_bytes(&authorizer_key, digest::refund_digest(id, U256::ZERO, refund, &domain));
	let payer_before = balance(payer).await?;
	m2m_evm::confirm(
		settlement
			.refundWithSignature(on_chain.clone(), refund, U256::ZERO, refund_signature.clone())
			.send()
			.await?,
	)
	.await
	.context("refundWithSignature")?;
	ensure!(balance(payer).await? == payer_before + U256::from(refund), "refunded 10");
	ensure!(settlement.refundNonce(id).call().await? == U256::from(1), "the refund nonce moved");
	reverted_with::<BatchSettlement::InvalidRefundNonce, _, _>(
		settlement
			.refundWithSignature(on_chain.clone(), refund, U256::ZERO, refund_signature)
			.call()
			.await,
		"a replayed refund",
	)?;
	reverted_with::<BatchSettlement::NotAuthorizedToRefund, _, _>(
		BatchSettlement::new(SETTLEMENT_ADDRESS, &as_stranger)
			.refund(on_chain.clone(), 1)
			.call()
			.await,
		"a refund by a stranger",
	)?;
	let state = settlement.channels(id).call().await?;
	ensure!(
		(state.balance, state.totalClaimed) == (deposit - refund, 5 * UNIT),
		"channels(id) after the refund: {state:?}"
	);

	// 6. Withdrawal: the payer reserves 20 USDT; claims still land during the delay.
	let as_payer_settlement = BatchSettlement::new(SETTLEMENT_ADDRESS, &as_payer);
	reverted_with::<BatchSettlement::InvalidChannel, _, _>(
		BatchSettlement::new(SETTLEMENT_ADDRESS, &as_stranger)
			.initiateWithdraw(on_chain.clone(), UNIT)
			.call()
			.await,
		"a withdrawal by a stranger",
	)?;
	reverted_with::<BatchSettlement::WithdrawAmountExceedsAvailable, _, _>(
		as_payer_settlement.initiateWithdraw(on_chain.clone(), deposit).call().await,
		"a withdrawal of claimed funds",
	)?;
	let withdrawal = 20 * UNIT;
	let tx = m2m_evm::confirm(
		as_payer_settlement.initiateWithdraw(on_chain.clone(), withdrawal).send().await?,
	)
	.await
	.context("initiateWithdraw")?;
	let initiated = events::<BatchSettlement::WithdrawInitiated>(&as_payer, tx).await?;
	ensure!(
		initiated.len() == 1 && initiated[0].amount == withdrawal,
		"WithdrawInitiated: {initiated:?}"
	);
	reverted_with::<BatchSettlement::WithdrawalAlreadyPending, _, _>(
		as_payer_settlement.initiateWithdraw(on_chain.clone(), UNIT).call().await,
		"a second withdrawal",
	)?;
	reverted_with::<BatchSettlement::WithdrawDelayNotElapsed, _, _>(
		as_payer_settlement.finalizeWithdraw(on_chain.clone()).call().await,
		"finalizing before the delay",
	)?;
	// The receiver claims 70 of the 90 left during the window: only 20 remain unclaimed.
	let late = claim_row(&config, &payer_key, chain_id, 75 * UNIT, 75 * UNIT);
	m2m_evm::confirm(as_receiver_settlement.claim(vec![late]).send().await?)
		.await
		.context("a claim during the withdrawal window")?;
	if clock == Clock::Warpable {
		let _: serde_json::Value =
			as_payer.raw_request("evm_increaseTime".into(), (901u64,)).await?;
		let _: serde_json::Value = as_payer.raw_request("evm_mine".into(), ()).await?;
		let payer_before = balance(payer).await?;
		let tx =
			m2m_evm::confirm(as_payer_settlement.finalizeWithdraw(on_chain.clone()).send().await?)
				.await
				.context("finalizeWithdraw")?;
		let finalized = events::<BatchSettlement::WithdrawFinalized>(&as_payer, tx).await?;
		// Balance 90, claimed 75: 15 of the 20 reserved are still unclaimed.
		ensure!(
			finalized.len() == 1 && finalized[0].amount == 15 * UNIT,
			"WithdrawFinalized: {finalized:?}"
		);
		ensure!(balance(payer).await? == payer_before + U256::from(15 * UNIT), "withdrew 15");
		let pending = settlement.pendingWithdrawals(id).call().await?;
		ensure!(pending.initiatedAt == U40::ZERO, "the withdrawal is done: {pending:?}");
		reverted_with::<BatchSettlement::WithdrawalNotPending, _, _>(
			as_payer_settlement.finalizeWithdraw(on_chain.clone()).call().await,
			"finalizing twice",
		)?;
	}

	// 7. A collector that calls back into the contract is stopped by the reentrancy guard,
	// directly and through `multicall`, whose delegatecalls meet the same lock.
	let hostile = hostile::ReentrantCollector::deploy(&as_stranger).await.context("deploy")?;
	for (route, data) in [("directly", Bytes::new()), ("through multicall", Bytes::from(vec![1]))] {
		reverted_with::<BatchSettlement::ReentrancyGuardReentrantCall, _, _>(
			BatchSettlement::new(SETTLEMENT_ADDRESS, &as_stranger)
				.deposit(on_chain.clone(), UNIT, *hostile.address(), data)
				.call()
				.await,
			&format!("a collector re-entering {route}"),
		)?;
	}
	Ok(())
}
