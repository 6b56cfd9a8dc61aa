//! The catalogue sold and bought over libp2p (`/x402/1.0.0`), with peers bound to their
//! on-chain devices. Mapping only: the network is `m2m-p2p`'s, the sale the seller core's
//! ([`m2m_x402_seller::messages`]), the purchase the buyer core's
//! ([`m2m_x402_buyer::messages`]).
//!
//! - **Seller.** A request's PeerId is proven by Noise; it is looked up in the identity pallet
//!   (by PeerId), logged with the sale, and, with `[p2p] require_registered`, a peer that is
//!   no registered, active device is refused (`403 peer_not_registered`). A rotated key is
//!   honoured as soon as the chain says so: lookups are cached for [`IDENTITY_TTL`] only.
//! - **Buyer.** `device:<id>/<path>` is resolved on-chain to the device's PeerId (Noise then
//!   proves the peer dialled is that device), and its addresses to the device's published
//!   `p2p/addrs` attribute or, failing that, to what mDNS finds. A `/…/p2p/<PeerId>/<path>`
//!   target is checked the other way: the peer must be a registered device. Either way the
//!   buyer pays only offers whose `payTo` is that device's EVM address.

use std::{
	collections::{BTreeMap, HashMap},
	sync::{Arc, Mutex},
	time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use m2m_chain_client::{ChainClient, DeviceId, DeviceKeys, DeviceRecord};
use m2m_p2p::{Multiaddr, Node, PeerId, Protocol, Serve, ServeStream};
use m2m_x402::{
	libp2p::{status, stream::StreamFrame, X402Request, X402Response},
	v2::ResourceInfo,
};
use m2m_x402_buyer::messages::{MessageClient, Peer};
use m2m_x402_seller::{
	messages::{self, stream},
	Delivery, ProvenBuyer, Seller,
};
use subxt_signer::sr25519::Keypair;

use crate::{
	catalogue::{Entry, Failure, Producer, Product},
	config::P2p,
};

/// How long a PeerId's device lookup is trusted: a rotated key takes effect within it.
pub const IDENTITY_TTL: Duration = Duration::from_secs(15);

/// The device attribute under which an agent publishes where it listens (space-separated
/// multiaddrs, each ending in `/p2p/<PeerId>`).
pub const ADDRESSES_ATTRIBUTE: &str = "p2p/addrs";

/// How long `pay device:…` waits for mDNS when the chain lists no address.
const DISCOVERY_WAIT: Duration = Duration::from_secs(15);

/// The device's libp2p keypair: its registered ed25519 key.
pub fn keypair(keys: &DeviceKeys) -> m2m_p2p::Keypair {
	m2m_p2p::keypair(keys.peer.to_bytes())
}

/// How long a failed connection to the chain stands: lookups meanwhile fail at once, rather
/// than each request waiting on (and hammering) a chain that is down.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(5);

/// Devices by PeerId and by id, from the chain, cached briefly.
pub struct Identities {
	url: String,
	/// The connection, or why the last attempt failed and when.
	client: tokio::sync::Mutex<Result<ChainClient, Option<(String, Instant)>>>,
	peers: Mutex<HashMap<PeerId, (Option<DeviceId>, Instant)>>,
}

impl Identities {
	pub fn new(url: &str) -> Self {
		Self {
			url: url.into(),
			client: tokio::sync::Mutex::new(Err(None)),
			peers: Default::default(),
		}
	}

	async fn chain(&self) -> Result<ChainClient, String> {
		let mut client = self.client.lock().await;
		match &*client {
			Ok(connected) => return Ok(connected.clone()),
			Err(Some((error, at))) if at.elapsed() < RECONNECT_AFTER => return Err(error.clone()),
			Err(_) => {},
		}
		match ChainClient::connect(&self.url).await {
			Ok(connected) => {
				*client = Ok(connected.clone());
				Ok(connected)
			},
			Err(e) => {
				let error = format!(
					"cannot reach the chain at {}: {e} (next attempt in {} s)",
					self.url,
					RECONNECT_AFTER.as_secs()
				);
				*client = Err(Some((error.clone(), Instant::now())));
				Err(error)
			},
		}
	}

	/// Forgets the connection after an error, so the next lookup reconnects.
	async fn failed(&self) {
		*self.client.lock().await = Err(None);
	}

	/// The active device whose libp2p key is `peer`, if any.
	pub async fn device_of(&self, peer: &PeerId) -> Result<Option<DeviceId>, String> {
		if let Some((device, at)) = self.peers.lock().expect("identities lock").get(peer) {
			if at.elapsed() < IDENTITY_TTL {
				return Ok(*device);
			}
		}
		let chain = self.chain().await?;
		let found = match chain.device_by_peer(peer.to_bytes()).await {
			Ok(found) => found,
			Err(e) => {
				self.failed().await;
				return Err(format!("cannot look peer {peer} up on-chain: {e}"));
			},
		};
		let device = match found {
			Some(id) => match self.record(id).await? {
				Some(record) if is_active(&record) => Some(id),
				_ => None,
			},
			None => None,
		};
		self.peers.lock().expect("identities lock").insert(*peer, (device, Instant::now()));
		Ok(device)
	}

	/// A device's record.
	pub async fn record(&self, id: DeviceId) -> Result<Option<DeviceRecord>, String> {
		let chain = self.chain().await?;
		match chain.device(id).await {
			Ok(record) => Ok(record),
			Err(e) => {
				self.failed().await;
				Err(format!("cannot read device {id} on-chain: {e}"))
			},
		}
	}

	/// The addresses device `id` published, if any.
	pub async fn published_addresses(&self, id: DeviceId) -> Result<Vec<Multiaddr>, String> {
		let chain = self.chain().await?;
		let attributes = match chain.attributes(id).await {
			Ok(a) => a,
			Err(e) => {
				self.failed().await;
				return Err(format!("cannot read device {id}'s attributes: {e}"));
			},
		};
		Ok(attributes
			.into_iter()
			.find(|(name, _)| name == ADDRESSES_ATTRIBUTE.as_bytes())
			.map(|(_, value)| {
				String::from_utf8_lossy(&value)
					.split_whitespace()
					.filter_map(|a| a.parse().ok())
					.collect()
			})
			.unwrap_or_default())
	}
}

fn is_active(record: &DeviceRecord) -> bool {
	matches!(
		record.status,
		m2m_chain_client::runtime::runtime_types::pallet_device_identity::DeviceStatus::Active
	)
}

fn peer_of(record: &DeviceRecord) -> Result<PeerId, String> {
	PeerId::from_bytes(&record.peer_id.0)
		.map_err(|e| format!("the device's PeerId does not parse: {e}"))
}

/// The catalogue as a libp2p seller.
pub struct Market {
	pub seller: Arc<Seller>,
	pub entries: BTreeMap<String, Entry>,
	/// This device's PeerId, for the resources' names (`libp2p://<PeerId>/<path>`).
	pub me: PeerId,
	pub identities: Arc<Identities>,
	pub require_registered: bool,
}

impl Market {
	/// The buyer's device (by its PeerId, proven by Noise), logged; or the refusal of a peer
	/// this seller does not serve.
	async fn buyer_device(
		&self,
		peer: &PeerId,
		path: &str,
	) -> Result<Option<DeviceId>, X402Response> {
		let device = match self.identities.device_of(peer).await {
			Ok(device) => device,
			Err(e) if self.require_registered => {
				tracing::warn!(%peer, error = %e, "cannot check the buyer's device; refusing");
				return Err(X402Response::error(status::UNAVAILABLE, "identity_unavailable", format!("this seller serves registered devices only and cannot check yours now: {e}")));
			},
			Err(e) => {
				tracing::warn!(%peer, error = %e, "cannot check the buyer's device");
				None
			},
		};
		match device {
			Some(device) => tracing::info!(%peer, buyer_device = device, %path, "libp2p request"),
			None if self.require_registered => {
				tracing::warn!(%peer, %path, "refused: the peer is no registered device");
				return Err(X402Response::error(
					status::FORBIDDEN,
					"peer_not_registered",
					format!("peer {peer} is not the key of an active registered device; this seller serves registered devices only"),
				));
			},
			None => tracing::info!(%peer, %path, "libp2p request from an unregistered peer"),
		}
		Ok(device)
	}

	fn resource(&self, entry: &Entry, path: &str) -> ResourceInfo {
		ResourceInfo {
			url: format!("libp2p://{}{path}", self.me),
			description: Some(entry.description.clone()),
			mime_type: entry.producer.mime_type().map(str::to_string),
		}
	}
}

/// A producer's product as a delivery; its failure as the answer to give instead.
async fn produce(producer: Producer) -> Result<Delivery, X402Response> {
	match producer.produce().await {
		Ok(Product { mime_type, body }) => Ok(Delivery {
			body,
			metadata: mime_type
				.map(|m| vec![("content-type".to_string(), m.to_string())])
				.unwrap_or_default(),
			charge: None,
		}),
		Err(Failure::Unavailable(message)) => {
			Err(X402Response::error(status::UNAVAILABLE, "unavailable", message))
		},
		Err(Failure::Upstream { status: code, message }) => Err(X402Response::error(
			code.filter(|c| *c >= 400).unwrap_or(status::BAD_GATEWAY),
			"upstream_failed",
			message,
		)),
	}
}

#[async_trait::async_trait]
impl Serve for Market {
	async fn serve(&self, peer: PeerId, request: X402Request) -> X402Response {
		let (path, _) = request.path_and_query();
		let Some(entry) = self.entries.get(path) else {
			return X402Response::error(
				status::NOT_FOUND,
				"not_found",
				format!("nothing is sold at {path}"),
			);
		};
		let device = match self.buyer_device(&peer, path).await {
			Ok(device) => device,
			Err(refused) => return refused,
		};
		let resource = self.resource(entry, path);
		let producer = entry.producer.clone();
		messages::sell(
			&self.seller,
			ProvenBuyer { peer: peer.to_string(), device },
			&request,
			vec![entry.offer.clone()],
			resource,
			move |_| produce(producer),
		)
		.await
	}
}

#[async_trait::async_trait]
impl ServeStream for Market {
	async fn serve_stream(
		&self,
		peer: PeerId,
		mut requests: m2m_p2p::stream::SellerInbox,
		frames: tokio::sync::mpsc::Sender<StreamFrame>,
	) {
		let first = match requests.recv().await {
			Some(Ok(first)) => first,
			Some(Err(unreadable)) => {
				let _ = frames.send(StreamFrame::answer(unreadable)).await;
				return;
			},
			None => return,
		};
		let path = first.resource.clone().unwrap_or_default();
		let Some((entry, metered)) =
			self.entries.get(&path).and_then(|e| Some((e, e.metered.clone()?)))
		else {
			let _ = frames.send(stream::not_streamed(first.resource.as_deref())).await;
			return;
		};
		let device = match self.buyer_device(&peer, &path).await {
			Ok(device) => device,
			Err(refused) => {
				let _ = frames.send(StreamFrame::answer(refused)).await;
				return;
			},
		};
		let offer = stream::MeteredOffer {
			offer: metered.offer,
			meter: metered.meter,
			resource: self.resource(entry, &path),
		};
		let producer = entry.producer.clone();
		// One unit per tick of the meter, the first at once; a pause (waiting for a voucher)
		// delays the ticks after it rather than bursting them.
		let mut pace = tokio::time::interval(metered.unit_interval.max(Duration::from_millis(1)));
		pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
		let ticks = Arc::new(tokio::sync::Mutex::new(pace));
		let next_unit = move |_n: u64| {
			let (producer, ticks) = (producer.clone(), ticks.clone());
			async move {
				ticks.lock().await.tick().await;
				produce(producer).await.map(Some)
			}
		};
		let buyer = ProvenBuyer { peer: peer.to_string(), device };
		stream::sell_stream(&self.seller, buyer, first, requests, frames, offer, next_unit).await;
	}
}

/// Starts the device's libp2p node, selling `market` if given.
pub async fn start(
	config: &P2p,
	keys: &DeviceKeys,
	market: Option<Arc<Market>>,
	listen: bool,
) -> Result<Node> {
	let listen = match listen {
		true => config
			.listen
			.iter()
			.map(|a| a.parse().with_context(|| format!("[p2p] listen: {a:?} is not a multiaddr")))
			.collect::<Result<Vec<Multiaddr>>>()?,
		false => Vec::new(),
	};
	let node_config = m2m_p2p::Config {
		listen,
		mdns: config.mdns,
		mdns_interval: Duration::from_secs(config.mdns_interval_secs.max(1)),
		..Default::default()
	};
	let streams = market.clone().filter(|m| m.entries.values().any(|e| e.metered.is_some()));
	let serve = market.map(|m| m as Arc<dyn Serve>);
	let node = Node::start(keypair(keys), node_config, serve)
		.await
		.map_err(|e| anyhow::anyhow!("libp2p: {e}"))?;
	if let Some(market) = streams {
		node.serve_streams(market).map_err(|e| anyhow::anyhow!("libp2p: {e}"))?;
		tracing::info!(protocol = m2m_x402::libp2p::stream::PROTOCOL, "serving metered streams");
	}
	Ok(node)
}

/// Where a libp2p target leads: the peer to dial, the resource, and the device to pay.
pub struct Resolved {
	pub peer: Peer,
	pub resource: String,
	pub device: DeviceId,
	/// The device's EVM address: the only payee its offers may name.
	pub pay_to: String,
}

/// `true` for a target this module buys from (not an HTTP URL).
pub fn is_target(target: &str) -> bool {
	target.starts_with("device:") || target.starts_with('/')
}

/// Resolves `device:<id>/<path>` or `/…/p2p/<PeerId>/<path>`, binding the peer to its device.
pub async fn resolve(target: &str, node: &Node, identities: &Identities) -> Result<Resolved> {
	if let Some(rest) = target.strip_prefix("device:") {
		let (id, path) =
			rest.split_once('/').map(|(i, p)| (i, format!("/{p}"))).unwrap_or((rest, "/".into()));
		let id: DeviceId =
			id.parse().with_context(|| format!("{target:?}: {id:?} is not a device id"))?;
		let record = identities
			.record(id)
			.await
			.map_err(anyhow::Error::msg)?
			.with_context(|| format!("device {id} is not registered"))?;
		if !is_active(&record) {
			bail!("device {id} is suspended; not paying it");
		}
		let peer = peer_of(&record).map_err(anyhow::Error::msg)?;
		let mut addresses = identities.published_addresses(id).await.unwrap_or_else(|e| {
			tracing::warn!(error = %e, "cannot read the device's published addresses; trying mDNS");
			Vec::new()
		});
		// A published address is a claim, not proof: Noise checks the peer when it is dialled.
		addresses.retain(|a| a.iter().any(|p| p == Protocol::P2p(peer)));
		addresses.extend(node.addresses_of(&peer));
		if addresses.is_empty() {
			tracing::info!(device = id, %peer, "looking for the device on the LAN (mDNS)");
			addresses = node.discover(&peer, DISCOVERY_WAIT).await;
		}
		if addresses.is_empty() {
			bail!("device {id} (peer {peer}) published no address and was not found on the LAN within {DISCOVERY_WAIT:?}");
		}
		tracing::info!(device = id, %peer, addresses = ?addresses, "found the device");
		return Ok(Resolved {
			peer: Peer {
				peer: peer.to_string(),
				addresses: addresses.iter().map(|a| a.to_string()).collect(),
			},
			resource: path,
			device: id,
			pay_to: format!("0x{}", hex::encode(record.evm_address.0)),
		});
	}
	let (address, peer, path) = m2m_p2p::split_target(target).map_err(anyhow::Error::msg)?;
	let device =
		identities.device_of(&peer).await.map_err(anyhow::Error::msg)?.with_context(|| {
			format!("peer {peer} is not the key of an active registered device; not paying it")
		})?;
	let record = identities
		.record(device)
		.await
		.map_err(anyhow::Error::msg)?
		.with_context(|| format!("device {device} is gone"))?;
	Ok(Resolved {
		peer: Peer { peer: peer.to_string(), addresses: vec![address.to_string()] },
		resource: path,
		device,
		pay_to: format!("0x{}", hex::encode(record.evm_address.0)),
	})
}

/// The buying side over libp2p: the node, the client over the shared buyer, the directory.
#[derive(Clone)]
pub struct Buying {
	pub node: Node,
	pub client: MessageClient,
	pub identities: Arc<Identities>,
}

/// Publishes where `node` listens as the device's `p2p/addrs` attribute (signed by its
/// owner), once the device is registered, and whenever it changed. Without an owner key it
/// says so and does nothing: mDNS still finds the device on its LAN.
pub async fn publish_addresses(
	url: String,
	owner: Option<Keypair>,
	keys: Arc<DeviceKeys>,
	addresses: Vec<Multiaddr>,
) {
	let Some(owner) = owner else {
		tracing::info!("no owner key: this device's libp2p addresses are not published on-chain (mDNS finds it on the LAN)");
		return;
	};
	if addresses.is_empty() {
		return;
	}
	let value = addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
	let mut delay = Duration::from_secs(1);
	loop {
		match publish_once(&url, &owner, &keys, &value).await {
			Ok(true) => {
				tracing::info!(addresses = %value, "libp2p addresses published on-chain");
				return;
			},
			Ok(false) => return,
			Err(e) => tracing::debug!(error = %e, "libp2p addresses not published yet; retrying"),
		}
		tokio::time::sleep(delay).await;
		delay = (delay * 2).min(Duration::from_secs(30));
	}
}

/// `Ok(true)`: published now; `Ok(false)`: it already was.
async fn publish_once(url: &str, owner: &Keypair, keys: &DeviceKeys, value: &str) -> Result<bool> {
	let chain = ChainClient::connect(url).await?;
	let device = chain
		.device_by_account(&keys.account_id())
		.await?
		.context("the device is not registered yet")?;
	let current = chain.attributes(device).await?;
	if current.iter().any(|(n, v)| n == ADDRESSES_ATTRIBUTE.as_bytes() && v == value.as_bytes()) {
		return Ok(false);
	}
	chain.set_attribute(owner, device, ADDRESSES_ATTRIBUTE, value.as_bytes(), None).await?;
	Ok(true)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn the_libp2p_key_is_the_registered_peer_id() {
		let keys = DeviceKeys::dev("p2p-test");
		assert_eq!(keypair(&keys).public().to_peer_id().to_bytes(), keys.peer_id());
	}

	/// A chain that is down costs one connection attempt per [`RECONNECT_AFTER`], not one per
	/// libp2p request: lookups in between fail at once, with the same reason.
	#[tokio::test]
	async fn a_chain_that_is_down_is_not_dialled_for_every_lookup() {
		// A "chain" that accepts connections and closes them at once, counting them.
		let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
		let url = format!("ws://{}", listener.local_addr().unwrap());
		let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
		let counted = accepted.clone();
		let chain = tokio::spawn(async move {
			while let Ok((socket, _)) = listener.accept().await {
				counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
				drop(socket);
			}
		});
		let identities = Identities::new(&url);
		let peer = PeerId::random();
		let first = identities.device_of(&peer).await.unwrap_err();
		assert!(first.contains("cannot reach the chain"), "{first}");
		assert!(first.contains("next attempt in 5 s"), "{first}");
		for _ in 0..5 {
			assert_eq!(identities.device_of(&peer).await.unwrap_err(), first);
		}
		assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "one attempt");
		chain.abort();
	}

	#[test]
	fn targets_that_are_not_urls_go_over_libp2p() {
		assert!(is_target("device:3/kwh"));
		assert!(is_target("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW/kwh"));
		assert!(!is_target("http://127.0.0.1:8402/reading"));
	}
}
