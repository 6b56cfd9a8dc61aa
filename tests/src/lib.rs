//! Test harness: real processes on loopback (the node, its Ethereum JSON-RPC, anvil).
//!
//! Binaries come from the shared target directory: `cargo build --release --workspace` (the
//! README's test command does it) must have run first. Override with `M2M_NODE_BIN`,
//! `M2M_ETH_RPC_BIN` or `M2M_ANVIL_BIN`.

pub mod agent;
pub mod channel_suite;
pub mod conformance;
pub mod load;
pub mod market;
pub mod rpc_proxy;
pub mod usdt_suite;

use std::{
	io::{BufRead, BufReader},
	path::PathBuf,
	process::{Child, Command, Stdio},
	sync::{mpsc, Arc, Mutex},
	time::Duration,
};

/// Path of a binary built from this workspace, next to the test executable's profile directory.
pub fn workspace_binary(name: &str, env_override: &str) -> PathBuf {
	if let Ok(path) = std::env::var(env_override) {
		return PathBuf::from(path);
	}
	// target/<profile>/deps/<test-binary> → target/<profile>/<name>
	let exe = std::env::current_exe().expect("test executable path");
	let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
	let path = profile_dir.join(name);
	assert!(
		path.exists(),
		"{} not found: run `cargo build --release --workspace` first (or set {env_override})",
		path.display()
	);
	path
}

/// A child process that is killed (and its scratch directory removed) when dropped, with its
/// output kept for failure messages.
pub struct Process {
	child: Child,
	scratch: Option<PathBuf>,
	log: Arc<Mutex<Vec<String>>>,
}

impl Process {
	/// Spawns `command` and waits until `ready` recognises a line of its output (stdout or
	/// stderr), returning what `ready` extracted (an address, typically).
	pub fn spawn(
		what: &str,
		mut command: Command,
		scratch: Option<PathBuf>,
		ready: fn(&str) -> Option<String>,
	) -> (Process, String) {
		let mut child = command
			.stdout(Stdio::piped())
			.stderr(Stdio::piped())
			.spawn()
			.unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
		let log = Arc::new(Mutex::new(Vec::new()));
		let (ready_tx, ready_rx) = mpsc::channel();
		let pipes: [Box<dyn std::io::Read + Send>; 2] = [
			Box::new(child.stdout.take().expect("piped stdout")),
			Box::new(child.stderr.take().expect("piped stderr")),
		];
		for pipe in pipes {
			let (sink, ready_tx) = (log.clone(), ready_tx.clone());
			std::thread::spawn(move || {
				for line in BufReader::new(pipe).lines().map_while(Result::ok) {
					if let Some(found) = ready(&line) {
						let _ = ready_tx.send(found);
					}
					sink.lock().unwrap().push(line);
				}
			});
		}
		let process = Process { child, scratch, log };
		match ready_rx.recv_timeout(Duration::from_secs(120)) {
			Ok(found) => (process, found),
			Err(_) => panic!("{what} did not become ready within 120 s; log:\n{}", process.log()),
		}
	}

	/// The process id (to read its memory in `/proc`).
	pub fn pid(&self) -> u32 {
		self.child.id()
	}

	/// The process's output so far.
	pub fn log(&self) -> String {
		self.log.lock().unwrap().join("\n")
	}
}

impl Drop for Process {
	fn drop(&mut self) {
		let _ = self.child.kill();
		let _ = self.child.wait();
		if let Some(dir) = &self.scratch {
			let _ = std::fs::remove_dir_all(dir);
		}
	}
}

/// A running `m2m-node`.
pub struct Node {
	process: Process,
	/// `ws://127.0.0.1:<port>` of its RPC server.
	pub ws_url: String,
}

impl Node {
	/// Starts `m2m-node --dev` (instant sealing) on free loopback ports.
	pub fn dev() -> Node {
		Self::start(&["--dev"])
	}

	/// Starts the node with extra arguments. RPC, p2p and Prometheus ports are chosen by the
	/// OS (port 0), so parallel tests never collide; the RPC address is read from the log.
	pub fn start(args: &[&str]) -> Node {
		let base_path = unique_temp_dir("m2m-node");
		Self::spawn(args, base_path.clone(), Some(base_path))
	}

	/// Starts the node on a database that outlives it (`base_path`, which the caller removes),
	/// so that it can be stopped and started again with its chain intact.
	pub fn start_at(base_path: &std::path::Path, args: &[&str]) -> Node {
		Self::spawn(args, base_path.to_path_buf(), None)
	}

