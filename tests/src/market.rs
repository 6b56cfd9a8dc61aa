//! A small x402 market on loopback: anvil with the testnet USDT, our facilitator, a seller's
//! axum app behind [`PaymentLayer`], and buyers with spending policies.
//!
//! Anvil runs as chain 84532 so that the offers have a v1 network name (`base-sepolia`) and
//! legacy v1 clients can pay too; nothing here talks to Base Sepolia itself.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{routing::get, Extension, Json, Router};
use m2m_evm::{
	alloy::{
		primitives::{Address, U256},
		providers::Provider,
	},
	dev, usdt,
	usdt::USDT,
};
use m2m_facilitator::{ChainLookup, Facilitator};
use m2m_x402::{
	libp2p::{status as libp2p_status, X402Request, X402Response},
	policy::{AssetAllowance, SpendingPolicy},
	schemes::{batch_settlement, exact},
	v2::{PaymentRequirements, ResourceInfo},
};
use m2m_x402_buyer::Buyer;
use m2m_x402_seller::{
	layer::{Paid, PaymentLayer, Price},
	messages, Delivery, ProvenBuyer, Seller,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::Anvil;

/// The chain id anvil runs as (see the module docs).
pub const CHAIN_ID: u64 = 84532;
/// The price of `/reading`: 0.01 USDT.
pub const READING_PRICE: u64 = 10_000;
/// USDT minted to each funded buyer: 100 USDT.
pub const FUNDS: u64 = 100 * usdt::UNIT;
/// Who is who, among the DEV accounts.
pub const BUYER: &str = "alith";
pub const SELLER: &str = "baltathar";
pub const SETTLER: &str = "charleth";
/// A DEV account that holds no USDT.
pub const BROKE: &str = "dorothy";

/// Anvil with USDT deployed and the buyer funded.
pub struct Market {
	pub anvil: Anvil,
	pub token: Address,
}

impl Market {
	/// Starts anvil (with `anvil_flags`) and deploys and funds USDT.
	pub async fn open(anvil_flags: &[&str]) -> Market {
		let mut flags = vec!["--chain-id", "84532"];
		flags.extend_from_slice(anvil_flags);
		let anvil = Anvil::start_with(&flags);
		let deployer = m2m_evm::connect(&anvil.url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
		let faith = dev::signer(dev::USDT_DEPLOYER).address();
		let token = usdt::find_or_deploy(&deployer, faith).await.unwrap().address();
		usdt::mint(&deployer, token, address(BUYER), U256::from(FUNDS)).await.unwrap();
		Market { anvil, token }
	}

	/// Our facilitator on this chain, settling as [`SETTLER`].
	pub async fn facilitator(&self, receipt_timeout: Duration) -> Arc<Facilitator> {
		self.facilitator_via(&self.anvil.url, receipt_timeout).await
	}

	/// Our facilitator reaching this chain through `rpc_url` (a fault-injecting proxy).
	pub async fn facilitator_via(
		&self,
		rpc_url: &str,
		receipt_timeout: Duration,
	) -> Arc<Facilitator> {
		let settler = dev::signer(SETTLER);
		let provider = m2m_evm::connect(rpc_url, None).unwrap();
		Arc::new(Facilitator::new(provider, settler, receipt_timeout).await.unwrap())
	}

	/// Finds settlements on this chain, for a seller resolving uncertain payments.
	pub fn lookup(&self) -> Arc<ChainLookup> {
		Arc::new(ChainLookup::new(m2m_evm::connect(&self.anvil.url, None).unwrap()))
	}

	/// An exact offer of `amount` USDT base units to [`SELLER`].
	pub fn offer(&self, amount: u64) -> PaymentRequirements {
		exact::requirements(
			CHAIN_ID,
			self.token,
			("Tether USD", "1"),
			address(SELLER),
			U256::from(amount),
			60,
		)
	}

	/// Puts the channel contracts at their canonical addresses on this market's anvil, then
	/// starts our facilitator (which looks for them once, at start), and returns it with a
	/// channel offer to [`SELLER`] of at most `max_price` a request, whose claims (and
	/// refunds) the facilitator authorizes.
	pub async fn channels(
		&self,
		receipt_timeout: Duration,
		max_price: u128,
	) -> (Arc<Facilitator>, batch_settlement::rules::Offer) {
		let provider = m2m_evm::connect(&self.anvil.url, None).unwrap();
		m2m_evm::channels::install_on_anvil(&provider).await.unwrap();
		let facilitator = self.facilitator(receipt_timeout).await;
		let offer = batch_settlement::rules::Offer {
			chain_id: CHAIN_ID,
			asset: self.token,
			token_domain: ("Tether USD".into(), "1".into()),
			pay_to: address(SELLER),
			receiver_authorizer: facilitator.signer(),
			withdraw_delay: 900,
			max_price,
			max_timeout_seconds: 60,
		};
		(facilitator, offer)
	}

	/// A policy allowing this chain's USDT, with a cap and a budget in base units.
	pub fn policy(&self, max_per_request: u64, daily_budget: u64) -> SpendingPolicy {
		SpendingPolicy {
			assets: vec![AssetAllowance {
				network: m2m_x402::network::caip2(CHAIN_ID),
				asset: self.token,
				symbol: "USDT".into(),
				decimals: 6,
				max_per_request: U256::from(max_per_request),
				daily_budget: U256::from(daily_budget),
			}],
			payees: vec![],
		}
	}

	/// [`BUYER`] with a policy that allows 1 USDT per request and 50 per day.
	pub fn buyer(&self) -> Buyer {
		Buyer::new(dev::signer(BUYER), self.policy(usdt::UNIT, 50 * usdt::UNIT))
	}

	/// The USDT balance of a DEV account.
	pub async fn balance(&self, who: &str) -> U256 {
		self.balance_of(address(who)).await
	}

	/// The USDT balance of `who`.
	pub async fn balance_of(&self, who: Address) -> U256 {
		let p = m2m_evm::connect(&self.anvil.url, None).unwrap();
		USDT::new(self.token, &p).balanceOf(who).call().await.unwrap()
	}

	/// Mints `amount` USDT base units to `to`.
	pub async fn mint(&self, to: Address, amount: u128) {
		let deployer =
			m2m_evm::connect(&self.anvil.url, Some(dev::signer(dev::USDT_DEPLOYER))).unwrap();
		usdt::mint(&deployer, self.token, to, U256::from(amount)).await.unwrap();
	}

	/// A channel's `(balance, totalClaimed)` in the settlement contract.
	pub async fn channel(&self, channel_id: m2m_evm::alloy::primitives::B256) -> (u128, u128) {
		let p = m2m_evm::connect(&self.anvil.url, None).unwrap();
		let contract =
			m2m_evm::channels::BatchSettlement::new(m2m_evm::channels::SETTLEMENT_ADDRESS, &p);
		let state = contract.channels(channel_id).call().await.unwrap();
		(state.balance, state.totalClaimed)
	}

	/// Stops mining blocks by itself: transactions then wait for [`Market::mine`].
	pub async fn stop_automine(&self) {
		let p = m2m_evm::connect(&self.anvil.url, None).unwrap();
		let () = p.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
	}

	/// Mines a block (after [`Market::stop_automine`]).
	pub async fn mine(&self) {
		let p = m2m_evm::connect(&self.anvil.url, None).unwrap();
		let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
	}

	/// The seller's app: `/reading` (0.01 USDT), `/broken` (paid, but the handler fails),
	/// `/energy?kwh=N` (0.01 USDT per kWh, priced per request) and `/free`.
	pub fn seller_app(&self, seller: Arc<Seller>) -> Router {
		let per_kwh = self.offer(READING_PRICE);
		let energy_price = Price::per_request(move |asked| {
			let kwh = kwh(asked.query);
			let mut offer = per_kwh.clone();
			offer.amount = (READING_PRICE * kwh).to_string();
			vec![offer]
		});
		Router::new()
			.route(
				"/reading",
				get(|Extension(paid): Extension<Paid>| async move {
					Json(serde_json::json!({"celsius": 21.5, "payer": paid.payer}))
				})
				.layer(
					PaymentLayer::new(seller.clone(), self.offer(READING_PRICE))
						.description("one temperature reading")
						.mime_type("application/json"),
				),
			)
			.route(
				"/broken",
				get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "sensor offline") })
					.layer(PaymentLayer::new(seller.clone(), self.offer(READING_PRICE))),
			)
			.route(
				"/energy",
				get(
					|uri: axum::http::Uri| async move { format!("{} kWh delivered", kwh(uri.query())) },
				)
				.layer(PaymentLayer::new(seller, energy_price)),
			)
			.route("/free", get(|| async { "free" }))
	}
}

