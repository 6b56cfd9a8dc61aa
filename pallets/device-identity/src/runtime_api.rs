//! Runtime API for device lookups and paged enumeration, so that clients never scan storage.

use alloc::vec::Vec;
use codec::Codec;
use m2m_primitives::H160;

use crate::{DeviceId, DeviceRecord};

/// An attribute as clients read it: name, value, and the last block it is valid at.
pub type AttributeView<BlockNumber> = (Vec<u8>, Vec<u8>, Option<BlockNumber>);

sp_api::decl_runtime_apis! {
	/// Device identity queries.
	pub trait DeviceIdentityApi<AccountId, Balance, BlockNumber>
	where
		AccountId: Codec,
		Balance: Codec,
		BlockNumber: Codec,
	{
		/// The device record, if registered.
		fn device(id: DeviceId) -> Option<DeviceRecord<AccountId, Balance, BlockNumber>>;
		/// The device bound to a chain account.
		fn device_by_account(account: AccountId) -> Option<DeviceId>;
		/// The device bound to an EVM address.
		fn device_by_evm(address: H160) -> Option<DeviceId>;
		/// The device bound to a libp2p PeerId (binary multihash).
		fn device_by_peer(peer_id: Vec<u8>) -> Option<DeviceId>;
		/// Up to `limit` devices of `owner` after the cursor `after`, in a stable order.
		fn devices_of_owner(owner: AccountId, after: Option<DeviceId>, limit: u32) -> Vec<DeviceId>;
		/// The unexpired attributes of a device.
		fn attributes(device: DeviceId) -> Vec<AttributeView<BlockNumber>>;
		/// The nonce the next key-possession proof of `owner` must sign.
		fn proof_nonce(owner: AccountId) -> u64;
	}
}
