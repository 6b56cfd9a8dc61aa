//! The `/x402/1.0.0` codec against any bytes a peer may send.
//!
//! A seller reads a request from the bytes, and a buyer a response. Neither may panic, and
//! neither may allocate for a length it will not read. What the seller reads is one of three
//! things: a dropped stream (EOF or a malformed length prefix), a precise refusal (`400` or
//! `413`), or a request. A request's payment goes through the same payment rules as HTTP's,
//! and the request re-encodes and reads back as itself. Small limits put the oversize paths
//! within the fuzzer's reach.

#![no_main]

use futures::{executor::block_on, io::Cursor};
use libfuzzer_sys::fuzz_target;
use libp2p::{request_response::Codec, StreamProtocol};
use m2m_p2p::codec::{Limits, Unreadable, X402Codec};
use m2m_x402::libp2p::PROTOCOL;

const LIMITS: Limits = Limits { request: 2048, response: 2048 };

fuzz_target!(|data: &[u8]| {
	let protocol = StreamProtocol::new(PROTOCOL);
	let mut codec = X402Codec { limits: LIMITS };

	match block_on(codec.read_request(&protocol, &mut Cursor::new(data))) {
		Err(_) => {},
		Ok(Err(Unreadable(answer))) => {
			assert!(matches!(answer.status, 400 | 413), "refused with {}", answer.status);
			assert!(answer.error.is_some() && answer.message.is_some(), "{answer:?}");
		},
		Ok(Ok(request)) => {
			let _ = request.read_payment();
			let _ = request.path_and_query();
			let mut wire = Vec::new();
			let sent =
				block_on(codec.write_request(&protocol, &mut Cursor::new(&mut wire), Ok(request.clone())));
			// Re-encoding may be longer than what was read (`1e5` becomes `100000.0`); then
			// it is refused before it is sent, never truncated.
			if sent.is_ok() {
				let back = block_on(codec.read_request(&protocol, &mut Cursor::new(&wire)))
					.expect("our own framing reads")
					.expect("our own request parses");
				assert_eq!(back, request);
			}
		},
	}

	if let Ok(response) = block_on(codec.read_response(&protocol, &mut Cursor::new(data))) {
		let _ = response.body_bytes();
		let _ = response.reason();
	}
});
