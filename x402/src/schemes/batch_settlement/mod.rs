//! The `batch-settlement` scheme on EVM: payment channels with cumulative vouchers.
//!
//! A payer deposits into a channel once (an EIP-3009 authorization to the deposit collector),
//! then pays each request with an off-chain voucher: "the receiver may claim up to N from this
//! channel in total". The receiver keeps the highest voucher, charges each request its actual
//! price (at most the offer's `amount`), and claims and settles on-chain in batches, so one
//! transaction pays for thousands of requests.
//!
//! - [`digest`]: the settlement contract's EIP-712 messages (channel id, voucher, refund,
//!   claim batch), checked against the published vectors;
//! - [`payload`]: the wire types (`deposit`, `voucher`, `refund`; the offer's `extra`; the
//!   channel state a receiver reports);
//! - [`rules`]: what needs no chain: a channel's config against the offer, the voucher's
//!   signature, the cumulative-amount rules and the corrective 402, signing a voucher.
//!
//! Addresses are the canonical ones every stock client hard-codes; a channel id binds the
//! settlement contract's address, so a chain must carry the contract exactly there.

pub mod digest;
pub mod payload;
pub mod rules;

use alloy_primitives::{address, Address};

/// The scheme's name on the wire.
pub const SCHEME: &str = "batch-settlement";
/// The settlement contract, at the same address on every chain.
pub const SETTLEMENT_ADDRESS: Address = address!("4020074e9dF2ce1deE5A9C1b5c3f541D02a10003");
/// The EIP-3009 deposit collector.
pub const DEPOSIT_COLLECTOR_ADDRESS: Address = address!("4020806089470a89826cB9fB1f4059150b550004");
/// The shortest withdraw delay the contract accepts (15 minutes).
pub const MIN_WITHDRAW_DELAY: u64 = 900;
/// The longest withdraw delay the contract accepts (30 days).
pub const MAX_WITHDRAW_DELAY: u64 = 30 * 24 * 3600;
/// The withdraw delay a receiver offers unless configured otherwise (the reference's).
pub const DEFAULT_WITHDRAW_DELAY: u64 = MIN_WITHDRAW_DELAY;
