//! Metered streams (`/x402-stream/1.0.0`, [`m2m_x402::libp2p::stream`]): a service's units on
//! one stream, each interval of them one channel sale through [`Seller::sell`].
//!
//! The interval's voucher is verified, then the units are written as they are produced, up to
//! the voucher's bound; a cancel from the buyer stops them before the next unit. The sale then
//! charges exactly the units written ([`Delivery::charge`]) and records the channel's new
//! voucher and charge before the interval's close leaves. At the bound the seller waits up to
//! the offer's `maxTimeoutSeconds` for the next voucher.
//!
//! What a crash or a reset costs: the units of the interval in progress were delivered before
//! their charge was recorded, so a seller that dies mid-interval forfeits them (at most one
//! interval, its own loss, never the buyer's); a stream reset mid-interval is charged the units
//! handed to the transport, at most one more than the buyer read.

use std::{future::Future, sync::Arc, time::Duration};

use m2m_x402::{
	libp2p::{
		status,
		stream::{Meter, StreamFrame, StreamRequest},
		X402Response,
	},
	v2::{PaymentRequirements, ResourceInfo},
};
use tokio::sync::{mpsc, Mutex};

use crate::{Delivery, ProvenBuyer, SaleOutcome, SaleRequest, Seller};

/// What the buyer's side of a stream brings: its messages, or the answer to one that could
/// not be read (oversize, malformed), after which the stream ends.
pub type Requests = mpsc::Receiver<Result<StreamRequest, X402Response>>;

/// Where the seller's messages go, in order.
pub type Frames = mpsc::Sender<StreamFrame>;

/// What a metered stream delivered and charged, in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metered {
	pub units: u64,
	pub charged: u128,
}

/// A metered service: its channel offer (whose `amount` is the meter's interval) and how its
/// units are priced.
#[derive(Clone, Debug)]
pub struct MeteredOffer {
	pub offer: PaymentRequirements,
	pub meter: Meter,
	pub resource: ResourceInfo,
}

/// Sells a metered stream to `buyer`, starting from its opening message `first`. `next_unit`
/// makes unit `n` (from 1): a delivery, `Ok(None)` when the service has no more, or the answer
/// to give instead. Returns once the stream ended, with what it delivered and charged.
pub async fn sell_stream<F, Fut>(
	seller: &Arc<Seller>,
	buyer: ProvenBuyer,
	first: StreamRequest,
	requests: Requests,
	frames: Frames,
	metered: MeteredOffer,
	next_unit: F,
) -> Metered
where
	F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
	Fut: Future<Output = Result<Option<Delivery>, X402Response>> + Send + 'static,
{
	let MeteredOffer { offer, meter, resource } = metered;
	if meter.interval_amount().map(|a| a.to_string()).as_deref() != Some(offer.amount.as_str()) {
		tracing::error!(url = %resource.url, amount = %offer.amount, ?meter, "a metered offer's amount is not its meter's interval; not streaming");
		let _ = frames
			.send(StreamFrame::answer(X402Response::error(
				status::INTERNAL,
				"misconfigured_meter",
				"this stream's offer does not match its meter",
			)))
			.await;
		return Metered::default();
	}
	let requests = Arc::new(Mutex::new(requests));
	let wait = Duration::from_secs(offer.max_timeout_seconds.max(1));
	let url = resource.url.clone();
	let mut next = Some(first);
	let mut done = Metered::default();
	loop {
		let request = match next.take() {
			Some(request) => request,
			None => match tokio::time::timeout(wait, requests.lock().await.recv()).await {
				Err(_) => {
					tracing::info!(%url, units = done.units, "no voucher within maxTimeoutSeconds; ending the stream");
					break;
				},
				Ok(None) => break,
				Ok(Some(Err(unreadable))) => {
					let _ = frames.send(StreamFrame::answer(unreadable)).await;
					break;
				},
				Ok(Some(Ok(request))) => request,
			},
		};
		if request.cancel {
			break;
		}
		let sale = SaleRequest {
			payment: request.read_payment(),
			offers: vec![offer.clone()],
			resource: resource.clone(),
			buyer: Some(buyer.clone()),
		};
		let interval = Interval {
			requests: requests.clone(),
			frames: frames.clone(),
			next_unit: next_unit.clone(),
			first: done.units + 1,
			meter,
		};
		match seller.sell(sale, move |_| interval.run()).await {
			SaleOutcome::Sold { settlement, kept: end, .. } => {
				done.units += end.written;
				done.charged += meter.charge(end.written);
				let close = X402Response::ok().with_settlement(*settlement);
				if frames.send(StreamFrame::interval(close, end.written)).await.is_err() {
					break;
				}
				match end.stop {
					Stop::Bound => next = end.next,
					Stop::Cancelled | Stop::Gone | Stop::Exhausted => break,
				}
			},
			outcome => {
				let not_served = matches!(outcome, SaleOutcome::NotServed(_));
				let answer = super::answer(outcome);
				tracing::debug!(%url, status = answer.status, reason = ?answer.reason(), "a stream's voucher not served");
				if frames.send(StreamFrame::priced(answer, meter)).await.is_err() || not_served {
					break;
				}
			},
		}
	}
	tracing::info!(%url, peer = %buyer.peer, units = done.units, charged = done.charged, "metered stream ended");
	let _ = frames.send(StreamFrame::end(done.units, done.charged)).await;
	done
}

