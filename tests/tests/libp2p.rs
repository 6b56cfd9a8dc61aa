//! x402 over libp2p end to end, with real components on loopback: a dev node with its EVM
//! endpoint, USDT, two `machine-agent` processes that find each other through the chain, and a
//! bare libp2p node (`m2m-p2p`) that probes the seller as any other implementation would.

use std::time::{Duration, Instant};

use m2m_devnet::{Endpoints, NATIVE_UNIT};
use m2m_e2e_tests::{
	agent::{text, Device},
	market::{held_upstream, READING_PRICE},
	EthRpc, Node,
};
use m2m_evm::alloy::primitives::U256;
use m2m_p2p::{codec::Limits, Multiaddr, PeerId};
use m2m_x402::libp2p::{X402Request, X402Response};

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

/// A testnet with two funded devices (their DEV keys from their names).
struct Testnet {
	node: Node,
	_eth: EthRpc,
	endpoints: Endpoints,
	token: m2m_evm::alloy::primitives::Address,
}

impl Testnet {
	fn start(devices: &[&str]) -> Testnet {
		let node = Node::dev();
		let eth = EthRpc::start(&node);
		let endpoints = Endpoints { node: node.ws_url.clone(), eth_rpc: eth.url.clone() };
		let rt = runtime();
		let token = rt.block_on(m2m_devnet::deploy_usdt(&endpoints)).unwrap();
		let names: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
		rt.block_on(m2m_devnet::fund(
			&endpoints,
			&names,
			10 * NATIVE_UNIT,
			U256::from(m2m_evm::usdt::UNIT),
		))
		.unwrap();
		Testnet { node, _eth: eth, token: token.address, endpoints }
	}

	fn device(&self, name: &str, owner: &str) -> Device {
		Device::init(name, owner, self.token, &self.node.ws_url, &self.endpoints.eth_rpc)
	}

	/// The device's id, once its daemon (or `register`) put it on-chain.
	fn device_id(&self, device: &Device) -> u64 {
		let account = device.keys().account_id();
		let mut id = None;
		eventually(&format!("{} registered", device.name), Duration::from_secs(60), || {
			id = runtime().block_on(async {
				let chain = m2m_chain_client::ChainClient::connect(&self.node.ws_url).await.ok()?;
				chain.device_by_account(&account).await.ok().flatten()
			});
			id.is_some()
		});
		id.unwrap()
	}

	/// Waits until device `id` published its libp2p addresses. (mDNS finds a device too, but
	/// reports the LAN address it heard it on, and the test's listeners are on loopback only.)
	fn published(&self, id: u64) {
		eventually("the libp2p addresses published", Duration::from_secs(60), || {
			runtime().block_on(async {
				let Ok(chain) = m2m_chain_client::ChainClient::connect(&self.node.ws_url).await
				else {
					return false;
				};
				chain.attributes(id).await.is_ok_and(|a| a.iter().any(|(n, _)| n == b"p2p/addrs"))
			})
		});
	}
}

/// Edits a device's config file.
fn configure(device: &Device, edit: impl FnOnce(String) -> String) {
	let path = device.dir.join("machine-agent.toml");
	let config = std::fs::read_to_string(&path).unwrap();
	std::fs::write(&path, edit(config)).unwrap();
}

/// Where a running daemon listens over libp2p on TCP (the file it writes next to its data).
fn p2p_address(device: &Device) -> Multiaddr {
	m2m_e2e_tests::load::libp2p_addresses(device).0
}

fn peer_of(address: &Multiaddr) -> PeerId {
	match address.iter().last() {
		Some(m2m_p2p::Protocol::P2p(peer)) => peer,
		_ => panic!("{address} does not end in /p2p/"),
	}
}

/// A bare libp2p node that only dials: another implementation of the transport, with `key`.
async fn probe(key: [u8; 32], limits: Limits) -> m2m_p2p::Node {
	let config = m2m_p2p::Config { limits, ..Default::default() };
	m2m_p2p::Node::start(m2m_p2p::keypair(key), config, None).await.unwrap()
}

