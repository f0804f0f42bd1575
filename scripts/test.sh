#!/usr/bin/env bash
# The project's test command: every check and every test.
#
#   usage: bash scripts/test.sh        (as root, on Debian 12 with Rust)
#
# Installs what is missing (scripts/setup.sh), then: rustfmt check, clippy
# with warnings as errors, and the whole workspace's tests (cargo-nextest
# when installed, cargo test otherwise). Exits non-zero on any failure.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
cd "$repo_root"

source scripts/env.sh

echo "test: cargo fmt --check"
cargo fmt --all -- --check

echo "test: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    echo "test: cargo nextest run"
    cargo nextest run --workspace --locked --no-fail-fast
else
    echo "test: cargo test (cargo-nextest not installed)"
    cargo test --workspace --locked --no-fail-fast
fi
echo "test: all passed"
