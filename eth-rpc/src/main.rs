//! `m2m-eth-rpc`: the Ethereum JSON-RPC endpoint of an m2m-pay chain.
//!
//! This is `pallet-revive-eth-rpc` (the server that pairs with our pallet-revive) as a library,
//! with one addition: it accepts, and ignores, the peer-to-peer flags that launchers such as
//! zombienet pass to every member of a network (`--name`, `--node-key`, `--listen-addr`, …).
//! That lets the testnet spec start it next to the validators with zombienet's own port
//! allocation for `--rpc-port` and `--prometheus-port`.

use clap::Parser;
use pallet_revive_eth_rpc::cli::{self, CliCommand};

#[derive(Parser, Debug)]
#[command(
	name = "m2m-eth-rpc",
	version,
	about = "Ethereum JSON-RPC for an m2m-pay node (pallet-revive).",
	long_about = "Ethereum JSON-RPC for an m2m-pay node (pallet-revive).\n\n\
		Connects to a node over WebSocket (--node-rpc-url) and serves eth_* JSON-RPC over HTTP \
		and WebSocket on --rpc-port (default 8545), bound to 127.0.0.1 unless --rpc-external is \
		given. Use --eth-pruning N to keep the last N blocks' receipts in memory (fine for tests \
		and devices); the default, archive, stores every block's receipts on disk and needs an \
		archive node.\n\n\
		Example: m2m-eth-rpc --node-rpc-url ws://127.0.0.1:9944 --rpc-port 8545 --eth-pruning 1000"
)]
struct Command {
	#[command(flatten)]
	eth: CliCommand,
	#[command(flatten)]
	launcher: LauncherFlags,
}

/// Flags a network launcher passes to every node. They mean nothing to an RPC server and are
/// ignored.
#[derive(clap::Args, Debug)]
struct LauncherFlags {
	#[arg(long, hide = true)]
	name: Option<String>,
	#[arg(long, hide = true)]
	node_key: Option<String>,
	#[arg(long, hide = true)]
	no_mdns: bool,
	#[arg(long, hide = true)]
	no_telemetry: bool,
	#[arg(long, hide = true, num_args = 1..)]
	listen_addr: Vec<String>,
	#[arg(long, hide = true, num_args = 1..)]
	bootnodes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
	let Command { eth, launcher: _ } = Command::parse();
	cli::run(eth)
}
