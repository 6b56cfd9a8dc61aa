//! Test harness: real node processes on loopback.
//!
//! Binaries come from the shared target directory: `cargo build --release --workspace` (the
//! README's test command does it) must have run first. Override with `M2M_NODE_BIN`.

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

/// A running `m2m-node`, killed (and its database removed) when dropped.
pub struct Node {
	child: Child,
	base_path: PathBuf,
	/// `ws://127.0.0.1:<port>` of its RPC server.
	pub ws_url: String,
	log: Arc<Mutex<Vec<String>>>,
}

impl Node {
	/// Starts `m2m-node --dev` (instant sealing) on free loopback ports.
	pub fn dev() -> Node {
		Self::start(&["--dev"])
	}

	/// Starts the node with extra arguments. RPC, p2p and Prometheus ports are chosen by the
	/// OS (port 0), so parallel tests never collide; the RPC address is read from the log.
	pub fn start(args: &[&str]) -> Node {
		let bin = workspace_binary("m2m-node", "M2M_NODE_BIN");
		let base_path = unique_temp_dir("m2m-node");
		let mut child = Command::new(&bin)
			.args(args)
			.arg("--base-path")
			.arg(&base_path)
			.args([
				"--rpc-port",
				"0",
				"--listen-addr",
				"/ip4/127.0.0.1/tcp/0",
				"--no-prometheus",
				"--no-telemetry",
				"--no-mdns",
			])
			.stdout(Stdio::null())
			.stderr(Stdio::piped())
			.spawn()
			.unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));

		let log = Arc::new(Mutex::new(Vec::new()));
		let (addr_tx, addr_rx) = mpsc::channel();
		let stderr = child.stderr.take().expect("piped stderr");
		let sink = log.clone();
		std::thread::spawn(move || {
			for line in BufReader::new(stderr).lines().map_while(Result::ok) {
				if let Some(addr) = rpc_address(&line) {
					let _ = addr_tx.send(addr);
				}
				sink.lock().unwrap().push(line);
			}
		});
		match addr_rx.recv_timeout(Duration::from_secs(120)) {
			Ok(addr) => Node { child, base_path, ws_url: format!("ws://{addr}"), log },
			Err(_) => {
				let _ = child.kill();
				let _ = std::fs::remove_dir_all(&base_path);
				panic!(
					"node did not start its RPC server within 120 s; log:\n{}",
					log.lock().unwrap().join("\n")
				);
			},
		}
	}

	/// The node's log so far.
	pub fn log(&self) -> String {
		self.log.lock().unwrap().join("\n")
	}
}

impl Drop for Node {
	fn drop(&mut self) {
		let _ = self.child.kill();
		let _ = self.child.wait();
		let _ = std::fs::remove_dir_all(&self.base_path);
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
