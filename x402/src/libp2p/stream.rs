//! Metered streams over libp2p ([`PROTOCOL`]): units of a service (readings, kWh ticks) on one
//! long-lived stream, paid by channel vouchers written on that same stream. Pure messages and
//! the metering arithmetic; the stream itself is `m2m-p2p`'s, the sale and the purchase are
//! the seller's and the buyer's cores.
//!
//! A stream is a run of **intervals**. Each interval is one channel sale:
//!
//! 1. the buyer writes a [`StreamRequest`] with a voucher of `charged + amount`, where the
//!    offer's `amount` is the interval's bound: [`Meter::units_per_voucher`] units at
//!    [`Meter::unit_price`] each;
//! 2. the seller writes one [`StreamFrame::unit`] per unit produced, never more than the bound;
//! 3. the seller closes the interval with its sale's answer ([`StreamFrame::interval`]): its
//!    `paymentResponse` charges `units × unitPrice` (less than `amount` when the interval was
//!    cut short), and `units` says how many it delivered.
//!
//! At the bound the seller waits (up to the offer's `maxTimeoutSeconds`) for the next voucher,
//! which resumes the units. A buyer that has enough writes [`StreamRequest::cancel`]; the
//! seller stops before the next unit, closes the interval charging only what it wrote, and
//! ends the stream with [`StreamFrame::end`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::X402Response;
use crate::{paywall::IncomingPayment, v2::PaymentPayload, Problem};

/// The protocol id, negotiated by multistream-select.
pub const PROTOCOL: &str = "/x402-stream/1.0.0";

/// What a buyer writes on a metered stream: the opening (`resource`, unpaid or with its first
/// voucher), a voucher for the next interval, or a cancel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRequest {
	/// The resource streamed, on the opening message (`/kwh/stream`).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub resource: Option<String>,
	/// A `PaymentPayload` (a channel voucher or deposit), as a JSON object.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub payment: Option<Value>,
	/// The buyer has enough: stop before the next unit and end the stream.
	#[serde(default, skip_serializing_if = "std::ops::Not::not")]
	pub cancel: bool,
}

impl StreamRequest {
	/// The opening message: what is streamed; the seller answers what it costs.
	pub fn open(resource: impl Into<String>) -> Self {
		Self { resource: Some(resource.into()), ..Self::default() }
	}

	/// A voucher for the next interval.
	pub fn paid(payment: &PaymentPayload) -> Self {
		let payment = serde_json::to_value(payment).expect("x402 types always serialize");
		Self { payment: Some(payment), ..Self::default() }
	}

	pub fn cancel() -> Self {
		Self { cancel: true, ..Self::default() }
	}

	/// Seller: the payment, if any, read by the same rules as a request-response payment.
	pub fn read_payment(&self) -> Option<Result<IncomingPayment, Problem>> {
		Some(super::read_payment_value(self.payment.as_ref()?))
	}
}

/// How a metered service is priced: what one unit costs, and how many units one voucher
/// covers (the interval's bound). The offer's `amount` is their product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meter {
	#[serde(with = "crate::schemes::batch_settlement::payload::decimal")]
	pub unit_price: u128,
	pub units_per_voucher: u64,
}

impl Meter {
	/// The most one voucher pays for: the offer's `amount`. `None` if it overflows.
	pub fn interval_amount(&self) -> Option<u128> {
		self.unit_price.checked_mul(u128::from(self.units_per_voucher))
	}

	/// What `units` cost.
	pub fn charge(&self, units: u64) -> u128 {
		self.unit_price.saturating_mul(u128::from(units))
	}

	/// Buyer: an interval's charge (`chargedAmount`, base units) is exactly the units it
	/// received, never more than the bound.
	pub fn check_interval(&self, units: u64, charged: u128) -> Result<(), String> {
		if units > self.units_per_voucher {
			return Err(format!(
				"the seller wrote {units} units on one voucher; it covers {}",
				self.units_per_voucher
			));
		}
		if charged != self.charge(units) {
			return Err(format!(
				"the seller charged {charged} for {units} units at {} each ({} expected)",
				self.unit_price,
				self.charge(units)
			));
		}
		Ok(())
	}
}

/// The last message of a stream: what the whole stream delivered and charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEnd {
	pub units: u64,
	#[serde(with = "crate::schemes::batch_settlement::payload::decimal")]
	pub charged: u128,
}

/// What a seller writes on a metered stream. Every message has a `status` with HTTP's meaning,
/// and the fields of a request-response answer ([`X402Response`]), plus:
/// - a unit: `unit` (its number, from 1, counted over the whole stream) and its `body`;
/// - an interval's close: the sale's answer with its `paymentResponse`, and `units`;
/// - a `402`: `meter`, how units are priced;
/// - the last message: `end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamFrame {
	#[serde(flatten)]
	pub answer: X402Response,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub unit: Option<u64>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub units: Option<u64>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub meter: Option<Meter>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub end: Option<StreamEnd>,
}

