#!/usr/bin/env bash
# The main job: build, launch the local testnet with zombienet (3 validators + the chain's
# Ethereum JSON-RPC), deploy USDT and fund two devices, start a machine-agent per device, let
# the robot buy charging from the charger over x402 (USDT on the EVM side), per request with
# `exact` and metered from a payment channel, watch the receipts land on-chain (verified
# against the token and the settlement contract), and query both owners' accounting back.
#   ./scripts/testnet.sh            run the demo, then stop the network
#   ./scripts/testnet.sh --keep     leave the network running (Ctrl-C stops it)
#   ./scripts/testnet.sh --load N   after the demo, settle N exact payments at once and print
#                                   settlements/s next to the block capacity (settlement_load)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh

KEEP=0
LOAD=0
while [ $# -gt 0 ]; do
	case "$1" in
		--keep) KEEP=1 ;;
		--load) LOAD="${2:?--load needs a number of payments}"; shift ;;
		*) echo "unknown option $1 (try --keep, --load N)" >&2; exit 2 ;;
	esac
	shift
done

echo "==> build (release, shared target dir $CARGO_TARGET_DIR)"
cargo build --release --workspace --locked --bins --examples

NETDIR="$(mktemp -d -t m2m-testnet.XXXXXX)"
LOG="$NETDIR/zombienet.log"
echo "==> launching the local testnet (files and logs: $NETDIR)"
# Own process group, so that stopping it stops every process zombienet started.
(cd zombienet && exec setsid npx zombienet -p native -d "$NETDIR/network" spawn local-testnet.toml) >"$LOG" 2>&1 &
ZOMBIE=$!
AGENT_PID=""
cleanup() {
	[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
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

echo "==> one machine-agent per device (DEV keys; Alice owns the charger, Bob the robot)"
AGENTS="$NETDIR/agents"
export M2M_CHAIN_URL="$M2M_NODE_URL" M2M_EVM_RPC_URL="$M2M_ETH_RPC_URL"
charger() { machine-agent --config "$AGENTS/charger/machine-agent.toml" "$@"; }
robot() { machine-agent --config "$AGENTS/robot/machine-agent.toml" "$@"; }
charger init --name charger --dev --owner //Alice --listen 127.0.0.1:0
robot init --name robot --dev --owner //Bob --listen 127.0.0.1:0
# The charger sells charging by the kWh instead of the template's sensor reading.
sed -i 's|^path = "/reading"|path = "/charge"|; s|^price = "0.01" .*|price = "0.15"|; s|one sensor reading|one kWh of charging|' \
	"$AGENTS/charger/machine-agent.toml"
# It also meters power by the kWh from a payment channel: one deposit, then a voucher per kWh.
cat >>"$AGENTS/charger/machine-agent.toml" <<'TOML'

[[services]]
path = "/kwh"
price = "0.05"           # USDT per kWh, paid from a payment channel
description = "one kWh, metered"
handler = "sensor"
scheme = "batch-settlement"
units_per_voucher = 5    # also streamed over libp2p: one voucher per 5 kWh ticks
unit_interval_ms = 200
TOML
# The robot may spend up to 0.50 USDT per request (the template says 0.10); a channel deposit
# funds 20 kWh.
sed -i 's|^max_per_request = "0.10"|max_per_request = "0.50"|; s|^requests_per_deposit = 100 |requests_per_deposit = 20 |' \
	"$AGENTS/robot/machine-agent.toml"
robot register
# Not through the shell function: $! must be the agent itself, so that cleanup stops it.
machine-agent --config "$AGENTS/charger/machine-agent.toml" run >"$AGENTS/charger.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 120); do
	grep -q "machine-agent listening on" "$AGENTS/charger.log" && break
	kill -0 "$AGENT_PID" 2>/dev/null || { cat "$AGENTS/charger.log"; echo "the charger's agent exited" >&2; exit 1; }
	sleep 0.5
done
CHARGER_URL="$(sed -n 's/^machine-agent listening on //p' "$AGENTS/charger.log")"
echo "    charger sells at $CHARGER_URL/charge (log: $AGENTS/charger.log)"

echo "==> the robot buys three kWh over x402, paying USDT"
for _ in 1 2 3; do robot pay "$CHARGER_URL/charge"; done

echo "==> the robot buys one kWh over libp2p, told only the charger's device id: the chain gives"
echo "    its PeerId and the addresses it published (mDNS finds it on a LAN); Noise proves the peer"
CHARGER_ID=""
for _ in $(seq 1 120); do
	CHARGER_ID="$(charger status 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const v=JSON.parse(s).device_id;console.log(v==null?"":v)}catch{console.log("")}})')"
	[ -n "$CHARGER_ID" ] && break
	sleep 0.5
done
[ -n "$CHARGER_ID" ] || { tail -30 "$AGENTS/charger.log"; echo "the charger did not register" >&2; exit 1; }
for _ in $(seq 1 120); do
	grep -q "libp2p addresses published on-chain" "$AGENTS/charger.log" && break
	sleep 0.5
done
robot pay "device:$CHARGER_ID/charge"

echo "==> the robot meters five kWh from a payment channel (one deposit, then a voucher per kWh)"
for _ in 1 2 3 4 5; do robot pay "$CHARGER_URL/kwh" >/dev/null; done
echo "==> the robot streams three kWh ticks over libp2p (/x402-stream/1.0.0): the voucher rides"
echo "    on the stream, and the cancel after the third tick is charged only the three ticks"
robot pay "device:$CHARGER_ID/kwh" --units 3 >/dev/null
robot channels list
echo "==> the charger claims its vouchers on-chain (its daemon also does so on an interval)"
charger channels claim
charger channels list

echo "==> the charger's agent records its sales on-chain (receipts verified against the token,"
echo "    the channel claim against the settlement contract)"
count() { charger receipts --format json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).receipts.length)}catch{console.log(0)}})'; }
for _ in $(seq 1 120); do [ "$(count)" -ge 5 ] && break; sleep 1; done
[ "$(count)" -ge 5 ] || { tail -30 "$AGENTS/charger.log"; echo "receipts did not reach the chain" >&2; exit 1; }
echo "--- charger's receipts"
charger receipts
echo "--- robot's receipts"
robot receipts
echo "--- Alice's fleet (owns the charger)"
charger fleet
echo "--- Bob's fleet (owns the robot)"
robot fleet

if [ "$LOAD" -gt 0 ]; then
	echo "==> settlement load: $LOAD exact payments, 50 at a time, through eth-rpc"
	"$CARGO_TARGET_DIR/release/examples/settlement_load" "$LOAD" 50
fi

if [ "$KEEP" = 1 ]; then
	echo "==> the testnet keeps running; Ctrl-C to stop. Endpoints:"
	m2m-devnet addresses robot charger
	echo "    agents: $AGENTS (charger daemon at $CHARGER_URL)"
	wait "$ZOMBIE"
fi
