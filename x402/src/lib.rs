//! x402, the HTTP 402 payment protocol, as pure data and rules.
//!
//! Everything a seller or a buyer must get exactly right, with no I/O and no async, so that
//! every transport (HTTP headers, libp2p messages) and every role (client, resource server,
//! facilitator) shares one implementation:
//!
//! - [`v2`]: the current wire types (`PaymentRequired`, `PaymentRequirements`,
//!   `PaymentPayload`, `SettleResponse`, `VerifyResponse`, …) and [`v1`] for legacy peers;
//! - [`clock`]: the one wall clock the roles read (the rules take `now` as an argument);
//! - [`codec`]: the header codec, standard base64 of compact JSON (strict out, lenient in);
//! - [`network`]: CAIP-2 networks (`eip155:<chainId>`) and the v1 network names;
//! - [`matching`]: which offered requirement a payment accepted (deep equality, as the
//!   reference implementations do);
//! - [`schemes`]: the payment schemes as sibling modules behind one seam, which parses a
//!   payload by the scheme its payment accepted: [`schemes::exact`], the `exact`
//!   scheme on EVM (EIP-3009 `TransferWithAuthorization` digest, signing, and the off-chain
//!   verification checks in the spec's order). The wire types ([`v2`], [`v1`]) name no scheme;
//! - [`reason`]: the spec's error reasons;
//! - [`paywall`]: a seller's transport-neutral rules (which offer a payment pays,
//!   idempotency keys), and [`http`]: where HTTP carries each message, for both sides;
//!   [`libp2p`]: the messages of x402 over libp2p (`/x402/1.0.0`), its twin, and of its
//!   metered streams ([`libp2p::stream`], `/x402-stream/1.0.0`);
//! - [`policy`]: a buyer's spending policy (allowed networks, assets, payees; caps, budgets).

pub mod clock;
pub mod codec;
pub mod http;
pub mod libp2p;
pub mod matching;
pub mod network;
pub mod paywall;
pub mod policy;
pub mod reason;
pub mod schemes;
pub mod v1;
pub mod v2;

pub use alloy_primitives::{Address, B256, U256};

pub use reason::{ErrorReason, Problem};

/// The x402 protocol version this crate speaks natively.
pub const X402_VERSION: u32 = 2;

/// HTTP header names (case-insensitive on the wire).
pub mod headers {
	/// v2: the seller's requirements, on a 402 response.
	pub const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
	/// v2: the buyer's payment, on the retried request.
	pub const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
	/// v2: the settlement result, on the final response (success or failure).
	pub const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
	/// v1: the buyer's payment.
	pub const X_PAYMENT: &str = "X-PAYMENT";
	/// v1: the settlement result.
	pub const X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";
}
