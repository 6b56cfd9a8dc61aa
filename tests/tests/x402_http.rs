//! x402 over real HTTP on loopback: our axum seller, our reqwest buyer and our facilitator,
//! settling on anvil with the testnet USDT. Every bad input of the issue gets its precise
//! error, and in every case funds move exactly once or not at all.

use std::{sync::Arc, time::Duration};

use m2m_e2e_tests::{
	conformance::{self, payment},
	market::{self, Market, Server, BUYER, READING_PRICE, SELLER},
};
use m2m_evm::{alloy::primitives::U256, dev};
use m2m_facilitator::{http as facilitator_http, RemoteFacilitator};
use m2m_x402::{
	codec,
	http::{self as x402_http},
	v2::{PaymentPayload, PaymentRequired, SettleResponse},
};
use m2m_x402_buyer::{client::ClientError, client::X402Client, Buyer};
use m2m_x402_seller::Seller;
use reqwest::StatusCode;

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn now() -> u64 {
	m2m_x402::clock::unix_now()
}

/// A market with an embedded facilitator and the seller's app served.
async fn open(receipt_timeout: Duration, anvil_flags: &[&str]) -> (Market, Server) {
	let market = Market::open(anvil_flags).await;
	let seller = Arc::new(Seller::new(market.facilitator(receipt_timeout).await));
	let server = Server::start(market.seller_app(seller)).await;
	(market, server)
}

/// What a raw HTTP request got back.
struct Answer {
	status: StatusCode,
	headers: reqwest::header::HeaderMap,
	body: String,
}

impl Answer {
	/// The `error` of the 402's `PAYMENT-REQUIRED`.
	fn refusal(&self) -> String {
		assert_eq!(self.status, StatusCode::PAYMENT_REQUIRED, "{}", self.body);
		let header =
			self.headers.get("payment-required").expect("PAYMENT-REQUIRED").to_str().unwrap();
		let required: PaymentRequired = codec::decode(header, "PaymentRequired").unwrap();
		required.error.unwrap_or_default()
	}

	fn settlement(&self) -> Option<SettleResponse> {
		let v2 = self.headers.get("payment-response").map(|v| v.to_str().unwrap());
		let v1 = self.headers.get("x-payment-response").map(|v| v.to_str().unwrap());
		x402_http::read_settlement(v2, v1).map(Result::unwrap)
	}
}

async fn get(url: &str, header: Option<(&str, String)>) -> Answer {
	let mut request = reqwest::Client::new().get(url);
	if let Some((name, value)) = header {
		request = request.header(name, value);
	}
	let response = request.send().await.unwrap();
	let (status, headers) = (response.status(), response.headers().clone());
	Answer { status, headers, body: response.text().await.unwrap() }
}

fn signature(p: &PaymentPayload) -> Option<(&'static str, String)> {
	Some((x402_http::PAYMENT_SIGNATURE, codec::encode(p)))
}

#[test]
fn a_buyer_pays_a_seller_once_and_gets_the_resource() {
	runtime().block_on(async {
		let (market, server) = open(Duration::from_secs(30), &[]).await;
		let client = X402Client::new(market.buyer());

		// First, the bare 402: both headers and the v1 body, CORS-readable.
		let bare = get(&format!("{}/reading", server.url), None).await;
		assert_eq!(bare.status, StatusCode::PAYMENT_REQUIRED);
		let required = x402_http::read_payment_required(
			bare.headers.get("payment-required").map(|v| v.to_str().unwrap()),
			bare.body.as_bytes(),
		)
		.unwrap();
		assert_eq!(required.required.accepts, vec![market.offer(READING_PRICE)]);
		assert_eq!(
			required.required.resource.description.as_deref(),
			Some("one temperature reading")
		);
		let v1 = x402_http::read_payment_required(None, bare.body.as_bytes()).unwrap();
		assert_eq!(v1.required.accepts, required.required.accepts, "the v1 body offers the same");
		assert!(bare.headers["access-control-expose-headers"]
			.to_str()
			.unwrap()
			.contains("PAYMENT-REQUIRED"));

		let paid = client.get(&format!("{}/reading", server.url)).await.unwrap();
		assert_eq!(paid.response.status(), StatusCode::OK);
		let settlement = paid.settlement.clone().expect("PAYMENT-RESPONSE");
		assert!(settlement.success, "{settlement:?}");
		assert_eq!(settlement.transaction.len(), 66);
		assert_eq!(paid.payment.as_ref().unwrap().price, "0.01 USDT");
		let body: serde_json::Value = paid.response.json().await.unwrap();
		assert_eq!(
			body["payer"],
			market::address(BUYER).to_checksum(None),
			"the handler saw the payer"
		);
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));

		// Priced per request; free routes cost nothing.
		let energy = client.get(&format!("{}/energy?kwh=3", server.url)).await.unwrap();
		assert_eq!(energy.response.text().await.unwrap(), "3 kWh delivered");
		assert_eq!(market.balance(SELLER).await, U256::from(4 * READING_PRICE));
		let free = client.get(&format!("{}/free", server.url)).await.unwrap();
		assert!(free.payment.is_none() && free.settlement.is_none());
		assert_eq!(market.balance(SELLER).await, U256::from(4 * READING_PRICE));
	});
}