/// The README's libp2p story. A charger sells readings to registered devices only; a robot
/// buys one by the charger's device id (the PeerId from the chain, the address the charger
/// published), paying the charger's own EVM address; the receipt lands on-chain. A bare libp2p
/// node sees the messages of the spec: a 402 with the offers, refusals of an unregistered peer,
/// of an oversize request and of a forged payment, each with its precise error.
#[test]
fn two_agents_pay_over_libp2p_with_peers_bound_to_their_devices() {
	let net = Testnet::start(&["charger", "robot"]);
	let charger = net.device("charger", "//Alice");
	let robot = net.device("robot", "//Bob");
	configure(&charger, |c| c.replace("require_registered = false", "require_registered = true"));
	let out = robot.cli(&["register"]);
	assert!(out.status.success(), "{}", text(&out).1);
	let (_daemon, _url) = charger.run();
	let charger_id = net.device_id(&charger);
	net.published(charger_id);
	let address = p2p_address(&charger);
	let charger_peer = peer_of(&address);
	assert_eq!(charger_peer.to_bytes(), charger.keys().peer_id(), "the registered key serves");
	let rt = runtime();

	// A peer that is no device is refused, whatever it asks.
	let stranger = rt.block_on(probe([42; 32], Limits::default()));
	let refused = rt
		.block_on(stranger.request(
			charger_peer,
			vec![address.clone()],
			X402Request::unpaid("/reading"),
		))
		.unwrap();
	assert_eq!((refused.status, refused.error.as_deref()), (403, Some("peer_not_registered")));
	assert!(refused.message.unwrap().contains(&stranger.peer_id().to_string()));

	// The robot's own key: a registered device. An unpaid request gets the spec's 402.
	let robot_key = m2m_chain_client::DeviceKeys::dev("devnet/robot").peer.to_bytes();
	let as_robot =
		rt.block_on(probe(robot_key, Limits { request: 1024 * 1024, ..Limits::default() }));
	let ask = |request: X402Request| -> X402Response {
		rt.block_on(as_robot.request(charger_peer, vec![address.clone()], request)).unwrap()
	};
	let asked = ask(X402Request::unpaid("/reading"));
	println!("402 over libp2p: {}", serde_json::to_string_pretty(&asked).unwrap());
	assert_eq!(asked.status, 402);
	let required = asked.payment_required.clone().expect("paymentRequired");
	assert_eq!(required.resource.url, format!("libp2p://{charger_peer}/reading"));
	assert_eq!(required.accepts.len(), 1);
	assert!(required.accepts[0].pay_to.eq_ignore_ascii_case(&charger.evm_address().to_string()));
	assert_eq!(required.accepts[0].amount, READING_PRICE.to_string());

	// Oversize: the seller reads the length first and answers 413, not a dropped stream.
	let oversize = ask(X402Request::unpaid(format!("/{}", "x".repeat(100_000))));
	assert_eq!((oversize.status, oversize.error.as_deref()), (413, Some("message_too_large")));
	assert!(oversize.message.unwrap().contains("at most 65536 bytes"));
	// A payment as base64 (as an HTTP header would carry it) and a forged one are refused with
	// x402's reasons, and nothing is charged.
	let base64 = ask(X402Request { resource: "/reading".into(), payment: Some("eyJ4NDAy".into()) });
	assert_eq!(base64.status, 402);
	assert!(base64.payment_required.unwrap().error.unwrap().starts_with("invalid_payload"));
	let buyer = m2m_x402_buyer::Buyer::new(
		m2m_evm::alloy::signers::local::PrivateKeySigner::from_bytes(
			&m2m_chain_client::DeviceKeys::dev("devnet/robot").evm.secret().into(),
		)
		.unwrap(),
		m2m_x402::policy::SpendingPolicy {
			assets: vec![m2m_x402::policy::AssetAllowance {
				network: required.accepts[0].network.clone(),
				asset: net.token,
				symbol: "USDT".into(),
				decimals: 6,
				max_per_request: U256::from(1_000_000u64),
				daily_budget: U256::from(1_000_000u64),
			}],
			payees: vec![],
		},
	);
	let mut payment = buyer.pay(&required, m2m_x402::clock::unix_now()).unwrap().payload;
	payment.accepted.amount = "1".into();
	let forged = ask(X402Request::paid("/reading", &payment));
	assert_eq!(forged.status, 402, "{forged:?}");
	assert!(forged.reason().is_some(), "{forged:?}");
	let unknown = ask(X402Request::unpaid("/nothing-here"));
	assert_eq!((unknown.status, unknown.error.as_deref()), (404, Some("not_found")));

	// The robot buys by device id: it was told neither the charger's address nor its PeerId.
	let out = robot.cli(&["pay", &format!("device:{charger_id}/reading")]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "pay over libp2p failed: {stderr}");
	assert!(stdout.contains("celsius"), "{stdout}");
	assert!(stderr.contains("paid 0.01 USDT (tx 0x"), "{stderr}");

	// The sale reaches the chain like an HTTP one, under the same resource id.
	eventually("the charger's receipt on-chain", Duration::from_secs(60), || {
		let out = charger.cli(&["receipts", "--format", "json"]);
		out.status.success()
			&& serde_json::from_slice::<serde_json::Value>(&out.stdout)
				.is_ok_and(|v| v["receipts"].as_array().is_some_and(|r| r.len() == 1))
	});
	let sold: serde_json::Value =
		serde_json::from_slice(&charger.cli(&["receipts", "--format", "json"]).stdout).unwrap();
	assert_eq!(sold["receipts"][0]["amount"], READING_PRICE.to_string());
	assert_eq!(sold["receipts"][0]["evidence"], "proven");
	// The charger's own record of the sale names the robot's device and PeerId (Noise-proven).
	let robot_id = net.device_id(&robot);
	let out = charger.cli(&["payments", "--format", "json"]);
	assert!(out.status.success(), "{}", text(&out).1);
	let payments: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
	let sale = &payments["payments"][0];
	assert_eq!((sale["role"].as_str(), sale["state"].as_str()), (Some("sell"), Some("settled")));
	assert_eq!(sale["counterparty_device"], robot_id, "{payments}");
	let robot_peer = PeerId::from_bytes(&robot.keys().peer_id()).unwrap();
	assert_eq!(sale["counterparty_peer"], robot_peer.to_string(), "{payments}");
	let table = text(&charger.cli(&["payments"])).0;
	println!("machine-agent payments:\n{table}");
	assert!(table.contains(&format!("#{robot_id}")), "{table}");

	// By multiaddr too, over QUIC; a multiaddr whose PeerId is no device is refused before
	// paying.
	let quic = m2m_e2e_tests::load::libp2p_addresses(&charger).1;
	let out = robot.cli(&["pay", &format!("{quic}/reading")]);
	assert!(out.status.success(), "pay over QUIC: {}", text(&out).1);
	let nobody = format!("/ip4/127.0.0.1/tcp/1/p2p/{}/reading", stranger.peer_id());
	let out = robot.cli(&["pay", &nobody]);
	assert!(!out.status.success());
	assert!(
		text(&out).1.contains("is not the key of an active registered device"),
		"{}",
		text(&out).1
	);
}

