//! x402 over libp2p for buyers: the same purchase as [`crate::client`], carried by messages.
//!
//! A request goes out unpaid; a `402` answer's `paymentRequired` is paid through the
//! [`Buyer`] core (choose, count, sign, journal), sent once with the payment, and the answer
//! is concluded by the same rules as over HTTP (statuses have HTTP's meaning). The network is
//! behind [`MessageTransport`] (the libp2p node of `m2m-p2p`), so this module only maps.

use std::sync::Arc;

use m2m_x402::{
	libp2p::{X402Request, X402Response},
	v2::SettleResponse,
};
use serde::{Deserialize, Serialize};

use crate::{
	client::{begin_purchase, conclude_answer, paying_corrected, ClientError},
	purchase::answer_kind,
	Buyer, InFlight, Locator, Payment, SellerAnswer,
};

/// A seller reached by messages: its PeerId and, if known, its addresses (multiaddrs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
	pub peer: String,
	/// Where to dial it; empty when discovery (mDNS) finds it.
	pub addresses: Vec<String>,
}

/// Why a message got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportFailure {
	pub message: String,
	/// The request may have reached the seller (a timeout, a closed connection).
	pub may_have_arrived: bool,
}

/// Carries one request to a peer and brings its answer back, and opens metered streams.
#[async_trait::async_trait]
pub trait MessageTransport: Send + Sync {
	async fn exchange(
		&self,
		to: &Peer,
		request: X402Request,
	) -> Result<X402Response, TransportFailure>;

	/// Opens a metered stream to `to`: where the buyer's messages go, and the seller's
	/// messages in order (the receiver ends when the stream does).
	async fn open_stream(
		&self,
		to: &Peer,
	) -> Result<(stream::Requests, stream::Frames), TransportFailure> {
		Err(TransportFailure {
			message: format!("this transport cannot open a metered stream to {}", to.peer),
			may_have_arrived: false,
		})
	}
}

pub mod stream;

/// An answer, and what was paid for it (nothing, if the resource was free).
#[derive(Debug)]
pub struct Bought {
	pub response: X402Response,
	/// The resource (decoded from the answer's `body`).
	pub body: Vec<u8>,
	pub payment: Option<Payment>,
	pub settlement: Option<SettleResponse>,
}

/// A buyer over messages.
#[derive(Clone)]
pub struct MessageClient {
	transport: Arc<dyn MessageTransport>,
	buyer: Arc<Buyer>,
}

impl MessageClient {
	pub fn new(transport: Arc<dyn MessageTransport>, buyer: Arc<Buyer>) -> Self {
		Self { transport, buyer }
	}

	pub fn buyer(&self) -> &Buyer {
		&self.buyer
	}

	/// Asks `to` for `resource`, paying if asked to. `target` is how the buyer named it (kept
	/// with a payment in flight, to resume it by the same name). With `pay_to`, only offers
	/// paying that address are considered: the peer's own device, when the buyer knows it.
	pub async fn get(
		&self,
		target: &str,
		to: &Peer,
		resource: &str,
		pay_to: Option<&str>,
	) -> Result<Bought, ClientError> {
		let first = self.exchange(to, X402Request::unpaid(resource)).await?;
		let Some(required) = first.payment_required.clone().filter(|_| first.status == 402) else {
			if first.status == 402 {
				return Err(ClientError::Transport(
					"the seller answered 402 without paymentRequired".into(),
				));
			}
			let body = first.body_bytes().map_err(ClientError::Transport)?;
			return Ok(Bought { response: first, body, payment: None, settlement: None });
		};
		let mut required = required;
		if let Some(expected) = pay_to {
			let offered: Vec<String> = required.accepts.iter().map(|o| o.pay_to.clone()).collect();
			required.accepts.retain(|o| o.pay_to.eq_ignore_ascii_case(expected));
			if required.accepts.is_empty() {
				return Err(ClientError::WrongPayee { expected: expected.into(), offered });
			}
		}
		let locator = Locator::Libp2p {
			target: target.to_string(),
			peer: to.peer.clone(),
			addresses: to.addresses.clone(),
			resource: resource.to_string(),
		};
		paying_corrected(required, |required| {
			let locator = locator.clone();
			async move {
				let flight =
					begin_purchase(&self.buyer, &required, m2m_x402::X402_VERSION, locator).await?;
				self.send(flight).await
			}
		})
		.await
	}

	/// Sends a payment in flight again, exactly as it was signed (after a crash, typically).
	pub async fn resume(&self, flight: InFlight) -> Result<Bought, ClientError> {
		if !matches!(flight.locator, Locator::Libp2p { .. }) {
			return Err(ClientError::Transport(format!(
				"{} is not a libp2p purchase; resume it with its own transport",
				flight.locator.describe()
			)));
		}
		tracing::info!(to = %flight.locator.describe(), price = %flight.payment.price, "resuming a payment in flight");
		self.send(flight).await
	}

	async fn send(&self, flight: InFlight) -> Result<Bought, ClientError> {
		let Locator::Libp2p { peer, addresses, resource, .. } = &flight.locator else {
			unreachable!("only libp2p purchases are sent here")
		};
		let to = Peer { peer: peer.clone(), addresses: addresses.clone() };
		self.buyer.sending(&flight);
		// No answer leaves the payment in flight: only a resume, never a new signature, follows.
		let answer =
			self.exchange(&to, X402Request::paid(resource, &flight.payment.payload)).await?;
		let (read, required) = read_answer(&answer);
		conclude_answer(&self.buyer, &flight, &read, required)?;
		let body = answer.body_bytes().map_err(ClientError::Transport)?;
		let settlement = answer.payment_response.clone();
		Ok(Bought { response: answer, body, payment: Some(flight.payment), settlement })
	}

	async fn exchange(&self, to: &Peer, request: X402Request) -> Result<X402Response, ClientError> {
		self.transport.exchange(to, request).await.map_err(|f| ClientError::Transport(f.message))
	}
}

/// The seller's answer in the core's terms, and a 402's requirements.
fn read_answer(response: &X402Response) -> (SellerAnswer, Option<m2m_x402::v2::PaymentRequired>) {
	let settlement = response.payment_response.clone().map(Ok);
	let kind = answer_kind(response.status, settlement.is_some(), response.reason());
	let required = response.payment_required.clone().filter(|_| response.status == 402);
	(SellerAnswer { kind, settlement }, required)
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::AnswerKind;
	use m2m_x402::libp2p::status;

	#[test]
	fn answers_read_as_over_http() {
		let conflict = X402Response::error(status::CONFLICT, "payment_id_conflict", "in use");
		let (read, required) = read_answer(&conflict);
		assert_eq!(
			read.kind,
			AnswerKind::Conflict { message: "payment_id_conflict: in use".into() }
		);
		assert!(required.is_none());
		let failed = X402Response::error(500, "unavailable", "no sensor");
		assert_eq!(read_answer(&failed).0.kind, AnswerKind::NotServed { status: 500 });
		let (delivered, _) = read_answer(&X402Response::delivered(b"1", None));
		assert_eq!((delivered.kind, delivered.settlement), (AnswerKind::Delivered, None));
	}
}
