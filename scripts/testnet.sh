#!/usr/bin/env bash
# The main job: build, launch the local testnet with zombienet (3 validators + the chain's
# Ethereum JSON-RPC), deploy USDT and fund two devices, let one pay the other in USDT, record
# the receipt on-chain (verified against the token), and query the fleet accounting back.
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
# Own process group, so that stopping it stops every process zombienet started.
(cd zombienet && exec setsid npx zombienet -p native -d "$NETDIR/network" spawn local-testnet.toml) >"$LOG" 2>&1 &
ZOMBIE=$!
cleanup() {
	kill -INT -- "-$ZOMBIE" 2>/dev/null || true
	for _ in $(seq 1 20); do kill -0 -- "-$ZOMBIE" 2>/dev/null || break; sleep 0.5; done
	kill -KILL -- "-$ZOMBIE" 2>/dev/null || true
	wait "$ZOMBIE" 2>/dev/null || true
}
trap cleanup EXIT

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
export M2M_NODE_URL="$(endpoint alice)"
export M2M_ETH_RPC_URL="$(endpoint eth-rpc | sed 's/^ws/http/')"
echo "    alice $M2M_NODE_URL  bob $(endpoint bob)  charlie $(endpoint charlie)"
echo "    eth-rpc $M2M_ETH_RPC_URL"

# The processes are up; wait until eth-rpc answers, which needs alice's RPC as well.
for _ in $(seq 1 120); do
	m2m-devnet addresses >/dev/null 2>&1 && break
	sleep 1
done

echo "==> USDT on the EVM side, accepted by the receipts pallet"
m2m-devnet deploy-usdt
echo "==> fund two devices (native for fees and gas, USDT to spend)"
m2m-devnet fund robot charger --usdt 100
echo "==> the robot pays the charger in USDT; the chain verifies the receipt; owners account for it"
m2m-devnet demo

if [ "$KEEP" = 1 ]; then
	echo "==> the testnet keeps running; Ctrl-C to stop. Endpoints:"
	m2m-devnet addresses robot charger
	wait "$ZOMBIE"
fi
