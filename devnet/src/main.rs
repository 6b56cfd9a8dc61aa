//! `m2m-devnet`: set up a local m2m-pay testnet for devices that pay in USDT.

use anyhow::Result;
use clap::{Parser, Subcommand};
use m2m_devnet::{Endpoints, NATIVE_UNIT};
use m2m_evm::{alloy::primitives::U256, usdt};

#[derive(Parser)]
#[command(
	name = "m2m-devnet",
	version,
	about = "Set up a local m2m-pay testnet: deploy USDT, fund dev devices, print addresses.",
	long_about = "Set up a local m2m-pay testnet: deploy USDT, fund dev devices, print addresses.\n\n\
		Every command is idempotent and uses DEV keys only: Alice (sudo) registers the asset and \
		pays native fees, Alith pays EVM gas, Faith deploys and mints USDT. A device named NAME \
		gets deterministic DEV keys derived from NAME, so `fund robot` always funds the same \
		robot.\n\n\
		Typical use, against `./scripts/testnet.sh --keep` or `m2m-node --dev` + `m2m-eth-rpc`:\n  \
		m2m-devnet deploy-usdt\n  \
		m2m-devnet fund robot charger --usdt 100\n  \
		m2m-devnet addresses robot charger"
)]
struct Cli {
	/// Node WebSocket RPC.
	#[arg(long, global = true, env = "M2M_NODE_URL", default_value = "ws://127.0.0.1:9944")]
	node: String,
	/// Ethereum JSON-RPC of the chain (m2m-eth-rpc).
	#[arg(long, global = true, env = "M2M_ETH_RPC_URL", default_value = "http://127.0.0.1:8545")]
	eth_rpc: String,
	#[command(subcommand)]
	command: Command,
}

#[derive(Subcommand)]
enum Command {
	/// Deploy USDT (or find the existing deployment) and register it with the receipts pallet.
	DeployUsdt,
	/// Give named dev devices native tokens (chain fees and EVM gas) and USDT.
	Fund {
		/// Device names, e.g. `robot charger`.
		#[arg(required = true)]
		devices: Vec<String>,
		/// Native tokens for each device's chain account and, again, for its EVM address.
		#[arg(long, default_value_t = 10)]
		native: u128,
		/// USDT to mint to each device.
		#[arg(long, default_value_t = 100)]
		usdt: u64,
	},
	/// Print the EVM chain id, the USDT address, the dev accounts and the named devices.
	Addresses {
		/// Device names to include.
		devices: Vec<String>,
		/// Print JSON instead of text.
		#[arg(long)]
		json: bool,
	},
	/// Run one payment end to end: a robot pays a charger in USDT, the charger settles it and
	/// records a receipt the chain verifies, and both owners query their accounting.
	Demo,
}

#[tokio::main]
async fn main() -> Result<()> {
	let cli = Cli::parse();
	let endpoints = Endpoints { node: cli.node, eth_rpc: cli.eth_rpc };
	match cli.command {
		Command::DeployUsdt => {
			let info = m2m_devnet::deploy_usdt(&endpoints).await?;
			println!(
				"USDT {} at {} on EVM chain {} (EIP-712 {:?} version {:?})",
				if info.deployed_now { "deployed" } else { "found" },
				info.address,
				info.domain.chain_id,
				info.domain.name,
				info.domain.version,
			);
			println!(
				"accepted asset of the receipts pallet: {}",
				if info.registered_now { "registered now" } else { "already registered" }
			);
		},
		Command::Fund { devices, native, usdt: amount } => {
			let usdt_units = U256::from(amount) * U256::from(usdt::UNIT);
			for f in
				m2m_devnet::fund(&endpoints, &devices, native * NATIVE_UNIT, usdt_units).await?
			{
				println!(
					"{:<10} account {}  evm {}  native {}  gas {}  {}",
					f.name,
					f.account,
					f.evm_address,
					f.native / NATIVE_UNIT,
					f.gas / U256::from(NATIVE_UNIT),
					m2m_devnet::usdt_amount(f.usdt),
				);
			}
		},
		Command::Addresses { devices, json } => {
			let addresses = m2m_devnet::addresses(&endpoints, &devices).await?;
			if json {
				println!("{}", serde_json::to_string_pretty(&addresses)?);
			} else {
				print_addresses(&addresses);
			}
		},
		Command::Demo => m2m_devnet::demo::run(&endpoints).await?,
	}
	Ok(())
}

fn print_addresses(a: &serde_json::Value) {
	let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
	println!("node          {}", s(&a["node"]));
	println!("eth-rpc       {}", s(&a["eth_rpc"]));
	println!("EVM chain id  {}", a["evm_chain_id"]);
	println!("USDT          {}", a["usdt"].as_str().unwrap_or("not deployed"));
	println!("dev accounts (DEV keys):");
	for acc in a["dev_accounts"].as_array().into_iter().flatten() {
		println!("  {:<10} {}  {}", s(&acc["name"]), s(&acc["address"]), s(&acc["role"]));
	}
	for d in a["devices"].as_array().into_iter().flatten() {
		println!(
			"device {:<8} account {}  evm {}",
			s(&d["name"]),
			s(&d["account"]),
			s(&d["evm_address"])
		);
	}
}
