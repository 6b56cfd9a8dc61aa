//! Which offered requirement a payment accepted.
//!
//! Every reference server compares the payment's `accepted` object with each offered
//! requirement by deep equality, `extra` and address case included. A seller must therefore
//! regenerate identical requirements for the paid retry, and a buyer must echo the chosen
//! requirement verbatim; this module is that rule, once.

use crate::v2::PaymentRequirements;

/// The offered requirement equal to `accepted`, if any.
pub fn find_accepted<'a>(
	offered: &'a [PaymentRequirements],
	accepted: &PaymentRequirements,
) -> Option<&'a PaymentRequirements> {
	offered.iter().find(|r| *r == accepted)
}
