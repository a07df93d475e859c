#!/usr/bin/env bash
# Sync benchmarks behind BENCHMARKS.md, over loopback TLS with mutual authentication:
#   1. catch-up: a log of EVENTS events (default 1,000,000, written by `zenedge-load fill-log`
#      with sync off) delivered to the reference hub (`zenedge hub`) once the daemon starts;
#      events/s from the daemon's start to the hub holding the last one;
#   2. steady state: orders at RATE msg/s (default 1,000) over MLLP while the sync runs,
#      each timed from its ACK to the hub holding it (`zenedge-load sync-lag`).
# Usage: bench/sync.sh [REPEATS=3]   (EVENTS=..., RATE=..., DURATION=... to change the run)
# Needs openssl (test certificates) and curl; the state is a temp dir (~1.6 GB per 1M events
# on the edge plus the hub's copy).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
events=${EVENTS:-1000000}
rate=${RATE:-1000}
duration=${DURATION:-30s}
cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
hub_port=$((port + 3))
. bench/lib.sh
write_config
bin=target/release

# A CA, the hub's certificate for localhost, the edge's client certificate (CN = edge id).
enable_sync "$work" "$hub_port" bench-ca 2
hub_get() { curl -sf --cacert "$pki/ca.pem" --cert "$pki/edge.pem" --key "$pki/edge.key" "https://localhost:$hub_port$1"; }
stored_through() { hub_get /v1/edges/bench | sed -n 's/.*"stored_through":\([0-9]*\).*/\1/p'; }

echo "== fill-log: $events events (sync off)"
"$bin/zenedge-load" fill-log --config "$work/zenedge.toml" --events "$events" | tee "$work/fill.out"
last=$(sed -n 's/^\([0-9]*\) events.*/\1/p' "$work/fill.out")

catch_up() { # run: a fresh hub store, then the daemon from its start to the hub holding everything
  "$bin/zenedge" hub --listen "127.0.0.1:$hub_port" --state-dir "$work/hub" --tls-cert "$pki/hub.pem" \
    --tls-key "$pki/hub.key" --client-ca "$pki/ca.pem" 2>"$work/hub.log" &
  hub_pid=$!
  wait_port "$hub_port"
  start=$(date +%s.%N)
  "$bin/zenedge" serve --config "$work/zenedge.toml" 2>"$work/edge.log" &
  edge_pid=$!
  if [ "$1" -gt 1 ]; then
    # A fully synced edge sends nothing until its next event: one order makes it meet the
    # emptied hub, which answers 409 (stored through 0) and the edge realigns to 0.
    wait_port "$port"
    "$bin/zenedge-load" mllp --addr "127.0.0.1:$port" --count 1 --warmup 0s >/dev/null
    last=$(curl -sf "http://127.0.0.1:$((port + 1))/readyz" | sed -n 's/.*"last_seq":\([0-9]*\).*/\1/p')
  fi
  while :; do
    through=$(stored_through || echo 0)
    [ "${through:-0}" -ge "$last" ] && break
    kill -0 "$edge_pid" 2>/dev/null || { echo "the daemon exited" >&2; tail "$work/edge.log" >&2; exit 1; }
    sleep 0.1
  done
  end=$(date +%s.%N)
  python3 -c "s=$end-$start; print(f'run $1: caught up {$last} events in {s:.2f} s ({$last/s:.0f} events/s)')"
  grep -o 'VmHWM:.*' "/proc/$edge_pid/status" | sed 's/^/  edge peak RSS /'
  grep -o 'VmHWM:.*' "/proc/$hub_pid/status" | sed 's/^/  hub peak RSS /'
}

echo "== catch-up of $last events to the hub over mutual TLS, $repeats runs"
for i in $(seq "$repeats"); do
  if [ "$i" -gt 1 ]; then # the next run starts from an empty hub: the edge realigns to 0 (409)
    kill "$edge_pid" "$hub_pid"; wait "$edge_pid" "$hub_pid" 2>/dev/null || true
    rm -rf "$work/hub"
  fi
  catch_up "$i"
done
du -sh "$work/hub" | sed 's/\t.*//; s/^/hub state on disk: /'

echo "== steady state: $rate msg/s for $duration, ACK to stored at the hub"
"$bin/zenedge-load" sync-lag --mllp "127.0.0.1:$port" --hub "https://localhost:$hub_port" --edge bench \
  --ca "$pki/ca.pem" --cert "$pki/edge.pem" --key "$pki/edge.key" --rate "$rate" --duration "$duration"