#[test]
fn a_handler_that_fails_is_not_settled() {
	runtime().block_on(async {
		let (market, server) = open(Duration::from_secs(30), &[]).await;
		let client = X402Client::new(market.buyer());
		let paid = client.get(&format!("{}/broken", server.url)).await.unwrap();
		assert_eq!(paid.response.status(), StatusCode::INTERNAL_SERVER_ERROR);
		assert!(paid.settlement.is_none(), "no PAYMENT-RESPONSE for an unsettled request");
		assert_eq!(market.balance(SELLER).await, U256::ZERO);
	});
}

#[test]
fn the_spending_policy_refuses_before_anything_is_signed() {
	runtime().block_on(async {
		let (market, server) = open(Duration::from_secs(30), &[]).await;
		// A cap of 0.005 USDT, under the 0.01 price.
		let stingy = Buyer::new(dev::signer(BUYER), market.policy(5_000, 1_000_000));
		let e = X402Client::new(stingy).get(&format!("{}/reading", server.url)).await.unwrap_err();
		assert_eq!(e.to_string(), "not paying: price 0.01 USDT exceeds per-request cap 0.005 USDT");

		// A budget of two readings a day: the third is refused, and only two were paid.
		let thrifty =
			X402Client::new(Buyer::new(dev::signer(BUYER), market.policy(10_000, 20_000)));
		for _ in 0..2 {
			thrifty.get(&format!("{}/reading", server.url)).await.unwrap();
		}
		let e = thrifty.get(&format!("{}/reading", server.url)).await.unwrap_err();
		assert_eq!(
			e.to_string(),
			"not paying: price 0.01 USDT exceeds the rest of today's budget: 0.02 USDT of 0.02 \
			 USDT spent"
		);
		assert_eq!(market.balance(SELLER).await, U256::from(2 * READING_PRICE));

		// A payee the policy does not know.
		let mut policy = market.policy(10_000, 20_000);
		policy.payees = vec![market::address("ethan")];
		let e = X402Client::new(Buyer::new(dev::signer(BUYER), policy))
			.get(&format!("{}/reading", server.url))
			.await
			.unwrap_err();
		assert!(matches!(e, ClientError::NotPaying(_)), "{e}");
		assert!(e.to_string().contains("is not allowed"), "{e}");
		assert_eq!(market.balance(SELLER).await, U256::from(2 * READING_PRICE));
	});
}

/// Malformed encodings are HTTP's own (a header that is not base64); every bad payment of the
/// conformance suite is refused the same way on every transport.
#[test]
fn malformed_and_mismatched_payments_get_precise_402s_and_move_nothing() {
	runtime().block_on(async {
		let (market, server) = open(Duration::from_secs(30), &[]).await;
		let url = format!("{}/reading", server.url);
		let refusal = |header: Option<(&'static str, String)>| {
			let url = url.clone();
			async move { get(&url, header).await.refusal() }
		};
		let starts = |got: String, want: &str| {
			assert!(got.starts_with(want), "{got:?} should start with {want:?}")
		};

		starts(
			refusal(Some(("PAYMENT-SIGNATURE", "%%% not base64".into()))).await,
			"invalid_payload: PAYMENT-SIGNATURE: header is not base64",
		);
		starts(
			refusal(Some(("PAYMENT-SIGNATURE", codec::encode(&"just a string")))).await,
			"invalid_x402_version: PAYMENT-SIGNATURE: x402Version is missing",
		);
		starts(
			refusal(Some(("PAYMENT-SIGNATURE", "eyJ4NDAyVmVyc2lvbiI6Mg==".into()))).await, // {"x402Version":2
			"invalid_payload: PAYMENT-SIGNATURE: not JSON",
		);
		starts(
			refusal(Some((
				"PAYMENT-SIGNATURE",
				codec::encode(&serde_json::json!({"x402Version": 3})),
			)))
			.await,
			"invalid_x402_version: PAYMENT-SIGNATURE: x402Version 3 is not supported",
		);
		conformance::bad_payments_get_precise_refusals(&conformance::Http::new(url), &market).await;
	});
}

