//! The facilitator core against a real EVM (anvil, with the testnet USDT): on-chain refusals
//! with the spec's reasons, exactly-once settlement, and `settlement_pending` with the hash when
//! no receipt comes.

use std::time::Duration;

use m2m_e2e_tests::Anvil;
use m2m_evm::{
	alloy::primitives::{Address, B256, U256},
	dev, usdt,
	usdt::USDT,
};
use m2m_facilitator::Facilitator;
use m2m_x402::{
	network,
	schemes::exact,
	v2::{PaymentPayload, PaymentRequirements},
	ErrorReason,
};

struct Setup {
	token: Address,
	requirements: PaymentRequirements,
	facilitator: Facilitator,
}

/// USDT deployed, Alith holding 100 USDT, Baltathar the payee, Charleth the facilitator.
async fn setup(url: &str, receipt_timeout: Duration) -> Setup {
	let deployer = m2m_evm::connect(url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
	let faith = dev::signer(dev::USDT_DEPLOYER).address();
	let token = usdt::find_or_deploy(&deployer, faith).await.unwrap().address();
	usdt::mint(&deployer, token, dev::signer("alith").address(), U256::from(100 * usdt::UNIT))
		.await
		.unwrap();
	let chain_id = 31337;
	let requirements = PaymentRequirements {
		scheme: "exact".into(),
		network: network::caip2(chain_id),
		amount: "250000".into(),
		asset: token.to_checksum(None),
		pay_to: dev::signer("baltathar").address().to_checksum(None),
		max_timeout_seconds: 60,
		extra: Some(serde_json::json!({"name": "Tether USD", "version": "1"})),
		other: Default::default(),
	};
	let charleth = dev::signer("charleth");
	let provider = m2m_evm::connect(url, None).unwrap();
	let facilitator = Facilitator::new(provider, charleth, receipt_timeout).await.unwrap();
	Setup { token, requirements, facilitator }
}

fn now() -> u64 {
	std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn pay(payer: &str, requirements: &PaymentRequirements, nonce: u8) -> PaymentPayload {
	let wire =
		exact::sign(&dev::signer(payer), requirements, now(), B256::repeat_byte(nonce)).unwrap();
	exact::payment(requirements.clone(), &wire)
}

async fn balance(url: &str, token: Address, who: &str) -> U256 {
	let p = m2m_evm::connect(url, None).unwrap();
	USDT::new(token, &p).balanceOf(dev::signer(who).address()).call().await.unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

#[test]
fn a_payment_settles_once_and_every_refusal_has_its_reason() {
	let anvil = Anvil::start();
	runtime().block_on(async {
		let s = setup(&anvil.url, Duration::from_secs(30)).await;
		let payment = pay("alith", &s.requirements, 1);

		let verified = s.facilitator.verify(&payment, &s.requirements).await;
		assert!(verified.is_valid, "{verified:?}");
		let settled = s.facilitator.settle(&payment, &s.requirements).await;
		assert!(settled.success, "{settled:?}");
		assert_eq!(settled.transaction.len(), 66);
		assert_eq!(balance(&anvil.url, s.token, "baltathar").await, U256::from(250_000));

		// The same authorization again: refused, nothing moves.
		let again = s.facilitator.settle(&payment, &s.requirements).await;
		assert_eq!(again.error_reason, Some(ErrorReason::InvalidTransactionState), "{again:?}");
		assert_eq!(again.transaction, "");
		assert_eq!(balance(&anvil.url, s.token, "baltathar").await, U256::from(250_000));

		// A payer without USDT.
		let broke =
			s.facilitator.verify(&pay("dorothy", &s.requirements, 2), &s.requirements).await;
		assert_eq!(broke.invalid_reason, Some(ErrorReason::InsufficientFunds), "{broke:?}");

		// Requirements whose token domain is not what the token says.
		let mut wrong = s.requirements.clone();
		wrong.extra = Some(serde_json::json!({"name": "USD Coin", "version": "2"}));
		let refused = s.facilitator.verify(&pay("alith", &wrong, 3), &wrong).await;
		assert_eq!(refused.invalid_reason, Some(ErrorReason::InvalidPaymentRequirements));

		// Another chain.
		let mut elsewhere = s.requirements.clone();
		elsewhere.network = network::caip2(3338);
		let refused = s.facilitator.verify(&pay("alith", &elsewhere, 4), &elsewhere).await;
		assert_eq!(refused.invalid_reason, Some(ErrorReason::InvalidNetwork));
	});
}

#[test]
fn one_authorization_presented_twice_at_once_settles_once() {
	let anvil = Anvil::start();
	runtime().block_on(async {
		let s = setup(&anvil.url, Duration::from_secs(30)).await;
		let payment = pay("alith", &s.requirements, 9);
		let (a, b) = tokio::join!(
			s.facilitator.settle(&payment, &s.requirements),
			s.facilitator.settle(&payment, &s.requirements)
		);
		assert_eq!(
			[a.success, b.success].iter().filter(|ok| **ok).count(),
			1,
			"exactly one settles: {a:?} {b:?}"
		);
		assert_eq!(balance(&anvil.url, s.token, "baltathar").await, U256::from(250_000));
	});
}

#[test]
fn a_settlement_without_a_receipt_in_time_is_pending_with_its_hash() {
	let anvil = Anvil::start();
	runtime().block_on(async {
		let s = setup(&anvil.url, Duration::from_millis(500)).await;
		// From now on the endpoint accepts transactions but mines none.
		let raw = m2m_evm::connect(&anvil.url, None).unwrap();
		use m2m_evm::alloy::providers::Provider;
		let () = raw.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();

		let payment = pay("alith", &s.requirements, 5);
		let pending = s.facilitator.settle(&payment, &s.requirements).await;
		assert!(!pending.success);
		assert_eq!(pending.error_reason, Some(ErrorReason::SettlementPending), "{pending:?}");
		assert_eq!(pending.transaction.len(), 66, "the hash is reported");

		// While it is pending, the authorization cannot be settled a second time, and the
		// second presentation is told it is pending, with the same hash (not "failed", which
		// would invite the buyer to pay again).
		let twice = s.facilitator.settle(&payment, &s.requirements).await;
		assert!(!twice.success);
		assert_eq!(twice.error_reason, Some(ErrorReason::SettlementPending), "{twice:?}");
		assert_eq!(twice.transaction, pending.transaction);
		let _: serde_json::Value = raw.raw_request("evm_mine".into(), ()).await.unwrap();
		assert_eq!(balance(&anvil.url, s.token, "baltathar").await, U256::from(250_000));
	});
}

#[test]
fn the_http_service_answers_the_x402_facilitator_api() {
	let anvil = Anvil::start();
	runtime().block_on(async {
		let s = setup(&anvil.url, Duration::from_secs(30)).await;
		let requirements = s.requirements.clone();
		let app = m2m_facilitator::http::router(std::sync::Arc::new(s.facilitator));
		let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
		let base = format!("http://{}", listener.local_addr().unwrap());
		let server = tokio::spawn(async move { axum::serve(listener, app).await });

		let http = reqwest::Client::new();
		let get = |path: &str| http.get(format!("{base}{path}")).send();
		let health: serde_json::Value = get("/health").await.unwrap().json().await.unwrap();
		assert_eq!(health["network"], "eip155:31337");
		let supported: serde_json::Value = get("/supported").await.unwrap().json().await.unwrap();
		assert_eq!(supported["kinds"][0]["network"], "eip155:31337");
		assert_eq!(supported["kinds"][0]["scheme"], "exact");
		assert_eq!(
			supported["signers"]["eip155:*"][0],
			dev::signer("charleth").address().to_checksum(None)
		);

		let body = serde_json::json!({
			"x402Version": 2,
			"paymentPayload": pay("alith", &requirements, 11),
			"paymentRequirements": requirements,
		});
		let post = |path: &str, body: Vec<u8>| {
			http.post(format!("{base}{path}"))
				.header("content-type", "application/json")
				.body(body)
				.send()
		};
		let verified = post("/verify", serde_json::to_vec(&body).unwrap()).await.unwrap();
		assert_eq!(verified.status(), 200);
		let verified: serde_json::Value = verified.json().await.unwrap();
		assert_eq!(verified["isValid"], true, "{verified}");

		let settled: serde_json::Value = post("/settle", serde_json::to_vec(&body).unwrap())
			.await
			.unwrap()
			.json()
			.await
			.unwrap();
		assert_eq!(settled["success"], true, "{settled}");
		assert_eq!(balance(&anvil.url, s.token, "baltathar").await, U256::from(250_000));

		// A refusal is a 200 with the reason; a body that is not a request is a 400.
		let again: serde_json::Value = post("/settle", serde_json::to_vec(&body).unwrap())
			.await
			.unwrap()
			.json()
			.await
			.unwrap();
		assert_eq!(again["success"], false);
		assert_eq!(again["errorReason"], "invalid_transaction_state");
		let garbage = post("/verify", b"{\"x402Version\": 2}".to_vec()).await.unwrap();
		assert_eq!(garbage.status(), 400);
		let garbage: serde_json::Value = garbage.json().await.unwrap();
		assert_eq!(garbage["error"], "invalid_payload");
		server.abort();
	});
}

/// The `m2m-facilitator` binary: a key file must be private; with one, it serves `/supported`
/// for the chain it is connected to, naming its settling address (and never the key).
#[test]
fn the_facilitator_binary_takes_a_private_key_file_and_serves() {
	use std::{os::unix::fs::PermissionsExt, process::Command};
	let anvil = Anvil::start();
	let dir = m2m_e2e_tests::unique_temp_dir("m2m-facilitator-bin");
	let key = dir.join("settler.key");
	let settler = dev::signer("charleth");
	m2m_evm::key::write(&key, &settler).unwrap();
	let bin = m2m_e2e_tests::workspace_binary("m2m-facilitator", "M2M_FACILITATOR_BIN");
	let command = |key: &std::path::Path| {
		let mut c = Command::new(&bin);
		c.args(["--listen", "127.0.0.1:0", "--rpc-url", &anvil.url, "--key-file"]).arg(key);
		c.env_remove("M2M_FACILITATOR_KEY");
		c
	};

	std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
	let refused = command(&key).output().unwrap();
	assert!(!refused.status.success());
	let stderr = String::from_utf8_lossy(&refused.stderr);
	assert!(stderr.contains("is readable by others (mode 640)"), "{stderr}");
	assert!(stderr.contains("chmod 600"), "{stderr}");

	std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
	let (process, url) =
		m2m_e2e_tests::Process::spawn("m2m-facilitator", command(&key), None, |line| {
			line.strip_prefix("m2m-facilitator listening on ").map(str::to_string)
		});
	let supported: serde_json::Value = runtime().block_on(async {
		reqwest::get(format!("{url}/supported")).await.unwrap().json().await.unwrap()
	});
	assert_eq!(supported["kinds"][0]["network"], "eip155:31337", "{supported}");
	assert_eq!(supported["kinds"][0]["scheme"], "exact");
	assert_eq!(supported["signers"]["eip155:*"][0], settler.address().to_checksum(None));
	let secret = hex::encode(settler.to_bytes());
	assert!(!process.log().contains(&secret), "the key is never logged");
	std::fs::remove_dir_all(&dir).unwrap();
}