impl StreamFrame {
	/// Any answer, as a frame.
	pub fn answer(answer: X402Response) -> Self {
		Self { answer, unit: None, units: None, meter: None, end: None }
	}

	/// A `402` (or any answer to a payment) with the service's pricing.
	pub fn priced(answer: X402Response, meter: Meter) -> Self {
		Self { meter: Some(meter), ..Self::answer(answer) }
	}

	/// Unit number `n`, with its bytes.
	pub fn unit(n: u64, body: &[u8], mime_type: Option<String>) -> Self {
		Self { unit: Some(n), ..Self::answer(X402Response::delivered(body, mime_type)) }
	}

	/// An interval's close: the sale's answer for the `units` it delivered.
	pub fn interval(answer: X402Response, units: u64) -> Self {
		Self { units: Some(units), ..Self::answer(answer) }
	}

	/// The stream's last message.
	pub fn end(units: u64, charged: u128) -> Self {
		Self { end: Some(StreamEnd { units, charged }), ..Self::answer(X402Response::ok()) }
	}

	/// What kind of message this is, for a buyer reading the stream.
	pub fn kind(&self) -> FrameKind {
		match (self.unit, self.end, self.units) {
			(Some(n), _, _) => FrameKind::Unit(n),
			(None, Some(end), _) => FrameKind::End(end),
			(None, None, Some(units)) => FrameKind::Interval(units),
			(None, None, None) => FrameKind::Answer,
		}
	}
}

/// A seller's message, as a buyer reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
	Unit(u64),
	/// An interval closed after this many units.
	Interval(u64),
	End(StreamEnd),
	/// Any other answer: a `402` (what to pay, or why a voucher was refused), an error.
	Answer,
}

#[cfg(test)]
mod tests {
	use super::*;
	use serde_json::json;

	#[test]
	fn messages_are_plain_json_objects() {
		assert_eq!(
			serde_json::to_value(StreamRequest::open("/kwh/stream")).unwrap(),
			json!({"resource": "/kwh/stream"})
		);
		assert_eq!(serde_json::to_value(StreamRequest::cancel()).unwrap(), json!({"cancel": true}));
		let back: StreamRequest = serde_json::from_value(json!({"cancel": true})).unwrap();
		assert!(back.cancel && back.payment.is_none());

		let unit = StreamFrame::unit(3, b"0.25 kWh", Some("text/plain".into()));
		let wire = serde_json::to_value(&unit).unwrap();
		assert_eq!(
			wire,
			json!({"status": 200, "unit": 3, "body": "MC4yNSBrV2g=", "mimeType": "text/plain"})
		);
		let back: StreamFrame = serde_json::from_value(wire).unwrap();
		assert_eq!(
			(back.kind(), back.answer.body_bytes().unwrap()),
			(FrameKind::Unit(3), b"0.25 kWh".to_vec())
		);

		let end = StreamFrame::end(5, 5_000);
		let wire = serde_json::to_value(&end).unwrap();
		assert_eq!(wire, json!({"status": 200, "end": {"units": 5, "charged": "5000"}}));
		let back: StreamFrame = serde_json::from_value(wire).unwrap();
		assert_eq!(back.kind(), FrameKind::End(StreamEnd { units: 5, charged: 5_000 }));

		let meter = Meter { unit_price: 1_000, units_per_voucher: 4 };
		let refused = StreamFrame::priced(X402Response::error(402, "x", "y"), meter);
		let wire = serde_json::to_value(&refused).unwrap();
		assert_eq!(wire["meter"], json!({"unitPrice": "1000", "unitsPerVoucher": 4}));
		assert_eq!(serde_json::from_value::<StreamFrame>(wire).unwrap().kind(), FrameKind::Answer);
		let closed = StreamFrame::interval(X402Response::delivered(b"", None), 4);
		assert_eq!(closed.kind(), FrameKind::Interval(4));
	}

	#[test]
	fn an_interval_is_charged_exactly_its_units() {
		let meter = Meter { unit_price: 1_000, units_per_voucher: 4 };
		assert_eq!(meter.interval_amount(), Some(4_000));
		assert_eq!(meter.check_interval(4, 4_000), Ok(()));
		assert_eq!(meter.check_interval(1, 1_000), Ok(()), "cut short by a cancel");
		assert_eq!(meter.check_interval(0, 0), Ok(()));
		assert_eq!(
			meter.check_interval(1, 4_000).unwrap_err(),
			"the seller charged 4000 for 1 units at 1000 each (1000 expected)"
		);
		assert_eq!(
			meter.check_interval(5, 5_000).unwrap_err(),
			"the seller wrote 5 units on one voucher; it covers 4"
		);
		let huge = Meter { unit_price: u128::MAX, units_per_voucher: 2 };
		assert_eq!(huge.interval_amount(), None);
	}
}
