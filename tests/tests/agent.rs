//! `machine-agent` end to end, with real components on loopback: a dev node with its EVM
//! endpoint (or anvil), USDT, and two agent processes, each with its own keys and RocksDB.

use std::time::{Duration, Instant};

use m2m_devnet::{Endpoints, NATIVE_UNIT};
use m2m_e2e_tests::{
	agent::{text, Device},
	market::{held_upstream, Market, READING_PRICE},
	EthRpc, Node,
};
use m2m_evm::{
	alloy::primitives::U256,
	dev,
	usdt::{self, USDT},
};

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// Polls `check` until it holds, at most `limit` (a condition, not a sleep).
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
	let start = Instant::now();
	while !check() {
		assert!(start.elapsed() < limit, "{what} did not happen within {limit:?}");
		std::thread::sleep(Duration::from_millis(200));
	}
}

fn receipts_json(device: &Device, extra: &[&str]) -> serde_json::Value {
	let mut args = vec!["receipts", "--format", "json"];
	args.extend_from_slice(extra);
	let out = device.cli(&args);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "receipts failed: {stderr}");
	serde_json::from_str(&stdout).unwrap()
}

/// The README's story: the robot (Bob's) buys a reading from the sensor (Alice's) over HTTP;
/// the sensor's receipt lands on-chain; both devices and both owners see it; the robot's
/// budget runs out with a clear message; and a store that is not the agent's is refused.
#[test]
fn a_device_buys_from_another_and_both_owners_see_the_receipt() {
	let node = Node::dev();
	let eth = EthRpc::start(&node);
	let endpoints = Endpoints { node: node.ws_url.clone(), eth_rpc: eth.url.clone() };
	let token = runtime().block_on(m2m_devnet::deploy_usdt(&endpoints)).unwrap();

	let sensor = Device::init("sensor", "//Alice", token.address, &node.ws_url, &eth.url);
	let mut robot = Device::init("robot", "//Bob", token.address, &node.ws_url, &eth.url);
	// Native tokens for fees and gas; USDT for the robot to spend. (`fund` derives the same
	// DEV keys from the names as `init --dev`.)
	runtime()
		.block_on(m2m_devnet::fund(
			&endpoints,
			&["sensor".into(), "robot".into()],
			10 * NATIVE_UNIT,
			U256::from(usdt::UNIT),
		))
		.unwrap();

	let out = robot.cli(&["register"]);
	assert!(out.status.success(), "{}", text(&out).1);
	assert!(text(&out).0.contains("is registered"));

	// Identity changes from the CLI, signed by the owner: set, remove, and a second remove
	// that the chain refuses because the first one took effect.
	let out = robot.cli(&["identity", "set-attribute", "model", "R2-arm", "--valid-for", "100"]);
	assert!(out.status.success(), "{}", text(&out).1);
	assert!(text(&out).0.contains("model = \"R2-arm\""), "{}", text(&out).0);
	assert!(robot.cli(&["identity", "remove-attribute", "model"]).status.success());
	let again = robot.cli(&["identity", "remove-attribute", "model"]);
	assert!(!again.status.success());
	assert!(text(&again).1.contains("DeviceIdentity::UnknownAttribute"), "{}", text(&again).1);
	// The libp2p key rotates on-chain and in the keystore; the device keeps its id.
	let out = robot.cli(&["identity", "rotate-key", "peer"]);
	assert!(out.status.success(), "{}", text(&out).1);
	assert!(text(&out).0.contains("Peer key rotated"), "{}", text(&out).0);
	let rotated = runtime().block_on(async {
		let chain = m2m_chain_client::ChainClient::connect(&node.ws_url).await.unwrap();
		(
			chain.device_by_peer(robot.keys().peer_id()).await.unwrap(),
			chain.device_by_account(&robot.keys().account_id()).await.unwrap(),
		)
	});
	assert_eq!(rotated.0, None, "the old PeerId no longer names the device");
	assert!(rotated.1.is_some(), "the account key is unchanged");
	let files: Vec<String> = std::fs::read_dir(robot.dir.join("keys"))
		.unwrap()
		.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
		.collect();
	assert!(files.iter().any(|f| f.starts_with("libp2p.ed25519.old-")), "{files:?}");
	let (_daemon, url) = sensor.run();

	// The robot buys one reading.
	let out = robot.cli(&["pay", &format!("{url}/reading")]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "pay failed: {stderr}");
	assert!(stdout.contains("celsius"), "{stdout}");
	assert!(stderr.contains("paid 0.01 USDT (tx 0x"), "{stderr}");

	// The sale reaches the chain through the sensor's outbox.
	// (`receipts` fails until the sensor's daemon has registered it.)
	eventually("the sensor's receipt on-chain", Duration::from_secs(60), || {
		let out = sensor.cli(&["receipts", "--format", "json"]);
		out.status.success()
			&& serde_json::from_slice::<serde_json::Value>(&out.stdout)
				.is_ok_and(|v| v["receipts"].as_array().is_some_and(|r| r.len() == 1))
	});
	let sold = receipts_json(&sensor, &[]);
	assert_eq!(sold["receipts"][0]["role"], "payee");
	assert_eq!(sold["receipts"][0]["amount"], READING_PRICE.to_string());
	assert_eq!(
		sold["receipts"][0]["evidence"], "proven",
		"the token executed exactly this payment"
	);
	let bought = receipts_json(&robot, &[]);
	assert_eq!(bought["receipts"][0]["role"], "payer");
	assert_eq!(bought["receipts"][0]["receipt"], sold["receipts"][0]["receipt"]);

	// Both owners' accounting, in every format.
	let alice = sensor.cli(&["fleet", "--format", "json"]);
	let alice: serde_json::Value = serde_json::from_str(&text(&alice).0).unwrap();
	assert_eq!(alice["totals"][0]["totals"]["proven"]["earned_usdt"], "0.010000");
	assert_eq!(alice["totals"][0]["totals"]["signed_only"]["earned_usdt"], "0.000000");
	let bob = robot.cli(&["fleet", "--format", "csv"]);
	let csv = text(&bob).0;
	assert!(
		csv.starts_with(
			"device,token,proven_spent_usdt,proven_earned_usdt,signed_only_spent_usdt,signed_only_earned_usdt"
		),
		"{csv}"
	);
	assert!(csv.contains(",0.010000,0.000000,0.000000,0.000000,1,0"), "{csv}");
	let table = text(&sensor.cli(&["receipts"])).0;
	assert!(table.contains("payee") && table.contains("0.010000"), "{table}");

	// A budget of 0.01 USDT is spent: the next purchase is refused, clearly, and costs nothing.
	robot.env.push(("M2M_SPENDING_DAILY_BUDGET".into(), "0.01".into()));
	let out = robot.cli(&["pay", &format!("{url}/reading")]);
	assert!(!out.status.success());
	let stderr = text(&out).1;
	assert!(
		stderr.contains(
			"not paying: price 0.01 USDT exceeds the rest of today's budget: 0.01 USDT of 0.01 \
			 USDT spent"
		),
		"{stderr}"
	);
	let balance = runtime().block_on(async {
		let p = m2m_evm::connect(&eth.url, None).unwrap();
		USDT::new(token.address, &p).balanceOf(robot.evm_address()).call().await.unwrap()
	});
	assert_eq!(balance, U256::from(usdt::UNIT - READING_PRICE), "paid exactly once");

	// Status from the running daemon, and metrics, once the receipt's block is final (the
	// outbox lets a receipt go only then).
	eventually("the receipt final and out of the outbox", Duration::from_secs(30), || {
		metrics(&url).contains("m2m_outbox_depth 0")
	});
	let status: serde_json::Value =
		serde_json::from_str(&text(&sensor.cli(&["status"])).0).unwrap();
	assert_eq!(status["sales_settled"], 1, "{status}");
	assert_eq!(status["outbox_depth"], 0, "{status}");
	let metrics = runtime().block_on(async {
		reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
	});
	assert!(metrics.contains("m2m_payments{role=\"sell\",state=\"settled\"} 1"), "{metrics}");
	assert!(metrics.contains("m2m_outbox_depth 0"), "{metrics}");
	assert!(metrics.contains("m2m_chain_connected 1"), "{metrics}");
}

