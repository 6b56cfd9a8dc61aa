//! `machine-agent` processes for tests: a device directory made by `machine-agent init --dev`,
//! its daemon, and its command line, pointed at a chain and an EVM endpoint.

use std::{
	path::PathBuf,
	process::{Command, Output},
};

use m2m_chain_client::DeviceKeys;
use m2m_evm::alloy::primitives::Address;

use crate::{unique_temp_dir, workspace_binary, Process};

/// One device: its directory (config, keys, RocksDB) and where it talks.
pub struct Device {
	pub name: String,
	pub dir: PathBuf,
	pub chain_url: String,
	pub evm_url: String,
	/// Extra environment (overrides), e.g. `M2M_SPENDING_DAILY_BUDGET`.
	pub env: Vec<(String, String)>,
}

impl Device {
	/// `machine-agent init --dev --name <name> --owner <owner>`, serving on a free port.
	pub fn init(name: &str, owner: &str, usdt: Address, chain_url: &str, evm_url: &str) -> Device {
		// Unique per test run, so dev keys from the name never meet a previous run's state.
		let dir = unique_temp_dir(&format!("m2m-agent-{name}"));
		let device = Device {
			name: name.into(),
			dir,
			chain_url: chain_url.into(),
			evm_url: evm_url.into(),
			env: Vec::new(),
		};
		let out = device.cli(&[
			"init",
			"--name",
			name,
			"--dev",
			"--owner",
			owner,
			"--listen",
			"127.0.0.1:0",
			"--usdt",
			&usdt.to_checksum(None),
		]);
		assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
		device
	}

	pub fn keys(&self) -> DeviceKeys {
		DeviceKeys::dev(&format!("devnet/{}", self.name))
	}

	pub fn evm_address(&self) -> Address {
		Address::from(self.keys().evm_address().0)
	}

	fn command(&self) -> Command {
		let mut c = Command::new(workspace_binary("machine-agent", "M2M_AGENT_BIN"));
		c.arg("--config")
			.arg(self.dir.join("machine-agent.toml"))
			.env("M2M_CHAIN_URL", &self.chain_url)
			.env("M2M_EVM_RPC_URL", &self.evm_url)
			.env("RUST_LOG", "info");
		for (k, v) in &self.env {
			c.env(k, v);
		}
		c
	}

	/// Runs a command to completion.
	pub fn cli(&self, args: &[&str]) -> Output {
		self.command().args(args).output().expect("machine-agent runs")
	}

	/// Starts the daemon; returns it and its base URL.
	pub fn run(&self) -> (Process, String) {
		let mut c = self.command();
		c.arg("run");
		Process::spawn(&format!("machine-agent {}", self.name), c, None, |line| {
			line.strip_prefix("machine-agent listening on ").map(str::to_string)
		})
	}

	/// Starts a command without waiting for it (to kill it midway).
	pub fn spawn(&self, args: &[&str]) -> std::process::Child {
		self.command()
			.args(args)
			.stdout(std::process::Stdio::piped())
			.stderr(std::process::Stdio::piped())
			.spawn()
			.expect("machine-agent starts")
	}
}

impl Drop for Device {
	fn drop(&mut self) {
		let _ = std::fs::remove_dir_all(&self.dir);
	}
}

/// stdout and stderr of a finished command, for assertions.
pub fn text(out: &Output) -> (String, String) {
	(
		String::from_utf8_lossy(&out.stdout).into_owned(),
		String::from_utf8_lossy(&out.stderr).into_owned(),
	)
}
