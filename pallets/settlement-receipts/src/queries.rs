//! Queries behind the runtime API ([`crate::runtime_api::SettlementReceiptsApi`]). Every query
//! is bounded: at most [`MAX_RANGE_DAYS`] days, and pages of at most [`MAX_PAGE`] receipts or
//! [`MAX_DEVICES_PAGE`] devices.

use alloc::{collections::btree_map::BTreeMap, vec::Vec};
use m2m_primitives::receipt::{day_of, AssetKey, ReceiptId};
use pallet_device_identity::DeviceId;

use crate::{
	runtime_api::{DeviceSummary, OwnerSummary, QueryError, ReceiptPage},
	Config, DeviceDaily, DeviceReceipts, OwnerDaily, OwnerDeviceDaily, OwnerDevices, ReceiptCursor,
	Receipts, Totals,
};

/// Longest range a summary covers, in days.
pub const MAX_RANGE_DAYS: u32 = 366;
/// Largest page of receipts.
pub const MAX_PAGE: u32 = 100;
/// Largest page of devices in an owner's summary.
pub const MAX_DEVICES_PAGE: u32 = 50;

fn days(from_ms: u64, to_ms: u64) -> Result<(u32, u32), QueryError> {
	if from_ms > to_ms {
		return Err(QueryError::InvalidRange);
	}
	let (from, to) = (day_of(from_ms), day_of(to_ms));
	if to - from >= MAX_RANGE_DAYS {
		return Err(QueryError::RangeTooLong { max_days: MAX_RANGE_DAYS });
	}
	Ok((from, to))
}

fn into_vec(map: BTreeMap<AssetKey, Totals>) -> Vec<(AssetKey, Totals)> {
	map.into_iter().collect()
}

/// An owner's totals per asset over the UTC days that `from_ms..=to_ms` touches, and one page
/// of per-device totals: at most `limit` devices with an id above `after`, in id order (`limit`
/// 0 asks for the totals only). The totals read one row per day and asset; the page reads its
/// devices' rows only.
pub fn owner_summary<T: Config>(
	owner: &T::AccountId,
	from_ms: u64,
	to_ms: u64,
	after: Option<DeviceId>,
	limit: u32,
) -> Result<OwnerSummary, QueryError> {
	let (from_day, to_day) = days(from_ms, to_ms)?;
	if limit > MAX_DEVICES_PAGE {
		return Err(QueryError::InvalidPageSize { max: MAX_DEVICES_PAGE });
	}
	let mut totals = BTreeMap::<AssetKey, Totals>::new();
	for day in from_day..=to_day {
		for (asset, t) in OwnerDaily::<T>::iter_prefix((owner, day)) {
			totals.entry(asset).or_default().merge(&t);
		}
	}

	let mut candidates = match after {
		Some(device) => OwnerDevices::<T>::iter_key_prefix_from(
			owner,
			OwnerDevices::<T>::hashed_key_for(owner, device),
		),
		None => OwnerDevices::<T>::iter_key_prefix(owner),
	};
	let mut devices = Vec::new();
	let mut next = None;
	for (listed, device) in candidates.by_ref().enumerate() {
		if listed as u64 == u64::from(limit) {
			// Another device exists beyond this page; a zero-sized page asks for totals only.
			next = devices.last().map(|(d, _)| *d);
			break;
		}
		let mut per_asset = BTreeMap::<AssetKey, Totals>::new();
		for day in from_day..=to_day {
			for (asset, t) in OwnerDeviceDaily::<T>::iter_prefix((owner, device, day)) {
				per_asset.entry(asset).or_default().merge(&t);
			}
		}
		devices.push((device, per_asset));
	}
	Ok(OwnerSummary {
		from_day,
		to_day,
		totals: into_vec(totals),
		devices: devices
			.into_iter()
			.flat_map(|(d, per_asset)| per_asset.into_iter().map(move |(a, t)| (d, a, t)))
			.collect(),
		next,
	})
}

/// A device's totals per asset and per day over the UTC days that `from_ms..=to_ms` touches.
pub fn device_summary<T: Config>(
	device: DeviceId,
	from_ms: u64,
	to_ms: u64,
) -> Result<DeviceSummary, QueryError> {
	let (from_day, to_day) = days(from_ms, to_ms)?;
	let mut totals = BTreeMap::<AssetKey, Totals>::new();
	let mut daily = Vec::new();
	for day in from_day..=to_day {
		for (asset, t) in DeviceDaily::<T>::iter_prefix((device, day)) {
			totals.entry(asset).or_default().merge(&t);
			daily.push((day, asset, t));
		}
	}
	Ok(DeviceSummary { from_day, to_day, totals: into_vec(totals), daily })
}

/// A device's receipts whose period ends within `from_ms..=to_ms`, oldest first, at most
/// `limit`, starting after `after`. Pruned receipts are not listed.
pub fn device_receipts<T: Config>(
	device: DeviceId,
	from_ms: u64,
	to_ms: u64,
	after: Option<ReceiptCursor>,
	limit: u32,
) -> Result<ReceiptPage<T::AccountId>, QueryError> {
	if from_ms > to_ms {
		return Err(QueryError::InvalidRange);
	}
	if limit == 0 || limit > MAX_PAGE {
		return Err(QueryError::InvalidPageSize { max: MAX_PAGE });
	}
	let start = match after {
		Some(cursor) => cursor,
		// `iter_prefix_from` starts strictly after its key; one millisecond earlier with
		// the largest id covers every receipt at `from_ms`.
		None => match from_ms.checked_sub(1) {
			Some(before) => (before.to_be_bytes(), ReceiptId::repeat_byte(0xff)),
			None => ([0u8; 8], ReceiptId::zero()),
		},
	};
	let mut iter = if after.is_none() && from_ms == 0 {
		DeviceReceipts::<T>::iter_prefix(device)
	} else {
		DeviceReceipts::<T>::iter_prefix_from(
			device,
			DeviceReceipts::<T>::hashed_key_for(device, start),
		)
	};
	let mut receipts = Vec::new();
	let mut next = None;
	for (key, role) in iter.by_ref() {
		if u64::from_be_bytes(key.0) > to_ms {
			break;
		}
		if receipts.len() as u32 == limit {
			next = receipts.last().map(|(cursor, _, _, _)| *cursor);
			break;
		}
		if let Some(receipt) = Receipts::<T>::get(key.1) {
			receipts.push((key, key.1, role, receipt));
		}
	}
	Ok(ReceiptPage {
		receipts: receipts.into_iter().map(|(_, id, role, r)| (id, role, r)).collect(),
		next,
	})
}
