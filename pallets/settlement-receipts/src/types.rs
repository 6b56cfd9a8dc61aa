//! The pallet's types: the asset registry, what a payee submits, what is stored, and the totals.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame_support::{pallet_prelude::ConstU32, weights::Weight, BoundedVec};
use m2m_primitives::{
	channel::ChannelConfig,
	eip712::{EcdsaSignature, TransferWithAuthorization},
	receipt::{AssetKey, ReceiptId},
	H160, H256,
};
use pallet_device_identity::DeviceId;
use scale_info::TypeInfo;

/// Longest EIP-712 domain name of an asset, in bytes.
pub const MAX_ASSET_NAME_LEN: u32 = 64;
/// Longest EIP-712 domain version or ticker symbol, in bytes.
pub const MAX_ASSET_LABEL_LEN: u32 = 16;

/// How the chain can tell that a payment in an asset really moved.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Default,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	serde::Serialize,
	serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SettlementCheck {
	/// The token lives elsewhere (another chain, or peaq's USDT, which keeps only a used-flag):
	/// receipts prove that the payer signed, not that the money moved.
	#[default]
	#[codec(index = 0)]
	SignedOnly,
	/// The token lives on this chain's EVM and remembers the EIP-712 digest of the
	/// authorization it executed under each `(from, nonce)`, and marks cancellations
	/// (`authorizationDigest(address,bytes32)`, see `contracts/src/USDT.sol`). Receipts are
	/// refused unless the token executed exactly the cited authorization.
	#[codec(index = 1)]
	TokenDigest,
}

/// An accepted asset: its EIP-712 domain (as the token reports it on-chain) and display data.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct AssetInfo {
	/// The token's EIP-712 domain `name` (UTF-8, e.g. `USD₮0`).
	pub name: BoundedVec<u8, ConstU32<MAX_ASSET_NAME_LEN>>,
	/// The token's EIP-712 domain `version`.
	pub version: BoundedVec<u8, ConstU32<MAX_ASSET_LABEL_LEN>>,
	pub decimals: u8,
	pub symbol: BoundedVec<u8, ConstU32<MAX_ASSET_LABEL_LEN>>,
	/// Derived from name, version, chain id and token address at registration.
	pub domain_separator: H256,
	/// Disabled assets accept no new receipts; their history stays.
	pub enabled: bool,
	/// Whether receipts in this asset can be proven settled.
	pub settlement: SettlementCheck,
}

/// What the payer signed, by payment scheme. Each kind has one arm in `proof.rs`; everything
/// after the proof (accounting, indexes, events) is shared.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub enum PaymentProof {
	/// x402 `exact`: an EIP-3009 `TransferWithAuthorization` and its signature.
	#[codec(index = 0)]
	Exact { authorization: TransferWithAuthorization, signature: EcdsaSignature },
	/// x402 `batch-settlement`: a claim from a payment channel. `config` names the channel
	/// (its id is derived, so payer, receiver and token cannot be misstated); `voucher_amount`
	/// and `signature` are the payer's cumulative voucher the claim used; `total_claimed` is
	/// the channel's claimed total after the claim. A voucher carries no nonce, so the pallet
	/// keeps a per-channel cursor ([`crate::ChannelCursors`]) and accounts only
	/// `total_claimed - cursor`, proven against what the settlement contract claimed.
	#[codec(index = 1)]
	Channel {
		config: ChannelConfig,
		voucher_amount: u128,
		signature: EcdsaSignature,
		total_claimed: u128,
	},
}

/// A receipt as the payee submits it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct ReceiptInput {
	/// The device that was paid.
	pub payee: DeviceId,
	/// The token and its chain.
	pub asset: AssetKey,
	pub proof: PaymentProof,
	/// The EVM transaction that settled the payment.
	pub settlement_tx: H256,
	/// Hash of the service or resource identifier that was sold.
	pub resource: H256,
	/// How many requests the payment covered.
	pub request_count: u32,
	/// The period of service covered, Unix milliseconds, inclusive.
	pub period_start: u64,
	pub period_end: u64,
}

/// How a recorded receipt was paid, kept with its body.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub enum SchemeRecord {
	#[codec(index = 0)]
	Exact { authorization: TransferWithAuthorization, signature: EcdsaSignature },
	/// A channel claim that took the channel's recorded total from `claimed_from` to
	/// `claimed_to`, under the payer's voucher of `voucher_amount`.
	#[codec(index = 1)]
	Channel {
		channel_id: H256,
		claimed_from: u128,
		claimed_to: u128,
		voucher_amount: u128,
		signature: EcdsaSignature,
	},
}

/// What a receipt proves about the money.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
)]
pub enum Evidence {
	/// The payer signed this payment to this payee; nothing on this chain shows it moved.
	#[codec(index = 0)]
	SignedOnly,
	/// The token on this chain executed exactly this authorization: this value moved from
	/// this payer to this payee.
	#[codec(index = 1)]
	Proven,
}

/// A recorded receipt.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct Receipt<AccountId> {
	/// The EVM address that paid: a device, a browser, a third-party agent.
	pub payer: H160,
	/// The registered device with that address at the time of recording, if any.
	pub payer_device: Option<DeviceId>,
	pub payee: DeviceId,
	/// Owners at the time of recording: accounting follows the owner who held the device.
	pub payer_owner: Option<AccountId>,
	pub payee_owner: AccountId,
	pub asset: AssetKey,
	/// Token base units.
	pub amount: u128,
	pub scheme: SchemeRecord,
	pub settlement_tx: H256,
	pub resource: H256,
	pub request_count: u32,
	pub period_start: u64,
	pub period_end: u64,
	/// Chain time of recording, Unix milliseconds.
	pub recorded_at: u64,
	pub evidence: Evidence,
}

