#!/usr/bin/env bash
# The packaged unit under a real systemd: boots the Debian root of the install test (minbase
# plus systemd, packaging/test/lib.sh) in a container with systemd as PID 1
# (systemd-nspawn --boot), installs the .deb there and checks, through `systemctl` in the
# container (nsenter):
#   * the postinst enables the unit and, with the shipped unconfigured config, does not start
#     it; a start on that config fails with exit 78 and is not restarted;
#   * on a configured box (config pre-seeded, fresh install) the postinst starts it, READY
#     arrives and `systemctl is-active` says active;
#   * `systemctl show` reports every [Service] line of the unit as written (sandbox included),
#     and the daemon process has the credentials, capabilities and filters they imply;
#   * HL7 (MSA|AA) and C-ECHO from the host (the container shares the host's network
#     namespace; the daemon listens on free loopback ports);
#   * `systemctl reload` (ExecReload, SIGHUP) reaches the daemon, which stays the same process;
#   * kill -9 under load: Restart=on-failure brings it back, nothing acknowledged is lost;
#   * kill -STOP: the watchdog kills and restarts it within WatchdogSec + RestartSec;
#   * an upgrade to a rebuilt .deb with a higher version restarts the running service on the
#     new binary and keeps the data and the conffile;
#   * `systemctl stop` with a sender connected: exit 0 within the daemon's shutdown grace
#     (+5 s) and TimeoutStopSec;
#   * after a reboot of the container the enabled unit is running again, with everything;
#   * no system call was refused by the seccomp filter: every call of the running daemon
#     (strace from the host, READY to the kill -9) is in the allow list systemd reports, and
#     no SIGSYS or seccomp audit line is in the container's journal or the host's kernel log;
#     the daemon's journal holds no ERROR and none of the test messages' patient data.
# The container is powered off and the root deleted on exit, whatever happened.
# Needs root, debootstrap, systemd-nspawn (package systemd-container), nsenter and Debian's
# mirror; otherwise it says why it skips and exits 0.
#   ZENEDGE_DEB=FILE: test that package (the upgrade is to one built from this tree)
#   ZENEDGE_DEBIAN_SUITE, ZENEDGE_DEBIAN_MIRROR: as test-install.sh
#   ZENEDGE_KEEP_ROOT=1: leave the root in target/install-test/systemd-root (powered off)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/test/lib.sh
. packaging/test/lib.sh

require_root_tools
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not installed (apt-get install systemd-container)"
command -v nsenter >/dev/null || skip "nsenter (util-linux) is not available"

T="$WORK/systemd"           # logs and results on the host
ROOT="$WORK/systemd-root"   # the container's root
SHARE="$T/share"            # bind-mounted at /zenedge-test in the container: the packages
UNIT=zenedge.service
NSPAWN_PID=""
LEADER=""
STREAM_PID=""
HOLD_PID=""
STRACE_PID=""

# --- the container ---------------------------------------------------------------------

