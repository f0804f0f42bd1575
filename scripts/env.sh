# Sourced by demo.sh and test.sh: installs what is missing, checks for cargo
# and tells the tests where cnitool is. Expects $repo_root.
bash "$repo_root/scripts/setup.sh"

command -v cargo >/dev/null || {
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
}

# Tests that drive the real runtime tool find it here.
LINEN_CNITOOL="$(bash "$repo_root/scripts/build-cnitool.sh")"
export LINEN_CNITOOL
