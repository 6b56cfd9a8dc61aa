//! Which offered requirement a payment accepted.
//!
//! Every reference server compares the payment's `accepted` object with each offered
//! requirement by deep equality, `extra` and address case included. A seller must therefore
//! regenerate identical requirements for the paid retry, and a buyer must echo the chosen
//! requirement verbatim; this module is that rule, once.
//!
//! A channel offer annotated by a corrective 402 (the channel's state in `extra`) is still
//! the offer: a payment that echoes the annotated one matches the plain one.

use crate::{
	schemes::batch_settlement::{self, rules::without_state},
	v2::PaymentRequirements,
};

/// The offered requirement equal to `accepted`, if any.
pub fn find_accepted<'a>(
	offered: &'a [PaymentRequirements],
	accepted: &PaymentRequirements,
) -> Option<&'a PaymentRequirements> {
	offered.iter().find(|r| *r == accepted).or_else(|| {
		if accepted.scheme != batch_settlement::SCHEME {
			return None;
		}
		let plain = without_state(accepted.clone());
		offered.iter().find(|r| **r == plain)
	})
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::schemes::batch_settlement::{
		payload::ChannelStateWire,
		rules::{corrective, requirements, Offer},
	};

	#[test]
	fn a_corrected_channel_offer_matches_the_offer_it_annotates() {
		let offer = requirements(&Offer {
			chain_id: 33380,
			asset: alloy_primitives::Address::repeat_byte(1),
			token_domain: ("Tether USD".into(), "1".into()),
			pay_to: alloy_primitives::Address::repeat_byte(2),
			receiver_authorizer: alloy_primitives::Address::repeat_byte(3),
			withdraw_delay: 900,
			max_price: 10,
			max_timeout_seconds: 60,
		});
		let state = ChannelStateWire {
			channel_id: alloy_primitives::B256::repeat_byte(4).to_string(),
			balance: "100".into(),
			total_claimed: "0".into(),
			withdraw_requested_at: 0,
			refund_nonce: "0".into(),
			charged_cumulative_amount: Some("30".into()),
		};
		let corrected = corrective(&offer, state, None);
		assert_ne!(corrected, offer);
		let offered = [offer.clone()];
		assert_eq!(find_accepted(&offered, &corrected), Some(&offer));
		let mut other = corrected;
		other.amount = "11".into();
		assert_eq!(find_accepted(&offered, &other), None, "only the state is set aside");
	}
}
