#!/usr/bin/env bash
# Regenerates pallets/*/src/weights.rs from the pallet benchmarks, run in the runtime wasm.
# Not part of CI: it builds frame-benchmarking-cli (tools/bencher) and a runtime with the
# `runtime-benchmarks` feature. Run it on the reference machine after changing a pallet.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh
STEPS="${STEPS:-50}"
REPEAT="${REPEAT:-20}"

echo "==> runtime wasm with benchmarks"
# pallet-revive's fixtures need a native solc; the runtime does not benchmark pallet-revive.
export SKIP_PALLET_REVIVE_FIXTURES="${SKIP_PALLET_REVIVE_FIXTURES:-1}"
cargo build --release --locked -p m2m-runtime --features runtime-benchmarks
WASM="$CARGO_TARGET_DIR/release/wbuild/m2m-runtime/m2m_runtime.compact.compressed.wasm"
BENCH_WASM="$CARGO_TARGET_DIR/m2m_runtime.benchmarks.wasm"
cp "$WASM" "$BENCH_WASM"

echo "==> benchmark runner (tools/bencher)"
# The bencher never needs the storage-access test runtime frame-benchmarking-cli embeds.
(cd tools/bencher && SKIP_WASM_BUILD=1 cargo build --release --locked)

for pallet in device-identity settlement-receipts; do
	name="pallet_${pallet//-/_}"
	echo "==> $name"
	"$CARGO_TARGET_DIR/release/m2m-bencher" pallet \
		--runtime "$BENCH_WASM" \
		--genesis-builder-preset development \
		--pallet "$name" --extrinsic '*' \
		--steps "$STEPS" --repeat "$REPEAT" \
		--template tools/bencher/pallet-weight-template.hbs \
		--output "pallets/$pallet/src/weights.rs"
done

echo "==> restore the regular runtime build"
cargo build --release --locked --workspace --bins --examples
