//! The one accounting path: every recorded receipt, whatever proved it, updates the same
//! indexes and totals here, and nowhere else.

use crate::{
	AssetTotals, Config, DeviceDaily, DeviceReceipts, DeviceTotals, Expiries, OwnerDaily,
	OwnerDeviceDaily, OwnerDevices, OwnerTotals, PayerTotals, ReceiptOf, Recorded, Role,
};
use m2m_primitives::receipt::ReceiptId;

/// Indexes and accounts one receipt (the caller stores its body). `day` is the UTC day its
/// period ends on.
pub(crate) fn record<T: Config>(id: ReceiptId, r: &ReceiptOf<T>, day: u32) {
	let (evidence, asset, amount, requests) = (r.evidence, r.asset, r.amount, r.request_count);
	let cursor = (r.period_end.to_be_bytes(), id);
	Recorded::<T>::insert(id, day);
	Expiries::<T>::insert(r.recorded_at.to_be_bytes(), id, ());
	AssetTotals::<T>::mutate(asset, |v| v.add(evidence, amount));
	PayerTotals::<T>::mutate(r.payer, asset, |t| t.add(evidence, Role::Payer, amount, requests));

	let mut sides = alloc::vec![(r.payee, &r.payee_owner, Role::Payee)];
	if let (Some(device), Some(owner)) = (r.payer_device, r.payer_owner.as_ref()) {
		sides.push((device, owner, Role::Payer));
	}
	for (device, owner, role) in sides {
		let add = |t: &mut crate::Totals| t.add(evidence, role, amount, requests);
		DeviceReceipts::<T>::insert(device, cursor, role);
		DeviceTotals::<T>::mutate(device, asset, add);
		DeviceDaily::<T>::mutate((device, day, asset), add);
		OwnerTotals::<T>::mutate(owner, asset, add);
		OwnerDaily::<T>::mutate((owner, day, asset), add);
		OwnerDeviceDaily::<T>::mutate((owner, device, day, asset), add);
		OwnerDevices::<T>::insert(owner, device, ());
	}
}
