//! The x402 conformance suite, written once against a small [`Transport`] trait: the bad-input
//! table, replays, idempotency and concurrent presentations of one authorization. Each
//! transport (HTTP, libp2p) implements the trait as a thin adapter over its wire and
//! runs the same checks, so that every transport refuses the same inputs with the same reasons
//! and pays exactly once.
//!
//! The checks speak in x402 terms (a 402 with its `error`, a delivery with its settlement, a
//! conflict), never in a transport's: what each transport does with a malformed *encoding* (a
//! header that is not base64, a message that is not JSON) is its own test.

use std::future::Future;

use m2m_evm::{alloy::primitives::U256, dev};
use m2m_x402::{
	paywall,
	schemes::exact,
	v2::{PaymentPayload, PaymentRequirements, SchemePayload, SettleResponse},
	B256,
};

use crate::market::{self, Market, BROKE, BUYER, READING_PRICE, SELLER};

/// What a seller answered, in x402 terms.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
	/// The resource, with the settlement that paid for it (none for a free resource).
	Delivered { body: String, settlement: Option<Box<SettleResponse>> },
	/// Payment required, with the `error` the seller gave (empty for a bare request).
	PaymentRequired { error: String },
	/// The payment id was used for a different payment.
	Conflict { message: String },
	/// Anything else (a producer's failure, an unavailable facilitator), as the transport
	/// reported it.
	Other { code: u16, message: String },
}

impl Reply {
	/// The 402's `error`; panics with the reply otherwise.
	pub fn refusal(&self) -> &str {
		match self {
			Reply::PaymentRequired { error } => error,
			other => panic!("expected a payment-required answer, got {other:?}"),
		}
	}

	pub fn is_delivered(&self) -> bool {
		matches!(self, Reply::Delivered { .. })
	}
}

/// A way to reach a seller of `/reading` (priced [`READING_PRICE`] by [`Market::offer`]).
pub trait Transport: Sync {
	/// Requests `/reading` with `payment`, or without one.
	fn request(&self, payment: Option<&PaymentPayload>) -> impl Future<Output = Reply> + Send;
}

/// `payer`'s payment for `signed` (as signed) presented as accepting `accepted`, signed at
/// `at` with a fresh random nonce.
pub fn payment(
	payer: &str,
	signed: &PaymentRequirements,
	accepted: &PaymentRequirements,
	at: u64,
) -> PaymentPayload {
	let mut nonce = [0u8; 32];
	getrandom::getrandom(&mut nonce).expect("randomness");
	let wire = exact::sign(&dev::signer(payer), signed, at, B256::from(nonce)).expect("signing");
	exact::payment(accepted.clone(), &wire)
}

fn now() -> u64 {
	m2m_x402::clock::unix_now()
}

fn starts(got: &str, want: &str) {
	assert!(got.starts_with(want), "{got:?} should start with {want:?}");
}

