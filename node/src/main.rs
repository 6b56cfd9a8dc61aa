//! `m2m-node`: the m2m-pay solochain node.
//!
//! Aura block production and GRANDPA finality for networks (`--chain local`), or instant sealing
//! for a single development node (`--dev`), with the device-identity and settlement-receipts
//! pallets in the runtime.

// `sc_cli::Error` and `sc_service::Error` are large, and the sc-cli/sc-service signatures that
// return them are not ours to change.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
