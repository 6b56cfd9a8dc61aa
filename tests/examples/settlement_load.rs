//! Load script: settled `exact` payments per second on a real chain, next to what its blocks
//! can hold.
//!
//! A buyer signs `payments` EIP-3009 authorizations; our facilitator settles them, `concurrency`
//! at a time, from one key, through the chain's eth-rpc, exactly as an agent's embedded
//! facilitator does. It prints the settled rate, how the settlements spread over blocks, and the
//! block capacity for this transaction, from the runtime's weights: the normal class's share of
//! the block weight (`System::BlockWeights`, read through subxt) divided by the weight one
//! settlement's extrinsic used (its `ExtrinsicSuccess` event), in both dimensions (ref time and
//! proof size), the smaller bound winning. eth-rpc reports a block gas limit of `u64::MAX`, so
//! the gas view says nothing about capacity.
//!
//! Then the payee records every payment as a receipt, the way an agent's outbox does: batches of
//! 64 `record_receipts`, each receipt proven against the token (the pallet asks USDT what it
//! executed), and waits until the finalized chain holds them all. It prints receipts per second
//! and the bound from the weights (a batch's `ExtrinsicSuccess` weight per receipt). Figures,
//! not assertions; it fails only if a payment does not settle, or a receipt is not recorded,
//! exactly once.
//!
//! The payee is the testnet's charger device (`m2m-devnet` DEV keys, registered by its agent);
//! its owner Alice signs the batches.
//!
//! ```text
//! ./scripts/testnet.sh --load 60          # on the 3-validator zombienet testnet
//! M2M_ETH_RPC_URL=http://127.0.0.1:8545 M2M_NODE_URL=ws://127.0.0.1:9944 \
//!     $CARGO_TARGET_DIR/release/examples/settlement_load [payments] [concurrency]
//! ```

use std::{
	collections::BTreeMap,
	sync::Arc,
	time::{Duration, Instant},
};

use m2m_evm::{
	alloy::{
		consensus::Transaction,
		eips::BlockNumberOrTag,
		primitives::{B256, U256},
		providers::Provider,
	},
	dev, usdt,
};
use m2m_facilitator::Facilitator;
use m2m_x402::schemes::exact;

/// 0.01 USDT a payment.
const PRICE: u64 = 10_000;

