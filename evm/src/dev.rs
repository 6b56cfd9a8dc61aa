//! The DEV Ethereum accounts: BIP-44 `m/44'/60'/0'/0/i` of the public Substrate dev mnemonic, the
//! same accounts Moonbeam and peaq dev chains use. The `dev` and `local` chain presets fund them;
//! `anvil --mnemonic "<DEV_MNEMONIC>"` funds the same ones, so code and tests move between the
//! two unchanged. **These keys are public: never use them outside a local testnet.**

use alloy::{primitives::Address, signers::local::PrivateKeySigner};

/// The public dev mnemonic (DEV ONLY).
pub const DEV_MNEMONIC: &str =
	"bottom drive obey lake curtain smoke basket hold race lonely fit walk";

/// Funds native tokens to devices on the testnet.
pub const FAUCET: &str = "alith";
/// Deploys and owns (mints) the testnet USDT. Its first transaction is the deployment, so USDT
/// has the same address on every fresh testnet: [`crate::usdt::canonical_address`].
pub const USDT_DEPLOYER: &str = "faith";

/// A dev account: its name and DEV private key.
pub struct DevAccount {
	pub name: &'static str,
	secret: [u8; 32],
}

macro_rules! key {
	($hex:literal) => {
		match alloy::hex::const_decode_to_array::<32>($hex.as_bytes()) {
			Ok(k) => k,
			Err(_) => panic!("dev key is 32 bytes of hex"),
		}
	};
}

/// Alith, Baltathar, Charleth, Dorothy, Ethan, Faith: indices 0–5 of [`DEV_MNEMONIC`].
pub const DEV_ACCOUNTS: [DevAccount; 6] = [
	DevAccount {
		name: "alith",
		secret: key!("5fb92d6e98884f76de468fa3f6278f8807c48bebc13595d45af5bdc4da702133"),
	},
	DevAccount {
		name: "baltathar",
		secret: key!("8075991ce870b93a8870eca0c0f91913d12f47948ca0fd25b49c6fa7cdbeee8b"),
	},
	DevAccount {
		name: "charleth",
		secret: key!("0b6e18cafb6ed99687ec547bd28139cafdd2bffe70e6b688025de6b445aa5c5b"),
	},
	DevAccount {
		name: "dorothy",
		secret: key!("39539ab1876910bbf3a223d84a29e28f1cb4e2e456503e7e91ed39b2e7223d68"),
	},
	DevAccount {
		name: "ethan",
		secret: key!("7dce9bc8babb68fec1409be38c8e1a52650206a7ed90ff956ae8a6d15eeaaef4"),
	},
	DevAccount {
		name: "faith",
		secret: key!("b9d2ea9a615f3165812e8d44de0d24da9bbd164b65c4f0573e1ce2c8dbd9c8df"),
	},
];

impl DevAccount {
	/// The account's signer (DEV key).
	pub fn signer(&self) -> PrivateKeySigner {
		PrivateKeySigner::from_bytes(&self.secret.into()).expect("dev keys are valid scalars")
	}

	pub fn address(&self) -> Address {
		self.signer().address()
	}
}

/// The dev account called `name` (`alith` … `faith`).
pub fn account(name: &str) -> Option<&'static DevAccount> {
	DEV_ACCOUNTS.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// The signer of dev account `name`; panics on an unknown name (a programming error).
pub fn signer(name: &str) -> PrivateKeySigner {
	account(name).unwrap_or_else(|| panic!("no dev account named {name}")).signer()
}

#[cfg(test)]
mod tests {
	use super::*;

	/// The addresses the chain presets fund (and Moonbeam documents) for these keys.
	#[test]
	fn dev_keys_control_the_funded_addresses() {
		let expected = [
			"0xf24FF3a9CF04c71Dbc94D0b566f7A27B94566cac",
			"0x3Cd0A705a2DC65e5b1E1205896BaA2be8A07c6e0",
			"0x798d4Ba9baf0064Ec19eB4F0a1a45785ae9D6DFc",
			"0x773539d4Ac0e786233D90A233654ccEE26a613D9",
			"0xFf64d3F6efE2317EE2807d223a0Bdc4c0c49dfDB",
			"0xC0F0f4ab324C46e55D02D0033343B4Be8A55532d",
		];
		for (account, expected) in DEV_ACCOUNTS.iter().zip(expected) {
			assert_eq!(account.address(), expected.parse::<Address>().unwrap(), "{}", account.name);
		}
		assert_eq!(account("Faith").unwrap().name, USDT_DEPLOYER);
		assert!(account("mallory").is_none());
	}
}
