//! Networks: CAIP-2 identifiers in v2 (`eip155:<chainId>`), names in v1.

/// v1 network names and their EIP-155 chain ids.
pub const V1_NAMES: &[(&str, u64)] = &[
	("base", 8453),
	("base-sepolia", 84532),
	("avalanche", 43114),
	("avalanche-fuji", 43113),
	("polygon", 137),
	("polygon-amoy", 80002),
	("sei", 1329),
	("sei-testnet", 1328),
	("iotex", 4689),
	("peaq", 3338),
];

/// The CAIP-2 identifier of an EVM chain.
pub fn caip2(chain_id: u64) -> String {
	format!("eip155:{chain_id}")
}

/// The chain id of `eip155:<chainId>`; `None` for other namespaces or malformed ids.
pub fn evm_chain_id(network: &str) -> Option<u64> {
	let id = network.strip_prefix("eip155:")?;
	if id.is_empty() || id.starts_with('0') || !id.bytes().all(|b| b.is_ascii_digit()) {
		return None;
	}
	id.parse().ok()
}

/// The chain id of a v1 network name.
pub fn v1_chain_id(name: &str) -> Option<u64> {
	V1_NAMES.iter().find(|(n, _)| *n == name).map(|(_, id)| *id)
}

/// The v1 name of a chain, if v1 had one.
pub fn v1_name(chain_id: u64) -> Option<&'static str> {
	V1_NAMES.iter().find(|(_, id)| *id == chain_id).map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn caip2_and_v1_names() {
		assert_eq!(evm_chain_id("eip155:84532"), Some(84532));
		assert_eq!(evm_chain_id(&caip2(33380)), Some(33380));
		for bad in ["eip155:", "eip155:01", "eip155:-1", "eip155:1x", "solana:5eykt", "84532"] {
			assert_eq!(evm_chain_id(bad), None, "{bad}");
		}
		assert_eq!(v1_chain_id("peaq"), Some(3338));
		assert_eq!(v1_name(84532), Some("base-sepolia"));
		assert_eq!(v1_chain_id("ethereum-classic"), None);
	}
}
