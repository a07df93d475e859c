#!/usr/bin/env bash
# Install test of the .deb: builds it, installs it into a clean Debian root (minbase plus
# systemd, made with debootstrap and cached: packaging/test/lib.sh) with nothing but what
# the package declares, checks the user, files, conffile and unit, runs the installed binary
# inside that root as the zenedge user on the shipped config (site ids set with the shipped
# provision.sh, listeners moved to free loopback ports), sends one HL7 message over MLLP and
# one DICOM C-ECHO from the host, checks the answers, and finally removes and purges the
# package (patient data must stay). Needs root, debootstrap, chroot and Debian's mirror;
# otherwise it says why it skips and exits 0. packaging/test-systemd.sh runs the same
# package under systemd.
#   ZENEDGE_DEB=FILE: test that package instead of building one
#   ZENEDGE_DEBIAN_SUITE (default bookworm), ZENEDGE_DEBIAN_MIRROR (default deb.debian.org)
#   ZENEDGE_KEEP_ROOT=1: leave the Debian root in target/install-test/root for inspection
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/test/lib.sh
. packaging/test/lib.sh

ROOT="$WORK/root"
require_root_tools

in_root() { chroot "$ROOT" "$@"; }

DAEMON_PID=""
TRACED=""
# The daemon's own pid: under strace it is strace's child (strace ignores SIGTERM while it
# has a tracee, and exits with the tracee's status).
daemon_pid() {
    if [ -n "$TRACED" ]; then ps -o pid= --ppid "$DAEMON_PID" | head -n 1 | tr -d ' '; else echo "$DAEMON_PID"; fi
}
cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$(daemon_pid)" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if mountpoint -q "$ROOT/proc" 2>/dev/null; then umount "$ROOT/proc"; fi
    if [ -z "${ZENEDGE_KEEP_ROOT:-}" ]; then rm -rf "$ROOT"; fi
}
trap cleanup EXIT

step "the package"
deb="$(package_under_test)"
echo "package: $deb"

step "a fresh Debian root in $ROOT"
new_root "$ROOT"
mount -t proc proc "$ROOT/proc"
# Nothing the package needs may be there already: what provision.sh uses must come from the
# package's own dependencies.
if in_root dpkg-query -W -f='${Status}\n' openssl 2>/dev/null | grep -q installed; then
    fail "the base root already has openssl; it cannot show that the package depends on it"
fi

step "apt-get install --no-install-recommends ./$(basename "$deb")"
cp "$deb" "$ROOT/tmp/zenedge.deb"
in_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends /tmp/zenedge.deb >"$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log"; fail "the package did not install"; }
echo "installed with it: $(grep -o '^Setting up [^ ]*' "$WORK/apt.log" | cut -d' ' -f3 | tr '\n' ' ')"

step "checking the user, files, permissions, conffile and unit"
IFS=: read -r _ _ uid gid _ home shell < <(in_root getent passwd zenedge) || fail "no zenedge user"
[ "$uid" -lt 1000 ] || fail "zenedge is not a system user (uid $uid)"
[ "$home" = /var/lib/zenedge ] || fail "zenedge's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "zenedge's shell is $shell"
[ "$(in_root getent group zenedge | cut -d: -f3)" = "$gid" ] || fail "zenedge's primary group is not zenedge"
# Owners are compared by number: the host's names for the root's ids are not the root's.
expect_stat() { # path "mode owner:group", names as in the root
    local got want owner group
    got="$(stat -c '%a %u:%g' "$ROOT$1" 2>/dev/null)" || fail "$1 is missing"
    owner="${2#* }"; group="${owner#*:}"; owner="${owner%:*}"
    want="${2%% *} $(in_root id -u "$owner"):$(in_root getent group "$group" | cut -d: -f3)"
    [ "$got" = "$want" ] || fail "$1 is $got, expected $want ($2)"
}
expect_stat /usr/bin/zenedge "755 root:root"
expect_stat /etc/zenedge "750 root:zenedge"
expect_stat /etc/zenedge/zenedge.toml "640 root:zenedge"
expect_stat /var/lib/zenedge "750 zenedge:zenedge"
expect_stat /lib/systemd/system/zenedge.service "644 root:root"
expect_stat /usr/share/zenedge/provision.sh "755 root:root"
expect_stat /usr/share/zenedge/grafana/zenedge.json "644 root:root"
expect_stat /usr/share/zenedge/prometheus/zenedge-rules.yml "644 root:root"
for f in README.md config.example.toml packaging.md appliance.md copyright; do
    [ -f "$ROOT/usr/share/doc/zenedge/$f" ] || fail "/usr/share/doc/zenedge/$f is missing"
