//! Metered streams (`/x402-stream/1.0.0`) on libp2p streams: each side's messages, framed as
//! on `/x402/1.0.0` (an unsigned-varint length, then JSON) with the same size limits, bridged
//! to channels of messages so that the seller's and the buyer's cores never see a socket.
//!
//! - The seller's side: [`ServeStream`] gets the buyer's messages (or, for one it could not
//!   read, the answer to give: `413 message_too_large`, `400 invalid_message`, after which
//!   nothing more is read) and a sender for its own.
//! - The buyer's side: [`crate::Node::open_stream`] gives a sender for its messages and the
//!   seller's messages, or why the stream failed.
//!
//! Dropping the sender closes the writing half; the stream ends when both halves are done.

use std::io;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use m2m_x402::libp2p::{
	status,
	stream::{StreamFrame, StreamRequest},
	X402Response,
};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use crate::codec::{read_length, write_framed, Limits};

/// The buyer's messages, as the seller reads them.
pub type SellerInbox = mpsc::Receiver<Result<StreamRequest, X402Response>>;
/// Where the buyer's messages go.
pub type BuyerOutbox = mpsc::Sender<StreamRequest>;
/// The seller's messages, as the buyer reads them.
pub type BuyerInbox = mpsc::Receiver<Result<StreamFrame, String>>;

/// Messages in flight per direction: a seller never runs more than this ahead of what the
/// transport has taken, so the units it charges are the units it handed over.
const QUEUE: usize = 1;

/// A seller's side of metered streams.
#[async_trait::async_trait]
pub trait ServeStream: Send + Sync + 'static {
	/// Serves one stream from `peer` (its PeerId proven by Noise): reads `requests`, writes
	/// `frames`. The stream closes when this returns.
	async fn serve_stream(
		&self,
		peer: PeerId,
		requests: SellerInbox,
		frames: mpsc::Sender<StreamFrame>,
	);
}

/// Why a message could not be read.
enum ReadError {
	/// The stream ended (cleanly, between messages, or cut).
	Closed(io::Error),
	/// Larger than the reader's limit: `(its length, the limit)`.
	TooLarge(usize, usize),
	/// Not the expected message.
	Malformed(serde_json::Error),
}

async fn read_message<T: DeserializeOwned>(
	io: &mut (impl futures::AsyncRead + Unpin + Send),
	limit: usize,
) -> Result<T, ReadError> {
	let len = read_length(io).await.map_err(ReadError::Closed)?;
	if len > limit {
		return Err(ReadError::TooLarge(len, limit));
	}
	let mut json = vec![0u8; len];
	io.read_exact(&mut json).await.map_err(ReadError::Closed)?;
	serde_json::from_slice(&json).map_err(ReadError::Malformed)
}

/// Writes each message of `outbox` until it closes (or a message is over `limit`, which is
/// logged and ends the writing), then closes the writing half.
async fn write_messages<T: Serialize>(
	mut io: impl futures::AsyncWrite + Unpin + Send,
	mut outbox: mpsc::Receiver<T>,
	limit: usize,
) {
	while let Some(message) = outbox.recv().await {
		let json = serde_json::to_vec(&message).expect("x402 messages always serialize");
		if json.len() > limit {
			tracing::error!(
				bytes = json.len(),
				limit,
				"a stream message over the limit; ending the stream"
			);
			break;
		}
		if let Err(e) = write_framed(&mut io, &json).await {
			tracing::debug!(error = %e, "a metered stream's peer is gone");
			return;
		}
	}
	let _ = io.close().await;
}

/// The seller's end of an inbound stream: its inbox and outbox, with the tasks that move them.
pub(crate) fn seller_side(
	stream: Stream,
	limits: Limits,
) -> (SellerInbox, mpsc::Sender<StreamFrame>) {
	let (reader, writer) = stream.split();
	let (frames, outbox) = mpsc::channel(QUEUE);
	let (requests, inbox) = mpsc::channel(QUEUE);
	tokio::spawn(write_messages(writer, outbox, limits.response));
	tokio::spawn(async move {
		let mut reader = reader;
		loop {
			let message = match read_message::<StreamRequest>(&mut reader, limits.request).await {
				Ok(request) => Ok(request),
				Err(ReadError::Closed(_)) => return,
				Err(ReadError::TooLarge(len, limit)) => Err(X402Response::error(
					status::TOO_LARGE,
					"message_too_large",
					format!("the message is {len} bytes; this seller reads messages of at most {limit} bytes"),
				)),
				Err(ReadError::Malformed(e)) => Err(X402Response::error(
					status::BAD_REQUEST,
					"invalid_message",
					format!("the message is not an x402 stream message: {e}"),
				)),
			};
			let last = message.is_err();
			if requests.send(message).await.is_err() || last {
				return;
			}
		}
	});
	(inbox, frames)
}

/// The buyer's end of an outbound stream.
pub(crate) fn buyer_side(stream: Stream, limits: Limits) -> (BuyerOutbox, BuyerInbox) {
	let (reader, writer) = stream.split();
	let (requests, outbox) = mpsc::channel(QUEUE);
	let (frames, inbox) = mpsc::channel(QUEUE);
	tokio::spawn(write_messages(writer, outbox, limits.request));
	tokio::spawn(async move {
		let mut reader = reader;
		loop {
			let message = match read_message::<StreamFrame>(&mut reader, limits.response).await {
				Ok(frame) => Ok(frame),
				// Between messages: the seller closed its side; the inbox ends.
				Err(ReadError::Closed(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return,
				Err(ReadError::Closed(e)) => Err(format!("the metered stream failed: {e}")),
				Err(ReadError::TooLarge(len, limit)) => Err(format!(
					"the seller's message is {len} bytes, more than the {limit} this buyer reads"
				)),
				Err(ReadError::Malformed(e)) => {
					Err(format!("the seller's message is not an x402 stream message: {e}"))
				},
			};
			let last = message.is_err();
			if frames.send(message).await.is_err() || last {
				return;
			}
		}
	});
	(requests, inbox)
}
