# shellcheck shell=bash
# Shared by packaging/test-install.sh and packaging/test-systemd.sh (sourced, not run): the
# Debian root both tests install the package into, the package itself, free loopback ports
# and small helpers. Both tests start from one cached debootstrap root, so a CI run pays for
# debootstrap once.
#
# The root is `debootstrap --variant=minbase` plus systemd and systemd-sysv (the boot test
# needs an init): no recommended packages, nothing else. The install test installs the .deb
# into it with --no-install-recommends, so what provision.sh and the maintainer scripts find
# there is exactly what the package declares (`Depends:` in Cargo.toml).
#
# Variables read: ZENEDGE_DEBIAN_SUITE (default bookworm), ZENEDGE_DEBIAN_MIRROR (default
# deb.debian.org), ZENEDGE_DEB (test that package instead of building one).

SUITE="${ZENEDGE_DEBIAN_SUITE:-bookworm}"
MIRROR="${ZENEDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="$PWD/target/install-test"
# Packages added to minbase. Changing the list changes the cache file's name, so a stale
# base is never reused.
BASE_INCLUDE="systemd,systemd-sysv"
BASE_TAR="$WORK/base-$SUITE-minbase+${BASE_INCLUDE//,/+}.tar"
# The timers a fresh Debian system starts that could take the dpkg lock (apt-daily) or do
# work in the middle of a test; masked in the base.
BASE_MASKED="apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer"

TEST_NAME="$(basename "$0")"
started=$SECONDS
step() { echo "== [$((SECONDS - started))s] $*"; }
fail() {
    echo "$TEST_NAME: FAILED: $*" >&2
    exit 1
}
skip() {
    echo "$TEST_NAME: skipped: $*"
    exit 0
}

# Skips (exit 0, saying why) where the test cannot run: not root, or a tool is missing.
require_root_tools() {
    [ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot)"
    command -v debootstrap >/dev/null || skip "debootstrap is not installed (apt-get install debootstrap)"
    command -v chroot >/dev/null || skip "chroot is not available"
    command -v python3 >/dev/null || skip "python3 is needed for the MLLP and HTTP checks"
}

# Prints the path of the package under test: ZENEDGE_DEB, or a fresh build (build-deb.sh
# rebuilds only what changed, and repackages in about 10 s when nothing did).
package_under_test() {
    if [ -n "${ZENEDGE_DEB:-}" ]; then
        [ -f "$ZENEDGE_DEB" ] || fail "ZENEDGE_DEB=$ZENEDGE_DEB does not exist"
        realpath "$ZENEDGE_DEB"
    else
        packaging/build-deb.sh
    fi
}

# Makes the cached base root (once): debootstrap, then a tar of it.
make_base() {
    [ -f "$BASE_TAR" ] && return 0
    local tmp="$WORK/base.tmp"
    step "debootstrap $SUITE (minbase + $BASE_INCLUDE), cached in $(basename "$BASE_TAR")"
    rm -rf "$tmp"
    mkdir -p "$WORK/cache" "$tmp"
    debootstrap --variant=minbase --include="$BASE_INCLUDE" --cache-dir="$WORK/cache" \
        "$SUITE" "$tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 20 "$WORK/debootstrap.log"; fail "debootstrap failed (log: $WORK/debootstrap.log)"; }
    local unit
    for unit in $BASE_MASKED; do
        ln -sf /dev/null "$tmp/etc/systemd/system/$unit"
    done
    # The package cache is debootstrap's; apt lists are fetched by each test.
    rm -f "$tmp"/var/cache/apt/archives/*.deb
    tar --numeric-owner --xattrs -C "$tmp" -cf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf "$tmp"
}

# A fresh copy of the base root in $1 (seconds), with the host's resolver for apt.
new_root() {
    make_base
    rm -rf "$1"
    mkdir -p "$1"
    tar --numeric-owner --xattrs -C "$1" -xf "$BASE_TAR"
    cp /etc/resolv.conf "$1/etc/resolv.conf"
}

# Three free TCP ports on 127.0.0.1: MLLP, DICOM, HTTP.
free_ports() {
    python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
}

# Moves the packaged config's three listeners ($1: the file) to loopback ports $2 $3 $4, and
# lowers store.disk_reserve to 64 MiB: the test root lives on the host's disk, and a build
# machine with less than the packaged 2 GiB free would otherwise see the daemon refuse
# intake (not ready) for a reason that has nothing to do with the package.
set_ports() {
    sed -i -e "s|^listen = \"0.0.0.0:2575\"|listen = \"127.0.0.1:$2\"|" \
        -e "s|^listen = \"0.0.0.0:11112\"|listen = \"127.0.0.1:$3\"|" \
        -e "s|^listen = \"127.0.0.1:8080\"|listen = \"127.0.0.1:$4\"|" \
        -e "s|^disk_reserve = \"2GiB\"|disk_reserve = \"64MiB\"|" "$1"
    local port
    for port in "$2" "$3" "$4"; do
        grep -q "^listen = \"127.0.0.1:$port\"" "$1" || fail "could not set port $port in $1"
    done
    grep -q '^disk_reserve = "64MiB"' "$1" || fail "could not set store.disk_reserve in $1"
}

# The test peer (HL7 over MLLP, the HTTP API): packaging/test/peer.py.
peer() { python3 packaging/test/peer.py "$@"; }

# A C-ECHO with DCMTK's echoscu to 127.0.0.1:$1 (said and skipped when the host has no DCMTK).
c_echo() {
    if command -v echoscu >/dev/null; then
        echoscu -aet PKGTEST -aec ZENEDGE 127.0.0.1 "$1" || return 1
        echo "C-ECHO: success"
    else
        echo "echoscu (dcmtk) is not installed on the host: C-ECHO not sent"
    fi
}
