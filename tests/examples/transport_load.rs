//! Load script: paid requests per second over libp2p against HTTP, on the same agent, the same
//! load and the same machine, in one run. Prints figures; it fails only if a request is not
//! paid, or the money does not add up.
//!
//! One real `machine-agent` process sells `/reading` (`exact`, 0.01 USDT, settled on anvil by
//! its embedded facilitator) and `/kwh` (a channel, 0.0001 USDT a voucher) over HTTP and over
//! libp2p (`/x402/1.0.0`, on TCP with Noise and Yamux, and on QUIC). In-process buyers drive
//! the same closed loop over each transport, which take turns round by round (anvil slows as
//! its history grows, so none always runs last):
//!
//! - `exact`: `requests` purchases with `concurrency` in flight, one buyer key;
//! - vouchers: `buyers` channels (each opened with one deposit first, not timed), then
//!   `vouchers` voucher-paid requests on each, all channels at once.
//!
//! ```text
//! cargo build --release --workspace --examples
//! $CARGO_TARGET_DIR/release/examples/transport_load [requests] [concurrency] [vouchers] [buyers] [rounds]
//! ```

use std::sync::Arc;

use m2m_e2e_tests::{
	load::{
		drive, libp2p_addresses, median, selling_agent, unlimited_buyer, Figures, METERED_UNITS,
	},
	market::{Market, CHAIN_ID, READING_PRICE},
};
use m2m_evm::{
	alloy::{primitives::U256, signers::local::PrivateKeySigner},
	usdt,
};
use m2m_x402_buyer::{
	client::X402Client,
	messages::{MessageClient, Peer},
	Buyer,
};

/// The transports compared, HTTP first (the baseline of the ratios).
const TRANSPORTS: [&str; 3] = ["HTTP", "libp2p/TCP", "libp2p/QUIC"];

/// One buyer, over one transport.
#[derive(Clone)]
enum Client {
	Http { client: X402Client, base: String },
	Libp2p { client: Arc<MessageClient>, peer: Peer },
}

impl Client {
	async fn new(transport: &str, buyer: Buyer, url: &str, address: &m2m_p2p::Multiaddr) -> Self {
		match transport {
			"HTTP" => Client::Http { client: X402Client::new(buyer), base: url.into() },
			_ => {
				let node = m2m_p2p::Node::start(
					m2m_p2p::Keypair::generate_ed25519(),
					m2m_p2p::Config::default(),
					None,
				)
				.await
				.expect("a buyer node");
				let (_, peer, _) = m2m_p2p::split_target(&format!("{address}/x")).unwrap();
				let peer = Peer { peer: peer.to_string(), addresses: vec![address.to_string()] };
				Client::Libp2p {
					client: Arc::new(MessageClient::new(Arc::new(node), Arc::new(buyer))),
					peer,
				}
			},
		}
	}

	/// Buys `path` once (answered 200); the settlement's success, if one came with it.
	async fn buy(&self, path: &str) -> Option<bool> {
		match self {
			Client::Http { client, base } => {
				let paid = client.get(&format!("{base}{path}")).await.expect("a paid request");
				assert_eq!(paid.response.status(), 200);
				paid.settlement.map(|s| s.success)
			},
			Client::Libp2p { client, peer } => {
				let bought = client.get(path, peer, path, None).await.expect("a paid request");
				assert_eq!(bought.response.status, 200, "{:?}", bought.response);
				bought.settlement.map(|s| s.success)
			},
		}
	}

	fn charged(&self) -> u128 {
		let buyer = match self {
			Client::Http { client, .. } => client.buyer(),
			Client::Libp2p { client, .. } => client.buyer(),
		};
		buyer.channels().expect("channels")[0].charged
	}
}

