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

source scripts/env.sh

# xtask finds the plugin and flax beside itself in target/release.
cargo build --release --locked -q -p linen -p flax -p xtask
exec target/release/xtask demo "$@"