#[tokio::main]
async fn main() {
	let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
	let payments = args.next().unwrap_or(60);
	let concurrency = args.next().unwrap_or(20).max(1);
	let url = std::env::var("M2M_ETH_RPC_URL").unwrap_or_else(|_| "http://127.0.0.1:8545".into());
	println!("settlement load on {url}: {payments} exact payments, {concurrency} at a time");

	let provider = m2m_evm::connect(&url, None).expect("an eth-rpc URL");
	let chain_id = provider.get_chain_id().await.expect("eth-rpc answers");
	let deployer = m2m_evm::connect(&url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
	let faith = dev::signer(dev::USDT_DEPLOYER).address();
	let token = usdt::find_or_deploy(&deployer, faith).await.expect("USDT").address();
	let domain = usdt::domain(&provider, token).await.expect("the token's EIP-712 domain");
	// DEV accounts (the chain presets endow them) buy and settle; the charger device is paid.
	let buyer = dev::signer("alith");
	let charger = m2m_devnet::device_keys("charger");
	let payee = m2m_devnet::to_address(charger.evm_address());
	usdt::mint(&deployer, token, buyer.address(), U256::from(PRICE * payments as u64))
		.await
		.expect("mint the buyer's USDT");
	let before = usdt_balance(&provider, token, payee).await;

	let facilitator = Arc::new(
		Facilitator::new(provider.clone(), dev::signer("charleth"), Duration::from_secs(120))
			.await
			.expect("a facilitator"),
	);
	let offer = exact::requirements(
		chain_id,
		token,
		(&domain.name, &domain.version),
		payee,
		U256::from(PRICE),
		900,
	);
	let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
	let signed: Vec<_> = (0..payments)
		.map(|i| {
			let mut nonce = [0u8; 32];
			nonce[..8].copy_from_slice(&now.to_be_bytes());
			nonce[24..].copy_from_slice(&(i as u64).to_be_bytes());
			let wire = exact::sign(&buyer, &offer, now, B256::from(nonce)).expect("signing");
			exact::payment(offer.clone(), &wire)
		})
		.collect();

	let start = Instant::now();
	let queue = Arc::new(std::sync::Mutex::new(signed));
	let workers: Vec<_> = (0..concurrency)
		.map(|_| {
			let (queue, facilitator, offer) = (queue.clone(), facilitator.clone(), offer.clone());
			tokio::spawn(async move {
				let mut settled = Vec::new();
				loop {
					let Some(payment) = queue.lock().unwrap().pop() else { return settled };
					let answer = facilitator.settle(&payment, &offer).await;
					assert!(answer.success, "a payment did not settle: {answer:?}");
					settled.push((payment, answer.transaction.parse::<B256>().expect("a hash")));
				}
			})
		})
		.collect();
	let mut settled = Vec::new();
	for w in workers {
		settled.extend(w.await.expect("a worker"));
	}
	let transactions: Vec<B256> = settled.iter().map(|(_, tx)| *tx).collect();
	let elapsed = start.elapsed();
	let paid = usdt_balance(&provider, token, payee).await - before;
	assert_eq!(paid, U256::from(PRICE * payments as u64), "each payment settled exactly once");

	let mut per_block = BTreeMap::new();
	let (mut gas_used, mut gas_limit) = (0u64, 0u64);
	for tx in &transactions {
		let receipt = provider.get_transaction_receipt(*tx).await.unwrap().expect("a receipt");
		*per_block.entry(receipt.block_number.expect("mined")).or_insert(0usize) += 1;
		gas_used = gas_used.max(receipt.gas_used);
		let sent = provider.get_transaction_by_hash(*tx).await.unwrap().expect("the transaction");
		gas_limit = gas_limit.max(sent.inner.gas_limit());
	}
	let (first, last) = (*per_block.keys().next().unwrap(), *per_block.keys().last().unwrap());
	let block = |n: u64| {
		let provider = provider.clone();
		async move {
			provider
				.get_block_by_number(BlockNumberOrTag::Number(n))
				.await
				.unwrap()
				.expect("a block")
				.header
		}
	};
	let (head, tail) = (block(first).await, block(last).await);
	let blocks = (last - first + 1) as f64;
	let block_time = if last > first {
		(tail.timestamp - head.timestamp) as f64 / (last - first) as f64
	} else {
		6.0
	};
	let node_url = std::env::var("M2M_NODE_URL").unwrap_or_else(|_| "ws://127.0.0.1:9944".into());
	let weights = block_weights(&node_url, per_block.keys().copied()).await;

	println!(
		"settled {payments} payments in {:.1} s = {:.2} settlements/s",
		elapsed.as_secs_f64(),
		payments as f64 / elapsed.as_secs_f64()
	);
	println!(
		"blocks #{first}..#{last} ({blocks} blocks, {block_time:.1} s apart): {:.1} settlements \
		 per block; per block: {per_block:?}",
		payments as f64 / blocks
	);
	println!("a settlement: gas used {gas_used}, gas limit {gas_limit}");
	let Weights { normal, max_extrinsic, settlement } = weights;
	let capacity = (normal.0 / settlement.0.max(1)).min(normal.1 / settlement.1.max(1));
	println!(
		"a settlement's extrinsic weighs {} ps ref time and {} B proof; the normal class may use \
		 {} ps and {} B a block (one extrinsic at most {} ps, {} B)",
		settlement.0, settlement.1, normal.0, normal.1, max_extrinsic.0, max_extrinsic.1
	);
	println!(
		"block capacity for settlements, from the weights: {capacity} per block = {:.1} \
		 settlements/s at {block_time:.1} s blocks",
		capacity as f64 / block_time
	);

	record_receipts(&node_url, &charger, chain_id, token, &settled, normal, block_time).await;
}

/// Receipts per `record_receipts` batch: what the agent's outbox sends (`chain::BATCH`).
const BATCH: usize = 64;

/// Records every settled payment as a proven receipt, in outbox-sized batches, and prints the
/// rate until all are final, next to the bound from the batch's weight.
async fn record_receipts(
	node_url: &str,
	charger: &m2m_chain_client::DeviceKeys,
	chain_id: u64,
	token: m2m_evm::alloy::primitives::Address,
	settled: &[(m2m_x402::v2::PaymentPayload, B256)],
	normal: (u64, u64),
	block_time: f64,
) {
	use m2m_chain_client::{exact_authorization, Evidence, PaymentProof, ReceiptInput};
	use m2m_primitives::{receipt::AssetKey, H160, H256};
	use subxt::utils::Static;

	let chain = m2m_chain_client::ChainClient::connect(node_url).await.expect("the node's RPC");
	let device = chain
		.device_by_account(&charger.account_id())
		.await
		.expect("a query")
		.expect("the charger is registered (run after the testnet demo)");
	let asset = AssetKey { chain_id, token: H160(token.0 .0) };
	let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
	let now_ms = now.as_millis() as u64;
	let receipts: Vec<ReceiptInput> = settled
		.iter()
		.map(|(payment, tx)| {
			let (authorization, signature) =
				exact_authorization(payment).expect("an exact payment");
			ReceiptInput {
				payee: device,
				asset: Static(asset),
				proof: PaymentProof::Exact {
					authorization: Static(authorization),
					signature: Static(signature),
				},
				settlement_tx: H256(tx.0),
				resource: H256(m2m_primitives::blake2_256(b"/load")),
				request_count: 1,
				period_start: now_ms,
				period_end: now_ms,
			}
		})
		.collect();
	let ids: Vec<_> = receipts
		.iter()
		.map(|r| {
			let PaymentProof::Exact { authorization, .. } = &r.proof else {
				unreachable!("the load signs exact payments only")
			};
			m2m_primitives::receipt::exact_receipt_id(
				&asset,
				&authorization.0.from,
				&authorization.0.nonce,
			)
		})
		.collect();

	// The owner signs (the charger's own agent may be sending with the device key).
	let owner = subxt_signer::sr25519::dev::alice();
	let start = Instant::now();
	let mut weights = Vec::new();
	for batch in receipts.chunks(BATCH) {
		let call = m2m_chain_client::runtime::tx().settlement_receipts().record_receipts(
			m2m_chain_client::runtime::runtime_types::bounded_collections::bounded_vec::BoundedVec(
				batch.to_vec(),
			),
		);
		let submitted = chain.submit(&call, &owner).await.expect("a batch is recorded");
		let success = submitted
			.find::<m2m_chain_client::runtime::system::events::ExtrinsicSuccess>()
			.expect("events");
		let weight = &success.first().expect("ExtrinsicSuccess").dispatch_info.weight;
		weights.push(((weight.ref_time, weight.proof_size), batch.len() as u64));
	}
	let included = start.elapsed();
	loop {
		let (_, recorded) = chain.finalized_receipts(&ids).await.expect("a query");
		if recorded.iter().all(|r| *r) {
			break;
		}
		tokio::time::sleep(Duration::from_millis(500)).await;
	}
	let finalized = start.elapsed();
	for id in &ids {
		let receipt = chain.receipt(*id).await.expect("a query").expect("recorded");
		assert_eq!(receipt.evidence, Evidence::Proven, "every receipt is proven against the token");
	}
	let n = receipts.len() as f64;
	println!(
		"recorded {} proven receipts in {} batches of up to {BATCH}: included after {:.1} s \
		 ({:.1} receipts/s), final after {:.1} s ({:.1} receipts/s)",
		receipts.len(),
		weights.len(),
		included.as_secs_f64(),
		n / included.as_secs_f64(),
		finalized.as_secs_f64(),
		n / finalized.as_secs_f64()
	);
	let ((ref_time, proof), count) =
		weights.iter().max_by_key(|(_, count)| *count).copied().expect("one batch");
	let per_receipt = (ref_time / count, proof / count);
	let capacity = (normal.0 / per_receipt.0.max(1)).min(normal.1 / per_receipt.1.max(1));
	println!(
		"a receipt in a batch of {count} weighs {} ps ref time and {} B proof (settlement proof \
		 included); block capacity from the weights: {capacity} receipts per block = {:.1} \
		 receipts/s at {block_time:.1} s blocks",
		per_receipt.0,
		per_receipt.1,
		capacity as f64 / block_time
	);
}

/// The runtime's weight limits and what one settlement weighed, as (ref time, proof size).
struct Weights {
	normal: (u64, u64),
	max_extrinsic: (u64, u64),
	settlement: (u64, u64),
}

/// Reads `System::BlockWeights` and the `ExtrinsicSuccess` weights of normal-class extrinsics
/// in `blocks` (the settlements, and whatever else landed there: the median is a settlement's).
async fn block_weights(node_url: &str, blocks: impl Iterator<Item = u64>) -> Weights {
	use m2m_chain_client::runtime::{
		self, runtime_types::frame_support::dispatch::DispatchClass,
		system::events::ExtrinsicSuccess,
	};
	let chain = m2m_chain_client::ChainClient::connect(node_url).await.expect("the node's RPC");
	let limits = chain
		.api()
		.at_current_block()
		.await
		.expect("the best block")
		.constants()
		.entry(runtime::constants().system().block_weights())
		.expect("System::BlockWeights");
	let pair =
		|w: runtime::runtime_types::sp_weights::weight_v2::Weight| (w.ref_time, w.proof_size);
	let max_block = pair(limits.max_block);
	let normal = limits.per_class.normal.max_total.map(pair).unwrap_or(max_block);
	let max_extrinsic = limits.per_class.normal.max_extrinsic.map(pair).unwrap_or(max_block);
	let mut used = Vec::new();
	for n in blocks {
		let at = chain.api().at_block(n).await.expect("a settlement's block");
		let events = at.events().fetch().await.expect("its events");
		for success in events.find::<ExtrinsicSuccess>() {
			let info = success.expect("an ExtrinsicSuccess event").dispatch_info;
			if matches!(info.class, DispatchClass::Normal) {
				used.push(pair(info.weight));
			}
		}
	}
	used.sort();
	let settlement = used.get(used.len() / 2).copied().expect("settlement extrinsics");
	Weights { normal, max_extrinsic, settlement }
}

async fn usdt_balance(
	provider: &m2m_evm::alloy::providers::DynProvider,
	token: m2m_evm::alloy::primitives::Address,
	who: m2m_evm::alloy::primitives::Address,
) -> U256 {
	usdt::USDT::new(token, provider).balanceOf(who).call().await.expect("balanceOf")
}