/// What the token contract remembers about one EIP-3009 `(from, nonce)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuthorizationRecord {
	/// Nothing was executed or cancelled under this nonce (yet).
	Unused,
	/// An authorization with this EIP-712 digest was executed.
	Executed(H256),
	/// The authorizer cancelled the nonce: no money moved.
	Cancelled,
	/// The token could not be asked (not on this chain, no contract, revert, malformed answer
	/// or out of weight).
	Unavailable,
}

/// Asks the chain's EVM what a token executed, and what the settlement contract claimed. The
/// runtime implements it over pallet-revive; `()` has no EVM and answers `Unavailable`.
pub trait SettlementOracle {
	/// Weight charged per receipt for one [`Self::authorization_record`] or
	/// [`Self::channel_claimed`] call: an upper bound, because the call is metered against it.
	fn check_weight() -> Weight;
	/// What `asset`'s token executed under `from`'s authorization `nonce`.
	fn authorization_record(asset: &AssetKey, from: &H160, nonce: &H256) -> AuthorizationRecord;
	/// What the settlement contract on `asset`'s chain shows claimed from `channel_id` in
	/// total (`channels(channelId).totalClaimed`), or `None` if it cannot be asked.
	fn channel_claimed(asset: &AssetKey, channel_id: &H256) -> Option<u128>;
}

impl SettlementOracle for () {
	fn check_weight() -> Weight {
		Weight::zero()
	}
	fn authorization_record(_: &AssetKey, _: &H160, _: &H256) -> AuthorizationRecord {
		AuthorizationRecord::Unavailable
	}
	fn channel_claimed(_: &AssetKey, _: &H256) -> Option<u128> {
		None
	}
}

/// Which side of a receipt a device was on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub enum Role {
	Payer,
	Payee,
}

/// Money in and out, for one kind of evidence.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct Flow {
	/// Paid out, token base units.
	pub spent: u128,
	/// Received, token base units.
	pub earned: u128,
	pub payments_made: u32,
	pub payments_received: u32,
	pub requests_bought: u64,
	pub requests_sold: u64,
}

impl Flow {
	pub(crate) fn add(&mut self, role: Role, amount: u128, requests: u32) {
		match role {
			Role::Payer => {
				self.spent = self.spent.saturating_add(amount);
				self.payments_made = self.payments_made.saturating_add(1);
				self.requests_bought = self.requests_bought.saturating_add(requests as u64);
			},
			Role::Payee => {
				self.earned = self.earned.saturating_add(amount);
				self.payments_received = self.payments_received.saturating_add(1);
				self.requests_sold = self.requests_sold.saturating_add(requests as u64);
			},
		}
	}

	/// Component-wise sum.
	pub fn merge(&mut self, other: &Flow) {
		self.spent = self.spent.saturating_add(other.spent);
		self.earned = self.earned.saturating_add(other.earned);
		self.payments_made = self.payments_made.saturating_add(other.payments_made);
		self.payments_received = self.payments_received.saturating_add(other.payments_received);
		self.requests_bought = self.requests_bought.saturating_add(other.requests_bought);
		self.requests_sold = self.requests_sold.saturating_add(other.requests_sold);
	}
}

/// Running totals for one asset, proven-settled and payer-signed-only kept apart: an auditor
/// adds them up only knowingly.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct Totals {
	/// The token on this chain executed these payments exactly.
	pub proven: Flow,
	/// Only the payer's signature backs these.
	pub signed_only: Flow,
}

impl Totals {
	pub(crate) fn add(&mut self, evidence: Evidence, role: Role, amount: u128, requests: u32) {
		match evidence {
			Evidence::Proven => self.proven.add(role, amount, requests),
			Evidence::SignedOnly => self.signed_only.add(role, amount, requests),
		}
	}

	/// Component-wise sum.
	pub fn merge(&mut self, other: &Totals) {
		self.proven.merge(&other.proven);
		self.signed_only.merge(&other.signed_only);
	}
}

/// Position in a device's time-ordered receipt index: big-endian milliseconds, then the id, so
/// that storage order is chronological.
pub type ReceiptCursor = ([u8; 8], ReceiptId);

/// An asset to register at genesis.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct GenesisAsset {
	pub asset: AssetKey,
	pub name: alloc::string::String,
	pub version: alloc::string::String,
	pub decimals: u8,
	pub symbol: alloc::string::String,
	#[serde(default)]
	pub settlement: SettlementCheck,
}

/// Volume and count of receipts, for one kind of evidence.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct Volume {
	/// Token base units.
	pub amount: u128,
	pub receipts: u64,
}

/// An asset's volume across all devices, proven and signed-only apart.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct AssetVolume {
	pub proven: Volume,
	pub signed_only: Volume,
}

impl AssetVolume {
	pub(crate) fn add(&mut self, evidence: Evidence, amount: u128) {
		let v = match evidence {
			Evidence::Proven => &mut self.proven,
			Evidence::SignedOnly => &mut self.signed_only,
		};
		v.amount = v.amount.saturating_add(amount);
		v.receipts = v.receipts.saturating_add(1);
	}
}
