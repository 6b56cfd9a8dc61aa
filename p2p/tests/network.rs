//! Two real libp2p nodes on loopback (TCP with Noise and Yamux, and QUIC): discovery by mDNS,
//! requests served concurrently on one connection, and the failures a buyer must tell apart.

use std::{sync::Arc, time::Duration};

use m2m_p2p::{Config, Node, RequestError, Serve};
use m2m_x402::libp2p::{X402Request, X402Response};

/// Echoes the resource it was asked for, after `delay`, naming the peer that asked.
struct Echo {
	delay: Duration,
}

#[async_trait::async_trait]
impl Serve for Echo {
	async fn serve(&self, peer: m2m_p2p::PeerId, request: X402Request) -> X402Response {
		tokio::time::sleep(self.delay).await;
		X402Response::delivered(format!("{peer} {}", request.resource).as_bytes(), None)
	}
}

fn listening(mdns: bool) -> Config {
	Config {
		listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
		mdns,
		mdns_interval: Duration::from_secs(1),
		..Default::default()
	}
}

#[tokio::test(flavor = "multi_thread")]
async fn peers_find_each_other_by_mdns_and_the_seller_knows_who_asks() {
	let seller = Node::start(
		m2m_p2p::keypair([1; 32]),
		listening(true),
		Some(Arc::new(Echo { delay: Duration::ZERO })),
	)
	.await
	.unwrap();
	let buyer = Node::start(m2m_p2p::keypair([2; 32]), listening(true), None).await.unwrap();
	let found = buyer.discover(&seller.peer_id(), Duration::from_secs(30)).await;
	// mDNS reports the address it saw the answer come from (the LAN's), with the port the seller
	// listens on; the test's listeners are on loopback only, so it is dialled there.
	let listening = seller.listen_addresses()[0].clone();
	let port = |a: &m2m_p2p::Multiaddr| {
		a.iter().find_map(|p| match p {
			m2m_p2p::Protocol::Tcp(port) => Some(port),
			_ => None,
		})
	};
	assert!(found.iter().any(|a| port(a) == port(&listening)), "mDNS found the seller: {found:?}");
	let answer = buyer
		.request(seller.peer_id(), vec![listening], X402Request::unpaid("/reading"))
		.await
		.unwrap();
	assert_eq!(
		answer.body_bytes().unwrap(),
		format!("{} /reading", buyer.peer_id()).as_bytes(),
		"the PeerId Noise proved"
	);
}

/// A seller listening on TCP and QUIC serves over either; a buyer given only the QUIC address
/// is served over QUIC, with the same PeerId proven (QUIC's TLS carries the libp2p key).
#[tokio::test(flavor = "multi_thread")]
async fn the_same_seller_serves_over_tcp_and_over_quic() {
	let config = Config {
		listen: vec![
			"/ip4/127.0.0.1/tcp/0".parse().unwrap(),
			"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
		],
		..Default::default()
	};
	let seller = Node::start(
		m2m_p2p::keypair([5; 32]),
		config,
		Some(Arc::new(Echo { delay: Duration::ZERO })),
	)
	.await
	.unwrap();
	let is_quic = |a: &m2m_p2p::Multiaddr| a.iter().any(|p| matches!(p, m2m_p2p::Protocol::QuicV1));
	let quic: Vec<_> = seller.listen_addresses().iter().filter(|a| is_quic(a)).cloned().collect();
	let tcp: Vec<_> = seller.listen_addresses().iter().filter(|a| !is_quic(a)).cloned().collect();
	assert_eq!((quic.len(), tcp.len()), (1, 1), "{:?}", seller.listen_addresses());
	for (name, addresses) in [("QUIC", quic), ("TCP", tcp)] {
		let buyer = Node::start(m2m_p2p::keypair([6; 32]), Config::default(), None).await.unwrap();
		let answer = buyer
			.request(seller.peer_id(), addresses, X402Request::unpaid("/reading"))
			.await
			.unwrap_or_else(|e| panic!("over {name}: {e}"));
		assert_eq!(
			answer.body_bytes().unwrap(),
			format!("{} /reading", buyer.peer_id()).as_bytes(),
			"over {name}"
		);
	}
}