	fn spawn(args: &[&str], base_path: PathBuf, scratch: Option<PathBuf>) -> Node {
		let mut command = Command::new(workspace_binary("m2m-node", "M2M_NODE_BIN"));
		command.args(args).arg("--base-path").arg(&base_path);
		if !args.contains(&"--rpc-port") {
			command.args(["--rpc-port", "0"]);
		}
		command.args([
			"--listen-addr",
			"/ip4/127.0.0.1/tcp/0",
			"--no-prometheus",
			"--no-telemetry",
			"--no-mdns",
		]);
		let (process, addr) = Process::spawn("m2m-node", command, scratch, rpc_address);
		Node { process, ws_url: format!("ws://{addr}") }
	}

	/// The node's log so far.
	pub fn log(&self) -> String {
		self.process.log()
	}
}

/// A running `m2m-eth-rpc` in front of a node.
pub struct EthRpc {
	process: Process,
	/// `http://127.0.0.1:<port>`.
	pub url: String,
}

impl EthRpc {
	/// Starts `m2m-eth-rpc` for `node` on a free loopback port, keeping receipts in memory.
	pub fn start(node: &Node) -> EthRpc {
		let mut command = Command::new(workspace_binary("m2m-eth-rpc", "M2M_ETH_RPC_BIN"));
		command.args([
			"--node-rpc-url",
			&node.ws_url,
			"--rpc-port",
			"0",
			"--eth-pruning",
			"1000",
			"--no-prometheus",
		]);
		let (process, addr) = Process::spawn("m2m-eth-rpc", command, None, rpc_address);
		EthRpc { process, url: format!("http://{addr}") }
	}

	pub fn log(&self) -> String {
		self.process.log()
	}
}

/// A running anvil (the reference EVM, from `contracts/node_modules`), funding the same DEV
/// accounts as the chain presets.
pub struct Anvil {
	_process: Process,
	/// `http://127.0.0.1:<port>`.
	pub url: String,
}

impl Anvil {
	pub fn start() -> Anvil {
		Self::start_with(&[])
	}

	/// With extra anvil flags, e.g. `--no-mining` for an endpoint that never confirms.
	pub fn start_with(extra: &[&str]) -> Anvil {
		let bin = std::env::var("M2M_ANVIL_BIN").map(PathBuf::from).unwrap_or_else(|_| {
			PathBuf::from(env!("CARGO_MANIFEST_DIR"))
				.join("../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
		});
		assert!(
			bin.exists(),
			"{} not found: run `npm ci` in contracts/ (scripts/setup.sh does) or set M2M_ANVIL_BIN",
			bin.display()
		);
		let mut command = Command::new(bin);
		command.args([
			"--host",
			"127.0.0.1",
			"--port",
			"0",
			"--mnemonic",
			m2m_evm::dev::DEV_MNEMONIC,
			"--accounts",
			"6",
		]);
		command.args(extra);
		let (process, addr) = Process::spawn("anvil", command, None, |line| {
			line.strip_prefix("Listening on ").map(|a| a.trim().to_string())
		});
		Anvil { _process: process, url: format!("http://{addr}") }
	}
}

/// A fresh directory under the system temp dir, unique across processes and threads.
pub fn unique_temp_dir(prefix: &str) -> PathBuf {
	use std::sync::atomic::{AtomicU32, Ordering};
	static COUNTER: AtomicU32 = AtomicU32::new(0);
	let dir = std::env::temp_dir().join(format!(
		"{prefix}-{}-{}-{}",
		std::process::id(),
		COUNTER.fetch_add(1, Ordering::Relaxed),
		now_ms()
	));
	std::fs::create_dir_all(&dir).expect("create temp dir");
	dir
}

/// Parses `Running JSON-RPC server: addr=127.0.0.1:41233,[::1]:41233` into `127.0.0.1:41233`.
fn rpc_address(line: &str) -> Option<String> {
	let rest = line.split("Running JSON-RPC server: addr=").nth(1)?;
	let first = rest.split([',', ' ']).next()?;
	Some(first.trim().to_string())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
	std::time::SystemTime::now()
		.duration_since(std::time::UNIX_EPOCH)
		.expect("clock after 1970")
		.as_millis() as u64
}

#[cfg(test)]
mod tests {
	use super::rpc_address;

	#[test]
	fn parses_the_rpc_address_from_the_node_log() {
		assert_eq!(
			rpc_address(
				"2026-11-21 08:00:00 Running JSON-RPC server: addr=127.0.0.1:41233,[::1]:41233"
			),
			Some("127.0.0.1:41233".into())
		);
		assert_eq!(
			rpc_address("Running JSON-RPC server: addr=127.0.0.1:9944"),
			Some("127.0.0.1:9944".into())
		);
		assert_eq!(rpc_address("Idle (0 peers)"), None);
	}
}
