//! A libp2p node that serves and buys over `/x402/1.0.0`: TCP (with Noise and Yamux) and
//! QUIC, identify, ping, and mDNS discovery, driven on its own task. The rest of the program
//! talks to it through a [`Node`] handle: [`Node::request`] for a buyer, a [`Serve`] for a
//! seller.

use std::{
	collections::{HashMap, HashSet},
	sync::{Arc, Mutex},
	time::Duration,
};

use futures::{FutureExt, StreamExt};
use libp2p::{
	identify,
	identity::Keypair,
	mdns, noise, ping, request_response,
	swarm::{
		behaviour::toggle::Toggle,
		dial_opts::{DialOpts, PeerCondition},
		DialError, NetworkBehaviour, SwarmEvent,
	},
	tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use m2m_x402::libp2p::{stream::PROTOCOL as STREAM_PROTOCOL, X402Request, X402Response, PROTOCOL};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::{
	codec::{Limits, Unreadable, X402Codec},
	stream::{self as metered, BuyerInbox, BuyerOutbox, ServeStream},
};

/// How a node listens, discovers and waits.
#[derive(Clone, Debug)]
pub struct Config {
	/// Where to listen (`/ip4/0.0.0.0/tcp/8403`, `/ip4/0.0.0.0/udp/8403/quic-v1`); none for a
	/// buyer that only dials.
	pub listen: Vec<Multiaddr>,
	/// Find peers on the LAN with mDNS.
	pub mdns: bool,
	/// How often mDNS asks the LAN (libp2p's default is 5 minutes).
	pub mdns_interval: Duration,
	/// How long a request may take, settlement included: at least the offers'
	/// `maxTimeoutSeconds` (libp2p's default of 10 s is shorter than one settlement).
	pub request_timeout: Duration,
	/// A connection with nothing in flight closes after this long.
	pub idle_timeout: Duration,
	/// Concurrent requests per connection (streams beyond it are refused).
	pub max_concurrent_streams: usize,
	pub limits: Limits,
}

impl Default for Config {
	fn default() -> Self {
		Self {
			listen: Vec::new(),
			mdns: false,
			mdns_interval: Duration::from_secs(30),
			request_timeout: Duration::from_secs(120),
			idle_timeout: Duration::from_secs(60),
			max_concurrent_streams: 256,
			limits: Limits::default(),
		}
	}
}

/// A seller's side: answers one request from `peer` (its PeerId proven by Noise).
#[async_trait::async_trait]
pub trait Serve: Send + Sync + 'static {
	async fn serve(&self, peer: PeerId, request: X402Request) -> X402Response;
}

/// Why a request got no answer. Each says whether the seller may have acted on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
	#[error("cannot reach peer {peer}: {reason}")]
	Dial { peer: PeerId, reason: String },
	#[error("no address is known for peer {0} (give its multiaddr, or wait for discovery)")]
	NoAddress(PeerId),
	#[error("peer {0} does not speak {PROTOCOL}")]
	UnsupportedProtocol(PeerId),
	#[error("peer {0} serves no metered streams ({STREAM_PROTOCOL})")]
	UnsupportedStreams(PeerId),
	#[error(
		"no answer from peer {0} within the request timeout; it may have acted on the request"
	)]
	Timeout(PeerId),
	#[error(
		"the connection to peer {0} closed before its answer; it may have acted on the request"
	)]
	ConnectionClosed(PeerId),
	#[error("the request to peer {peer} failed: {reason}")]
	Io { peer: PeerId, reason: String },
	#[error("not sent to peer {peer}: {reason}")]
	NotSent { peer: PeerId, reason: String },
	#[error("the libp2p node has stopped")]
	Stopped,
}

impl RequestError {
	/// The request may have reached the seller (so its payment may have been taken).
	pub fn may_have_arrived(&self) -> bool {
		matches!(
			self,
			RequestError::Timeout(_) | RequestError::ConnectionClosed(_) | RequestError::Io { .. }
		)
	}
}

#[derive(NetworkBehaviour)]
struct Behaviour {
	x402: request_response::Behaviour<X402Codec>,
	streams: libp2p_stream::Behaviour,
	identify: identify::Behaviour,
	ping: ping::Behaviour,
	mdns: Toggle<mdns::tokio::Behaviour>,
}

