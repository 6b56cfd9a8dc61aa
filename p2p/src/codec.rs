//! The request-response codec of `/x402/1.0.0`: each message is an unsigned-varint length,
//! then that many bytes of JSON ([`m2m_x402::libp2p::frame`]), with explicit size limits.
//!
//! libp2p's own JSON codec reads to the end of the stream and, past its limit, fails with an
//! `UnexpectedEof` that tells the buyer nothing. Here the length comes first, so:
//! - an oversize or malformed request is read as an [`Unreadable`] request, which the seller
//!   answers with `413 message_too_large` or `400 invalid_message`, never a dropped stream;
//! - a buyer refuses to send an oversize request, and to read an oversize response, saying
//!   which limit and by how much.

use std::io;

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{request_response, StreamProtocol};
use m2m_x402::libp2p::{
	frame, status, X402Request, X402Response, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
};

/// The largest messages each side reads and writes, in bytes of JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
	pub request: usize,
	pub response: usize,
}

impl Default for Limits {
	fn default() -> Self {
		Self { request: MAX_REQUEST_BYTES, response: MAX_RESPONSE_BYTES }
	}
}

/// A request as the seller read it: the message, or why it cannot be served (the answer to
/// send instead).
pub type Inbound = Result<X402Request, Unreadable>;

/// A request the seller could not read, answered with a precise error.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable(pub X402Response);

/// How much of an oversize request is read and discarded, so that a peer that writes its whole
/// request before reading can still read the answer. Beyond it the answer is sent anyway.
const DRAIN_LIMIT: u64 = 4 * MAX_REQUEST_BYTES as u64;

/// The `/x402/1.0.0` codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct X402Codec {
	pub limits: Limits,
}

pub(crate) async fn read_length<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<usize> {
	let mut prefix = Vec::with_capacity(frame::MAX_PREFIX);
	loop {
		let mut byte = [0u8; 1];
		io.read_exact(&mut byte).await?;
		prefix.push(byte[0]);
		match frame::read_prefix(&prefix) {
			Ok(Some((len, _))) => return Ok(len),
			Ok(None) => continue,
			Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
		}
	}
}

pub(crate) async fn write_framed<T: AsyncWrite + Unpin + Send>(
	io: &mut T,
	json: &[u8],
) -> io::Result<()> {
	io.write_all(&frame::prefix(json.len())).await?;
	io.write_all(json).await?;
	io.flush().await
}

#[async_trait]
impl request_response::Codec for X402Codec {
	type Protocol = StreamProtocol;
	type Request = Inbound;
	type Response = X402Response;

	async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Inbound>
	where
		T: AsyncRead + Unpin + Send,
	{
		let len = read_length(io).await?;
		if len > self.limits.request {
			// Discarded, not buffered: a bounded drain, then the answer.
			let _ = futures::io::copy(
				&mut io.take((len as u64).min(DRAIN_LIMIT)),
				&mut futures::io::sink(),
			)
			.await;
			return Ok(Err(Unreadable(X402Response::error(
				status::TOO_LARGE,
				"message_too_large",
				format!(
					"the request is {len} bytes; this seller reads requests of at most {} bytes",
					self.limits.request
				),
			))));
		}
		let mut json = vec![0u8; len];
		io.read_exact(&mut json).await?;
		Ok(serde_json::from_slice(&json).map_err(|e| {
			Unreadable(X402Response::error(
				status::BAD_REQUEST,
				"invalid_message",
				format!("the request is not an x402 libp2p request: {e}"),
			))
		}))
	}

	async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<X402Response>
	where
		T: AsyncRead + Unpin + Send,
	{
		let len = read_length(io).await?;
		if len > self.limits.response {
			return Err(io::Error::new(
				io::ErrorKind::InvalidData,
				format!(
					"the seller's response is {len} bytes, more than the {} this buyer reads",
					self.limits.response
				),
			));
		}
		let mut json = vec![0u8; len];
		io.read_exact(&mut json).await?;
		serde_json::from_slice(&json).map_err(|e| {
			io::Error::new(
				io::ErrorKind::InvalidData,
				format!("the seller's response is not an x402 libp2p response: {e}"),
			)
		})
	}

