#!/usr/bin/env bash
# The demo: emulated nodes in network namespaces, each with its own Open
# vSwitch, pods attached through the real CNI chain (bridge + host-local +
# linen), traffic across the VXLAN overlay. Arguments go to `xtask demo`.
#
#   usage: bash scripts/demo.sh [ARGS...]   (as root, on Debian 12 with Rust)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
cd "$repo_root"

bash scripts/setup.sh

command -v cargo >/dev/null || {
    echo "demo: cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
}

LINEN_CNITOOL="$(bash scripts/build-cnitool.sh)"
export LINEN_CNITOOL

# xtask finds the plugin beside itself in target/release.
cargo build --release --locked -q -p linen -p xtask
exec target/release/xtask demo "$@"