#[tokio::main]
async fn main() {
	let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
	let requests = args.next().unwrap_or(300);
	let concurrency = args.next().unwrap_or(16);
	let vouchers = args.next().unwrap_or(250);
	let buyers = args.next().unwrap_or(8);
	let rounds = args.next().unwrap_or(3).max(1);
	if std::env::var("AGENT_LOG").is_err() {
		// The agent's per-request logs would be measured too.
		std::env::set_var("AGENT_LOG", "error");
	}
	let market = Market::open(&[]).await;
	let provider = m2m_evm::connect(&market.anvil.url, None).unwrap();
	m2m_evm::channels::install_on_anvil(&provider).await.unwrap();
	let (device, daemon, url) = selling_agent(&market.anvil.url, market.token, "transport").await;
	let (tcp, quic) = libp2p_addresses(&device);
	println!(
		"one machine-agent on anvil, over HTTP ({url}), libp2p on TCP ({tcp}) and on QUIC \
		 ({quic}); {rounds} rounds, the transports in turn"
	);
	println!(
		"exact: {requests} purchases, {concurrency} in flight; vouchers: {buyers} channels × \
		 {vouchers} requests, all at once"
	);

	let exact_buyer = PrivateKeySigner::random();
	market.mint(exact_buyer.address(), u128::from(usdt::UNIT) * 1_000).await;
	let mut exact: [Vec<f64>; 3] = Default::default();
	let mut metered: [Vec<f64>; 3] = Default::default();
	for round in 1..=rounds {
		// Each transport first, second and third in turn.
		let mut order = TRANSPORTS;
		order.rotate_left((round - 1) % TRANSPORTS.len());
		for transport in order {
			let slot = TRANSPORTS.iter().position(|t| *t == transport).expect("a transport");
			let address = if transport == "libp2p/QUIC" { &quic } else { &tcp };
			// exact: one buyer key, `concurrency` in flight.
			let buyer = unlimited_buyer(CHAIN_ID, market.token, exact_buyer.clone(), 1);
			let client = Client::new(transport, buyer, &url, address).await;
			// Warm-up: the connection and the facilitator's caches.
			run_exact(&client, concurrency, concurrency).await;
			// Counted on the buyer's side: the seller's balance also receives the claims of
			// earlier rounds' channels, which land while this round runs.
			let before = market.balance_of(exact_buyer.address()).await;
			let figures = run_exact(&client, requests, concurrency).await;
			let paid = before - market.balance_of(exact_buyer.address()).await;
			assert_eq!(paid, U256::from(READING_PRICE * requests as u64), "each paid once");
			figures.print(&format!("[{round}] exact over {transport}"));
			exact[slot].push(figures.per_second());

			// Vouchers: fresh channels, opened first.
			let mut clients = Vec::new();
			for _ in 0..buyers {
				let key = PrivateKeySigner::random();
				market.mint(key.address(), METERED_UNITS * (vouchers as u128 + 1)).await;
				let buyer = unlimited_buyer(CHAIN_ID, market.token, key, vouchers as u64 + 1);
				let client = Client::new(transport, buyer, &url, address).await;
				assert_eq!(client.buy("/kwh").await, Some(true), "the deposit settles");
				clients.push(client);
			}
			let figures = run_vouchers(&clients, vouchers).await;
			for client in &clients {
				assert_eq!(client.charged(), METERED_UNITS * (vouchers as u128 + 1));
			}
			figures.print(&format!("[{round}] vouchers over {transport}"));
			metered[slot].push(figures.per_second());
		}
	}
	let report = |name: &str, rates: &[Vec<f64>; 3]| {
		let http = &rates[0];
		let mut line = format!("{name}: HTTP {:.1} req/s", median(http.clone()));
		for (transport, libp2p) in TRANSPORTS.iter().zip(rates).skip(1) {
			let ratios: Vec<f64> = http.iter().zip(libp2p).map(|(h, l)| l / h).collect();
			let (lo, hi) =
				ratios.iter().fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
			line += &format!(
				"; {transport} {:.1} req/s, {:.2}× HTTP (range {lo:.2}–{hi:.2}×)",
				median(libp2p.clone()),
				median(ratios),
			);
		}
		println!("{line} (medians over the rounds)");
	};
	report("exact", &exact);
	report("vouchers", &metered);
	drop((daemon, device));
}

async fn run_exact(client: &Client, requests: usize, concurrency: usize) -> Figures {
	let client = client.clone();
	drive(requests, concurrency, move || {
		let client = client.clone();
		async move { assert_eq!(client.buy("/reading").await, Some(true)) }
	})
	.await
}

/// `vouchers` voucher-paid requests on each of `clients`' channels, the channels in parallel
/// (requests on one channel are serialized by the seller anyway).
async fn run_vouchers(clients: &[Client], vouchers: usize) -> Figures {
	let start = std::time::Instant::now();
	let workers: Vec<_> = clients
		.iter()
		.cloned()
		.map(|client| {
			tokio::spawn(async move {
				drive(vouchers, 1, move || {
					let client = client.clone();
					async move {
						client.buy("/kwh").await;
					}
				})
				.await
				.latencies
			})
		})
		.collect();
	let mut latencies = Vec::new();
	for w in workers {
		latencies.extend(w.await.unwrap());
	}
	Figures { requests: clients.len() * vouchers, elapsed: start.elapsed(), latencies }
}