/// A data directory that is not the agent's is refused with a clear error, not a panic.
#[test]
fn a_foreign_or_corrupted_store_is_a_clear_error() {
	let device = Device::init(
		"foreign",
		"//Alice",
		dev::signer("alith").address(),
		"ws://127.0.0.1:1",
		"http://127.0.0.1:1",
	);
	let data = device.dir.join("data");
	std::fs::create_dir_all(&data).unwrap();
	std::fs::write(data.join("photo.jpg"), b"not a database").unwrap();
	let out = device.cli(&["status"]);
	assert!(!out.status.success());
	let stderr = text(&out).1;
	assert!(stderr.contains("is not a machine-agent store"), "{stderr}");
	assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The chain is stopped while sales go on (they settle on the EVM side, anvil here): their
/// receipts wait in the outbox, on disk; the chain is restarted on its own database, and every
/// receipt is recorded, once. Among them is a poison receipt the chain refuses for good (a
/// sibling device of the seller's own owner paying on an asset that cannot prove settlement):
/// it goes to the dead-letter list with the pallet's error, and the receipts around it land.
#[test]
fn receipts_wait_out_a_chain_that_stops_and_none_is_lost() {
	let rt = runtime();
	let market = rt.block_on(Market::open(&[]));
	let port = free_port();
	let chain_url = format!("ws://127.0.0.1:{port}");
	let base = m2m_e2e_tests::unique_temp_dir("m2m-outage-chain");
	let node_args = ["--dev", "--rpc-port", &port.to_string()];
	let node = Node::start_at(&base, &node_args);
	let seller =
		Device::init("outage-seller", "//Alice", market.token, &chain_url, &market.anvil.url);
	let buyer = Device::init("outage-buyer", "//Bob", market.token, &chain_url, &market.anvil.url);
	let sibling =
		Device::init("outage-sibling", "//Alice", market.token, &chain_url, &market.anvil.url);
	rt.block_on(fund_on_anvil(&market, &[&seller, &buyer, &sibling]));
	// The chain must know the anvil USDT (another chain's asset); the devices need fees.
	rt.block_on(async {
		let (chain, alice) = accept_anvil_usdt(&node.ws_url, &market).await;
		for d in [&seller, &buyer] {
			chain.transfer(&alice, d.keys().account_id(), 10 * NATIVE_UNIT).await.unwrap();
		}
	});
	for device in [&buyer, &sibling] {
		let out = device.cli(&["register"]);
		assert!(out.status.success(), "{}", text(&out).1);
	}
	let (_daemon, url) = seller.run();
	let buy = || {
		let out = buyer.cli(&["pay", &format!("{url}/reading")]);
		assert!(out.status.success(), "{}", text(&out).1);
	};

	buy();
	eventually("the first receipt on-chain", Duration::from_secs(60), || {
		metrics(&url).contains("m2m_receipts_recorded_total 1")
	});

	drop(node); // the chain stops; its database stays
	eventually("the agent to notice", Duration::from_secs(60), || {
		metrics(&url).contains("m2m_chain_connected 0")
	});
	buy();
	let out = sibling.cli(&["pay", &format!("{url}/reading")]);
	assert!(out.status.success(), "{}", text(&out).1);
	buy();
	let m = metrics(&url);
	assert!(m.contains("m2m_outbox_depth 3"), "{m}");

	let _node = Node::start_at(&base, &node_args);
	eventually("the outbox to drain", Duration::from_secs(90), || {
		metrics(&url).contains("m2m_outbox_depth 0")
	});
	let m = metrics(&url);
	assert!(m.contains("m2m_receipts_dead_letter 1"), "{m}");
	assert!(m.contains("m2m_receipts_recorded_total 3"), "{m}");
	let outbox = text(&seller.cli(&["outbox"])).0;
	assert!(outbox.contains("dead letters: 1"), "{outbox}");
	assert!(outbox.contains("SettlementReceipts::UnprovenWithinOneOwner"), "{outbox}");
	let sold = receipts_json(&seller, &[]);
	assert_eq!(sold["receipts"].as_array().unwrap().len(), 3, "{sold}");
	assert_eq!(sold["receipts"][0]["evidence"], "signed-only", "another chain's asset");
	drop(_node);
	let _ = std::fs::remove_dir_all(&base);
}

/// Registers the market's anvil USDT with the chain's receipts pallet (another chain's asset,
/// so signed-only), as sudo Alice; returns the connection and Alice for further setup.
async fn accept_anvil_usdt(
	ws_url: &str,
	market: &Market,
) -> (m2m_chain_client::ChainClient, subxt_signer::sr25519::Keypair) {
	let chain = m2m_chain_client::ChainClient::connect(ws_url).await.unwrap();
	let domain = usdt::domain(&m2m_evm::connect(&market.anvil.url, None).unwrap(), market.token)
		.await
		.unwrap();
	let asset = m2m_primitives::receipt::AssetKey {
		chain_id: domain.chain_id,
		token: m2m_primitives::H160(market.token.0 .0),
	};
	let alice = subxt_signer::sr25519::dev::alice();
	chain
		.register_asset_sudo(
			&alice,
			asset,
			&domain.name,
			&domain.version,
			6,
			"USDT",
			m2m_chain_client::SettlementCheck::SignedOnly,
		)
		.await
		.unwrap();
	(chain, alice)
}

/// USDT and gas on anvil for devices (anvil's DEV accounts fund them).
async fn fund_on_anvil(market: &Market, devices: &[&Device]) {
	let alith = m2m_evm::connect(&market.anvil.url, Some(dev::signer("alith"))).unwrap();
	for d in devices {
		m2m_evm::send_native(&alith, d.evm_address(), U256::from(10u128 * NATIVE_UNIT))
			.await
			.unwrap();
		m2m_evm::confirm(
			USDT::new(market.token, &alith)
				.transfer(d.evm_address(), U256::from(usdt::UNIT))
				.send()
				.await
				.unwrap(),
		)
		.await
		.unwrap();
	}
}

/// A free loopback port for a daemon that must come back on the same address.
fn free_port() -> u16 {
	std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn metrics(url: &str) -> String {
	runtime().block_on(async {
		reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
	})
}

fn usdt_balance(market: &Market, who: m2m_evm::alloy::primitives::Address) -> U256 {
	runtime().block_on(async {
		let p = m2m_evm::connect(&market.anvil.url, None).unwrap();
		USDT::new(market.token, &p).balanceOf(who).call().await.unwrap()
	})
}

/// The control surface is private. Whoever reaches a device's service port can neither make it
/// buy (`POST /buy`) nor read its state (`GET /status`); the device's own user does both through
/// the 0600 control socket in the data directory, which `pay` and `status` use while the daemon
/// holds the store.
#[test]
fn spending_and_status_are_only_on_the_private_control_socket() {
	use std::os::unix::fs::{FileTypeExt, PermissionsExt};

	let rt = runtime();
	let market = rt.block_on(Market::open(&[]));
	let nowhere = "ws://127.0.0.1:1";
	let seller =
		Device::init("control-seller", "//Alice", market.token, nowhere, &market.anvil.url);
	let buyer = Device::init("control-buyer", "//Bob", market.token, nowhere, &market.anvil.url);
	rt.block_on(fund_on_anvil(&market, &[&seller, &buyer]));
	let (_seller_daemon, seller_url) = seller.run();
	let (_buyer_daemon, buyer_url) = buyer.run();
	let reading = format!("{seller_url}/reading");
	let before = usdt_balance(&market, buyer.evm_address());

	// From the network: no purchase, no state; monitoring stays.
	let (buy, status, health) = rt.block_on(async {
		let http = reqwest::Client::new();
		let buy = http
			.post(format!("{buyer_url}/buy"))
			.json(&serde_json::json!({"url": &reading}))
			.send()
			.await
			.unwrap()
			.status();
		let status = http.get(format!("{buyer_url}/status")).send().await.unwrap().status();
		let health = http.get(format!("{buyer_url}/health")).send().await.unwrap().status();
		(buy, status, health)
	});
	assert!(matches!(buy.as_u16(), 404 | 405), "POST /buy on the service port: {buy}");
	assert!(matches!(status.as_u16(), 404 | 405), "GET /status on the service port: {status}");
	assert!(health.is_success(), "GET /health on the service port: {health}");
	assert_eq!(usdt_balance(&market, buyer.evm_address()), before, "the service port spent");

	// A caller that never finishes its request headers (slowloris) is cut off by the server's
	// header deadline (10 s), not kept forever.
	{
		use std::io::{Read, Write};
		let addr = buyer_url.trim_start_matches("http://");
		let mut slow = std::net::TcpStream::connect(addr).unwrap();
		slow.write_all(b"GET /health HTTP/1.1\r\nHost: device\r\n").unwrap();
		slow.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
		let started = std::time::Instant::now();
		let mut buf = [0u8; 512];
		let closed = match slow.read(&mut buf) {
			Ok(n) => n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
			Err(e) => {
				e.kind() != std::io::ErrorKind::WouldBlock
					&& e.kind() != std::io::ErrorKind::TimedOut
			},
		};
		assert!(closed, "the server cut the slow caller off");
		assert!(started.elapsed() < Duration::from_secs(30), "within the header deadline");
	}

	// The socket: the device's user only, in a directory nobody else may enter.
	let data = buyer.dir.join("data");
	let socket = data.join("control.sock");
	let meta = std::fs::symlink_metadata(&socket)
		.unwrap_or_else(|e| panic!("no control socket at {}: {e}", socket.display()));
	assert!(meta.file_type().is_socket(), "{} is not a socket", socket.display());
	assert_eq!(meta.permissions().mode() & 0o777, 0o600, "mode of {}", socket.display());
	let data_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
	assert_eq!(data_mode, 0o700, "mode of {}", data.display());

	// `status` while the daemon holds the store: the daemon answers (only it knows whether
	// the EVM side is connected), and the refused request left no purchase behind.
	let status_json = |device: &Device| -> serde_json::Value {
		let out = device.cli(&["status"]);
		let (stdout, stderr) = text(&out);
		assert!(out.status.success(), "status through the control socket: {stderr}");
		serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
	};
	let status = status_json(&buyer);
	assert_eq!(status["evm_connected"], true, "answered by the daemon: {status}");
	assert_eq!(
		(
			status["purchases_settled"].as_u64(),
			status["purchases_in_flight"].as_u64(),
			status["purchases_failed"].as_u64()
		),
		(Some(0), Some(0), Some(0)),
		"{status}"
	);

	// `pay` while the daemon holds the store: the daemon buys, once.
	let out = buyer.cli(&["pay", &reading]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "pay through the control socket: {stderr}");
	assert!(stdout.contains("celsius"), "{stdout}");
	assert!(stderr.contains("paid 0.01 USDT (tx 0x"), "{stderr}");
	assert_eq!(
		before - usdt_balance(&market, buyer.evm_address()),
		U256::from(READING_PRICE),
		"paid once"
	);
	assert_eq!(status_json(&buyer)["purchases_settled"], 1);
}

/// `kill -9` of the buyer while the seller is producing what it paid for: the restarted buyer
/// sends the same signed payment again (never a new one) and gets the answer it paid for.
#[test]
fn a_buyer_killed_mid_purchase_resumes_and_pays_once() {
	let rt = runtime();
	let market = rt.block_on(Market::open(&[]));
	// The seller's upstream: it answers only when the test says so.
	let (upstream, arrived, release) = held_upstream(&rt, "/slow", "slow reading");
	let nowhere = "ws://127.0.0.1:1";
	let seller = Device::init("crash-seller", "//Alice", market.token, nowhere, &market.anvil.url);
	let buyer = Device::init("crash-buyer", "//Bob", market.token, nowhere, &market.anvil.url);
	let config = seller.dir.join("machine-agent.toml");
	let mut text_config = std::fs::read_to_string(&config).unwrap();
	text_config = text_config.replace(
		"# What this device may spend",
		&format!(
			"[[services]]\npath = \"/slow\"\nprice = \"0.01\"\nhandler = \"proxy\"\ntarget = \"{}/slow\"\n\n# What this device may spend",
			upstream.url
		),
	);
	std::fs::write(&config, text_config).unwrap();
	rt.block_on(fund_on_anvil(&market, &[&seller, &buyer]));
	let (_daemon, url) = seller.run();
	let before = usdt_balance(&market, buyer.evm_address());

	let mut purchase = buyer.spawn(&["pay", &format!("{url}/slow")]);
	arrived.recv_timeout(Duration::from_secs(60)).expect("the paid request reached the handler");
	purchase.kill().unwrap(); // SIGKILL
	purchase.wait().unwrap();
	let status: serde_json::Value = serde_json::from_str(&text(&buyer.cli(&["status"])).0).unwrap();
	assert_eq!(status["purchases_in_flight"], 1, "the signed payment survived the kill: {status}");
	release.notify_one();
	eventually("the seller to settle", Duration::from_secs(60), || {
		metrics(&url).contains("m2m_payments{role=\"sell\",state=\"settled\"} 1")
	});

	let out = buyer.cli(&["pay", &format!("{url}/slow")]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "{stderr}");
	assert_eq!(stdout.trim(), "slow reading");
	assert!(stderr.contains("resuming an interrupted purchase"), "{stderr}");
	assert_eq!(
		before - usdt_balance(&market, buyer.evm_address()),
		U256::from(READING_PRICE),
		"paid once"
	);
	let status: serde_json::Value = serde_json::from_str(&text(&buyer.cli(&["status"])).0).unwrap();
	assert_eq!(
		(status["purchases_settled"].as_u64(), status["purchases_in_flight"].as_u64()),
		(Some(1), Some(0)),
		"{status}"
	);
}

/// `kill -9` of the seller after it sent the settlement but before it answered: the buyer's
/// retry of the same payment finds the restarted seller, which finds the settlement on-chain
/// and serves, without charging again.
#[test]
fn a_seller_killed_between_settling_and_answering_serves_the_paid_retry() {
	let rt = runtime();
	let market = rt.block_on(Market::open(&[]));
	let nowhere = "ws://127.0.0.1:1";
	let mut seller =
		Device::init("settle-seller", "//Alice", market.token, nowhere, &market.anvil.url);
	seller.env.push(("M2M_HTTP_LISTEN".into(), format!("127.0.0.1:{}", free_port())));
	let buyer = Device::init("settle-buyer", "//Bob", market.token, nowhere, &market.anvil.url);
	rt.block_on(fund_on_anvil(&market, &[&seller, &buyer]));
	let (daemon, url) = seller.run();
	let before = usdt_balance(&market, buyer.evm_address());

	rt.block_on(market.stop_automine());
	let purchase = buyer.spawn(&["pay", &format!("{url}/reading")]);
	eventually("the settlement to be sent", Duration::from_secs(60), || {
		rt.block_on(async {
			let p = m2m_evm::connect(&market.anvil.url, None).unwrap();
			let pool: serde_json::Value =
				m2m_evm::alloy::providers::Provider::raw_request(&p, "txpool_status".into(), ())
					.await
					.unwrap();
			pool["pending"].as_str().is_some_and(|n| n != "0x0")
				|| pool["pending"].as_u64().is_some_and(|n| n > 0)
		})
	});
	drop(daemon); // SIGKILL, with the settlement in the mempool and no answer sent
	let out = purchase.wait_with_output().unwrap();
	assert!(!out.status.success(), "the buyer saw the connection drop");
	rt.block_on(market.mine());
	assert_eq!(before - usdt_balance(&market, buyer.evm_address()), U256::from(READING_PRICE));

	let (_daemon, _) = seller.run();
	let out = buyer.cli(&["pay", &format!("{url}/reading")]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "{stderr}");
	assert!(stdout.contains("celsius"), "{stdout}");
	assert!(stderr.contains("resuming an interrupted purchase"), "{stderr}");
	assert_eq!(
		before - usdt_balance(&market, buyer.evm_address()),
		U256::from(READING_PRICE),
		"paid once"
	);
	assert!(metrics(&url).contains("m2m_outbox_depth 1"), "the recovered sale's receipt is queued");
}

/// Calls a JSON-RPC method of the node over HTTP (the node serves HTTP and WebSocket on one
/// port).
fn node_rpc(ws_url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
	let url = ws_url.replacen("ws://", "http://", 1);
	runtime().block_on(async {
		let answer: serde_json::Value = reqwest::Client::new()
			.post(url)
			.json(
				&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
			)
			.send()
			.await
			.unwrap()
			.json()
			.await
			.unwrap();
		assert!(answer.get("error").is_none(), "{method}: {answer}");
		answer["result"].clone()
	})
}

/// A receipt leaves the device only once its block is final. On a node whose blocks become
/// final only when told (`--sealing manual-finality`), the receipt is included but not final
/// when the seller's agent crashes; the restarted agent still holds it, and lets it go once the
/// block is finalized.
#[test]
fn a_receipt_is_kept_until_its_block_is_final_even_across_a_crash() {
	let rt = runtime();
	let market = rt.block_on(Market::open(&[]));
	let node = Node::start(&["--dev", "--sealing", "manual-finality"]);
	let seller =
		Device::init("final-seller", "//Alice", market.token, &node.ws_url, &market.anvil.url);
	let buyer = Device::init("final-buyer", "//Bob", market.token, &node.ws_url, &market.anvil.url);
	rt.block_on(fund_on_anvil(&market, &[&seller, &buyer]));
	rt.block_on(async {
		let (chain, alice) = accept_anvil_usdt(&node.ws_url, &market).await;
		chain.transfer(&alice, seller.keys().account_id(), 10 * NATIVE_UNIT).await.unwrap();
	});
	let out = buyer.cli(&["register"]);
	assert!(out.status.success(), "{}", text(&out).1);
	let finalized_before = node_rpc(&node.ws_url, "chain_getFinalizedHead", serde_json::json!([]));

	let (daemon, url) = seller.run();
	let out = buyer.cli(&["pay", &format!("{url}/reading")]);
	assert!(out.status.success(), "{}", text(&out).1);
	eventually("the receipt in a block that is not final", Duration::from_secs(60), || {
		metrics(&url).contains("m2m_receipts_awaiting_finality 1")
	});
	drop(daemon); // SIGKILL: a crash, with the receipt included but not final

	let status: serde_json::Value =
		serde_json::from_str(&text(&seller.cli(&["status"])).0).unwrap();
	assert_eq!(status["receipts_awaiting_finality"], 1, "{status}");
	assert_eq!(status["outbox_depth"], 1, "{status}");
	assert_eq!(
		node_rpc(&node.ws_url, "chain_getFinalizedHead", serde_json::json!([])),
		finalized_before,
		"nothing was finalized meanwhile"
	);

	let (_daemon, url) = seller.run();
	// Restarted, and the block still not final: the receipt stays.
	eventually("the restarted agent to reach the chain", Duration::from_secs(60), || {
		metrics(&url).contains("m2m_chain_connected 1")
	});
	let m = metrics(&url);
	assert!(m.contains("m2m_outbox_depth 1"), "{m}");
	assert!(m.contains("m2m_receipts_recorded_total 0"), "{m}");

	let best = node_rpc(&node.ws_url, "chain_getBlockHash", serde_json::json!([]));
	assert_eq!(
		node_rpc(&node.ws_url, "engine_finalizeBlock", serde_json::json!([best, null])),
		true
	);
	eventually("the receipt forgotten once final", Duration::from_secs(60), || {
		let m = metrics(&url);
		m.contains("m2m_outbox_depth 0") && m.contains("m2m_receipts_recorded_total 1")
	});
	let sold = receipts_json(&seller, &[]);
	assert_eq!(sold["receipts"].as_array().unwrap().len(), 1, "{sold}");
}

/// Metered payments between two agent processes on anvil, with the channel contracts at their
/// canonical addresses: the robot pays per kWh from one deposit; `kill -9` of the seller after
/// it answered a voucher and of the buyer after it signed one (its request in the handler)
/// lose no voucher and charge nothing twice; the seller's claim then moves exactly the
/// served requests times the price.
#[test]
fn metered_purchases_survive_kill_9_of_either_side_and_claims_equal_what_was_served() {
	const PRICE: u64 = 10_000; // 0.01 USDT per kWh
	let rt = runtime();
	let market = rt.block_on(Market::open(&[]));
	rt.block_on(async {
		let p = m2m_evm::connect(&market.anvil.url, None).unwrap();
		m2m_evm::channels::install_on_anvil(&p).await.unwrap();
	});
	// A slow upstream for one metered service: it answers only when the test says so.
	let (upstream, arrived, release) = held_upstream(&rt, "/meter", "1 kWh (slow meter)");
	let nowhere = "ws://127.0.0.1:1";
	let mut seller =
		Device::init("meter-seller", "//Alice", market.token, nowhere, &market.anvil.url);
	seller.env.push(("M2M_HTTP_LISTEN".into(), format!("127.0.0.1:{}", free_port())));
	let buyer = Device::init("meter-buyer", "//Bob", market.token, nowhere, &market.anvil.url);
	let config = seller.dir.join("machine-agent.toml");
	let text_config = std::fs::read_to_string(&config).unwrap().replace(
		"# What this device may spend",
		&format!(
			"[[services]]\npath = \"/kwh\"\nprice = \"0.01\"\nhandler = \"sensor\"\n\
			 scheme = \"batch-settlement\"\n\n[[services]]\npath = \"/slow-kwh\"\nprice = \"0.01\"\n\
			 handler = \"proxy\"\ntarget = \"{}/meter\"\nscheme = \"batch-settlement\"\n\n\
			 # What this device may spend",
			upstream.url
		),
	);
	std::fs::write(&config, text_config).unwrap();
	let buyer_config = buyer.dir.join("machine-agent.toml");
	let text_config = std::fs::read_to_string(&buyer_config)
		.unwrap()
		.replace("requests_per_deposit = 100", "requests_per_deposit = 10");
	std::fs::write(&buyer_config, text_config).unwrap();
	rt.block_on(fund_on_anvil(&market, &[&seller, &buyer]));
	let (daemon, url) = seller.run();
	let before = usdt_balance(&market, buyer.evm_address());
	let pay = |path: &str| {
		let out = buyer.cli(&["pay", &format!("{url}{path}")]);
		let (stdout, stderr) = text(&out);
		assert!(out.status.success(), "pay {path}: {stderr}");
		(stdout, stderr)
	};
	let channel_of = |device: &Device| -> serde_json::Value {
		let status: serde_json::Value =
			serde_json::from_str(&text(&device.cli(&["status"])).0).unwrap();
		status["channels"][0].clone()
	};

	for i in 0..3 {
		let (stdout, stderr) = pay("/kwh");
		assert!(stdout.contains("celsius"), "{stdout}");
		// The first voucher brings the deposit, whose transaction it shows.
		let how =
			if i == 0 { "paid 0.01 USDT (tx 0x" } else { "paid 0.01 USDT (a channel voucher)" };
		assert!(stderr.contains(how), "{stderr}");
	}
	assert_eq!(
		before - usdt_balance(&market, buyer.evm_address()),
		U256::from(10 * PRICE),
		"one deposit of ten kWh, no transfer per kWh"
	);
	let bought = channel_of(&buyer);
	assert_eq!(
		(bought["role"].as_str(), bought["charged"].as_str()),
		(Some("buy"), Some("0.03 USDT"))
	);

	// kill -9 of the seller after it answered a voucher: the charge was on disk first.
	drop(daemon);
	let (daemon, _) = seller.run();
	let list = seller.cli(&["channels", "list"]);
	let (stdout, stderr) = text(&list);
	assert!(list.status.success(), "{stderr}");
	assert!(stdout.contains("0.03 USDT") && stdout.contains("sell"), "{stdout}");
	pay("/kwh");

	// kill -9 of the seller after it accepted a voucher, before it answered (the request is
	// held in the metered service's upstream): nothing was charged for it, and the buyer's
	// resumed purchase is served and charged once.
	let purchase = buyer.spawn(&["pay", &format!("{url}/slow-kwh")]);
	arrived.recv_timeout(Duration::from_secs(60)).expect("the voucher's request reached the meter");
	drop(daemon);
	let interrupted = purchase.wait_with_output().unwrap();
	assert!(!interrupted.status.success(), "the seller died before answering");
	let (daemon, _) = seller.run();
	assert!(
		metrics(&url).contains("m2m_channel_charged_base_units{role=\"sell\"} 40000"),
		"the unanswered voucher was not charged"
	);
	// The dead seller's request may still wait in the meter: one release for it (if it is
	// still there), and one kept for the resumed request.
	release.notify_one();
	release.notify_one();
	let (stdout, stderr) = pay("/slow-kwh");
	arrived.recv_timeout(Duration::from_secs(10)).expect("the resumed request reached the meter");
	assert_eq!(stdout.trim(), "1 kWh (slow meter)");
	assert!(stderr.contains("resuming an interrupted purchase"), "{stderr}");
	assert!(
		metrics(&url).contains("m2m_channel_charged_base_units{role=\"sell\"} 50000"),
		"the resumed voucher was charged once"
	);

	// kill -9 of the buyer after it signed a voucher, its request in the seller's handler.
	let mut purchase = buyer.spawn(&["pay", &format!("{url}/slow-kwh")]);
	arrived.recv_timeout(Duration::from_secs(60)).expect("the voucher's request reached the meter");
	purchase.kill().unwrap();
	purchase.wait().unwrap();
	release.notify_one();
	eventually("the seller to charge the slow kWh", Duration::from_secs(30), || {
		metrics(&url).contains("m2m_channel_charged_base_units{role=\"sell\"} 60000")
	});
	let (stdout, stderr) = pay("/slow-kwh");
	assert_eq!(stdout.trim(), "1 kWh (slow meter)");
	assert!(stderr.contains("resuming an interrupted purchase"), "{stderr}");
	assert!(
		metrics(&url).contains("m2m_channel_charged_base_units{role=\"sell\"} 60000"),
		"the resumed voucher was not charged again"
	);
	pay("/kwh");
	let served = 7u64;
	assert_eq!(channel_of(&buyer)["charged"], "0.07 USDT");

	// The seller claims: exactly the served requests times the price move to it.
	let seller_before = usdt_balance(&market, seller.evm_address());
	let out = seller.cli(&["channels", "claim"]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "{stderr}");
	let claim: serde_json::Value = serde_json::from_str(&stdout).unwrap();
	assert_eq!(claim["claimed"][0]["amount"], "0.07 USDT", "{claim}");
	assert_eq!(claim["claimed"][0]["requests"], served, "{claim}");
	assert_eq!(
		usdt_balance(&market, seller.evm_address()) - seller_before,
		U256::from(served * PRICE)
	);
	assert_eq!(
		before - usdt_balance(&market, buyer.evm_address()),
		U256::from(10 * PRICE),
		"the buyer paid its deposit once; the unspent rest stays withdrawable"
	);
	assert!(metrics(&url).contains("m2m_channel_unclaimed_base_units{role=\"sell\"} 0"));
	drop(daemon);
}