/// The seller's `/reading` (0.01 USDT) over libp2p (`/x402/1.0.0`): the twin of
/// [`Market::seller_app`]'s route, sold through the message adapter of the same seller core.
pub struct ReadingOverLibp2p {
	pub seller: Arc<Seller>,
	pub offer: PaymentRequirements,
	/// The serving node's PeerId, for the resource's name.
	pub me: m2m_p2p::PeerId,
}

#[async_trait::async_trait]
impl m2m_p2p::Serve for ReadingOverLibp2p {
	async fn serve(&self, peer: m2m_p2p::PeerId, request: X402Request) -> X402Response {
		if request.path_and_query().0 != "/reading" {
			return X402Response::error(libp2p_status::NOT_FOUND, "not_found", "only /reading");
		}
		let resource = ResourceInfo {
			url: format!("libp2p://{}/reading", self.me),
			description: Some("one temperature reading".into()),
			mime_type: Some("application/json".into()),
		};
		let buyer = ProvenBuyer { peer: peer.to_string(), device: None };
		messages::sell(
			&self.seller,
			buyer,
			&request,
			vec![self.offer.clone()],
			resource,
			|paid| async move {
				let body = serde_json::json!({"celsius": 21.5, "payer": paid.payer});
				Ok(Delivery {
					body: serde_json::to_vec(&body).expect("JSON"),
					metadata: vec![("content-type".into(), "application/json".into())],
					charge: None,
				})
			},
		)
		.await
	}
}

