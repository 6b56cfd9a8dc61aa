use sc_cli::RunCmd;

/// How a node produces blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sealing {
	/// Aura slots (6 s) with GRANDPA finality: what a network of validators runs.
	Aura,
	/// A block as soon as a transaction arrives, finalized at once. Single-node development
	/// only: peers cannot import these blocks.
	Instant,
	/// Like `instant`, but blocks are final only when the `engine_finalizeBlock` RPC says so
	/// (and `engine_createBlock` seals on demand, also on another parent: a fork). For testing
	/// what clients do before finality and across reorgs. Single-node development only.
	ManualFinality,
}

impl Sealing {
	/// Whether blocks come from manual-seal (instant or manual finality) rather than Aura.
	pub fn is_manual(self) -> bool {
		matches!(self, Sealing::Instant | Sealing::ManualFinality)
	}
}

#[derive(Debug, clap::Parser)]
#[command(
	about = "m2m-pay node: a Substrate solochain with device identity and settlement receipts",
	long_about = "m2m-pay node: a Substrate solochain (Aura + GRANDPA) with device identity and \
	              settlement-receipt pallets.\n\n\
	              Quick start:\n  \
	              m2m-node --dev                  single development node, instant sealing, RPC on 127.0.0.1:9944\n  \
	              m2m-node --dev --sealing aura   the same with 6 s Aura slots\n  \
	              m2m-node --dev --sealing manual-finality   instant blocks, final only on engine_finalizeBlock\n  \
	              m2m-node --chain local --alice  a validator of the 3-validator local testnet\n  \
	              m2m-node export-chain-spec --chain local --output local.json"
)]
pub struct Cli {
	#[command(subcommand)]
	pub subcommand: Option<Subcommand>,

	/// Block production. Defaults to `instant` for the dev chain and `aura` otherwise.
	#[arg(long, value_enum)]
	pub sealing: Option<Sealing>,

	#[clap(flatten)]
	pub run: RunCmd,
}

#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Subcommand {
	/// Key management utilities.
	#[command(subcommand)]
	Key(sc_cli::KeySubcommand),

	/// Build a chain specification (legacy; prefer `export-chain-spec`).
	BuildSpec(sc_cli::BuildSpecCmd),

	/// Export a chain specification (`--chain dev|local|<path>`, `--raw`, `--output`).
	ExportChainSpec(sc_cli::ExportChainSpecCmd),

	/// Validate blocks.
	CheckBlock(sc_cli::CheckBlockCmd),

	/// Export blocks.
	ExportBlocks(sc_cli::ExportBlocksCmd),

	/// Export the state of a given block into a chain spec.
	ExportState(sc_cli::ExportStateCmd),

	/// Import blocks.
	ImportBlocks(sc_cli::ImportBlocksCmd),

	/// Remove the whole chain.
	PurgeChain(sc_cli::PurgeChainCmd),

	/// Revert the chain to a previous state.
	Revert(sc_cli::RevertCmd),

	/// Db meta columns information.
	ChainInfo(sc_cli::ChainInfoCmd),
}