/// A metered stream between two agents on a dev node, paid from a channel on the chain's own
/// settlement contract: the EV streams kWh ticks from the meter by device id, 4 ticks a
/// voucher; it cancels after the sixth, mid-way through the second voucher, and both sides
/// hold exactly six ticks' charge, which the meter's claim moves on-chain.
#[test]
fn two_agents_stream_metered_units_and_a_cancel_mid_way_is_charged_exactly() {
	let net = Testnet::start(&["meter", "ev"]);
	let meter = net.device("meter", "//Alice");
	let ev = net.device("ev", "//Bob");
	configure(&meter, |c| {
		c.replace(
			"# What this device may spend",
			"[[services]]\npath = \"/kwh\"\nprice = \"0.01\"\ndescription = \"a kWh tick\"\n\
			 handler = \"sensor\"\nscheme = \"batch-settlement\"\nunits_per_voucher = 4\n\
			 unit_interval_ms = 500\n\n# What this device may spend",
		)
	});
	configure(&ev, |c| c.replace("requests_per_deposit = 100", "requests_per_deposit = 5"));
	let out = ev.cli(&["register"]);
	assert!(out.status.success(), "{}", text(&out).1);
	let (_daemon, _url) = meter.run();
	let meter_id = net.device_id(&meter);
	net.published(meter_id);

	let out = ev.cli(&["pay", &format!("device:{meter_id}/kwh"), "--units", "6"]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "stream over libp2p failed: {stderr}");
	assert_eq!(stdout.matches("celsius").count(), 6, "six units: {stdout}");
	assert!(
		stderr.contains("streamed 6 units in 2 intervals at 0.01 USDT each: paid 0.06 USDT"),
		"{stderr}"
	);
	let status: serde_json::Value = serde_json::from_str(&text(&ev.cli(&["status"])).0).unwrap();
	let bought = &status["channels"][0];
	assert_eq!(
		(bought["role"].as_str(), bought["charged"].as_str()),
		(Some("buy"), Some("0.06 USDT"))
	);
	let listed = text(&meter.cli(&["channels", "list"])).0;
	assert!(listed.contains("sell") && listed.contains("0.06 USDT"), "{listed}");

	// The meter claims what the stream delivered, not the second voucher's bound (0.08).
	let out = meter.cli(&["channels", "claim"]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "{stderr}");
	let claim: serde_json::Value = serde_json::from_str(&stdout).unwrap();
	assert_eq!(claim["claimed"][0]["amount"], "0.06 USDT", "{claim}");
	assert_eq!(claim["claimed"][0]["requests"], 2, "two vouchers: {claim}");
}