#[test]
fn a_reused_or_concurrent_authorization_is_paid_once() {
	runtime().block_on(async {
		let (market, server) = open(Duration::from_secs(30), &[]).await;
		let http = conformance::Http::new(format!("{}/reading", server.url));
		conformance::a_reused_or_concurrent_authorization_is_paid_once(&http, &market).await;
	});
}

#[test]
fn a_payment_id_replays_the_same_answer_and_refuses_another_payment() {
	runtime().block_on(async {
		let (market, server) = open(Duration::from_secs(30), &[]).await;
		let http = conformance::Http::new(format!("{}/reading", server.url));
		conformance::a_payment_id_replays_its_answer_and_refuses_another_payment(&http, &market)
			.await;
	});
}

#[test]
fn a_v1_client_pays_with_x_payment_and_gets_x_payment_response() {
	runtime().block_on(async {
		let (market, server) = open(Duration::from_secs(30), &[]).await;
		let url = format!("{}/reading", server.url);
		let offer = market.offer(READING_PRICE);
		let p = payment(BUYER, &offer, &offer, now());
		let (name, value) = x402_http::payment_header(1, &p).unwrap();
		assert_eq!(name, "X-PAYMENT");
		let answer = get(&url, Some((name, value))).await;
		assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
		assert!(answer.headers.get("payment-response").is_none());
		assert!(answer.settlement().unwrap().success);
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));
	});
}

#[test]
fn a_remote_facilitator_works_and_one_that_is_down_is_a_502() {
	runtime().block_on(async {
		let market = Market::open(&[]).await;
		let facilitator = Server::start(facilitator_http::router(
			market.facilitator(Duration::from_secs(30)).await,
		))
		.await;
		let remote = RemoteFacilitator::new(&facilitator.url, Duration::from_secs(40));
		let seller =
			Server::start(market.seller_app(Arc::new(Seller::new(Arc::new(remote))))).await;
		let client = X402Client::new(market.buyer());
		let paid = client.get(&format!("{}/reading", seller.url)).await.unwrap();
		assert!(paid.settlement.unwrap().success);
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE));

		// A facilitator URL where nothing listens.
		let closed =
			tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
		let nowhere = RemoteFacilitator::new(&format!("http://{closed}"), Duration::from_secs(5));
		let seller =
			Server::start(market.seller_app(Arc::new(Seller::new(Arc::new(nowhere))))).await;
		let offer = market.offer(READING_PRICE);
		let down = get(
			&format!("{}/reading", seller.url),
			signature(&payment(BUYER, &offer, &offer, now())),
		)
		.await;
		assert_eq!(down.status, StatusCode::BAD_GATEWAY, "{}", down.body);
		assert!(down.body.contains("facilitator unavailable"), "{}", down.body);
		let e = client.get(&format!("{}/reading", seller.url)).await.unwrap_err();
		assert!(matches!(e, ClientError::SellerUnavailable { .. }), "{e}");
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE), "nothing moved");
	});
}

#[test]
fn a_late_receipt_is_settlement_pending_with_the_hash_and_is_paid_once() {
	runtime().block_on(async {
		// Anvil that only mines when asked: the settlement is sent but not confirmed in time.
		let (market, server) = open(Duration::from_millis(500), &[]).await;
		market.stop_automine().await;
		let client = X402Client::new(market.buyer());
		let e = client.get(&format!("{}/reading", server.url)).await.unwrap_err();
		let ClientError::SettlementPending { transaction, .. } = &e else { panic!("{e}") };
		assert_eq!(transaction.len(), 66, "{e}");
		assert!(e.to_string().contains("not paying again"), "{e}");
		assert_eq!(market.balance(SELLER).await, U256::ZERO);
		market.mine().await;
		assert_eq!(market.balance(SELLER).await, U256::from(READING_PRICE), "it landed, once");
	});
}
