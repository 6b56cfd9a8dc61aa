#!/usr/bin/env bash
# Fuzzes the /x402/1.0.0 libp2p codec (fuzz/fuzz_targets/codec.rs) for a bounded time, then
# prints what it ran: executions, their rate, coverage, and any crash. Not part of CI.
#
#   ./scripts/fuzz.sh            # 120 s
#   ./scripts/fuzz.sh 600        # 10 minutes
#
# cargo-fuzz needs a nightly toolchain (libFuzzer's instrumentation and AddressSanitizer);
# the fuzz crate builds outside the workspace, into its own target directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh
SECONDS_TO_RUN="${1:-120}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/m2m/fuzz-target}"
log() { printf '\033[1;34m[fuzz]\033[0m %s\n' "$*"; }

if ! rustup toolchain list | grep -q '^nightly'; then
	log "installing the nightly toolchain (cargo-fuzz needs it)"
	rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
	log "installing cargo-fuzz from crates.io"
	cargo install cargo-fuzz --locked
fi

# Seeds: a bare request, a paid one, an oversize length, a malformed prefix.
CORPUS="$FUZZ_TARGET_DIR/corpus/codec"
mkdir -p "$CORPUS"
seed() { printf '%s' "$2" >"$CORPUS/$1"; }
frame() { python3 -c 'import sys
b = sys.argv[1].encode()
n = len(b); p = bytearray()
while True:
    if n < 0x80: p.append(n); break
    p.append((n & 0x7f) | 0x80); n >>= 7
sys.stdout.buffer.write(bytes(p) + b)' "$1"; }
frame '{"resource":"/reading"}' >"$CORPUS/unpaid"
frame '{"resource":"/kwh?n=3","payment":{"x402Version":2,"accepted":{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x0000000000000000000000000000000000000001","payTo":"0x0000000000000000000000000000000000000002","maxTimeoutSeconds":60,"extra":{"name":"Tether USD","version":"1"}},"payload":{"signature":"0x00","authorization":{"from":"0x0000000000000000000000000000000000000003","to":"0x0000000000000000000000000000000000000002","value":"10000","validAfter":"0","validBefore":"9999999999","nonce":"0x0000000000000000000000000000000000000000000000000000000000000000"}}}}' >"$CORPUS/paid"
frame '{"status":402,"error":"invalid_payload","message":"no","body":"aGk="}' >"$CORPUS/response"
seed oversize $'\xff\xff\x03{'
seed bad-prefix $'\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff'

log "building the codec target (first time: several minutes)"
cd fuzz
cargo +nightly fuzz build --release --target-dir "$FUZZ_TARGET_DIR" codec
log "fuzzing for ${SECONDS_TO_RUN} s"
OUT="$(mktemp -t m2m-fuzz.XXXXXX.log)"
status=0
cargo +nightly fuzz run --release --target-dir "$FUZZ_TARGET_DIR" codec "$CORPUS" -- \
	-max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1 >"$OUT" 2>&1 || status=$?
grep -E '^#[0-9]+' "$OUT" | tail -2 || true
runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$OUT" | grep -oE '[0-9]+$' || true)
rate=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$OUT" | grep -oE '[0-9]+$' || true)
cov=$(grep -oE 'cov: [0-9]+' "$OUT" | tail -1 || true)
if ((status != 0)) || grep -q 'ERROR: libFuzzer\|panicked at' "$OUT"; then
	grep -E 'panicked at|ERROR: libFuzzer|Test unit written|error' "$OUT" >&2 || tail -20 "$OUT" >&2
	log "FAILED (exit $status): the log is $OUT; a crashing input is saved under fuzz/artifacts/codec/"
	exit 1
fi
log "codec: ${runs:-?} executions in ${SECONDS_TO_RUN} s (${rate:-?}/s), ${cov:-cov: ?} edges, no crash"
rm -f "$OUT"
