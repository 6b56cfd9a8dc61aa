//! x402 over real libp2p on loopback (`/x402/1.0.0`: TCP, Noise, Yamux): our seller core behind
//! the message adapter, bare buyer nodes, our facilitator settling on anvil with the testnet
//! USDT. The conformance suite that HTTP passes runs here unchanged, then what only a libp2p
//! seller has: malformed payment objects, and payment ids that belong to the peer that sent
//! them.

use std::{sync::Arc, time::Duration};

use m2m_e2e_tests::{
	conformance::{self, payment, Reply, Transport},
	market::{Market, BUYER, READING_PRICE, SELLER},
};
use m2m_evm::alloy::primitives::U256;
use m2m_x402::{libp2p::X402Request, paywall};
use m2m_x402_seller::Seller;

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// A market with an embedded facilitator, its seller on a libp2p node, and a buyer node.
async fn open() -> (Market, m2m_p2p::Node, conformance::Libp2p) {
	let market = Market::open(&[]).await;
	let seller = Arc::new(Seller::new(market.facilitator(Duration::from_secs(30)).await));
	let (node, address) = market.seller_node(seller).await;
	let buyer = conformance::Libp2p::dial(&address).await;
	(market, node, buyer)
}

/// Malformed payments are refused with the reason a libp2p client needs (a payment is a JSON
/// object, never base64); every bad payment of the suite is refused as over HTTP.
#[test]
fn malformed_and_mismatched_payments_get_precise_402s_and_move_nothing() {
	runtime().block_on(async {
		let (market, _seller, buyer) = open().await;
		let refusal = |payment: serde_json::Value| {
			let buyer = &buyer;
			async move {
				let answer = buyer
					.send(X402Request { resource: "/reading".into(), payment: Some(payment) })
					.await;
				assert_eq!(answer.status, 402, "{answer:?}");
				answer.payment_required.expect("paymentRequired").error.unwrap_or_default()
			}
		};
		let starts = |got: String, want: &str| {
			assert!(got.starts_with(want), "{got:?} should start with {want:?}")
		};
		starts(
			refusal("eyJ4NDAyVmVyc2lvbiI6Mn0=".into()).await,
			"invalid_payload: payment: must be the PaymentPayload JSON object (not base64",
		);
		starts(
			refusal(serde_json::json!({"accepted": {}})).await,
			"invalid_x402_version: payment: x402Version is missing",
		);
		starts(
			refusal(serde_json::json!({"x402Version": 3})).await,
			"invalid_x402_version: payment: x402Version 3 is not supported",
		);
		conformance::bad_payments_get_precise_refusals(&buyer, &market).await;
	});
}

#[test]
fn a_reused_or_concurrent_authorization_is_paid_once() {
	runtime().block_on(async {
		let (market, _seller, buyer) = open().await;
		conformance::a_reused_or_concurrent_authorization_is_paid_once(&buyer, &market).await;
	});
}

#[test]
fn a_payment_id_replays_the_same_answer_and_refuses_another_payment() {
	runtime().block_on(async {
		let (market, _seller, buyer) = open().await;
		conformance::a_payment_id_replays_its_answer_and_refuses_another_payment(&buyer, &market)
			.await;
	});
}

/// Over libp2p a payment id is the peer's own (its PeerId is proven by Noise). Another peer
/// that learned one — and even the payment under it — gets no replay of the first answer, and
/// its own payment under the same id is a new sale, not a conflict.
#[test]
fn payment_ids_belong_to_the_peer_that_sent_them() {
	runtime().block_on(async {
		let (market, seller, alice) = open().await;
		let mallory = conformance::Libp2p::dial(&seller.listen_addresses()[0]).await;
		let offer = market.offer(READING_PRICE);
		let mut first = payment(BUYER, &offer, &offer, m2m_x402::clock::unix_now());
		paywall::set_payment_id(&mut first, "pay_0123456789abcdef");
		let bought = alice.request(Some(&first)).await;
		assert!(bought.is_delivered(), "{bought:?}");

		// The same payment and id from another peer: the authorization is spent, and nothing
		// of the first answer comes back.
		let stolen = mallory.request(Some(&first)).await;
		assert!(
			stolen
				.refusal()
				.starts_with("invalid_transaction_state: this authorization was already used"),
			"{stolen:?}"
		);

		// Its own payment under the same id is its own sale.
		let mut own = payment(BUYER, &offer, &offer, m2m_x402::clock::unix_now());
		paywall::set_payment_id(&mut own, "pay_0123456789abcdef");
		let theirs = mallory.request(Some(&own)).await;
		assert!(theirs.is_delivered(), "{theirs:?}");
		assert_ne!(theirs, bought, "a different settlement");
		// And the first peer still gets its own answer replayed.
		assert_eq!(alice.request(Some(&first)).await, bought);
		assert_eq!(market.balance(SELLER).await, U256::from(2 * READING_PRICE), "two sales");
		assert!(matches!(mallory.request(None).await, Reply::PaymentRequired { .. }));
	});
}
