//! What the running daemon's handlers share. Its own module, so that the control surface and
//! the daemon that starts it both depend on it, not on each other.

use std::sync::Arc;

use m2m_chain_client::DeviceKeys;
use m2m_x402_buyer::client::X402Client;

use crate::{chain::Health, config::Config, store::Store};

/// Everything the HTTP handlers (service and control) share.
pub struct Agent {
	pub config: Config,
	pub keys: Arc<DeviceKeys>,
	pub store: Arc<Store>,
	pub health: Arc<Health>,
	pub client: X402Client,
	pub channels: crate::channels::DaemonChannels,
	/// Buying over libp2p: the daemon's node, over the same buyer as `client`.
	pub p2p: crate::p2p::Buying,
}