enum Command {
	Request {
		peer: PeerId,
		addresses: Vec<Multiaddr>,
		request: X402Request,
		answer: Answer,
	},
	/// Be connected to `peer` (dialling `addresses`, or what discovery found).
	Connect {
		peer: PeerId,
		addresses: Vec<Multiaddr>,
		answer: Connected,
	},
}

/// Where the outcome of a [`Command::Connect`] goes.
type Connected = oneshot::Sender<Result<(), RequestError>>;

/// Peers' addresses, as mDNS and identify found them.
#[derive(Default)]
struct Directory {
	addresses: Mutex<HashMap<PeerId, HashSet<Multiaddr>>>,
	changed: Notify,
}

impl Directory {
	/// The addresses known for `peer` (none if discovery has not found it).
	fn of(&self, peer: &PeerId) -> Vec<Multiaddr> {
		let known = self.addresses.lock().expect("directory lock");
		known.get(peer).map(|a| a.iter().cloned().collect()).unwrap_or_default()
	}
}

/// A running node. Dropping every handle stops it.
#[derive(Clone)]
pub struct Node {
	peer_id: PeerId,
	listening: Vec<Multiaddr>,
	commands: mpsc::Sender<Command>,
	directory: Arc<Directory>,
	streams: libp2p_stream::Control,
	limits: Limits,
}

