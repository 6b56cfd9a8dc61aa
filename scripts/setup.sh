#!/usr/bin/env bash
# Installs everything the build and the tests need, and nothing twice. Sourced by the other
# scripts; safe to run on its own and to run again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/m2m/target}"
export SQLX_OFFLINE=true

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# Debian packages: C/C++ toolchain for RocksDB and friends, protoc for libp2p, mold for linking.
DEBS=(clang libclang-dev protobuf-compiler cmake pkg-config libssl-dev mold lld)
missing=()
for p in "${DEBS[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js runs zombienet, solc and anvil; any Node >= 18 will do.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
	log "installing Debian packages: ${missing[*]}"
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Rust: the runtime compiles to wasm and needs the standard library sources.
if ! command -v rustup >/dev/null; then
	echo "rustup is required (https://rustup.rs)" >&2
	exit 1
fi
installed_targets="$(rustup target list --installed)"
for t in wasm32-unknown-unknown wasm32v1-none; do
	grep -qx "$t" <<<"$installed_targets" || { log "adding rust target $t"; rustup target add "$t"; }
done
rustup component list --installed | grep -q '^rust-src' || { log "adding rust-src"; rustup component add rust-src; }

# npm packages, pinned by the committed lockfiles.
npm_install() {
	local dir="$1"
	if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
		log "installing npm packages in ${dir#$ROOT/}"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
}
npm_install "$ROOT/zombienet"
npm_install "$ROOT/contracts"
npm_install "$ROOT/tests/interop"

mkdir -p "$CARGO_TARGET_DIR"
export PATH="$CARGO_TARGET_DIR/release:$PATH"
