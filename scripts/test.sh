#!/usr/bin/env bash
# Runs every test: unit and integration tests of the workspace, the pallet benchmark suites,
# the dev-node end-to-end tests, and the zombienet testnet test. This is what CI runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }
SECONDS=0
# Every runner's output also goes to this log, so that the summary can count the tests.
LOG="$(mktemp -t m2m-test.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT
run() { "$@" 2>&1 | tee -a "$LOG"; }

step "build (release, shared target dir $CARGO_TARGET_DIR)"
cargo build --release --workspace --locked --bins --examples

step "workspace tests (pallets, runtime, primitives, client, dev-node end to end)"
run cargo test --release --workspace --locked

step "benchmark test suites (every benchmark runs once against the mock runtime)"
run cargo test --release --locked -p pallet-device-identity -p pallet-settlement-receipts \
	--features runtime-benchmarks -- benchmarking

step "zombienet: 3-validator local testnet"
(cd zombienet && run npx zombienet -p native test local-testnet.zndsl)

passed=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | awk '
	/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^passed;?$/) p += $(i - 1) }
	/Result: [0-9]+\/[0-9]+/ { match($0, /Result: [0-9]+/); p += substr($0, RSTART + 8, RLENGTH - 8) }
	END { print p + 0 }')
step "all tests passed in ${SECONDS}s"
echo "${passed} passed, 0 failed"