#[tokio::test(flavor = "multi_thread")]
async fn many_requests_share_one_connection_and_failures_say_whether_the_seller_may_have_acted() {
	let seller = Node::start(
		m2m_p2p::keypair([3; 32]),
		listening(false),
		Some(Arc::new(Echo { delay: Duration::from_millis(50) })),
	)
	.await
	.unwrap();
	let address = seller.listen_addresses()[0].clone();
	let buyer = Node::start(m2m_p2p::keypair([4; 32]), Config::default(), None).await.unwrap();
	let requests = (0..200).map(|i| {
		let buyer = buyer.clone();
		let address = address.clone();
		let peer = seller.peer_id();
		tokio::spawn(async move {
			buyer.request(peer, vec![address], X402Request::unpaid(format!("/r/{i}"))).await
		})
	});
	for (i, answer) in futures::future::join_all(requests).await.into_iter().enumerate() {
		let answer = answer.unwrap().unwrap();
		assert!(String::from_utf8(answer.body_bytes().unwrap())
			.unwrap()
			.ends_with(&format!("/r/{i}")));
	}

	// Nothing listens there: nothing was sent.
	let nowhere: m2m_p2p::Multiaddr =
		format!("/ip4/127.0.0.1/tcp/1/p2p/{}", seller.peer_id()).parse().unwrap();
	let stranger = Node::start(m2m_p2p::keypair([5; 32]), Config::default(), None).await.unwrap();
	let e = stranger
		.request(seller.peer_id(), vec![nowhere], X402Request::unpaid("/r"))
		.await
		.unwrap_err();
	assert!(matches!(e, RequestError::Dial { .. }) && !e.may_have_arrived(), "{e}");
	let e = stranger
		.request(m2m_p2p::keypair([9; 32]).public().to_peer_id(), vec![], X402Request::unpaid("/r"))
		.await
		.unwrap_err();
	assert!(matches!(e, RequestError::NoAddress(_)), "{e}");

	// A seller slower than the buyer's timeout: the request may have been acted on.
	let slow = Node::start(
		m2m_p2p::keypair([6; 32]),
		listening(false),
		Some(Arc::new(Echo { delay: Duration::from_secs(30) })),
	)
	.await
	.unwrap();
	let impatient = Node::start(
		m2m_p2p::keypair([7; 32]),
		Config { request_timeout: Duration::from_secs(1), ..Default::default() },
		None,
	)
	.await
	.unwrap();
	let e = impatient
		.request(slow.peer_id(), slow.listen_addresses().to_vec(), X402Request::unpaid("/r"))
		.await
		.unwrap_err();
	assert!(matches!(e, RequestError::Timeout(_)) && e.may_have_arrived(), "{e}");

	// An oversize request never leaves the buyer.
	let e = buyer
		.request(seller.peer_id(), vec![address], X402Request::unpaid("/".repeat(70_000)))
		.await
		.unwrap_err();
	assert!(matches!(e, RequestError::NotSent { .. }) && !e.may_have_arrived(), "{e}");
	assert!(e.to_string().contains("more than the 65536 a seller reads"), "{e}");
}

/// Echoes each stream message's resource back as a unit, until the buyer's side closes.
struct StreamEcho;

#[async_trait::async_trait]
impl m2m_p2p::ServeStream for StreamEcho {
	async fn serve_stream(
		&self,
		peer: m2m_p2p::PeerId,
		mut requests: m2m_p2p::stream::SellerInbox,
		frames: tokio::sync::mpsc::Sender<m2m_x402::libp2p::stream::StreamFrame>,
	) {
		use m2m_x402::libp2p::stream::StreamFrame;
		let mut n = 0;
		while let Some(message) = requests.recv().await {
			let frame = match message {
				Ok(request) => {
					n += 1;
					let body = format!("{peer} {}", request.resource.unwrap_or_default());
					StreamFrame::unit(n, body.as_bytes(), None)
				},
				Err(unreadable) => StreamFrame::answer(unreadable),
			};
			if frames.send(frame).await.is_err() {
				return;
			}
		}
	}
}

/// Metered streams' framing on a real connection: messages both ways in order on one stream,
/// an oversize buyer message answered `413` on the stream (then it ends), and a peer that
/// serves no streams told apart from one that cannot be reached.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_carries_messages_both_ways_and_refuses_oversize_ones_precisely() {
	use m2m_x402::libp2p::stream::{FrameKind, StreamRequest};
	let seller = Node::start(m2m_p2p::keypair([8; 32]), listening(false), None).await.unwrap();
	seller.serve_streams(Arc::new(StreamEcho)).unwrap();
	// A buyer that writes what our buyers refuse to (over 64 KiB), as another implementation may.
	let limits = m2m_p2p::codec::Limits { request: 1 << 20, ..Default::default() };
	let buyer =
		Node::start(m2m_p2p::keypair([9; 32]), Config { limits, ..Default::default() }, None)
			.await
			.unwrap();
	let address = seller.listen_addresses()[0].clone();

	let (requests, mut frames) =
		buyer.open_stream(seller.peer_id(), vec![address.clone()]).await.unwrap();
	for resource in ["/a", "/b", "/c"] {
		requests.send(StreamRequest::open(resource)).await.unwrap();
	}
	for (n, resource) in [(1, "/a"), (2, "/b"), (3, "/c")] {
		let frame = frames.recv().await.unwrap().unwrap();
		assert_eq!(frame.kind(), FrameKind::Unit(n));
		assert_eq!(
			frame.answer.body_bytes().unwrap(),
			format!("{} {resource}", buyer.peer_id()).as_bytes()
		);
	}
	requests.send(StreamRequest::open("/".repeat(70_000))).await.unwrap();
	let refused = frames.recv().await.unwrap().unwrap();
	assert_eq!(
		(refused.answer.status, refused.answer.error.as_deref()),
		(413, Some("message_too_large"))
	);
	drop(requests);
	assert!(frames.recv().await.is_none(), "the stream ends after an unreadable message");

	// A seller without streams, and nobody at all.
	let plain = Node::start(m2m_p2p::keypair([10; 32]), listening(false), None).await.unwrap();
	let e =
		buyer.open_stream(plain.peer_id(), plain.listen_addresses().to_vec()).await.unwrap_err();
	assert_eq!(e, RequestError::UnsupportedStreams(plain.peer_id()));
	let nobody = m2m_p2p::keypair([11; 32]).public().to_peer_id();
	let e = buyer
		.open_stream(nobody, vec![format!("/ip4/127.0.0.1/tcp/1/p2p/{nobody}").parse().unwrap()])
		.await
		.unwrap_err();
	assert!(matches!(e, RequestError::Dial { .. }), "{e}");
	assert_eq!(
		buyer.open_stream(nobody, vec![]).await.unwrap_err(),
		RequestError::NoAddress(nobody)
	);
}
