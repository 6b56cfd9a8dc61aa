//! Metered streams for buyers (`/x402-stream/1.0.0`, [`m2m_x402::libp2p::stream`]): units of
//! a service on one stream, each interval paid by one voucher through the [`crate::Buyer`]
//! core, exactly as a request paid from a channel.
//!
//! Per interval the buyer signs and journals a voucher (`charged + amount`, the interval's
//! bound), writes it on the stream, counts the units that come back, and concludes the
//! interval's close by the same rules as any channel answer. It then checks what only a stream
//! can break: the interval was charged exactly the units it received, and the stream's `end`
//! adds up. A seller that breaks either is paid no more from that channel.

use m2m_x402::{
	libp2p::stream::{FrameKind, Meter, StreamEnd, StreamFrame, StreamRequest},
	schemes::batch_settlement::payload::ChargeExtra,
	v2::PaymentRequired,
};
use tokio::sync::mpsc;

use super::{read_answer, MessageClient, Peer};
use crate::{
	client::{begin_purchase, conclude_answer, ClientError},
	Locator,
};

/// Where a buyer's messages go on an open stream.
pub type Requests = mpsc::Sender<StreamRequest>;

/// The seller's messages, in order; an error when the stream failed (then it ends).
pub type Frames = mpsc::Receiver<Result<StreamFrame, String>>;

/// What a metered stream brought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streamed {
	/// Units received.
	pub units: u64,
	/// What they were charged, in base units: exactly `units × unitPrice`.
	pub charged: u128,
	/// Vouchers paid (one per interval).
	pub intervals: u64,
	pub meter: Meter,
	/// The seller's own account of the stream.
	pub end: Option<StreamEnd>,
}

/// The scheme a metered stream is paid in.
const CHANNEL_SCHEME: &str = "batch-settlement";

impl MessageClient {
	/// Streams `resource` from `to`, paying interval by interval from a channel, until
	/// `wanted` units arrived (then it cancels: the last interval is charged only what it
	/// delivered) or the seller ends the stream. `on_unit` sees each unit (its number and
	/// bytes) as it arrives. `target` and `pay_to` are as for [`MessageClient::get`].
	pub async fn stream(
		&self,
		target: &str,
		to: &Peer,
		resource: &str,
		pay_to: Option<&str>,
		wanted: u64,
		mut on_unit: impl FnMut(u64, &[u8]) + Send,
	) -> Result<Streamed, ClientError> {
		let (requests, mut frames) =
			self.transport.open_stream(to).await.map_err(|f| ClientError::Transport(f.message))?;
		send(&requests, StreamRequest::open(resource)).await?;
		let first = next_frame(&mut frames).await?;
		let (mut required, meter) = priced(first, pay_to)?;
		let locator = Locator::Libp2p {
			target: target.to_string(),
			peer: to.peer.clone(),
			addresses: to.addresses.clone(),
			resource: resource.to_string(),
		};
		let mut got = Streamed { units: 0, charged: 0, intervals: 0, meter, end: None };
		let mut cancelled = wanted == 0;
		let mut corrected = false;
		while !cancelled {
			let flight =
				begin_purchase(&self.buyer, &required, m2m_x402::X402_VERSION, locator.clone())
					.await?;
			self.buyer.sending(&flight);
			send(&requests, StreamRequest::paid(&flight.payment.payload)).await?;
			// The interval's units, then its close.
			let mut received = 0;
			let close = loop {
				let frame = next_frame(&mut frames).await?;
				match frame.kind() {
					FrameKind::Unit(n) => {
						received += 1;
						got.units += 1;
						let body = frame.answer.body_bytes().map_err(ClientError::Transport)?;
						on_unit(n, &body);
						if got.units >= wanted && !cancelled {
							cancelled = true;
							send(&requests, StreamRequest::cancel()).await?;
						}
					},
					FrameKind::Interval(_) | FrameKind::Answer | FrameKind::End(_) => break frame,
				}
			};
			let (read, refused) = read_answer(&close.answer);
			match conclude_answer(&self.buyer, &flight, &read, refused) {
				Err(ClientError::ChannelOutOfStep { required: again, .. }) if !corrected => {
					tracing::info!("the seller corrected the channel's state; paying from it");
					corrected = true;
					required = *again;
					continue;
				},
				other => other?,
			}
			corrected = false;
			let FrameKind::Interval(units) = close.kind() else {
				return Err(ClientError::Transport(format!(
					"the seller answered a voucher with status {} and no interval close",
					close.answer.status
				)));
			};
			let charged = interval_charge(&close, units, received, &meter).map_err(|why| {
				self.buyer.stop_channel(&flight, why.clone());
				ClientError::MeterMismatch(why)
			})?;
			got.charged += charged;
			got.intervals += 1;
			if units < meter.units_per_voucher {
				// Cut short: cancelled, or the seller has no more.
				break;
			}
		}
		if !cancelled {
			// The seller stopped before the buyer had enough: tell it the buyer is done too.
			let _ = requests.send(StreamRequest::cancel()).await;
		}
		// The seller's account, which must be the buyer's.
		loop {
			let frame = next_frame(&mut frames).await?;
			match frame.kind() {
				FrameKind::End(end) => {
					if (end.units, end.charged) != (got.units, got.charged) {
						return Err(ClientError::MeterMismatch(format!(
							"the seller ended the stream at {} units for {}; this buyer received {} \
							 and was charged {}",
							end.units, end.charged, got.units, got.charged
						)));
					}
					got.end = Some(end);
					return Ok(got);
				},
				FrameKind::Unit(n) => {
					tracing::warn!(unit = n, "a unit after the interval closed; ignored, not paid")
				},
				FrameKind::Interval(_) | FrameKind::Answer => {},
			}
		}
	}
}

