//! When settlement is uncertain: faults injected between the facilitator and the chain (a
//! JSON-RPC proxy in front of anvil) and between the seller and its facilitator. Each test ends
//! with the buyer **paid exactly once and served**, or **cleanly refused with no funds
//! moved**, and says which.

use std::{
	sync::{Arc, Mutex},
	time::Duration,
};

use axum::{extract::State, routing::post, Json, Router};
use m2m_e2e_tests::{
	market::{self, Market, Server, BUYER, READING_PRICE, SELLER},
	rpc_proxy::{Fault, RpcProxy},
};
use m2m_evm::{alloy::primitives::U256, dev};
use m2m_facilitator::{Facilitator, RemoteFacilitator};
use m2m_x402::{schemes::exact, v2::FacilitatorRequest, B256};
use m2m_x402_buyer::{
	client::{ClientError, X402Client},
	InFlight, LedgerError, Outcome, PaymentJournal,
};
use m2m_x402_seller::Seller;

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// The buyer's journal, in memory (the agent's is RocksDB; what matters here is that the test
/// can resume the very payment that was signed).
#[derive(Default)]
struct Journal {
	flights: Mutex<Vec<InFlight>>,
	outcomes: Mutex<Vec<(String, Outcome)>>,
}

impl PaymentJournal for Journal {
	fn signed(&self, flight: &InFlight) -> Result<(), LedgerError> {
		self.flights.lock().unwrap().push(flight.clone());
		Ok(())
	}

	fn finished(&self, key: &str, outcome: &Outcome) {
		self.outcomes.lock().unwrap().push((key.to_string(), outcome.clone()));
	}
}

impl Journal {
	fn only_flight(&self) -> InFlight {
		let flights = self.flights.lock().unwrap();
		assert_eq!(flights.len(), 1, "exactly one payment was signed");
		flights[0].clone()
	}

	fn last_outcome(&self) -> Outcome {
		self.outcomes.lock().unwrap().last().expect("an outcome").1.clone()
	}
}

fn buyer_with(market: &Market, journal: Arc<Journal>) -> X402Client {
	X402Client::new(market.buyer().with_journal(journal))
}

/// The seller's app with an embedded facilitator that reaches the chain through `proxy`, and
/// an on-chain lookup for uncertain settlements.
async fn seller_via(market: &Market, proxy: &RpcProxy, receipt_timeout: Duration) -> Server {
	let facilitator = market.facilitator_via(&proxy.url, receipt_timeout).await;
	let seller = Seller::new(facilitator).with_settlement_lookup(market.lookup());
	Server::start(market.seller_app(Arc::new(seller))).await
}

#[test]
fn a_lost_broadcast_reply_is_settled_once_and_served() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let proxy = RpcProxy::start(&market.anvil.url).await;
		let server = seller_via(&market, &proxy, Duration::from_secs(30)).await;
		proxy.set(Fault::DropSendReply);

		let journal = Arc::new(Journal::default());
		let paid = buyer_with(&market, journal.clone())
			.get(&format!("{}/reading", server.url))
			.await
			.expect("served although the broadcast's reply was lost");
		let settlement = paid.settlement.expect("PAYMENT-RESPONSE");
		assert!(settlement.success, "{settlement:?}");
		assert!(proxy.calls("eth_sendRawTransaction") >= 1);
		// PAID ONCE AND SERVED: the facilitator knew the hash before broadcasting, so it
		// waited for that transaction instead of failing.
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
		assert!(matches!(journal.last_outcome(), Outcome::Settled { .. }));

		// The lost reply left no nonce gap: the next settlement goes through at once.
		proxy.clear();
		buyer_with(&market, Arc::new(Journal::default()))
			.get(&format!("{}/reading", server.url))
			.await
			.unwrap();
		assert_eq!(market.balance(SELLER).await, U256::from(2 * READING_PRICE));
	});
}