impl Node {
	/// Starts a node with `keypair` (the device's registered libp2p key), serving with `serve`
	/// if it sells. Returns once it listens on every address of `config.listen`.
	pub async fn start(
		keypair: Keypair,
		config: Config,
		serve: Option<Arc<dyn Serve>>,
	) -> Result<Node, String> {
		let peer_id = keypair.public().to_peer_id();
		let mdns_config =
			mdns::Config { query_interval: config.mdns_interval, ..Default::default() };
		let rr_config = request_response::Config::default()
			.with_request_timeout(config.request_timeout)
			.with_max_concurrent_streams(config.max_concurrent_streams);
		let codec = X402Codec { limits: config.limits };
		let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
			.with_tokio()
			.with_tcp(
				tcp::Config::default().nodelay(true),
				noise::Config::new,
				yamux::Config::default,
			)
			.map_err(|e| format!("cannot set up TCP with Noise and Yamux: {e}"))?
			.with_quic()
			.with_dns()
			.map_err(|e| format!("cannot set up DNS resolution: {e}"))?
			.with_behaviour(|key| {
				let mdns = match config.mdns {
					true => {
						Some(mdns::tokio::Behaviour::new(mdns_config, key.public().to_peer_id())?)
					},
					false => None,
				};
				Ok(Behaviour {
					x402: request_response::Behaviour::with_codec(
						codec,
						[(StreamProtocol::new(PROTOCOL), request_response::ProtocolSupport::Full)],
						rr_config,
					),
					streams: libp2p_stream::Behaviour::new(),
					identify: identify::Behaviour::new(
						identify::Config::new("/m2m-pay/1.0.0".into(), key.public())
							.with_agent_version(format!(
								"machine-agent/{}",
								env!("CARGO_PKG_VERSION")
							)),
					),
					ping: ping::Behaviour::new(ping::Config::new()),
					mdns: Toggle::from(mdns),
				})
			})
			.map_err(|e| format!("cannot start mDNS: {e}"))?
			.with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
			.build();
		let mut pending = HashSet::new();
		for address in &config.listen {
			let id = swarm
				.listen_on(address.clone())
				.map_err(|e| format!("cannot listen on {address}: {e}"))?;
			pending.insert(id);
		}
		// Wait for the concrete addresses (port 0 becomes a port; a wildcard one address per
		// interface) of every listener, TCP and QUIC alike, so they can be published.
		let mut listening = Vec::new();
		let mut take = |event: SwarmEvent<BehaviourEvent>, pending: &mut HashSet<_>| match event {
			SwarmEvent::NewListenAddr { listener_id, address } => {
				pending.remove(&listener_id);
				listening.push(address);
				Ok(())
			},
			SwarmEvent::ListenerError { error, .. }
			| SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
				Err(format!("cannot listen: {error}"))
			},
			_ => Ok(()),
		};
		while !pending.is_empty() {
			take(swarm.select_next_some().await, &mut pending)?;
		}
		// A wildcard's other interfaces are reported in the same burst.
		while let Some(Some(event)) = swarm.next().now_or_never() {
			take(event, &mut pending)?;
		}
		let listening = listening
			.into_iter()
			.map(|a| a.with_p2p(peer_id).expect("a listen address has no /p2p"))
			.collect();
		let (commands, receiver) = mpsc::channel(256);
		let directory = Arc::new(Directory::default());
		let streams = swarm.behaviour().streams.new_control();
		tokio::spawn(drive(swarm, receiver, serve, directory.clone()));
		Ok(Node { peer_id, listening, commands, directory, streams, limits: config.limits })
	}

	/// Serves metered streams (`/x402-stream/1.0.0`) with `serve`, each on its own task.
	pub fn serve_streams(&self, serve: Arc<dyn ServeStream>) -> Result<(), String> {
		let mut incoming = self
			.streams
			.clone()
			.accept(StreamProtocol::new(STREAM_PROTOCOL))
			.map_err(|_| format!("{STREAM_PROTOCOL} is served already"))?;
		let limits = self.limits;
		tokio::spawn(async move {
			while let Some((peer, stream)) = incoming.next().await {
				let serve = serve.clone();
				tokio::spawn(async move {
					let (requests, frames) = metered::seller_side(stream, limits);
					serve.serve_stream(peer, requests, frames).await;
				});
			}
		});
		Ok(())
	}

	/// Opens a metered stream to `peer`, dialling `addresses` (or what discovery found) if
	/// not connected: where the buyer's messages go, and the seller's messages.
	pub async fn open_stream(
		&self,
		peer: PeerId,
		addresses: Vec<Multiaddr>,
	) -> Result<(BuyerOutbox, BuyerInbox), RequestError> {
		let (answer, connected) = oneshot::channel();
		self.commands
			.send(Command::Connect { peer, addresses, answer })
			.await
			.map_err(|_| RequestError::Stopped)?;
		connected.await.map_err(|_| RequestError::Stopped)??;
		let stream = self
			.streams
			.clone()
			.open_stream(peer, StreamProtocol::new(STREAM_PROTOCOL))
			.await
			.map_err(|e| match e {
				libp2p_stream::OpenStreamError::UnsupportedProtocol(_) => {
					RequestError::UnsupportedStreams(peer)
				},
				e => RequestError::NotSent { peer, reason: e.to_string() },
			})?;
		Ok(metered::buyer_side(stream, self.limits))
	}

	pub fn peer_id(&self) -> PeerId {
		self.peer_id
	}

	/// Where this node listens, each ending in `/p2p/<its PeerId>`.
	pub fn listen_addresses(&self) -> &[Multiaddr] {
		&self.listening
	}

	/// Sends `request` to `peer`, dialling `addresses` (or what discovery found) if not
	/// connected.
	pub async fn request(
		&self,
		peer: PeerId,
		addresses: Vec<Multiaddr>,
		request: X402Request,
	) -> Result<X402Response, RequestError> {
		let (answer, answered) = oneshot::channel();
		self.commands
			.send(Command::Request { peer, addresses, request, answer })
			.await
			.map_err(|_| RequestError::Stopped)?;
		answered.await.map_err(|_| RequestError::Stopped)?
	}

	/// The addresses discovery knows for `peer`.
	pub fn addresses_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
		self.directory.of(peer)
	}

	/// Waits up to `timeout` for discovery to find `peer`; its addresses (none if it did not).
	pub async fn discover(&self, peer: &PeerId, timeout: Duration) -> Vec<Multiaddr> {
		let deadline = tokio::time::Instant::now() + timeout;
		loop {
			let changed = self.directory.changed.notified();
			let found = self.addresses_of(peer);
			if !found.is_empty() {
				return found;
			}
			if tokio::time::timeout_at(deadline, changed).await.is_err() {
				return Vec::new();
			}
		}
	}
}