/// The first answer to a stream that names no resource this seller streams.
pub fn not_streamed(resource: Option<&str>) -> StreamFrame {
	StreamFrame::answer(X402Response::error(
		status::NOT_FOUND,
		"not_found",
		match resource {
			Some(r) => format!("{r} is not streamed here"),
			None => "the stream's first message names no resource".into(),
		},
	))
}

/// Why an interval stopped writing units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
	/// The voucher's bound: the next voucher resumes the units.
	Bound,
	Cancelled,
	/// The buyer's side closed, or the transport failed.
	Gone,
	/// The service has no more units.
	Exhausted,
}

/// How an interval ended: the units written, why it stopped, and a voucher for the next
/// interval that came while it was writing.
struct IntervalEnd {
	written: u64,
	stop: Stop,
	next: Option<StreamRequest>,
}

/// One interval's producer: writes units as they are made, up to the meter's bound.
struct Interval<F> {
	requests: Arc<Mutex<Requests>>,
	frames: Frames,
	next_unit: F,
	/// The number of the interval's first unit.
	first: u64,
	meter: Meter,
}

impl<F, Fut> Interval<F>
where
	F: Fn(u64) -> Fut,
	Fut: Future<Output = Result<Option<Delivery>, X402Response>>,
{
	async fn run(self) -> Result<(Delivery, IntervalEnd), X402Response> {
		let mut inbox = self.requests.lock().await;
		let mut written = 0;
		let mut next = None;
		let stop = loop {
			if written == self.meter.units_per_voucher {
				break Stop::Bound;
			}
			let n = self.first + written;
			// The buyer's messages are read while a unit is made: a cancel stops before the
			// next unit is written, a top-up waits for the bound.
			let unit = tokio::select! {
				biased;
				message = inbox.recv() => match message {
					None => break Stop::Gone,
					Some(Ok(request)) if request.cancel => break Stop::Cancelled,
					Some(Ok(request)) => {
						next = Some(request);
						continue;
					},
					Some(Err(unreadable)) => {
						let _ = self.frames.send(StreamFrame::answer(unreadable)).await;
						break Stop::Gone;
					},
				},
				unit = (self.next_unit)(n) => unit,
			};
			let unit = match unit {
				Ok(Some(unit)) => unit,
				Ok(None) => break Stop::Exhausted,
				// Nothing written: the interval is not served, and not charged.
				Err(answer) if written == 0 => return Err(answer),
				Err(answer) => {
					tracing::warn!(unit = n, reason = ?answer.reason(), "a metered service failed mid-interval; charging the units written");
					break Stop::Exhausted;
				},
			};
			let frame = StreamFrame::unit(n, &unit.body, super::mime_type(&unit));
			if self.frames.send(frame).await.is_err() {
				break Stop::Gone;
			}
			written += 1;
		};
		let delivery = Delivery {
			body: Vec::new(),
			metadata: Vec::new(),
			charge: Some(self.meter.charge(written)),
		};
		Ok((delivery, IntervalEnd { written, stop, next }))
	}
}
