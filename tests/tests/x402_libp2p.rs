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

/// A metered service on `/x402-stream/1.0.0`: one tick of energy per unit, at the pace a
/// meter produces them.
struct KwhStream {
	seller: Arc<Seller>,
	metered: m2m_x402_seller::messages::stream::MeteredOffer,
}

/// How long the meter takes per unit: a cancel sent after a unit reaches the seller while it
/// makes the next one.
const TICK: Duration = Duration::from_millis(100);

#[async_trait::async_trait]
impl m2m_p2p::ServeStream for KwhStream {
	async fn serve_stream(
		&self,
		peer: m2m_p2p::PeerId,
		mut requests: m2m_p2p::stream::SellerInbox,
		frames: tokio::sync::mpsc::Sender<m2m_x402::libp2p::stream::StreamFrame>,
	) {
		use m2m_x402_seller::{messages::stream, Delivery, ProvenBuyer};
		let Some(Ok(first)) = requests.recv().await else { return };
		if first.resource.as_deref() != Some("/kwh/stream") {
			let _ = frames.send(stream::not_streamed(first.resource.as_deref())).await;
			return;
		}
		let buyer = ProvenBuyer { peer: peer.to_string(), device: None };
		let tick = |n: u64| async move {
			tokio::time::sleep(TICK).await;
			Ok(Some(Delivery {
				body: format!("tick {n}").into_bytes(),
				metadata: vec![("content-type".into(), "text/plain".into())],
				charge: None,
			}))
		};
		let metered = self.metered.clone();
		stream::sell_stream(&self.seller, buyer, first, requests, frames, metered, tick).await;
	}
}

/// A metered stream over libp2p, paid by channel vouchers on the same stream: the seller stops
/// at each voucher's bound and resumes with the next; the buyer cancels mid-interval, and the
/// stream is charged exactly the units delivered, which is what the seller claims on-chain.
#[test]
fn a_metered_stream_stops_at_each_bound_and_a_cancel_is_charged_exactly_its_units() {
	use m2m_evm::{
		channels::{BatchSettlement, SETTLEMENT_ADDRESS},
		dev,
	};
	use m2m_x402::{
		libp2p::stream::{Meter, StreamEnd},
		schemes::batch_settlement::rules,
		v2::ResourceInfo,
	};
	use m2m_x402_buyer::{
		messages::{MessageClient, Peer},
		Buyer, ChannelFunding, MemoryBuyerChannels,
	};
	use m2m_x402_seller::{messages::stream::MeteredOffer, ChannelStore, MemoryChannels};

	const UNIT_PRICE: u128 = 1_000;
	const PER_VOUCHER: u64 = 4;
	const WANTED: u64 = 6;
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let interval = UNIT_PRICE * PER_VOUCHER as u128;
		let (facilitator, offer) = market.channels(Duration::from_secs(10), interval).await;
		let sold = Arc::new(MemoryChannels::default());
		let seller = Arc::new(
			Seller::new(facilitator)
				.with_channels(sold.clone())
				.with_receiver_key(dev::signer(SELLER)),
		);
		let metered = MeteredOffer {
			offer: rules::requirements(&offer),
			meter: Meter { unit_price: UNIT_PRICE, units_per_voucher: PER_VOUCHER },
			resource: ResourceInfo {
				url: "libp2p:///kwh/stream".into(),
				description: Some("energy, one tick per unit".into()),
				mime_type: Some("text/plain".into()),
			},
		};
		let config = m2m_p2p::Config {
			listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
			..Default::default()
		};
		let seller_node =
			m2m_p2p::Node::start(m2m_p2p::Keypair::generate_ed25519(), config, None).await.unwrap();
		seller_node.serve_streams(Arc::new(KwhStream { seller: seller.clone(), metered })).unwrap();
		let address = seller_node.listen_addresses()[0].clone();
		let to =
			Peer { peer: seller_node.peer_id().to_string(), addresses: vec![address.to_string()] };

		let buyer_node = m2m_p2p::Node::start(
			m2m_p2p::Keypair::generate_ed25519(),
			m2m_p2p::Config::default(),
			None,
		)
		.await
		.unwrap();
		let kept = Arc::new(MemoryBuyerChannels::default());
		let buyer = Buyer::new(dev::signer(BUYER), market.policy(interval as u64, 1_000_000))
			.with_channels(kept, ChannelFunding { requests_per_deposit: 5 });
		let client = MessageClient::new(Arc::new(buyer_node), Arc::new(buyer));
		let buyer_before = market.balance(BUYER).await;

		// A resource the seller does not stream is refused before anything is signed.
		let refused =
			client.stream("elsewhere", &to, "/nothing", None, 1, |_, _| {}).await.unwrap_err();
		assert!(refused.to_string().contains("/nothing is not streamed here"), "{refused}");

		let mut seen = Vec::new();
		let streamed = client
			.stream(&address.to_string(), &to, "/kwh/stream", None, WANTED, |n, body| {
				seen.push((n, String::from_utf8(body.to_vec()).unwrap()))
			})
			.await
			.expect("streamed");
		let units = streamed.units;
		assert!(
			(WANTED..2 * PER_VOUCHER).contains(&units),
			"cancelled within the second voucher's bound: {units} units"
		);
		let expected: Vec<_> = (1..=units).map(|n| (n, format!("tick {n}"))).collect();
		assert_eq!(seen, expected, "every unit once, in order");
		assert_eq!(
			streamed.intervals, 2,
			"the first voucher's bound stopped it; the second resumed it"
		);
		assert_eq!(streamed.charged, units as u128 * UNIT_PRICE, "exactly the units delivered");
		assert_eq!(streamed.end, Some(StreamEnd { units, charged: streamed.charged }));

		// Both sides hold the same charge: below the second voucher, which bounds the stream.
		let channel = client.buyer().channels().unwrap().remove(0);
		assert_eq!((channel.charged, channel.signed), (streamed.charged, 2 * interval));
		assert_eq!(channel.stopped, None);
		let record = sold.load(&channel.channel_id).unwrap().expect("the seller's record");
		assert_eq!(
			(record.charged, record.signed, record.requests),
			(streamed.charged, 2 * interval, 2)
		);
		assert_eq!(
			market.balance(BUYER).await,
			buyer_before - U256::from(5 * interval),
			"one deposit for the whole stream"
		);

		// What the seller claims on-chain is what the stream delivered, not what the voucher
		// allowed.
		let seller_before = market.balance(SELLER).await;
		let report = seller.claim_channels().await.unwrap();
		assert_eq!(report.failed, vec![], "{report:?}");
		assert_eq!(report.claimed[0].amount, streamed.charged);
		let provider = m2m_evm::connect(&market.anvil.url, None).unwrap();
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &provider);
		let on_chain = contract.channels(channel.channel_id).call().await.unwrap();
		assert_eq!(on_chain.totalClaimed, streamed.charged);
		assert_eq!(market.balance(SELLER).await, seller_before + U256::from(streamed.charged));
	});
}