done
in_root dpkg-query -W -f='${Conffiles}\n' zenedge | grep -q '^ /etc/zenedge/zenedge.toml [0-9a-f]\{32\}$' ||
    fail "/etc/zenedge/zenedge.toml is not a conffile"
cmp -s "$ROOT/etc/zenedge/zenedge.toml" packaging/zenedge.toml || fail "the installed config differs from packaging/zenedge.toml"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/zenedge.service" ] || fail "the unit is not enabled"
# systemd-analyze verify --root does not resolve ExecStart= inside the root (systemd 252):
# verify the installed unit on the host, pointed at the installed binary.
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$WORK/unit"
    sed "s|/usr/bin/zenedge|$ROOT/usr/bin/zenedge|g" "$ROOT/lib/systemd/system/zenedge.service" >"$WORK/unit/zenedge.service"
    systemd-analyze verify "$WORK/unit/zenedge.service" || fail "systemd-analyze verify"
    echo "systemd-analyze verify: ok"
else
    echo "systemd-analyze is not installed on the host: unit not verified"
fi
in_root zenedge --help >/dev/null || fail "zenedge --help"
set +e
placeholder="$(in_root zenedge check-config /etc/zenedge/zenedge.toml 2>&1)"
rc=$?
set -e
[ "$rc" = 78 ] || fail "check-config on the unconfigured shipped config exited $rc, expected 78"
grep -q 'site.edge_id: "CHANGE ME"' <<<"$placeholder" || fail "check-config does not name the placeholder: $placeholder"
echo "unconfigured config refused as expected: $(head -n 1 <<<"$placeholder")"

step "provision.sh: site ids, key and CSR"
in_root /usr/share/zenedge/provision.sh --tenant tenant-test --hospital hospital-test --edge edge-test ||
    fail "provision.sh failed in a root that has only the package's dependencies"
in_root /usr/share/zenedge/provision.sh --tenant tenant-test --hospital hospital-test --edge edge-test >/dev/null ||
    fail "provision.sh is not idempotent"
if in_root /usr/share/zenedge/provision.sh --tenant other --hospital hospital-test --edge edge-test >/dev/null 2>&1; then
    fail "provision.sh changed an id that was set"
fi
expect_stat /etc/zenedge/tls/edge.key "640 root:zenedge"
in_root openssl req -in /etc/zenedge/tls/edge.csr -noout -subject | grep -q 'CN = edge-test' || fail "CSR subject"
in_root zenedge check-config /etc/zenedge/zenedge.toml

step "starting the installed daemon as zenedge, on loopback ports"
read -r mllp_port dicom_port http_port < <(free_ports)
set_ports "$ROOT/etc/zenedge/zenedge.toml" "$mllp_port" "$dicom_port" "$http_port"
# check-config as the postinst runs it, then serve as the unit does: as zenedge, umask 0027.
chroot --userspec="$uid:$gid" --groups="$gid" "$ROOT" /usr/bin/zenedge check-config /etc/zenedge/zenedge.toml
SYSCALLS=""
tracer=()
if command -v strace >/dev/null; then
    SYSCALLS="$WORK/strace.log"
    TRACED=1
    tracer=(strace -f -qq -o "$SYSCALLS")
