//! Runs the runtime's pallet benchmarks from a wasm blob and writes weight files, the way
//! `frame-omni-bencher v1 benchmark pallet` does. Usage (see scripts/benchmark-weights.sh):
//!
//! ```text
//! m2m-bencher pallet --runtime m2m_runtime.wasm --pallet pallet_device_identity \
//!     --extrinsic '*' --steps 50 --repeat 20 --output pallets/device-identity/src/weights.rs
//! ```

use clap::Parser;
use frame_benchmarking_cli::PalletCmd;

#[derive(Debug, Parser)]
#[command(about = "Benchmark the pallets of an m2m-pay runtime wasm and generate weights")]
enum Command {
	/// Benchmark pallet extrinsics (`frame-benchmarking-cli`'s `benchmark pallet`).
	Pallet(PalletCmd),
}

fn main() -> sc_cli::Result<()> {
	env_logger_init();
	match Command::parse() {
		Command::Pallet(cmd) =>
			cmd.run_with_spec::<sp_runtime::traits::BlakeTwo256, ()>(None),
	}
}

fn env_logger_init() {
	// frame-benchmarking-cli logs through `log`; keep its warnings visible.
	let _ = sc_cli::LoggerBuilder::new("").init();
}
