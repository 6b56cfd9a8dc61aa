//! Finding a payment's settlement on-chain, for a seller that does not know how its
//! settlement ended (it crashed, its facilitator timed out, the receipt came late, or a third
//! party submitted the buyer's authorization first).

use m2m_evm::alloy::{primitives::Address, providers::DynProvider};
use m2m_x402::{
	schemes::exact,
	v2::{PaymentPayload, PaymentRequirements},
};

/// Looks settlements up through an Ethereum JSON-RPC endpoint.
#[derive(Clone)]
pub struct ChainLookup {
	provider: DynProvider,
}

impl ChainLookup {
	pub fn new(provider: DynProvider) -> Self {
		Self { provider }
	}

	/// The transaction in which `payment`'s authorization was used to move exactly the
	/// required value from the payer to the required payee, if there is one. "Used" alone is
	/// not enough: a payer can sign a smaller authorization, or a cancellation, under the same
	/// nonce.
	pub async fn find(
		&self,
		payment: &PaymentPayload,
		requirements: &PaymentRequirements,
	) -> Result<Option<String>, String> {
		let Ok(wire) = exact::payload(payment) else { return Ok(None) };
		let (a, _) = exact::parse(&wire).map_err(|e| e.to_string())?;
		let token: Address = requirements
			.asset
			.parse()
			.map_err(|_| format!("asset {:?} is not an address", requirements.asset))?;
		let pay_to: Address = requirements
			.pay_to
			.parse()
			.map_err(|_| format!("payTo {:?} is not an address", requirements.pay_to))?;
		let value = m2m_x402::U256::from_str_radix(&requirements.amount, 10)
			.map_err(|_| format!("amount {:?} is not a number", requirements.amount))?;
		if a.to != pay_to || a.value != value {
			return Ok(None);
		}
		let tx = m2m_evm::usdt::find_authorization_use(
			&self.provider,
			token,
			a.from,
			a.nonce,
			pay_to,
			value,
		)
		.await
		.map_err(|e| e.to_string())?;
		Ok(tx.map(|t| t.to_string()))
	}
}