/// The node's task: the swarm's events, the handle's commands, and the answers of inbound
/// requests being served.
async fn drive(
	mut swarm: Swarm<Behaviour>,
	mut commands: mpsc::Receiver<Command>,
	serve: Option<Arc<dyn Serve>>,
	directory: Arc<Directory>,
) {
	let mut pending = Pending::new();
	// Requests for a peer being dialled, sent once it is connected.
	let mut waiting: HashMap<PeerId, Vec<(X402Request, Answer)>> = HashMap::new();
	// The last dial error per peer, to say why a request could not be sent.
	let mut dial_errors: HashMap<PeerId, String> = HashMap::new();
	// Who waits for a connection to a peer (to open a stream).
	let mut connecting: HashMap<PeerId, Vec<Connected>> = HashMap::new();
	let (answers, mut answered) =
		mpsc::unbounded_channel::<(request_response::ResponseChannel<X402Response>, X402Response)>(
		);
	loop {
		tokio::select! {
			command = commands.recv() => {
				let (peer, mut addresses, request, answer) = match command {
					None => {
						tracing::debug!("every node handle is gone; stopping");
						return;
					},
					Some(Command::Connect { peer, addresses, answer }) => {
						connect(&mut swarm, &directory, &mut connecting, peer, addresses, answer);
						continue;
					},
					Some(Command::Request { peer, addresses, request, answer }) => {
						(peer, addresses, request, answer)
					},
				};
				if swarm.is_connected(&peer) {
					let id = swarm.behaviour_mut().x402.send_request(&peer, Ok(request));
					pending.insert(id, (peer, answer));
					continue;
				}
				// One dial per peer: request-response fails every request waiting for a peer
				// when any dial of it fails (even a second dial refused as redundant), so the
				// requests that come while it connects wait here.
				if let Some(queue) = waiting.get_mut(&peer) {
					queue.push((request, answer));
					continue;
				}
				if addresses.is_empty() {
					addresses = directory.of(&peer);
				}
				if addresses.is_empty() {
					let _ = answer.send(Err(RequestError::NoAddress(peer)));
					continue;
				}
				// Request-response dials them itself when the request is sent.
				for address in addresses {
					#[allow(deprecated)]
					swarm.behaviour_mut().x402.add_address(&peer, address);
				}
				let id = swarm.behaviour_mut().x402.send_request(&peer, Ok(request));
				pending.insert(id, (peer, answer));
				waiting.insert(peer, Vec::new());
			},
			Some((channel, response)) = answered.recv() => {
				if swarm.behaviour_mut().x402.send_response(channel, response).is_err() {
					tracing::warn!("a buyer disconnected before its answer was sent");
				}
			},
			event = swarm.select_next_some() => match event {
				SwarmEvent::Behaviour(BehaviourEvent::X402(event)) => {
					if let Some((peer, error)) = on_x402(&mut swarm, event, &mut pending, &serve, &answers, &mut dial_errors) {
						// The dial failed: so do the requests that waited for it.
						for (_, answer) in waiting.remove(&peer).unwrap_or_default() {
							let _ = answer.send(Err(error.clone()));
						}
					}
				},
				SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
					let mut known = directory.addresses.lock().expect("directory lock");
					for (peer, address) in found {
						tracing::debug!(%peer, %address, "found a peer on the LAN (mDNS)");
						known.entry(peer).or_default().insert(address);
					}
					drop(known);
					directory.changed.notify_waiters();
				},
				SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
					let mut known = directory.addresses.lock().expect("directory lock");
					for (peer, address) in gone {
						if let Some(addresses) = known.get_mut(&peer) {
							addresses.remove(&address);
						}
					}
				},
				SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
					tracing::debug!(peer = %peer_id, address = %endpoint.get_remote_address(), "connected");
					for answer in connecting.remove(&peer_id).unwrap_or_default() {
						let _ = answer.send(Ok(()));
					}
					for (request, answer) in waiting.remove(&peer_id).unwrap_or_default() {
						let id = swarm.behaviour_mut().x402.send_request(&peer_id, Ok(request));
						pending.insert(id, (peer_id, answer));
					}
				},
				SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
					tracing::debug!(%peer, %error, "dial failed");
					for answer in connecting.remove(&peer).unwrap_or_default() {
						let _ = answer.send(Err(RequestError::Dial { peer, reason: error.to_string() }));
					}
					dial_errors.insert(peer, error.to_string());
				},
				_ => {},
			},
		}
	}
}