/// The seller's first answer: a `402` with its channel offer (filtered to `pay_to`) and meter.
// The purchase's one error type, as `conclude_answer` returns it.
#[allow(clippy::result_large_err)]
fn priced(
	first: StreamFrame,
	pay_to: Option<&str>,
) -> Result<(PaymentRequired, Meter), ClientError> {
	let reason = first.answer.reason();
	let (Some(mut required), Some(meter)) = (first.answer.payment_required, first.meter) else {
		return Err(ClientError::Transport(format!(
			"the seller does not offer a metered stream (status {}{})",
			first.answer.status,
			reason.map(|r| format!(": {r}")).unwrap_or_default()
		)));
	};
	let offered: Vec<String> = required.accepts.iter().map(|o| o.pay_to.clone()).collect();
	required.accepts.retain(|o| {
		o.scheme == CHANNEL_SCHEME && pay_to.is_none_or(|p| o.pay_to.eq_ignore_ascii_case(p))
	});
	if required.accepts.is_empty() {
		return match pay_to {
			Some(expected) => Err(ClientError::WrongPayee { expected: expected.into(), offered }),
			None => Err(ClientError::Transport(
				"the seller offers no payment channel for its stream".into(),
			)),
		};
	}
	if meter.units_per_voucher == 0 {
		return Err(ClientError::MeterMismatch(
			"the seller's meter covers 0 units per voucher".into(),
		));
	}
	Ok((required, meter))
}

/// An interval's charge, checked: the seller counted the units this buyer received, and
/// charged exactly them.
fn interval_charge(
	close: &StreamFrame,
	units: u64,
	received: u64,
	meter: &Meter,
) -> Result<u128, String> {
	if units != received {
		return Err(format!(
			"the seller closed an interval of {units} units; this buyer received {received}"
		));
	}
	let extra = close
		.answer
		.payment_response
		.as_ref()
		.and_then(|s| s.extra.clone())
		.ok_or("the interval's close carries no charge")?;
	let charge: ChargeExtra = serde_json::from_value(extra)
		.map_err(|e| format!("the interval's charge is malformed: {e}"))?;
	let charged = charge.charged_amount.parse::<u128>().map_err(|_| {
		format!("the interval's chargedAmount {:?} is not an amount", charge.charged_amount)
	})?;
	meter.check_interval(received, charged)?;
	Ok(charged)
}

async fn send(requests: &Requests, request: StreamRequest) -> Result<(), ClientError> {
	requests
		.send(request)
		.await
		.map_err(|_| ClientError::Transport("the stream to the seller closed".into()))
}

async fn next_frame(frames: &mut Frames) -> Result<StreamFrame, ClientError> {
	match frames.recv().await {
		Some(Ok(frame)) => Ok(frame),
		Some(Err(why)) => Err(ClientError::Transport(why)),
		None => {
			Err(ClientError::Transport("the seller closed the stream without ending it".into()))
		},
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use m2m_x402::libp2p::X402Response;

	fn close(charged: &str, units: u64) -> StreamFrame {
		let settlement = m2m_x402::v2::SettleResponse {
			success: true,
			error_reason: None,
			error_message: None,
			transaction: String::new(),
			network: "eip155:33380".into(),
			payer: None,
			amount: Some(String::new()),
			extensions: None,
			extra: Some(serde_json::json!({
				"chargedAmount": charged,
				"channelState": {"channelId": "0x01", "balance": "1", "totalClaimed": "0",
					"withdrawRequestedAt": 0, "refundNonce": "0"}
			})),
		};
		StreamFrame::interval(X402Response::ok().with_settlement(settlement), units)
	}

	#[test]
	fn an_interval_must_charge_exactly_the_units_received() {
		let meter = Meter { unit_price: 1_000, units_per_voucher: 4 };
		assert_eq!(interval_charge(&close("2000", 2), 2, 2, &meter), Ok(2_000));
		assert_eq!(
			interval_charge(&close("4000", 2), 2, 2, &meter).unwrap_err(),
			"the seller charged 4000 for 2 units at 1000 each (2000 expected)"
		);
		assert_eq!(
			interval_charge(&close("3000", 3), 3, 2, &meter).unwrap_err(),
			"the seller closed an interval of 3 units; this buyer received 2"
		);
		let bare = StreamFrame::interval(X402Response::ok(), 1);
		assert!(interval_charge(&bare, 1, 1, &meter).unwrap_err().contains("no charge"));
	}
}