impl Market {
	/// A libp2p node on a loopback port selling [`ReadingOverLibp2p`], with its address.
	pub async fn seller_node(&self, seller: Arc<Seller>) -> (m2m_p2p::Node, m2m_p2p::Multiaddr) {
		let key = m2m_p2p::Keypair::generate_ed25519();
		let me = key.public().to_peer_id();
		let serve = ReadingOverLibp2p { seller, offer: self.offer(READING_PRICE), me };
		let config = m2m_p2p::Config {
			listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")],
			..Default::default()
		};
		let node = m2m_p2p::Node::start(key, config, Some(Arc::new(serve))).await.unwrap();
		let address = node.listen_addresses()[0].clone();
		(node, address)
	}
}

/// `N` of the query `kwh=N`, 1 if absent.
fn kwh(query: Option<&str>) -> u64 {
	query.and_then(|q| q.strip_prefix("kwh=")).and_then(|n| n.parse().ok()).unwrap_or(1)
}

/// The EVM address of a DEV account.
pub fn address(who: &str) -> Address {
	dev::signer(who).address()
}

/// An axum app served on a free loopback port until dropped.
pub struct Server {
	pub url: String,
	pub addr: SocketAddr,
	stop: Option<oneshot::Sender<()>>,
	task: Option<JoinHandle<()>>,
}

impl Server {
	pub async fn start(app: Router) -> Server {
		let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
		let addr = listener.local_addr().unwrap();
		let (stop, stopped) = oneshot::channel::<()>();
		let task = tokio::spawn(async move {
			axum::serve(listener, app)
				.with_graceful_shutdown(async {
					let _ = stopped.await;
				})
				.await
				.unwrap();
		});
		Server { url: format!("http://{addr}"), addr, stop: Some(stop), task: Some(task) }
	}
}

impl Drop for Server {
	fn drop(&mut self) {
		let _ = self.stop.take().map(|s| s.send(()));
		if let Some(task) = self.task.take() {
			task.abort();
		}
	}
}

/// An upstream serving `body` at `path` that holds each request until `release` is notified,
/// telling `arrived` when one came in: to stop a purchase exactly inside the seller's handler.
pub fn held_upstream(
	rt: &tokio::runtime::Runtime,
	path: &str,
	body: &'static str,
) -> (Server, std::sync::mpsc::Receiver<()>, std::sync::Arc<tokio::sync::Notify>) {
	let (arrived_tx, arrived) = std::sync::mpsc::channel::<()>();
	let release = std::sync::Arc::new(tokio::sync::Notify::new());
	let held = release.clone();
	let arrived_tx = std::sync::Arc::new(std::sync::Mutex::new(arrived_tx));
	let app = axum::Router::new().route(
		path,
		axum::routing::get(move || {
			let held = held.clone();
			let _ = arrived_tx.lock().unwrap().send(());
			async move {
				held.notified().await;
				body
			}
		}),
	);
	(rt.block_on(Server::start(app)), arrived, release)
}
