//! x402 over libp2p: the transport's network edge.
//!
//! - [`codec`]: the request-response codec of `/x402/1.0.0` (length-prefixed JSON, explicit
//!   size limits, oversize and malformed requests answered precisely);
//! - [`node`]: a swarm on TCP (with Noise and Yamux) and QUIC, identify, ping and mDNS,
//!   behind a small [`Node`] handle;
//! - [`stream`]: metered streams (`/x402-stream/1.0.0`), framed as the requests are, bridged
//!   to channels of messages;
//! - the buyer's [`MessageTransport`](m2m_x402_buyer::messages::MessageTransport) over it.
//!
//! The messages and their rules are pure, in [`m2m_x402::libp2p`]; the sale and the purchase
//! are the seller's and the buyer's cores ([`m2m_x402_seller::messages`],
//! [`m2m_x402_buyer::messages`]). The written specification is `docs/transports/libp2p.md`.

pub mod codec;
pub mod node;
pub mod stream;

pub use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId};
pub use node::{Config, Node, RequestError, Serve};
pub use stream::ServeStream;

use m2m_x402::libp2p::{X402Request, X402Response};
use m2m_x402_buyer::messages::{MessageTransport, Peer, TransportFailure};

/// The device's libp2p keypair from its ed25519 secret (the key registered on-chain).
pub fn keypair(ed25519_secret: [u8; 32]) -> Keypair {
	let mut secret = ed25519_secret;
	Keypair::ed25519_from_bytes(&mut secret).expect("any 32 bytes are an ed25519 secret")
}

/// Splits `/ip4/…/tcp/…/p2p/<PeerId>/<path>` into the peer's address (ending in `/p2p/…`),
/// its PeerId, and the resource path (`/<path>`).
pub fn split_target(target: &str) -> Result<(Multiaddr, PeerId, String), String> {
	let marker = "/p2p/";
	let at = target.find(marker).ok_or_else(|| {
		format!("{target:?} has no /p2p/<PeerId>: give the seller's full multiaddr, then the path")
	})?;
	let after = &target[at + marker.len()..];
	let (peer, path) = match after.find('/') {
		Some(i) => (&after[..i], &after[i..]),
		None => (after, "/"),
	};
	let peer: PeerId = peer.parse().map_err(|e| format!("{peer:?} is not a PeerId: {e}"))?;
	let address: Multiaddr = target[..at + marker.len() + peer.to_string().len()]
		.parse()
		.map_err(|e| format!("{target:?} is not a multiaddr: {e}"))?;
	Ok((address, peer, path.to_string()))
}

#[async_trait::async_trait]
impl MessageTransport for Node {
	async fn exchange(
		&self,
		to: &Peer,
		request: X402Request,
	) -> Result<X402Response, TransportFailure> {
		let peer: PeerId = to.peer.parse().map_err(|e| TransportFailure {
			message: format!("{:?} is not a PeerId: {e}", to.peer),
			may_have_arrived: false,
		})?;
		let addresses = to.addresses.iter().filter_map(|a| a.parse().ok()).collect();
		self.request(peer, addresses, request).await.map_err(|e| TransportFailure {
			may_have_arrived: e.may_have_arrived(),
			message: e.to_string(),
		})
	}

	async fn open_stream(
		&self,
		to: &Peer,
	) -> Result<(stream::BuyerOutbox, stream::BuyerInbox), TransportFailure> {
		let peer: PeerId = to.peer.parse().map_err(|e| TransportFailure {
			message: format!("{:?} is not a PeerId: {e}", to.peer),
			may_have_arrived: false,
		})?;
		let addresses = to.addresses.iter().filter_map(|a| a.parse().ok()).collect();
		Node::open_stream(self, peer, addresses)
			.await
			.map_err(|e| TransportFailure { may_have_arrived: false, message: e.to_string() })
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn a_target_splits_into_address_peer_and_path() {
		let peer = keypair([7; 32]).public().to_peer_id();
		let (address, id, path) =
			split_target(&format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}/energy?kwh=2")).unwrap();
		assert_eq!(address.to_string(), format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}"));
		assert_eq!((id, path.as_str()), (peer, "/energy?kwh=2"));
		let (_, _, path) = split_target(&format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}")).unwrap();
		assert_eq!(path, "/");
		assert!(split_target("/ip4/127.0.0.1/tcp/1/reading").unwrap_err().contains("no /p2p/"));
		assert!(split_target("/ip4/127.0.0.1/tcp/1/p2p/nope/x")
			.unwrap_err()
			.contains("not a PeerId"));
	}
}