#[test]
fn receipts_later_than_the_wait_are_pending_then_served_from_the_chain() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let proxy = RpcProxy::start(&market.anvil.url).await;
		let server = seller_via(&market, &proxy, Duration::from_millis(300)).await;
		proxy.set(Fault::DelayReceipts(Duration::from_secs(3600)));

		let journal = Arc::new(Journal::default());
		let client = buyer_with(&market, journal.clone());
		let e = client.get(&format!("{}/reading", server.url)).await.unwrap_err();
		let ClientError::SettlementPending { transaction, .. } = &e else { panic!("{e}") };
		assert_eq!(transaction.len(), 66, "the hash is reported: {e}");
		assert!(matches!(journal.last_outcome(), Outcome::Pending { .. }));
		// The transaction landed (only its receipt is late): the money moved once.
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));

		// The buyer sends the same signed payment again, never a new one; the seller finds
		// the settlement on-chain and serves it.
		proxy.clear();
		let paid = client.resume(journal.only_flight()).await.expect("served on the retry");
		assert!(paid.settlement.unwrap().success);
		assert_eq!(paid.response.status(), 200);
		// PAID ONCE AND SERVED.
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
		assert!(matches!(journal.last_outcome(), Outcome::Settled { .. }));
	});
}

#[test]
fn an_authorization_submitted_first_by_a_third_account_is_served_once() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let proxy = RpcProxy::start(&market.anvil.url).await;
		let server = seller_via(&market, &proxy, Duration::from_secs(30)).await;
		let url = format!("{}/reading", server.url);

		// The buyer signs; a third account (Ethan) sees the payment and submits it first.
		let offer = market.offer(READING_PRICE);
		let now = m2m_x402::clock::unix_now();
		let wire = exact::sign(&dev::signer(BUYER), &offer, now, B256::repeat_byte(0x5a)).unwrap();
		let payment = exact::payment(offer.clone(), &wire);
		let verified = exact::verify(&payment, &offer, now).unwrap();
		let front_runner = m2m_evm::connect(&market.anvil.url, Some(dev::signer("ethan"))).unwrap();
		m2m_facilitator::settlement(&verified).submit(market.token, &front_runner).await.unwrap();
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE), "the money moved");

		let header = m2m_x402::http::payment_header(2, &payment).unwrap();
		let answer = reqwest::Client::new()
			.get(&url)
			.header(header.0, header.1.clone())
			.send()
			.await
			.unwrap();
		// PAID ONCE AND SERVED: the chain shows exactly this payment to the seller.
		assert_eq!(answer.status(), 200);
		let settlement = m2m_x402::http::read_settlement(
			answer.headers().get("payment-response").map(|v| v.to_str().unwrap()),
			None,
		)
		.unwrap()
		.unwrap();
		assert!(settlement.success && settlement.transaction.len() == 66, "{settlement:?}");
		assert_eq!(proxy.calls("eth_sendRawTransaction"), 0, "nothing settled twice");

		// Presenting it again buys nothing more.
		let again =
			reqwest::Client::new().get(&url).header(header.0, header.1).send().await.unwrap();
		assert_eq!(again.status(), 402);
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
	});
}

/// A facilitator that settles for real and then never answers `/settle`.
async fn hanging_facilitator(real: Arc<Facilitator>) -> Server {
	async fn verify(
		State(f): State<Arc<Facilitator>>,
		Json(r): Json<FacilitatorRequest>,
	) -> Json<serde_json::Value> {
		Json(
			serde_json::to_value(f.verify(&r.payment_payload, &r.payment_requirements).await)
				.unwrap(),
		)
	}
	async fn settle(
		State(f): State<Arc<Facilitator>>,
		Json(r): Json<FacilitatorRequest>,
	) -> Json<serde_json::Value> {
		let _settled = f.settle(&r.payment_payload, &r.payment_requirements).await;
		std::future::pending().await
	}
	Server::start(
		Router::new()
			.route("/verify", post(verify))
			.route("/settle", post(settle))
			.with_state(real),
	)
	.await
}

