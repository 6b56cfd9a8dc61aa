#!/usr/bin/env bash
# The main job: build, launch the 3-validator local testnet with zombienet, register two
# devices, record a payment between them, and query the fleet accounting back from the chain.
#   ./scripts/testnet.sh          run the demo, then stop the network
#   ./scripts/testnet.sh --keep   leave the network running (Ctrl-C stops it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh

KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

echo "==> build (release, shared target dir $CARGO_TARGET_DIR)"
cargo build --release --workspace --locked --bins --examples

NETDIR="$(mktemp -d -t m2m-testnet.XXXXXX)"
LOG="$NETDIR/zombienet.log"
echo "==> launching the local testnet (files and logs: $NETDIR)"
# Own process group, so that stopping it stops every node zombienet started.
(cd zombienet && exec setsid npx zombienet -p native -d "$NETDIR/network" spawn local-testnet.toml) >"$LOG" 2>&1 &
ZOMBIE=$!
cleanup() {
	kill -INT -- "-$ZOMBIE" 2>/dev/null || true
	for _ in $(seq 1 20); do kill -0 -- "-$ZOMBIE" 2>/dev/null || break; sleep 0.5; done
	kill -KILL -- "-$ZOMBIE" 2>/dev/null || true
	wait "$ZOMBIE" 2>/dev/null || true
}
trap cleanup EXIT

# zombienet prints this once every node is up and its RPC answers.
for _ in $(seq 1 300); do
	grep -q "Network launched" "$LOG" && break
	kill -0 "$ZOMBIE" 2>/dev/null || { cat "$LOG"; echo "zombienet exited early" >&2; exit 1; }
	sleep 1
done
grep -q "Network launched" "$LOG" || { tail -50 "$LOG"; echo "testnet did not start in 300 s" >&2; exit 1; }
endpoint() {
	node -e 'const n = require(process.argv[1]).relay.find((n) => n.name === process.argv[2]); console.log(n.wsUri)' \
		"$NETDIR/network/zombie.json" "$1"
}
ALICE="$(endpoint alice)"
echo "    alice $ALICE  bob $(endpoint bob)  charlie $(endpoint charlie)"

echo "==> devices pay each other and the owners account for it"
"$CARGO_TARGET_DIR/release/examples/testnet_demo" "$ALICE"

if [ "$KEEP" = 1 ]; then
	echo "==> the testnet keeps running; Ctrl-C to stop"
	wait "$ZOMBIE"
fi