	async fn write_request<T>(
		&mut self,
		_: &StreamProtocol,
		io: &mut T,
		request: Inbound,
	) -> io::Result<()>
	where
		T: AsyncWrite + Unpin + Send,
	{
		let Ok(request) = request else {
			return Err(io::Error::new(
				io::ErrorKind::InvalidInput,
				"an unreadable request is not sent",
			));
		};
		let json = serde_json::to_vec(&request).expect("x402 messages always serialize");
		if json.len() > self.limits.request {
			return Err(io::Error::new(
				io::ErrorKind::InvalidInput,
				format!(
					"the request is {} bytes, more than the {} a seller reads; not sent",
					json.len(),
					self.limits.request
				),
			));
		}
		write_framed(io, &json).await
	}

	async fn write_response<T>(
		&mut self,
		_: &StreamProtocol,
		io: &mut T,
		response: X402Response,
	) -> io::Result<()>
	where
		T: AsyncWrite + Unpin + Send,
	{
		let mut json = serde_json::to_vec(&response).expect("x402 messages always serialize");
		if json.len() > self.limits.response {
			tracing::error!(
				bytes = json.len(),
				limit = self.limits.response,
				"response too large; answering 500"
			);
			let error = X402Response::error(
				status::INTERNAL,
				"response_too_large",
				format!(
					"the response is {} bytes, over the {}-byte limit",
					json.len(),
					self.limits.response
				),
			);
			json = serde_json::to_vec(&error).expect("x402 messages always serialize");
		}
		write_framed(io, &json).await
	}
}

#[cfg(test)]
mod tests {
	//! The codec over an in-memory duplex stream (no network: the framing is what is tested).
	use super::*;
	use libp2p::request_response::Codec;

	fn protocol() -> StreamProtocol {
		StreamProtocol::new(m2m_x402::libp2p::PROTOCOL)
	}

	async fn through(codec: &mut X402Codec, bytes: Vec<u8>) -> io::Result<Inbound> {
		codec.read_request(&protocol(), &mut futures::io::Cursor::new(bytes)).await
	}

	#[tokio::test]
	async fn a_request_reads_back_and_the_limits_answer_precisely() {
		let mut codec = X402Codec::default();
		let mut wire = Vec::new();
		let request = X402Request::unpaid("/reading");
		codec.write_request(&protocol(), &mut wire, Ok(request.clone())).await.unwrap();
		assert_eq!(wire[0] as usize, wire.len() - 1, "a one-byte length prefix, then the JSON");
		assert_eq!(through(&mut codec, wire).await.unwrap(), Ok(request));

		let mut small = X402Codec { limits: Limits { request: 16, response: 64 } };
		let big = X402Request::unpaid("/".repeat(100));
		let e =
			small.write_request(&protocol(), &mut Vec::new(), Ok(big.clone())).await.unwrap_err();
		assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
		assert!(e.to_string().contains("more than the 16 a seller reads"), "{e}");

		let mut wire = Vec::new();
		codec.write_request(&protocol(), &mut wire, Ok(big)).await.unwrap();
		let Err(Unreadable(answer)) = through(&mut small, wire).await.unwrap() else { panic!() };
		assert_eq!((answer.status, answer.error.as_deref()), (413, Some("message_too_large")));
		assert!(answer.message.unwrap().contains("at most 16 bytes"));

		let mut garbage = frame::prefix(5);
		garbage.extend_from_slice(b"{nope");
		let Err(Unreadable(answer)) = through(&mut codec, garbage).await.unwrap() else { panic!() };
		assert_eq!((answer.status, answer.error.as_deref()), (400, Some("invalid_message")));

		let e = through(&mut codec, vec![0x80]).await.unwrap_err();
		assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "a stream cut in the prefix");
	}

	#[tokio::test]
	async fn an_oversize_response_is_refused_by_the_buyer_with_the_limit() {
		let mut seller = X402Codec::default();
		let mut buyer = X402Codec { limits: Limits { request: 1024, response: 32 } };
		let mut wire = Vec::new();
		let answer = X402Response::delivered(&[7u8; 100], None);
		seller.write_response(&protocol(), &mut wire, answer.clone()).await.unwrap();
		let e = buyer
			.read_response(&protocol(), &mut futures::io::Cursor::new(wire.clone()))
			.await
			.unwrap_err();
		assert!(e.to_string().contains("more than the 32 this buyer reads"), "{e}");
		let back = seller.read_response(&protocol(), &mut futures::io::Cursor::new(wire)).await;
		assert_eq!(back.unwrap(), answer);
	}
}