/// Every payment that is wrong in one way gets the precise reason, and moves nothing.
pub async fn bad_payments_get_precise_refusals(t: &impl Transport, market: &Market) {
	let offer = market.offer(READING_PRICE);
	let at = now();
	let refusal = |p: PaymentPayload| async move { t.request(Some(&p)).await.refusal().to_owned() };

	let bare = t.request(None).await;
	assert_eq!(bare, Reply::PaymentRequired { error: String::new() }, "a bare request");

	let mut scheme = offer.clone();
	scheme.scheme = "upto".into();
	starts(
		&refusal(payment(BUYER, &offer, &scheme, at)).await,
		"unsupported_scheme: scheme \"upto\" is not offered",
	);
	let mut network = offer.clone();
	network.network = "eip155:8453".into();
	starts(
		&refusal(payment(BUYER, &network, &network, at)).await,
		"invalid_network: network \"eip155:8453\" is not offered",
	);
	let mut asset = offer.clone();
	asset.asset = market::address("ethan").to_checksum(None);
	starts(
		&refusal(payment(BUYER, &asset, &asset, at)).await,
		"invalid_payment_requirements: the accepted requirement is not one this resource offers",
	);
	let mut cheaper = offer.clone();
	cheaper.amount = (READING_PRICE - 1).to_string();
	starts(&refusal(payment(BUYER, &cheaper, &cheaper, at)).await, "invalid_payment_requirements");

	// Signed by someone other than `from`.
	let mut forged = payment(BUYER, &offer, &offer, at);
	let mut wire = exact::payload(&forged).expect("exact");
	wire.signature = exact::payload(&payment("ethan", &offer, &offer, at)).unwrap().signature;
	forged.payload = SchemePayload::encode(&wire);
	starts(&refusal(forged).await, "invalid_exact_evm_payload_signature: signed by");

	let mut elsewhere = offer.clone();
	elsewhere.pay_to = market::address("ethan").to_checksum(None);
	starts(
		&refusal(payment(BUYER, &elsewhere, &offer, at)).await,
		"invalid_exact_evm_payload_recipient_mismatch",
	);
	for off_by_one in [READING_PRICE - 1, READING_PRICE + 1] {
		let mut amount = offer.clone();
		amount.amount = off_by_one.to_string();
		starts(
			&refusal(payment(BUYER, &amount, &offer, at)).await,
			"invalid_exact_evm_payload_authorization_value_mismatch",
		);
	}
	starts(
		&refusal(payment(BUYER, &offer, &offer, at - 3_600)).await,
		"invalid_exact_evm_payload_authorization_valid_before",
	);
	starts(
		&refusal(payment(BUYER, &offer, &offer, at + 3_600)).await,
		"invalid_exact_evm_payload_authorization_valid_after",
	);
	starts(&refusal(payment(BROKE, &offer, &offer, at)).await, "insufficient_funds");

	assert_eq!(market.balance(SELLER).await, U256::ZERO, "none of these moved funds");
	assert_eq!(market.balance(BUYER).await, U256::from(market::FUNDS));
}

/// An authorization used once is refused the second time, and two presentations of one
/// authorization at once are paid once.
pub async fn a_reused_or_concurrent_authorization_is_paid_once(
	t: &impl Transport,
	market: &Market,
) {
	let offer = market.offer(READING_PRICE);
	let before = market.balance(SELLER).await;
	let once = payment(BUYER, &offer, &offer, now());
	assert!(t.request(Some(&once)).await.is_delivered());
	starts(
		t.request(Some(&once)).await.refusal(),
		"invalid_transaction_state: this authorization was already used",
	);
	assert_eq!(market.balance(SELLER).await - before, U256::from(READING_PRICE));

	let twice = payment(BUYER, &offer, &offer, now());
	let (a, b) = tokio::join!(t.request(Some(&twice)), t.request(Some(&twice)));
	let delivered = [&a, &b].iter().filter(|r| r.is_delivered()).count();
	assert_eq!(delivered, 1, "one of two concurrent presentations is served: {a:?} {b:?}");
	let other = if a.is_delivered() { &b } else { &a };
	assert!(matches!(other, Reply::PaymentRequired { .. }), "the other is refused: {other:?}");
	assert_eq!(
		market.balance(SELLER).await - before,
		U256::from(2 * READING_PRICE),
		"paid exactly once more"
	);
}

/// A payment id replays the first answer for the same payment, and refuses another payment
/// under it.
pub async fn a_payment_id_replays_its_answer_and_refuses_another_payment(
	t: &impl Transport,
	market: &Market,
) {
	let offer = market.offer(READING_PRICE);
	let before = market.balance(SELLER).await;
	let mut first = payment(BUYER, &offer, &offer, now());
	paywall::set_payment_id(&mut first, "pay_0123456789abcdef");
	let a = t.request(Some(&first)).await;
	let b = t.request(Some(&first)).await;
	assert!(a.is_delivered(), "{a:?}");
	assert_eq!(a, b, "the same body and the same settlement, the same transaction");
	assert_eq!(market.balance(SELLER).await - before, U256::from(READING_PRICE));

	let mut second = payment(BUYER, &offer, &offer, now());
	paywall::set_payment_id(&mut second, "pay_0123456789abcdef");
	match t.request(Some(&second)).await {
		Reply::Conflict { message } => {
			assert!(message.contains("already used for a different payment"), "{message}")
		},
		other => panic!("expected a conflict, got {other:?}"),
	}
	assert_eq!(market.balance(SELLER).await - before, U256::from(READING_PRICE));
}

