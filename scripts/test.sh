#!/usr/bin/env bash
# Runs every test: unit and integration tests of the workspace, the pallet benchmark suites,
# the dev-node end-to-end tests, and the zombienet testnet test. This is what CI runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }
SECONDS=0

step "build (release, shared target dir $CARGO_TARGET_DIR)"
cargo build --release --workspace --locked --bins --examples

step "workspace tests (pallets, runtime, primitives, client, dev-node end to end)"
cargo test --release --workspace --locked

step "benchmark test suites (every benchmark runs once against the mock runtime)"
cargo test --release --locked -p pallet-device-identity -p pallet-settlement-receipts \
	--features runtime-benchmarks -- benchmarking

step "zombienet: 3-validator local testnet"
(cd zombienet && npx zombienet -p native test local-testnet.zndsl)

step "all tests passed in ${SECONDS}s"
