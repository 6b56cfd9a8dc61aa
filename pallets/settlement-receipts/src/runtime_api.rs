//! Runtime API for fleet accounting: summaries by owner and device over time ranges, and paged
//! receipt listings, all answered from aggregates and ordered indexes.

use alloc::vec::Vec;
use codec::{Codec, Decode, Encode};
use m2m_primitives::receipt::{AssetKey, ReceiptId};
use pallet_device_identity::DeviceId;
use scale_info::TypeInfo;

use m2m_primitives::H160;

use crate::{AssetInfo, AssetVolume, Receipt, ReceiptCursor, Role, Totals};

/// Why a query was refused.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub enum QueryError {
	/// `from` is after `to`.
	InvalidRange,
	/// The range spans more days than a single query may.
	RangeTooLong { max_days: u32 },
	/// The page size is zero or above the maximum.
	InvalidPageSize { max: u32 },
}

/// An owner's accounting over a range of UTC days.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct OwnerSummary {
	/// First and last UTC day (days since 1970-01-01) covered.
	pub from_day: u32,
	pub to_day: u32,
	/// Per asset, across all the owner's devices.
	pub totals: Vec<(AssetKey, Totals)>,
	/// Per device and asset, for one page of the owner's devices.
	pub devices: Vec<(DeviceId, AssetKey, Totals)>,
	/// Pass as `after` to get the next page of devices; `None` on the last page.
	pub next: Option<DeviceId>,
}

/// A device's accounting over a range of UTC days.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct DeviceSummary {
	pub from_day: u32,
	pub to_day: u32,
	/// Per asset.
	pub totals: Vec<(AssetKey, Totals)>,
	/// Per day and asset, days with activity only.
	pub daily: Vec<(u32, AssetKey, Totals)>,
}

/// One page of a device's receipts.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ReceiptPage<AccountId> {
	pub receipts: Vec<(ReceiptId, Role, Receipt<AccountId>)>,
	/// Pass as `after` to get the next page; `None` on the last page.
	pub next: Option<ReceiptCursor>,
}

sp_api::decl_runtime_apis! {
	/// Settlement receipts and fleet accounting.
	pub trait SettlementReceiptsApi<AccountId>
	where
		AccountId: Codec,
	{
		/// A receipt body, if recorded and not pruned.
		fn receipt(id: ReceiptId) -> Option<Receipt<AccountId>>;
		/// Whether a receipt with this id was ever recorded (pruned ones included).
		fn is_recorded(id: ReceiptId) -> bool;
		/// An accepted asset.
		fn asset(asset: AssetKey) -> Option<AssetInfo>;
		/// All-time totals of an owner, per asset.
		fn owner_totals(owner: AccountId) -> Vec<(AssetKey, Totals)>;
		/// All-time totals of a device, per asset.
		fn device_totals(device: DeviceId) -> Vec<(AssetKey, Totals)>;
		/// An owner's totals over the UTC days that `from_ms..=to_ms` touches, with one page of
		/// at most `limit` devices after `after` (0 for totals only).
		fn owner_summary(
			owner: AccountId,
			from_ms: u64,
			to_ms: u64,
			after: Option<DeviceId>,
			limit: u32,
		) -> Result<OwnerSummary, QueryError>;
		/// All-time spending of a payer address, device or not, per asset.
		fn payer_totals(payer: H160) -> Vec<(AssetKey, Totals)>;
		/// An asset's volume across all devices.
		fn asset_volume(asset: AssetKey) -> AssetVolume;
		/// A device's summary over the UTC days that `from_ms..=to_ms` touches.
		fn device_summary(device: DeviceId, from_ms: u64, to_ms: u64) -> Result<DeviceSummary, QueryError>;
		/// A device's receipts with a period ending in `from_ms..=to_ms`, oldest first.
		fn device_receipts(
			device: DeviceId,
			from_ms: u64,
			to_ms: u64,
			after: Option<ReceiptCursor>,
			limit: u32,
		) -> Result<ReceiptPage<AccountId>, QueryError>;
	}
}