# Runs a command in the booted container (all its namespaces, its root), with a clean
# environment.
in_ct() {
    nsenter --target "$LEADER" --all --root --wd \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# The container's systemd: nspawn's child whose pid in its own namespace is 1, once it is
# systemd.
find_leader() {
    local p
    for p in $(pgrep -P "$NSPAWN_PID"); do
        if awk '/^NSpid:/ { exit !($NF == 1) }' "/proc/$p/status" 2>/dev/null &&
            [[ "$(readlink "/proc/$p/exe")" == */lib/systemd/systemd ]]; then
            LEADER=$p
            return 0
        fi
    done
    return 1
}

booted() {
    local s
    s="$(in_ct systemctl is-system-running 2>/dev/null)" || true
    [ "$s" = running ] || [ "$s" = degraded ]
}

boot() {
    systemd-nspawn --quiet --register=no --keep-unit --boot --directory="$ROOT" \
        --machine="zenedge-test-$$" --bind="$SHARE:/zenedge-test" --console=read-only \
        </dev/null >>"$T/console.log" 2>&1 &
    NSPAWN_PID=$!
    wait_until 30 "the container's systemd started" find_leader
    wait_until 120 "the container finished booting" booted
}

# Saves the container's journal (boot $1) and powers the container off: nspawn passes
# SIGTERM on as a clean poweroff; SIGKILL only if that did not end it within a minute.
poweroff() {
    [ -n "$NSPAWN_PID" ] || return 0
    if [ -n "$LEADER" ] && [ -n "${1:-}" ]; then
        in_ct journalctl --no-pager -o short-monotonic >"$T/journal-$1.log" 2>&1 || true
    fi
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while kill -0 "$NSPAWN_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
        echo "the container did not power off within 60 s: killing it"
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    fi
    wait "$NSPAWN_PID" 2>/dev/null || true
    NSPAWN_PID=""
    LEADER=""
}

cleanup() {
    local rc=$?
    [ -n "$STREAM_PID" ] && kill "$STREAM_PID" 2>/dev/null
    [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
    [ -n "$STRACE_PID" ] && kill "$STRACE_PID" 2>/dev/null
    if [ "$rc" != 0 ] && [ -n "$LEADER" ]; then
        echo "--- systemctl status $UNIT; the last lines of its journal"
        in_ct systemctl status --no-pager -l "$UNIT" 2>&1 | head -n 20 || true
        in_ct journalctl --no-pager -u "$UNIT" -n 30 2>&1 || true
    fi
    poweroff failed
    if [ -z "${ZENEDGE_KEEP_ROOT:-}" ]; then rm -rf "$ROOT"; fi
}
trap cleanup EXIT

# --- waiting and reading the unit's state ----------------------------------------------

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds; fails the
# test after SECONDS.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within $limit s ($(state))"
        sleep 0.2
    done
}
prop() { in_ct systemctl show -p "$1" --value "$UNIT"; }
state() { in_ct systemctl show -p ActiveState,SubState,Result,MainPID,NRestarts "$UNIT" 2>&1 | tr '\n' ' '; }
is_state() { [ "$(prop ActiveState)/$(prop SubState)" = "$1" ]; }
# Once a start has ended: failed, or waiting to be restarted (auto-restart).
start_ended() { local s; s="$(prop SubState)"; [ "$s" = failed ] || [ "$s" = auto-restart ]; }
# Running again under a new pid after restart number $2 (the old pid is $1).
restarted() {
    local pid
    pid="$(prop MainPID)"
    is_state active/running && [ "$(prop NRestarts)" = "$2" ] && [ "$pid" != 0 ] && [ "$pid" != "$1" ]
}
# Milliseconds on the monotonic (boot-time) clock.
now_ms() {
    local up
    read -r up _ </proc/uptime
    echo $((${up/./} * 10))
}
# A systemd time span ("30s", "1min 30s", "500ms") in milliseconds.
span_ms() {
    awk '{ t = 0; for (i = 1; i <= NF; i++) { v = $i
        if (v ~ /ms$/) { sub(/ms$/, "", v); t += v }
        else if (v ~ /min$/) { sub(/min$/, "", v); t += v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); t += v * 1000 }
        else if (v ~ /h$/) { sub(/h$/, "", v); t += v * 3600000 } }
        print t }' <<<"$1"
}
lines_at_least() { [ "$(wc -l <"$1")" -ge "$2" ]; }
# grep reads the whole journal (no -q): with pipefail, a grep that quits at the first match
# makes journalctl die of SIGPIPE and the match count as a miss.
journal_has() { in_ct journalctl --no-pager -u "$UNIT" | grep -- "$1" >/dev/null; }
kill_main() { in_ct sh -c 'kill -"$1" "$2"' sh "$1" "$2"; }
# The host's pid of the container's process $1.
host_pid() {
    local p ns
    ns="$(readlink "/proc/$LEADER/ns/pid")"
    for p in $(pgrep -x zenedge); do
        if [ "$(readlink "/proc/$p/ns/pid")" = "$ns" ] &&
            awk -v want="$1" '/^NSpid:/ { exit !($NF == want) }' "/proc/$p/status" 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# --- the test ----------------------------------------------------------------------------

step "the packages: the one under test, and a rebuild with a higher version for the upgrade"
rm -rf "$T"
mkdir -p "$SHARE/upgrade"
deb="$(package_under_test)"
cp "$deb" "$SHARE/"
version="$(dpkg-deb -f "$deb" Version)"
upgrade_version="$version+upgrade1"
upgrade_deb="$(packaging/build-deb.sh --deb-version "$upgrade_version" --output "$SHARE/upgrade/")"
# cargo-deb deletes the other versions' packages from target/debian: put it back.
[ -f "$deb" ] || cp "$SHARE/$(basename "$deb")" "$deb"
dpkg --compare-versions "$upgrade_version" gt "$version" || fail "$upgrade_version is not higher than $version"
echo "package: $deb ($version); upgrade: $(basename "$upgrade_deb")"
in_share="/zenedge-test/$(basename "$deb")"
upgrade_in_share="/zenedge-test/upgrade/$(basename "$upgrade_deb")"

step "a fresh Debian root, booted with systemd as PID 1"
new_root "$ROOT"
dmesg_before="$(dmesg 2>/dev/null | wc -l)" || dmesg_before=""
boot
echo "booted: $(in_ct systemctl is-system-running || true), systemd $(in_ct systemctl --version | head -n 1 | cut -d' ' -f2)"
in_ct apt-get update -qq

step "install on the unconfigured box: the postinst enables the unit and does not start it"
in_ct apt-get install -y -q --no-install-recommends "$in_share" >"$T/apt-install.log" 2>&1 ||
    { cat "$T/apt-install.log"; fail "the package did not install"; }
grep -q '^zenedge: not started' "$T/apt-install.log" || fail "the postinst did not say why it did not start the unit"
[ "$(in_ct systemctl is-enabled "$UNIT")" = enabled ] || fail "the unit is not enabled after install"
is_state inactive/dead || fail "the unit is not inactive after install: $(state)"
echo "enabled, inactive: $(grep '^zenedge: not started' "$T/apt-install.log")"

step "a start on a config error fails with exit 78 and is not restarted"
if in_ct systemctl start "$UNIT" 2>/dev/null; then fail "the unit started on the unconfigured config"; fi
wait_until 30 "the failed start ended" start_ended
[ "$(prop SubState)" = failed ] || fail "a restart is scheduled after exit 78 (a restart loop): $(state)"
[ "$(prop ExecMainStatus)" = 78 ] || fail "the start failed with status $(prop ExecMainStatus), expected 78"
[ "$(prop NRestarts)" = 0 ] || fail "restarted after exit 78: $(state)"
journal_has 'site.tenant_id: "CHANGE ME"' || fail "the journal does not name the key at fault"
echo "failed, not restarted: $(state)"
in_ct systemctl reset-failed "$UNIT"

step "a configured box (config pre-seeded, fresh install): the postinst starts it and READY arrives"
in_ct /usr/share/zenedge/provision.sh --tenant tenant-test --hospital hospital-test --edge edge-test >/dev/null ||
    fail "provision.sh failed in a root that has only the package's dependencies"
read -r mllp_port dicom_port http_port < <(free_ports)
set_ports "$ROOT/etc/zenedge/zenedge.toml" "$mllp_port" "$dicom_port" "$http_port"
cp "$ROOT/etc/zenedge/zenedge.toml" "$T/zenedge.toml"
in_ct apt-get purge -y -q zenedge >>"$T/apt-install.log" 2>&1 || fail "apt-get purge"
# Only the master key stays, with the data it unseals.
[ "$(ls -A "$ROOT/etc/zenedge")" = master.key ] || fail "purge left /etc/zenedge: $(ls -A "$ROOT/etc/zenedge")"
# As an image build or configuration management does: the config is there before the package.
install -d -m 0750 "$ROOT/etc/zenedge"
install -m 0640 "$T/zenedge.toml" "$ROOT/etc/zenedge/zenedge.toml"
in_ct apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "$in_share" \
    >"$T/apt-preseeded.log" 2>&1 || { cat "$T/apt-preseeded.log"; fail "the package did not install"; }
if grep -q '^zenedge: not started' "$T/apt-preseeded.log"; then fail "the postinst did not start the configured unit"; fi
cmp -s "$T/zenedge.toml" "$ROOT/etc/zenedge/zenedge.toml" || fail "the pre-seeded config was replaced"
# Type=notify: active only once the daemon sent READY=1.
wait_until 60 "active after READY" is_state active/running
[ "$(in_ct systemctl is-active "$UNIT")" = active ] || fail "systemctl is-active: $(state)"
journal_has "Started $UNIT" || fail "no 'Started $UNIT' in the journal"
echo "active: $(state)"

step "systemctl show: the unit's settings in force, and the daemon process they make"
in_ct systemctl show "$UNIT" >"$T/show.txt"
in_ct systemd-analyze syscall-filter >"$T/syscall-filter.txt" 2>/dev/null
python3 packaging/test/unit_props.py settings "$ROOT/lib/systemd/system/$UNIT" "$T/show.txt" "$T/syscall-filter.txt" ||
    fail "systemctl show differs from the unit file"
pid="$(prop MainPID)"
in_ct cat "/proc/$pid/status" >"$T/status.txt"
uid="$(in_ct id -u zenedge)"
expect_status() {
    grep -q "^$1:[[:space:]]*$2\$" "$T/status.txt" || fail "daemon process: expected $1 $2, got: $(grep "^$1:" "$T/status.txt")"
}
expect_status Uid "${uid}[[:space:]]*${uid}[[:space:]]*${uid}[[:space:]]*${uid}"
expect_status NoNewPrivs 1
expect_status Seccomp 2
expect_status CapEff 0000000000000400    # CAP_NET_BIND_SERVICE alone
expect_status CapBnd 0000000000000400
expect_status CapAmb 0000000000000400
in_ct awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | grep -q '^ro' || fail "the daemon's / is not read-only"
in_ct awk '$5 == "/var/lib/zenedge" { print $6 }' "/proc/$pid/mountinfo" | grep -q '^rw' ||
    fail "the daemon's state directory is not writable"
echo "daemon process: uid zenedge, no new privileges, seccomp filter, CAP_NET_BIND_SERVICE only, / read-only"
# Every system call of the running daemon, from here until the kill -9 below (traffic, the
# API, the load), is checked against the filter systemd built: a refused call would only
# return EPERM. The start-up's calls are checked by the install test.
if command -v strace >/dev/null; then
    strace -f -qq -p "$(host_pid "$pid")" -o "$T/strace.log" &
    STRACE_PID=$!
    # Attached once a request to the API shows in the trace.
    traced() { peer ready "$http_port" && test -s "$T/strace.log"; }
    wait_until 30 "strace attached" traced
else
    echo "strace is not installed on the host: the running daemon's system calls are not traced"
fi

step "HL7 and C-ECHO from the host through the container's network"
peer ready "$http_port"
peer send "$mllp_port" SYSTEMD-1
echo SYSTEMD-1 >"$T/acked-1.txt"
c_echo "$dicom_port" || fail "C-ECHO failed"

step "systemctl reload: SIGHUP reaches the daemon (ExecReload under the unit's sandbox), which stays up"
pid="$(prop MainPID)"
in_ct systemctl reload "$UNIT" || fail "systemctl reload failed"
reloaded() { journal_has "SIGHUP received: reloading the TLS files"; }
wait_until 30 "the daemon logs the reload" reloaded
[ "$(prop MainPID)" = "$pid" ] && [ "$(prop ActiveState)" = active ] ||
    fail "the reload did not leave the same process running: $(state)"
peer ready "$http_port"
echo "reloaded in place: $(state)"

step "kill -9 under load: Restart=on-failure brings it back, nothing acknowledged is lost"
peer stream "$mllp_port" KILL9 "$T/acked-kill9.txt" "$T/stop-stream" >"$T/stream.log" 2>&1 &
STREAM_PID=$!
touch "$T/acked-kill9.txt"
wait_until 60 "200 orders acknowledged before the kill" lines_at_least "$T/acked-kill9.txt" 200
pid="$(prop MainPID)"
restarts="$(prop NRestarts)"
restart_ms="$(span_ms "$(prop RestartUSec)")"
t0="$(now_ms)"
kill_main KILL "$pid"
wait_until $((restart_ms / 1000 + 60)) "restarted after kill -9" restarted "$pid" $((restarts + 1))
echo "restarted $(($(now_ms) - t0)) ms after kill -9 (RestartSec $((restart_ms / 1000)) s), $(wc -l <"$T/acked-kill9.txt") orders acknowledged so far"
journal_has "status=9/KILL" || fail "the journal does not show the kill"
if [ -n "$STRACE_PID" ]; then
    wait "$STRACE_PID" || true
    STRACE_PID=""
    python3 packaging/test/unit_props.py syscalls "$T/show.txt" "$T/strace.log" ||
        fail "the daemon made system calls the filter refuses"
fi
n="$(wc -l <"$T/acked-kill9.txt")"
wait_until 60 "200 more orders acknowledged after the restart" lines_at_least "$T/acked-kill9.txt" $((n + 200))
touch "$T/stop-stream"
wait "$STREAM_PID" || { cat "$T/stream.log"; fail "the sender failed"; }
STREAM_PID=""
cat "$T/stream.log"
peer logged "$http_port" "$T"/acked-*.txt --token-file "$ROOT/var/lib/zenedge/local-api.token" || fail "acknowledged orders were lost"

step "kill -STOP: the watchdog restarts it within WatchdogSec + RestartSec"
pid="$(prop MainPID)"
restarts="$(prop NRestarts)"
watchdog_ms="$(span_ms "$(prop WatchdogUSec)")"
[ "$watchdog_ms" -gt 0 ] || fail "no watchdog: WatchdogUSec=$(prop WatchdogUSec)"
limit_ms=$((watchdog_ms + restart_ms))
margin_ms=15000
t0="$(now_ms)"
kill_main STOP "$pid"
wait_until $(((limit_ms + margin_ms) / 1000)) "restarted by the watchdog" restarted "$pid" $((restarts + 1))
elapsed=$(($(now_ms) - t0))
journal_has "Watchdog timeout" || fail "the restart was not the watchdog's"
echo "restarted by the watchdog $elapsed ms after SIGSTOP (WatchdogSec + RestartSec = $limit_ms ms, margin $margin_ms ms)"
in_ct sh -c 'ls /var/lib/zenedge | grep -q "^core"' && fail "a core file was left in the state directory"
peer ready "$http_port"
peer logged "$http_port" "$T"/acked-*.txt --token-file "$ROOT/var/lib/zenedge/local-api.token"

step "upgrade to $upgrade_version while running: restarted on the new binary, data and conffile kept"
pid="$(prop MainPID)"
cp "$ROOT/etc/zenedge/zenedge.toml" "$T/zenedge.toml.before-upgrade"
etc_before="$(ls -A "$ROOT/etc/zenedge")"
in_ct apt-get install -y -q --no-install-recommends "$upgrade_in_share" >"$T/apt-upgrade.log" 2>&1 ||
    { cat "$T/apt-upgrade.log"; fail "the upgrade did not install"; }
[ "$(in_ct dpkg-query -W -f='${Version}' zenedge)" = "$upgrade_version" ] || fail "zenedge is not at $upgrade_version"
wait_until 60 "active after the upgrade" is_state active/running
new_pid="$(prop MainPID)"
[ "$new_pid" != "$pid" ] || fail "the upgrade did not restart the daemon (pid $pid)"
[ "$(in_ct stat -L -c %i "/proc/$new_pid/exe")" = "$(in_ct stat -c %i /usr/bin/zenedge)" ] ||
    fail "the daemon does not run the installed binary"
cmp -s "$T/zenedge.toml.before-upgrade" "$ROOT/etc/zenedge/zenedge.toml" || fail "the upgrade changed the config"
# The pre-seeded install left the packaged file beside it (zenedge.toml.dpkg-dist, dpkg's way
# with --force-confold); the upgrade must not ask about the config nor add files.
[ "$(ls -A "$ROOT/etc/zenedge")" = "$etc_before" ] || fail "the upgrade changed /etc/zenedge: $(ls -A "$ROOT/etc/zenedge")"
if grep -q "^Configuration file" "$T/apt-upgrade.log"; then fail "the upgrade asked about the config"; fi
peer ready "$http_port"
peer send "$mllp_port" UPGRADE-1
echo UPGRADE-1 >"$T/acked-2.txt"
peer logged "$http_port" "$T"/acked-*.txt --token-file "$ROOT/var/lib/zenedge/local-api.token" || fail "the upgrade lost data"
echo "pid $pid -> $new_pid on $upgrade_version; config unchanged"

step "systemctl stop with a sender connected: exit 0 within the shutdown grace period"
peer hold "$mllp_port" HOLD-1 >"$T/hold.log" 2>&1 &
HOLD_PID=$!
wait_until 30 "the held connection answered" grep -q '^held' "$T/hold.log"
echo HOLD-1 >"$T/acked-3.txt"
stop_limit_ms="$(span_ms "$(prop TimeoutStopUSec)")"
# daemon.shutdown_grace: how long in-flight work may take; 5 s more for the process itself.
grace_ms="$(span_ms "$(sed -n 's/^shutdown_grace = "\(.*\)"/\1/p' "$ROOT/etc/zenedge/zenedge.toml")")"
[ "$grace_ms" -gt 0 ] || fail "no daemon.shutdown_grace in the config"
t0="$(now_ms)"
in_ct systemctl stop "$UNIT"
elapsed=$(($(now_ms) - t0))
[ "$(prop Result)" = success ] || fail "stop: $(state)"
[ "$(prop ExecMainCode)/$(prop ExecMainStatus)" = 1/0 ] ||
    fail "the daemon did not exit 0: code $(prop ExecMainCode), status $(prop ExecMainStatus)"
[ "$elapsed" -lt "$stop_limit_ms" ] || fail "stop took $elapsed ms (TimeoutStopSec $stop_limit_ms ms)"
[ "$elapsed" -lt $((grace_ms + 5000)) ] || fail "stop took $elapsed ms (shutdown_grace $grace_ms ms + 5 s)"
if journal_has "timed out"; then fail "systemd timed out on the daemon"; fi
wait "$HOLD_PID" || { cat "$T/hold.log"; fail "the held connection"; }
HOLD_PID=""
STRACE_PID=""
echo "stopped in $elapsed ms, exit 0 (shutdown_grace $grace_ms ms, TimeoutStopSec $((stop_limit_ms / 1000)) s); $(tail -n 1 "$T/hold.log")"

step "reboot: the enabled unit is running again, with everything acknowledged"
poweroff boot-1
boot
wait_until 60 "active after the reboot" is_state active/running
peer ready "$http_port"
peer logged "$http_port" "$T"/acked-*.txt --token-file "$ROOT/var/lib/zenedge/local-api.token" || fail "acknowledged orders are missing after the reboot"
poweroff boot-2

step "seccomp: no system call refused, no patient data in the journal"
if grep -E 'SIGSYS|Bad system call|status=31/SYS|type=1326|audit.*seccomp' "$T"/journal-boot-*.log; then
    fail "the journal shows a system call refused by the filter"
fi
if [ -n "$dmesg_before" ]; then
    if dmesg | tail -n +"$((dmesg_before + 1))" | grep -E 'type=1326|seccomp' | grep -i zenedge; then
        fail "the kernel log shows a seccomp action on the daemon"
    fi
    echo "journal and kernel log: no SIGSYS, no seccomp audit line"
else
    echo "journal: no SIGSYS, no seccomp audit line (the kernel log is not readable here)"
fi
daemon_lines() { grep -h ' zenedge\[' "$T/journal-boot-2.log"; }
if daemon_lines | grep -E 'DOE|JANE|19700101'; then
    fail "the daemon logged patient data"
fi
# Kills, the watchdog, an upgrade and a reboot are all recovered from: nothing for an operator.
if daemon_lines | grep -E 'zenedge\[[0-9]+\]: [0-9T:.-]+Z +ERROR '; then
    fail "the daemon logged an ERROR"
fi
echo "the daemon's journal: no patient data, no ERROR, $(daemon_lines | grep -c ' WARN ' || true) WARN lines"

step "systemd test passed"
