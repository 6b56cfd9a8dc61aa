use thiserror::Error;

/// Why a chain operation failed.
#[derive(Debug, Error)]
pub enum ChainError {
	/// The node could not be reached or the connection broke.
	#[error("chain RPC unavailable at {url}: {reason}")]
	Unavailable { url: String, reason: String },
	/// The runtime refused the call: `pallet::error`, as named in the runtime metadata.
	#[error("the chain refused the call: {pallet}::{error}")]
	Dispatch { pallet: String, error: String },
	/// The call failed for a non-pallet reason (bad origin, token error, arithmetic…).
	#[error("the chain refused the call: {0}")]
	DispatchOther(String),
	/// The transaction pool rejected or dropped the transaction.
	#[error("transaction not included: {0}")]
	NotIncluded(String),
	/// A runtime API query was refused.
	#[error("query refused: {0}")]
	Query(String),
	/// Anything else from subxt (boxed: subxt's error is large).
	#[error(transparent)]
	Subxt(Box<subxt::Error>),
}

impl From<subxt::Error> for ChainError {
	fn from(e: subxt::Error) -> Self {
		ChainError::Subxt(Box::new(e))
	}
}

impl ChainError {
	/// The error name if this is a pallet error, e.g. `("SettlementReceipts", "DuplicateReceipt")`.
	pub fn pallet_error(&self) -> Option<(&str, &str)> {
		match self {
			ChainError::Dispatch { pallet, error } => Some((pallet, error)),
			_ => None,
		}
	}
}