/// Connects to `peer` for a stream: at once if connected, else once a dial of `addresses` (or
/// of what discovery found) succeeds or fails.
fn connect(
	swarm: &mut Swarm<Behaviour>,
	directory: &Directory,
	connecting: &mut HashMap<PeerId, Vec<Connected>>,
	peer: PeerId,
	mut addresses: Vec<Multiaddr>,
	answer: Connected,
) {
	if swarm.is_connected(&peer) {
		let _ = answer.send(Ok(()));
		return;
	}
	if addresses.is_empty() {
		addresses = directory.of(&peer);
	}
	if addresses.is_empty() {
		let _ = answer.send(Err(RequestError::NoAddress(peer)));
		return;
	}
	connecting.entry(peer).or_default().push(answer);
	let dial = DialOpts::peer_id(peer)
		.addresses(addresses)
		.condition(PeerCondition::DisconnectedAndNotDialing)
		.build();
	match swarm.dial(dial) {
		Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {},
		Err(e) => {
			for answer in connecting.remove(&peer).unwrap_or_default() {
				let _ = answer.send(Err(RequestError::Dial { peer, reason: e.to_string() }));
			}
		},
	}
}

/// Where a request's answer goes.
type Answer = oneshot::Sender<Result<X402Response, RequestError>>;

/// Requests sent, by id: the peer and where the answer goes.
type Pending = HashMap<request_response::OutboundRequestId, (PeerId, Answer)>;

fn on_x402(
	swarm: &mut Swarm<Behaviour>,
	event: request_response::Event<crate::codec::Inbound, X402Response>,
	pending: &mut Pending,
	serve: &Option<Arc<dyn Serve>>,
	answers: &mpsc::UnboundedSender<(
		request_response::ResponseChannel<X402Response>,
		X402Response,
	)>,
	dial_errors: &mut HashMap<PeerId, String>,
) -> Option<(PeerId, RequestError)> {
	use request_response::{Event, Message, OutboundFailure};
	match event {
		Event::Message { peer, message: Message::Request { request, channel, .. } } => {
			let request = match request {
				Ok(request) => request,
				Err(Unreadable(answer)) => {
					tracing::warn!(%peer, error = answer.error.as_deref().unwrap_or(""), "unreadable request refused");
					let _ = swarm.behaviour_mut().x402.send_response(channel, answer);
					return None;
				},
			};
			let Some(serve) = serve.clone() else {
				let answer = X402Response::error(404, "not_found", "this peer sells nothing");
				let _ = swarm.behaviour_mut().x402.send_response(channel, answer);
				return None;
			};
			let answers = answers.clone();
			tokio::spawn(async move {
				let response = serve.serve(peer, request).await;
				let _ = answers.send((channel, response));
			});
		},
		Event::Message { message: Message::Response { request_id, response }, .. } => {
			if let Some((_, answer)) = pending.remove(&request_id) {
				let _ = answer.send(Ok(response));
			}
		},
		Event::OutboundFailure { request_id, error, peer } => {
			let (_, answer) = pending.remove(&request_id)?;
			let error = match error {
				OutboundFailure::DialFailure => RequestError::Dial {
					peer,
					reason: dial_errors
						.remove(&peer)
						.unwrap_or_else(|| "every address failed".into()),
				},
				OutboundFailure::Timeout => RequestError::Timeout(peer),
				OutboundFailure::ConnectionClosed => RequestError::ConnectionClosed(peer),
				OutboundFailure::UnsupportedProtocols => RequestError::UnsupportedProtocol(peer),
				// The codec refuses to write what a seller would not read: it never left.
				OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
					RequestError::NotSent { peer, reason: e.to_string() }
				},
				OutboundFailure::Io(e) => RequestError::Io { peer, reason: e.to_string() },
			};
			let _ = answer.send(Err(error.clone()));
			if let RequestError::Dial { .. } = error {
				return Some((peer, error));
			}
		},
		Event::InboundFailure { peer, error, .. } => {
			tracing::debug!(%peer, %error, "an inbound request failed");
		},
		Event::ResponseSent { .. } => {},
	}
	None
}