fi
(umask 0027 && cd "$ROOT/var/lib/zenedge" &&
    exec "${tracer[@]}" chroot --userspec="$uid:$gid" --groups="$gid" "$ROOT" \
        /usr/bin/zenedge serve --config /etc/zenedge/zenedge.toml) >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!

{ peer ready "$http_port" && peer send "$mllp_port" INSTALLTEST1; } ||
    { cat "$WORK/daemon.log"; fail "the daemon did not answer HL7 or HTTP"; }
echo INSTALLTEST1 >"$WORK/acked.txt"
peer logged "$http_port" "$WORK/acked.txt" --token-file "$ROOT/var/lib/zenedge/local-api.token" || fail "the acknowledged message is not in the event log"
c_echo "$dicom_port" || { cat "$WORK/daemon.log"; fail "C-ECHO failed"; }
chroot --userspec="$uid:$gid" --groups="$gid" "$ROOT" /usr/bin/zenedge status --config /etc/zenedge/zenedge.toml ||
    fail "zenedge status"

step "stopping it with SIGTERM"
kill -TERM "$(daemon_pid)"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
[ "$rc" = 0 ] || { cat "$WORK/daemon.log"; fail "the daemon exited $rc after SIGTERM"; }
expect_stat /var/lib/zenedge/zenedge.redb "640 zenedge:zenedge"
grep -q 'RIS\|DOE\|JANE\|PID-1' "$WORK/daemon.log" && echo "note: the daemon log mentions message content"

# The unit's SystemCallFilter=@system-service ~@privileged @resources: every system call the
# daemon made (after its own execve; chroot's setup is not the daemon) must be allowed.
if [ -n "$SYSCALLS" ] && command -v systemd-analyze >/dev/null; then
    python3 - "$SYSCALLS" <<'EOF' || fail "the daemon used system calls the unit forbids"
import re, subprocess, sys
def group(name):
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        calls |= group(line) if line.startswith("@") else {line}
    return calls
allowed = group("@system-service") - group("@privileged") - group("@resources")
# Always allowed by systemd's seccomp setup (the @default group is part of every allow list).
allowed |= group("@default")
seen, started = set(), set()
for line in open(sys.argv[1]):
    m = re.match(r"(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()", line)
    if not m:
        continue
    pid, name = m.group(1), m.group(2) or m.group(3)
    if name == "execve" and 'execve("/usr/bin/zenedge"' in line:
        started.add(pid)
        continue
    if pid in started or (started and pid not in started and int(pid) > min(map(int, started))):
        seen.add(name)
forbidden = sorted(seen - allowed)
print(f"system calls made by the daemon: {len(seen)}; outside the unit's filter: {forbidden or 'none'}")
sys.exit(1 if forbidden else 0)
EOF
fi

step "apt-get remove: configuration and data stay"
DEBIAN_FRONTEND=noninteractive in_root apt-get remove -y -qq zenedge >>"$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log"; fail "apt-get remove"; }
[ ! -e "$ROOT/usr/bin/zenedge" ] || fail "the binary is still there after remove"
[ -f "$ROOT/etc/zenedge/zenedge.toml" ] || fail "remove deleted the configuration"
[ -f "$ROOT/var/lib/zenedge/zenedge.redb" ] || fail "remove deleted the event log"

step "apt-get purge: configuration goes, data stays"
DEBIAN_FRONTEND=noninteractive in_root apt-get purge -y -qq zenedge >>"$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log"; fail "apt-get purge"; }
grep '^zenedge:' "$WORK/apt.log" || true
# Only the master key stays, with the data it unseals.
[ "$(ls -A "$ROOT/etc/zenedge")" = master.key ] || fail "purge left /etc/zenedge: $(ls -A "$ROOT/etc/zenedge")"
[ -f "$ROOT/var/lib/zenedge/zenedge.redb" ] || fail "purge deleted the event log without ZENEDGE_PURGE_DATA=yes"

step "install test passed"
