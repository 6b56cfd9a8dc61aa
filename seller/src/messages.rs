//! x402 as messages (libp2p's `/x402/1.0.0`): one request in, one sale, one response out.
//!
//! The twin of [`crate::layer`], with the same answers in message form
//! ([`m2m_x402::libp2p`]): a missing or refused payment is `402` with `paymentRequired`; a
//! payment id in use `409`; the facilitator unreachable `502`; a settlement that failed `402`
//! with `paymentResponse`; a sale settled but not recorded `503` with `paymentResponse`; a
//! sale `200` with the resource and `paymentResponse`. The sale itself is [`Seller::sell`]'s.

use std::{future::Future, sync::Arc};

use m2m_x402::{
	libp2p::{status, X402Request, X402Response, MAX_RESPONSE_BYTES},
	v2::{PaymentRequirements, ResourceInfo},
};

use crate::{Answered, Delivery, Paid, ProvenBuyer, SaleOutcome, SaleRequest, Seller};

pub mod stream;

/// The largest resource sold in one message: what fits in a response once base64-encoded,
/// with room for the settlement.
pub const MAX_BODY: usize = (MAX_RESPONSE_BYTES - 64 * 1024) / 4 * 3;

/// Sells `request`'s resource at `offers`, to `buyer` (its PeerId, which scopes its payment
/// ids, and its device, kept with the sale). `produce` makes the resource once the payment is verified: a delivery, or the
/// answer to send instead (not settled, not charged).
pub async fn sell<F, Fut>(
	seller: &Arc<Seller>,
	buyer: ProvenBuyer,
	request: &X402Request,
	offers: Vec<PaymentRequirements>,
	resource: ResourceInfo,
	produce: F,
) -> X402Response
where
	F: FnOnce(Paid) -> Fut + Send + 'static,
	Fut: Future<Output = Result<Delivery, X402Response>> + Send + 'static,
{
	let sale =
		SaleRequest { payment: request.read_payment(), offers, resource, buyer: Some(buyer) };
	let produce = move |paid: Paid| async move {
		let delivery = produce(paid).await?;
		if delivery.body.len() > MAX_BODY {
			tracing::error!(
				bytes = delivery.body.len(),
				"resource too large for one message; not settled"
			);
			return Err(X402Response::error(
				status::INTERNAL,
				"response_too_large",
				format!(
					"the resource is {} bytes, over the {MAX_BODY}-byte limit of one message",
					delivery.body.len()
				),
			));
		}
		Ok((delivery, ()))
	};
	match seller.sell(sale, produce).await {
		SaleOutcome::Sold { delivery, settlement, .. } => {
			delivered(&delivery).with_settlement(*settlement)
		},
		outcome => answer(outcome),
	}
}

/// The answer to a sale that sold nothing new (a `Sold` is the transport's to answer: a
/// resource, or a metered interval's close).
pub(crate) fn answer<X>(outcome: SaleOutcome<X, X402Response>) -> X402Response {
	match outcome {
		SaleOutcome::PaymentRequired(required) | SaleOutcome::Refused { required, .. } => {
			X402Response::payment_required(*required)
		},
		SaleOutcome::Conflict(message) => {
			X402Response::error(status::CONFLICT, "payment_id_conflict", message)
		},
		SaleOutcome::Unavailable(message) => {
			X402Response::error(status::BAD_GATEWAY, "facilitator_unavailable", message)
		},
		SaleOutcome::NotServed(answer) => answer,
		SaleOutcome::NotSettled { settlement, .. } => {
			let reason =
				settlement.error_reason.as_ref().map(|r| r.as_str()).unwrap_or("settlement_failed");
			let message = settlement
				.error_message
				.clone()
				.unwrap_or_else(|| "the payment was not settled".into());
			X402Response::error(status::PAYMENT_REQUIRED, reason, message)
				.with_settlement(*settlement)
		},
		SaleOutcome::NotRecorded { settlement, error, .. } => X402Response::error(
			status::UNAVAILABLE,
			"sale_not_recorded",
			format!("the payment was settled but the sale could not be recorded: {error}"),
		)
		.with_settlement(*settlement),
		SaleOutcome::Sold { delivery, settlement, .. } => {
			delivered(&delivery).with_settlement(*settlement)
		},
		SaleOutcome::Replayed(answered) | SaleOutcome::Refunded(answered) => {
			let Answered { delivery, settlement, .. } = *answered;
			delivered(&delivery).with_settlement(settlement)
		},
	}
}

/// A delivery as a `200`, its media type from the producer's `content-type`.
fn delivered(delivery: &Delivery) -> X402Response {
	X402Response::delivered(&delivery.body, mime_type(delivery))
}

fn mime_type(delivery: &Delivery) -> Option<String> {
	delivery
		.metadata
		.iter()
		.find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
		.map(|(_, v)| v.clone())
}