/// `kill -9` of the buyer while the seller holds its paid libp2p request: the signed payment
/// survives in the journal, and the next `pay` of the same target sends it again (never a new
/// signature) and is served, paid once.
#[test]
fn a_buyer_killed_mid_libp2p_purchase_resumes_without_re_signing() {
	let net = Testnet::start(&["p2p-seller", "p2p-buyer"]);
	let rt = runtime();
	let (upstream, arrived, release) = held_upstream(&rt, "/slow", "slow reading");
	let seller = net.device("p2p-seller", "//Alice");
	let buyer = net.device("p2p-buyer", "//Bob");
	configure(&seller, |c| {
		c.replace(
			"# What this device may spend",
			&format!(
				"[[services]]\npath = \"/slow\"\nprice = \"0.01\"\nhandler = \"proxy\"\ntarget = \"{}/slow\"\n\n# What this device may spend",
				upstream.url
			),
		)
	});
	assert!(buyer.cli(&["register"]).status.success());
	let (_daemon, url) = seller.run();
	let seller_id = net.device_id(&seller);
	net.published(seller_id);
	let target = format!("device:{seller_id}/slow");

	let mut purchase = buyer.spawn(&["pay", &target]);
	arrived.recv_timeout(Duration::from_secs(90)).expect("the paid request reached the handler");
	purchase.kill().unwrap(); // SIGKILL
	purchase.wait().unwrap();
	let status: serde_json::Value = serde_json::from_str(&text(&buyer.cli(&["status"])).0).unwrap();
	assert_eq!(status["purchases_in_flight"], 1, "the signed payment survived the kill: {status}");
	release.notify_one();
	eventually("the seller to settle", Duration::from_secs(60), || {
		let metrics = rt.block_on(async {
			reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
		});
		metrics.contains("m2m_payments{role=\"sell\",state=\"settled\"} 1")
	});

	let out = buyer.cli(&["pay", &target]);
	let (stdout, stderr) = text(&out);
	assert!(out.status.success(), "{stderr}");
	assert_eq!(stdout.trim(), "slow reading");
	assert!(stderr.contains("resuming an interrupted purchase"), "{stderr}");
	let status: serde_json::Value = serde_json::from_str(&text(&buyer.cli(&["status"])).0).unwrap();
	assert_eq!(
		(status["purchases_settled"].as_u64(), status["purchases_in_flight"].as_u64()),
		(Some(1), Some(0)),
		"paid once: {status}"
	);
}

/// A device rotates its libp2p key on-chain: a seller that serves registered devices only
/// serves the new key at once, and refuses the old one once its cached lookup expires
/// (`IDENTITY_TTL`, 15 s).
#[test]
fn a_rotated_peer_key_is_honoured_and_the_old_one_refused() {
	let net = Testnet::start(&["rot-charger", "rot-robot"]);
	let charger = net.device("rot-charger", "//Alice");
	let robot = net.device("rot-robot", "//Bob");
	configure(&charger, |c| c.replace("require_registered = false", "require_registered = true"));
	assert!(robot.cli(&["register"]).status.success());
	let (_daemon, _url) = charger.run();
	let charger_id = net.device_id(&charger);
	let robot_id = net.device_id(&robot);
	net.published(charger_id);
	let address = p2p_address(&charger);
	let charger_peer = peer_of(&address);
	let rt = runtime();
	let old_key = robot.keys().peer.to_bytes();
	let as_old = rt.block_on(probe(old_key, Limits::default()));
	let ask_as_old = || {
		rt.block_on(as_old.request(
			charger_peer,
			vec![address.clone()],
			X402Request::unpaid("/reading"),
		))
		.unwrap()
	};
	assert_eq!(ask_as_old().status, 402, "the registered key is served");

	let out = robot.cli(&["identity", "rotate-key", "peer"]);
	assert!(out.status.success(), "{}", text(&out).1);
	let status: serde_json::Value = serde_json::from_str(&text(&robot.cli(&["status"])).0).unwrap();
	let new_peer: PeerId = status["peer_id"].as_str().unwrap().parse().unwrap();
	assert_ne!(new_peer, as_old.peer_id(), "the keystore holds the new key");

	// The new key is served at once, and the sale is recorded under the same device.
	let out = robot.cli(&["pay", &format!("device:{charger_id}/reading")]);
	assert!(out.status.success(), "pay with the rotated key: {}", text(&out).1);
	let payments: serde_json::Value =
		serde_json::from_slice(&charger.cli(&["payments", "--format", "json"]).stdout).unwrap();
	assert_eq!(payments["payments"][0]["counterparty_device"], robot_id, "{payments}");
	assert_eq!(payments["payments"][0]["counterparty_peer"], new_peer.to_string());

	// The old key is refused once the seller's lookup of it expires.
	let mut last = None;
	eventually("the old key refused", Duration::from_secs(45), || {
		let answer = ask_as_old();
		let refused = answer.status == 403;
		last = Some(answer);
		refused
	});
	let refused = last.unwrap();
	assert_eq!(refused.error.as_deref(), Some("peer_not_registered"), "{refused:?}");
}