/// x402 over HTTP: `GET <url>` with the payment in `PAYMENT-SIGNATURE`; the answer read from
/// the status, `PAYMENT-REQUIRED` and `PAYMENT-RESPONSE`, exactly as a client reads them.
pub struct Http {
	/// The resource's URL, e.g. `http://127.0.0.1:41234/reading`.
	pub url: String,
	pub client: reqwest::Client,
}

impl Http {
	pub fn new(url: impl Into<String>) -> Self {
		Self { url: url.into(), client: reqwest::Client::new() }
	}
}

impl Transport for Http {
	async fn request(&self, payment: Option<&PaymentPayload>) -> Reply {
		use m2m_x402::{codec, http as x402_http, v2::PaymentRequired};
		let mut request = self.client.get(&self.url);
		if let Some(p) = payment {
			request = request.header(x402_http::PAYMENT_SIGNATURE, codec::encode(p));
		}
		let response = request.send().await.expect("the seller answers HTTP");
		let (status, headers) = (response.status().as_u16(), response.headers().clone());
		let body = response.text().await.expect("a body");
		let header = |name: &str| headers.get(name).map(|v| v.to_str().expect("ASCII header"));
		match status {
			200 => Reply::Delivered {
				body,
				settlement: x402_http::read_settlement(
					header("payment-response"),
					header("x-payment-response"),
				)
				.map(|s| Box::new(s.expect("a well-formed PAYMENT-RESPONSE"))),
			},
			402 => {
				let required: PaymentRequired = codec::decode(
					header("payment-required").expect("a 402 carries PAYMENT-REQUIRED"),
					"PaymentRequired",
				)
				.expect("a well-formed PAYMENT-REQUIRED");
				Reply::PaymentRequired { error: required.error.unwrap_or_default() }
			},
			409 => Reply::Conflict { message: body },
			code => Reply::Other { code, message: body },
		}
	}
}

/// x402 over libp2p (`/x402/1.0.0`): a request for `/reading` with the payment as a JSON
/// object; the answer read from `status`, `paymentRequired`, `paymentResponse` and `body`,
/// exactly as a libp2p client reads them.
pub struct Libp2p {
	/// The buyer's own node (it only dials).
	pub node: m2m_p2p::Node,
	pub seller: m2m_p2p::PeerId,
	pub addresses: Vec<m2m_p2p::Multiaddr>,
}

impl Libp2p {
	/// A fresh buyer node (a new key) that reaches the seller at `address` (ending in
	/// `/p2p/<PeerId>`).
	pub async fn dial(address: &m2m_p2p::Multiaddr) -> Self {
		let Some(m2m_p2p::Protocol::P2p(seller)) = address.iter().last() else {
			panic!("{address} does not end in /p2p/<PeerId>")
		};
		let key = m2m_p2p::Keypair::generate_ed25519();
		let node = m2m_p2p::Node::start(key, m2m_p2p::Config::default(), None).await.unwrap();
		Self { node, seller, addresses: vec![address.clone()] }
	}

	/// Sends `request` as is (for the transport's own malformed-input checks).
	pub async fn send(
		&self,
		request: m2m_x402::libp2p::X402Request,
	) -> m2m_x402::libp2p::X402Response {
		self.node
			.request(self.seller, self.addresses.clone(), request)
			.await
			.expect("the seller answers over libp2p")
	}
}

impl Transport for Libp2p {
	async fn request(&self, payment: Option<&PaymentPayload>) -> Reply {
		use m2m_x402::libp2p::X402Request;
		let request = match payment {
			Some(p) => X402Request::paid("/reading", p),
			None => X402Request::unpaid("/reading"),
		};
		let answer = self.send(request).await;
		match answer.status {
			200 => Reply::Delivered {
				body: String::from_utf8(answer.body_bytes().expect("a base64 body"))
					.expect("a UTF-8 reading"),
				settlement: answer.payment_response.map(Box::new),
			},
			402 => Reply::PaymentRequired {
				error: answer
					.payment_required
					.expect("a 402 carries paymentRequired")
					.error
					.unwrap_or_default(),
			},
			409 => Reply::Conflict { message: answer.message.unwrap_or_default() },
			code => Reply::Other { code, message: answer.message.unwrap_or_default() },
		}
	}
}
