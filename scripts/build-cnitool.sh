#!/usr/bin/env bash
# Build CNI's `cnitool` offline from Debian's source package
# (golang-github-appc-cni, 1.1.2 in bookworm) and install it.
#
#   usage: scripts/build-cnitool.sh [TARGET]   (default: target/tools/cnitool)
#
# Idempotent: if TARGET already exists and runs, exits 0 at once.
# Needs root for apt-get (only when packages/sources are missing).
# cnitool itself only depends on the Go stdlib and in-tree CNI packages
# (ginkgo/gomega are test-only), so a GOPATH-mode build needs no
# golang-*-dev packages and no network beyond the Debian mirror.
# Prints exactly one line on stdout: the path of the built cnitool.
set -Eeuo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
tools_dir="$repo_root/target/tools"
target="${1:-$tools_dir/cnitool}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

# Runs and prints usage? (cnitool exits 1 with usage when given no args.)
cnitool_ok() {
    [[ -x "$1" ]] || return 1
    local out
    out="$("$1" 2>&1 </dev/null || true)"
    [[ "$out" == *"cnitool add"* ]]
}

# ---- fast path --------------------------------------------------------
if cnitool_ok "$target"; then
    echo "$target"
    exit 0
fi

build_root="$tools_dir/build"
log="$tools_dir/build-cnitool.log"
mkdir -p "$tools_dir" "$build_root" "$(dirname "$target")"
: >"$log"
exec 3>&1 4>&2 >>"$log" 2>&1
tmp_out=""
on_err() {
    local rc=$? line=$1
    set +x
    # with errtrace, subshells inherit this trap: report only from the main shell
    if [[ "$BASHPID" == "$$" ]]; then
        [[ -n "$tmp_out" ]] && rm -f "$tmp_out"
        echo "build-cnitool: FAILED (rc=$rc, line $line); last lines of $log:" >&4
        tail -n 40 "$log" >&4
    fi
    exit "$rc"
}
trap 'on_err $LINENO' ERR
set -x

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -q -y -o DPkg::Lock::Timeout=900 -o APT::Sandbox::User=root)
SRC_PKG=golang-github-appc-cni
SRC_LIST=/etc/apt/sources.list.d/linen-src.sources

# Wait while another apt/dpkg holds the locks (apt-get update's lists lock
# is not covered by DPkg::Lock::Timeout).
wait_apt_locks() {
    command -v fuser >/dev/null || return 0   # fall back to DPkg::Lock::Timeout
    local i
    for i in $(seq 1 900); do
        if ! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock \
                   /var/lib/apt/lists/lock /var/cache/apt/archives/lock \
                   >/dev/null 2>&1; then
            return 0
        fi
        [[ $((i % 30)) -eq 1 ]] && echo "waiting for apt/dpkg lock..."
        sleep 1
    done
    echo "timed out waiting for apt/dpkg lock"
    return 1
}

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

apt_updated=0
apt_update() {
    wait_apt_locks
    "${APT[@]}" update
    apt_updated=1
}

# ---- 1. packages ------------------------------------------------------
# golang-go: compiler; dpkg-dev: dpkg-source for `apt-get source`;
# xz-utils: the .orig/.debian tarballs are .tar.xz; psmisc: fuser.
need=()
for p in golang-go dpkg-dev xz-utils psmisc; do
    is_installed "$p" || need+=("$p")
done
if ((${#need[@]})); then
    wait_apt_locks
    if ! "${APT[@]}" install --no-install-recommends "${need[@]}"; then
        apt_update
        wait_apt_locks
        "${APT[@]}" install --no-install-recommends "${need[@]}"
    fi
fi

# ---- 2. deb-src for bookworm -----------------------------------------
src_stanza='Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
if ! printf '%s\n' "$src_stanza" | cmp -s - "$SRC_LIST"; then
    printf '%s\n' "$src_stanza" >"$SRC_LIST"
    apt_update
fi

# ---- 3. fetch and unpack the source (kept for offline rebuilds) ------
src_dir="$(find "$build_root/src" -maxdepth 1 -type d -name "$SRC_PKG-*" 2>/dev/null | sort -V | tail -n1 || true)"
if [[ -z "$src_dir" || ! -f "$src_dir/cnitool/cnitool.go" ]]; then
    rm -rf "$build_root/src"
    mkdir -p "$build_root/src"
    if [[ "$apt_updated" == 0 ]] && ! apt-cache showsrc "$SRC_PKG" 2>/dev/null | grep -q '^Package:'; then
        apt_update
    fi
    wait_apt_locks
    (cd "$build_root/src" && "${APT[@]}" source "$SRC_PKG")
    src_dir="$(find "$build_root/src" -maxdepth 1 -type d -name "$SRC_PKG-*" | sort -V | tail -n1)"
    [[ -f "$src_dir/cnitool/cnitool.go" ]]
fi

# ---- 4. GOPATH-mode build, everything confined to $build_root --------
gopath="$build_root/gopath"
import_dir="$gopath/src/github.com/containernetworking"
mkdir -p "$import_dir"
ln -sfn "$src_dir" "$import_dir/cni"

unset GOFLAGS GOROOT GOBIN
export GOPATH="$gopath" \
       GO111MODULE=off GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local \
       GOCACHE="$build_root/gocache" GOMODCACHE="$build_root/gomodcache" \
       GOENV=off CGO_ENABLED=0
/usr/bin/go version
tmp_out="$(dirname "$target")/.cnitool.tmp.$$"
(cd "$import_dir/cni" && /usr/bin/go build -trimpath -o "$tmp_out" ./cnitool)
mv -f "$tmp_out" "$target"

cnitool_ok "$target"
set +x
trap - ERR
exec 1>&3 2>&4
echo "$target"
