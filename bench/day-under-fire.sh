#!/usr/bin/env bash
# Day under fire (not CI): one synthetic hospital day (gen_corpus.py: studies with their
# orders, follow-ups and ADT) sent to the release daemon while it is `kill -9`'ed every
# KILL_EVERY s (default 30) and restarted on the same state directory, and while the hub
# (`zenedge hub`, mutual TLS) is `kill -9`'ed every CUT_EVERY s (default 300) and kept down for
# CUT_FOR s (default 60). The senders (bench/day_sender.py) retry everything not acknowledged
# and record what was. Then, once everything is sent and synced:
#   * 0 acknowledged items lost: every control id answered AA and every SOP instance answered
#     Success is in the log (/api/v1/events);
#   * 0 duplicates: one HL7MessageReceived per control id, one InstanceStored per SOP UID;
#   * the hub holds exactly the edge's log: seqs 1..last, no gap, no duplicate, same event ids
#     and types; and the same envelopes as a fresh hub to which the edge sends its whole log
#     again afterwards (the hub's read-back JSON compared event by event);
#   * `zenedge verify`: the projections equal a replay of the log;
#   * matches, cases, studies and orders from the read API are identical to a fault-free run of
#     the same day (sent faster, into a fresh state directory), compared by control id,
#     accession, patient and study UID, not by seq, id or time.
# Usage: bench/day-under-fire.sh
# Environment: ZENEDGE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/release, built here),
#   DAY_OUT (results; default a new temp dir, kept), DAY_CORPUS (default $DAY_OUT/corpus, made
#   with STUDIES=300 studies of INSTANCES=10 small instances, ORM=900, ADT=120, SEED=11),
#   DAY_SECONDS (phase A of the faulted run, default 900), REF_DAY_SECONDS (the fault-free
#   run, default 120), KILL_EVERY, CUT_EVERY, CUT_FOR, BENCH_TOOLS (../shared/tools),
#   PEERS_VENV (python with pydicom, pynetdicom, numpy).
# Needs openssl, curl, python3 with pydicom/pynetdicom (../shared/tools/setup_peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
long_run_paths "${DAY_OUT:-}"
corpus=${DAY_CORPUS:-$out/corpus}
kill_every=${KILL_EVERY:-30}
cut_every=${CUT_EVERY:-300}
cut_for=${CUT_FOR:-60}
day=${DAY_SECONDS:-900}
ref_day=${REF_DAY_SECONDS:-120}
here=$PWD

