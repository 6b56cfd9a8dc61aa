//! The committed chain specs are what the node generates.

use m2m_e2e_tests::workspace_binary;
use serde_json::Value;
use std::process::Command;

/// Exports a built-in chain spec with the node binary: the exact bytes.
fn export(chain: &str) -> Vec<u8> {
	let output = Command::new(workspace_binary("m2m-node", "M2M_NODE_BIN"))
		.args(["export-chain-spec", "--chain", chain])
		.output()
		.expect("node runs");
	assert!(output.status.success(), "export failed: {}", String::from_utf8_lossy(&output.stderr));
	output.stdout
}

/// The runtime wasm inside a spec depends on the absolute build path (panic locations), so it
/// differs between clones; everything else must match exactly.
fn without_code(mut spec: Value) -> Value {
	let code = spec
		.pointer_mut("/genesis/runtimeGenesis/code")
		.expect("a plain spec carries the runtime code");
	assert!(
		code.as_str().is_some_and(|c| c.starts_with("0x") && c.len() > 1000),
		"code is wasm hex"
	);
	*code = Value::Null;
	spec
}

fn check(chain: &str, file: &str) {
	let path = format!("{}/../chain-specs/{file}", env!("CARGO_MANIFEST_DIR"));
	let exported = export(chain);
	if std::env::var_os("M2M_BLESS").is_some() {
		// Verbatim: balances exceed 64 bits and must stay exact integers in the file.
		std::fs::write(&path, &exported).unwrap();
	}
	let generated: Value = serde_json::from_slice(&exported).expect("the node prints JSON");
	let committed: Value =
		serde_json::from_str(&std::fs::read_to_string(&path).expect("committed spec")).unwrap();
	assert_eq!(
		without_code(committed),
		without_code(generated),
		"{file} drifted from `m2m-node export-chain-spec --chain {chain}`; \
		 regenerate with `M2M_BLESS=1 cargo test --release -p m2m-e2e-tests --test chain_specs`"
	);
}

#[test]
fn dev_spec_matches_the_node() {
	check("dev", "dev.json");
}

#[test]
fn local_spec_matches_the_node() {
	check("local", "local.json");
}
