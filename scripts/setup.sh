#!/usr/bin/env bash
# Installs what Linen's demo and tests need on a Debian 12 machine, then
# builds cnitool (scripts/build-cnitool.sh).
#
#   usage: bash scripts/setup.sh
#
# Idempotent and fast when everything is present: packages are checked with
# dpkg-query and only the missing ones are installed (one `apt-get update`
# first). Prints one line per step; on failure, the tail of the apt log.
# Needs root: network namespaces and Open vSwitch do.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root: namespaces and Open vSwitch need it"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
    die "apt-get/dpkg-query not found: this script expects Debian 12"

# openvswitch-switch: ovsdb-server, ovs-vswitchd, ovs-vsctl (one OVS per lab node)
# containernetworking-plugins: bridge + host-local in /usr/lib/cni (the chain before linen)
# iperf3 ethtool tcpdump iputils-ping iproute2: the lab's traffic and inspection tools
# golang-go dpkg-dev xz-utils psmisc: build cnitool from Debian's source package
# etcd-server etcd-client: the store flax's etcd backend, its tests and the demo use
# protobuf-compiler: the etcd client crate generates its gRPC code at build time
PACKAGES=(openvswitch-switch containernetworking-plugins iperf3 ethtool tcpdump
          iputils-ping iproute2 golang-go dpkg-dev xz-utils psmisc
          etcd-server etcd-client protobuf-compiler)

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# `apt-get update` takes the lists lock, which DPkg::Lock::Timeout does not
# cover: wait for other apt/dpkg runs with fuser when it is there.
wait_apt_locks() {
    command -v fuser >/dev/null || return 0
    local i
    for ((i = 0; i < 600; i++)); do
        fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock \
              /var/lib/apt/lists/lock /var/cache/apt/archives/lock >/dev/null 2>&1 || return 0
        ((i % 30 == 0)) && say "waiting for another apt/dpkg to finish..."
        sleep 1
    done
    die "timed out waiting for the apt/dpkg lock"
}

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    log_dir="$repo_root/target/tools"
    mkdir -p "$log_dir"
    log="$log_dir/setup-apt.log"
    : >"$log"
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -q -y -o DPkg::Lock::Timeout=600)
    wait_apt_locks
    if ! "${apt[@]}" update >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get update failed (full log: $log)"
    fi
    wait_apt_locks
    if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get install failed (full log: $log)"
    fi
    for p in "${missing[@]}"; do
        is_installed "$p" || die "$p is still not installed (log: $log)"
    done
else
    say "Debian packages present"
fi

cnitool="$(bash "$script_dir/build-cnitool.sh")" || die "building cnitool failed (see above)"
say "cnitool at $cnitool"

# Faucet, the real OpenFlow controller the lab's controller test and
# `demo --controller` use, in a venv of its own (PyPI).
faucet_venv="$repo_root/target/tools/faucet"
if [[ ! -x "$faucet_venv/bin/faucet" ]]; then
    say "installing Faucet into $faucet_venv"
    mkdir -p "$repo_root/target/tools"
    flog="$repo_root/target/tools/faucet-install.log"
    if ! { python3 -m venv "$faucet_venv" && "$faucet_venv/bin/pip" install -q faucet; } >"$flog" 2>&1; then
        tail -n 30 "$flog" >&2
        rm -rf "$faucet_venv"
        die "installing Faucet failed (full log: $flog)"
    fi
fi
say "Faucet at $faucet_venv"