#[test]
fn a_facilitator_that_hangs_after_settling_leaves_the_payment_pending_then_served() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let hanging = hanging_facilitator(market.facilitator(Duration::from_secs(30)).await).await;
		let remote = RemoteFacilitator::new(&hanging.url, Duration::from_secs(2));
		let seller = Seller::new(Arc::new(remote)).with_settlement_lookup(market.lookup());
		let server = Server::start(market.seller_app(Arc::new(seller))).await;

		let journal = Arc::new(Journal::default());
		let client = buyer_with(&market, journal.clone());
		let e = client.get(&format!("{}/reading", server.url)).await.unwrap_err();
		// Not "failed" and not a 502: the settlement may have happened.
		assert!(matches!(e, ClientError::SettlementPending { .. }), "{e}");
		assert!(e.to_string().contains("not paying again"), "{e}");
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE), "it did settle");

		// The retry of the same payment is resolved from the chain and served.
		let paid = client.resume(journal.only_flight()).await.expect("served on the retry");
		assert!(paid.settlement.unwrap().success);
		// PAID ONCE AND SERVED.
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
		assert_eq!(
			market.balance(BUYER).await,
			U256::from(market::FUNDS - READING_PRICE),
			"the buyer paid once"
		);
	});
}

#[test]
fn a_send_the_chain_refuses_is_a_clean_refusal() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let proxy = RpcProxy::start(&market.anvil.url).await;
		let server = seller_via(&market, &proxy, Duration::from_secs(30)).await;
		proxy.set(Fault::RefuseSend { code: 1010, message: "Invalid Transaction".into() });

		let journal = Arc::new(Journal::default());
		let client = buyer_with(&market, journal.clone());
		let e = client.get(&format!("{}/reading", server.url)).await.unwrap_err();
		let ClientError::Refused { reason, .. } = &e else { panic!("{e}") };
		assert!(reason.contains("refused") && reason.contains("Invalid Transaction"), "{reason}");
		assert!(matches!(journal.last_outcome(), Outcome::Failed { .. }));
		// CLEANLY REFUSED, NO FUNDS MOVED.
		assert_eq!(market.balance(SELLER).await, U256::ZERO);
		assert_eq!(market.balance(BUYER).await, U256::from(market::FUNDS));

		// The refused send consumed no nonce: once the chain takes sends again, the next
		// settlement lands at once.
		proxy.clear();
		buyer_with(&market, Arc::new(Journal::default()))
			.get(&format!("{}/reading", server.url))
			.await
			.unwrap();
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
	});
}

#[test]
fn a_buyer_never_mistakes_a_missing_answer_for_a_refusal() {
	// The seller crashes (here: never answers) after the payment left: the purchase stays in
	// flight, to be resumed, and nothing is signed again.
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
		let addr = listener.local_addr().unwrap();
		let offer = market.offer(READING_PRICE);
		// A seller that asks for payment, then drops the paid request's connection.
		tokio::spawn(async move {
			use tokio::io::{AsyncReadExt, AsyncWriteExt};
			let required = m2m_x402::paywall::payment_required(
				m2m_x402::v2::ResourceInfo {
					url: format!("http://{addr}/reading"),
					description: None,
					mime_type: None,
				},
				vec![offer],
				None,
			);
			let (header, body) = m2m_x402::http::payment_required(&required);
			loop {
				let (mut stream, _) = listener.accept().await.unwrap();
				let mut buf = vec![0u8; 16384];
				let n = stream.read(&mut buf).await.unwrap_or(0);
				let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
				if request.contains("payment-signature") {
					continue; // dropped without an answer
				}
				let head = format!(
					"HTTP/1.1 402 Payment Required\r\npayment-required: {header}\r\n\
					 content-length: {}\r\nconnection: close\r\n\r\n",
					body.len()
				);
				let _ = stream.write_all(head.as_bytes()).await;
				let _ = stream.write_all(&body).await;
			}
		});
		let journal = Arc::new(Journal::default());
		let client = buyer_with(&market, journal.clone());
		let e = client.get(&format!("http://{addr}/reading")).await.unwrap_err();
		assert!(matches!(e, ClientError::Http(_)), "{e}");
		assert!(journal.outcomes.lock().unwrap().is_empty(), "no outcome: still in flight");
		let flight = journal.only_flight();
		assert!(client.resume(flight).await.is_err());
		assert_eq!(journal.flights.lock().unwrap().len(), 1, "resumed, never signed again");
		assert_eq!(market.balance(SELLER).await, U256::ZERO);
	});
}