edge_pid= hub_pid=
cleanup() {
  kill -9 $edge_pid $hub_pid 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
note() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$out/run.log"; }

if [ ! -f "$corpus/studies.csv" ]; then
  note "generating the day in $corpus"
  "$py" "$tools/gen_corpus.py" "$corpus" --studies 0 --tiny $((${STUDIES:-300} * ${INSTANCES:-10})) \
    --tiny-per-study "${INSTANCES:-10}" --orm "${ORM:-900}" --adt "${ADT:-120}" --no-bad --seed "${SEED:-11}" \
    --force >"$out/corpus.log" 2>&1
fi
{
  echo "day under fire: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  echo "corpus: $(python3 -c "import json; print(json.load(open('$corpus/manifest.json'))['summary'])")"
  echo "faults: daemon kill -9 every ${kill_every}s; hub kill -9 every ${cut_every}s, down ${cut_for}s; phase A ${day}s (reference ${ref_day}s)"
} | tee "$out/info.txt"

wait_open() { # port [seconds]
  local end=$((SECONDS + ${2:-120}))
  until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do
    [ $SECONDS -lt $end ] || { note "port $1 never opened"; return 1; }
    sleep 0.05
  done
}

# A run: its own directory, ports and config (lib.sh's write_config: MLLP $port, HTTP +1, DICOM +2).
setup_run() { # name
  work=$out/$1
  rm -rf "$work"
  mkdir -p "$work"
  port=$((20000 + RANDOM % 20000))
  hub_port=$((port + 3))
  . "$here/bench/lib.sh"
  write_config
  api=http://127.0.0.1:$((port + 1))
  export ZENEDGE_TOKEN_FILE=$work/state/local-api.token
}
start_edge() {
  "$bin/zenedge" serve --config "$work/zenedge.toml" 2>>"$work/edge.log" &
  edge_pid=$!
  wait_open "$port" && wait_open $((port + 2)) && wait_open $((port + 1))
}
start_hub() {
  "$bin/zenedge" hub --listen "127.0.0.1:$hub_port" --state-dir "$1" --tls-cert "$pki/hub.pem" \
    --tls-key "$pki/hub.key" --client-ca "$pki/ca.pem" 2>>"$work/hub.log" &
  hub_pid=$!
  wait_open "$hub_port"
}
hub_get() { curl -sf --cacert "$pki/ca.pem" --cert "$pki/edge.pem" --key "$pki/edge.key" "https://localhost:$hub_port$1"; }
stored_through() { hub_stored_through hub_get bench; }
last_seq() { curl -sf "$api/readyz" | sed -n 's/.*"last_seq":\([0-9]*\).*/\1/p'; }
sender() { # out-dir day-seconds followup-seconds (exec: in the background, $! is python itself)
  exec "$py" "$here/bench/day_sender.py" "$corpus" --mllp "$port" --dicom $((port + 2)) --http $((port + 1)) \
    --day "$2" --followups "$3" --out "$1"
}

# ---- the fault-free run
setup_run reference
note "fault-free run: phase A over ${ref_day}s"
start_edge
(sender "$work/sent" "$ref_day" 20) 2>"$work/sender.log"
"$py" bench/day_check.py edge "$api" "$corpus" "$out/reference.json"
kill "$edge_pid"
wait "$edge_pid" || true
edge_pid=

# ---- the day under fire
setup_run faulted
enable_sync "$work" "$hub_port" day-ca 2
start_hub "$work/hub"
start_edge
note "faulted run: phase A over ${day}s"
sender "$work/sent" "$day" 60 2>"$work/sender.log" &
sender_pid=$!
kills=0 cuts=0 restart_fail=0
next_kill=$((SECONDS + kill_every))
next_cut=$((SECONDS + cut_every))
hub_back=0
while kill -0 "$sender_pid" 2>/dev/null; do
  if [ $SECONDS -ge $next_kill ]; then
    kill -9 "$edge_pid" 2>/dev/null || true
    wait "$edge_pid" 2>/dev/null || true
    kills=$((kills + 1))
    t=$(date +%s.%N)
    if start_edge; then
      echo "$(date -u +%T) kill $kills: restarted in $(python3 -c "import time; print(round(time.time() - $t, 2))") s" >>"$out/faults.log"
    else
      restart_fail=$((restart_fail + 1))
      echo "$(date -u +%T) kill $kills: the daemon did not come back" >>"$out/faults.log"
    fi
    next_kill=$((SECONDS + kill_every))
  fi
  if [ -n "$hub_pid" ] && [ $SECONDS -ge $next_cut ]; then
    kill -9 "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
    hub_pid=
    cuts=$((cuts + 1))
    hub_back=$((SECONDS + cut_for))
    echo "$(date -u +%T) hub cut $cuts (kill -9) for ${cut_for}s" >>"$out/faults.log"
    next_cut=$((SECONDS + cut_every))
  fi
  if [ -z "$hub_pid" ] && [ $SECONDS -ge $hub_back ]; then
    start_hub "$work/hub"
    echo "$(date -u +%T) hub back" >>"$out/faults.log"
  fi
  sleep 0.5
done
wait "$sender_pid" || note "the sender failed (exit $?)"
[ -n "$hub_pid" ] || start_hub "$work/hub"
note "sent: $(cat "$work/sent/stats.json" | tr -d '\n ')"
note "faults: $kills daemon kills ($restart_fail restarts failed), $cuts hub cuts"

# Sync catch-up: the breaker may be open and the backoff up to a minute.
last=$(last_seq)
t=$SECONDS
until [ "$(stored_through || echo 0)" -ge "$last" ] || [ $((SECONDS - t)) -gt 600 ]; do sleep 1; done
note "sync: edge last seq $last, hub stored through $(stored_through), caught up $((SECONDS - t)) s after the last item"
"$py" bench/day_check.py edge "$api" "$corpus" "$out/faulted.json"
"$py" bench/day_check.py hub "https://localhost:$hub_port" "$pki/ca.pem" "$pki/edge.pem" "$pki/edge.key" bench "$out/hub.json"

# The same log again into a fresh hub: one more order makes the edge meet it (409, stored
# through 0) and send everything from seq 1 again, from its stored envelopes.
kill "$hub_pid"
wait "$hub_pid" 2>/dev/null || true
start_hub "$work/hub2"
"$bin/zenedge-load" mllp --addr "127.0.0.1:$port" --count 1 --warmup 0s --run-id probe >/dev/null
last2=$(last_seq)
t=$SECONDS
until [ "$(stored_through || echo 0)" -ge "$last2" ] || [ $((SECONDS - t)) -gt 300 ]; do sleep 1; done
"$py" bench/day_check.py hub "https://localhost:$hub_port" "$pki/ca.pem" "$pki/edge.pem" "$pki/edge.key" bench "$out/hub2.json"

kill "$edge_pid"
wait "$edge_pid" || true
edge_pid=
if "$bin/zenedge" verify --config "$work/zenedge.toml" >"$out/verify.txt" 2>&1; then
  note "zenedge verify: projections equal the replayed log"
else
  note "zenedge verify FAILED: $(tail -5 "$out/verify.txt")"
fi
grep -c -E 'ERROR' "$work/edge.log" | sed 's/^/daemon log ERROR lines: /' | tee -a "$out/run.log" || true

set +e
{
  echo "== day under fire: $(cat "$work/sent/stats.json" | tr -d '\n ')"
  echo "faults: $kills daemon kill -9 + restart ($restart_fail restarts failed), $cuts hub cuts (kill -9, ${cut_for}s down)"
  "$py" bench/day_check.py check "$work/sent" "$out/faulted.json" "$out/hub.json" "$out/hub2.json" "$out/reference.json"
} | tee "$out/summary.txt"
grep -q 'all checks passed' "$out/summary.txt"
