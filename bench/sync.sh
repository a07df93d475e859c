#!/usr/bin/env bash
# Sync benchmarks behind BENCHMARKS.md, over loopback TLS with mutual authentication, for each
# of the hub's stores in STORES (default "redb postgres", measured in the same run):
#   1. catch-up: a log of EVENTS events (default 1,000,000, written by `zenedge-load fill-log`
#      with sync off) delivered to the reference hub (`zenedge hub`) once the daemon starts;
#      events/s from the daemon's start to the hub holding the last one;
#   2. (postgres) the consumers' read rate: the whole cross-edge feed read from the start
#      (`zenedge-load feed-read`);
#   3. steady state: orders at RATE msg/s (default 1,000) over MLLP while the sync runs,
#      each timed from its ACK to the hub holding it (`zenedge-load sync-lag`);
#   4. many edges: EDGES virtual edges (default 20) at EDGE_RATE events/s each (default 1,000)
#      for DURATION (`zenedge-load hub-load`), each event timed from when its edge took it to
#      the hub's 200; on postgres a consumer long-polls the feed meanwhile;
#   5. (postgres) how soon a consumer sees an event: 2 edges at 100 events/s, a consumer
#      long-polling, each event timed from its batch leaving the edge to the consumer's read.
# Usage: bench/sync.sh [REPEATS=3]   (EVENTS=..., RATE=..., DURATION=..., STORES=... to change
# the run). Needs openssl (test certificates), curl and, for postgres, the PostgreSQL server
# packages; the state is a temp dir (~1.6 GB per 1M events on the edge plus the hub's copy).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
events=${EVENTS:-1000000}
rate=${RATE:-1000}
duration=${DURATION:-30s}
stores=${STORES:-redb postgres}
edges=${EDGES:-20}
edge_rate=${EDGE_RATE:-1000}
cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${pg_bin:-}" ] && pg_stop "$work"; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
hub_port=$((port + 3))
pg_port=$((port + 4))
. bench/lib.sh
write_config
bin=target/release

# A CA, the hub's certificate for localhost, the edge's client certificate (CN = edge id).
enable_sync "$work" "$hub_port" bench-ca 2
hub_get() { curl -sf --cacert "$pki/ca.pem" --cert "$pki/edge.pem" --key "$pki/edge.key" "https://localhost:$hub_port$1"; }
# 0 while the hub has never heard of the edge (404).
stored_through() { hub_stored_through hub_get bench; }
# The virtual edges' certificates (CN edge-N) and a consumer's (CN consumer:bench).
(
  cd "$pki"
  for name in $(seq -f "edge-%g" 1 "$edges") consumer:bench; do
    file=${name/:/-}
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" -keyout "$file.key" \
      -out "$file.csr" 2>/dev/null
    openssl x509 -req -in "$file.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile <(printf 'extendedKeyUsage=clientAuth\n') -out "$file.pem" 2>/dev/null
  done
)
case " $stores " in *" postgres "*) pg_start "$work" "$pg_port" ;; esac
# The hub's store arguments for $store (postgres: a fresh database each time).
store_args() {
  if [ "$store" = postgres ]; then
    pg_fresh_db "$pg_port" zenedge_hub
    echo "--postgres postgres://postgres@127.0.0.1:$pg_port/zenedge_hub"
  else
    rm -rf "$work/hub"
    echo "--state-dir $work/hub"
  fi
}
start_hub() {
  # shellcheck disable=SC2046
  "$bin/zenedge" hub --listen "127.0.0.1:$hub_port" $(store_args) --tls-cert "$pki/hub.pem" \
    --tls-key "$pki/hub.key" --client-ca "$pki/ca.pem" 2>"$work/hub.log" &
  hub_pid=$!
  wait_port "$hub_port"
}

echo "== fill-log: $events events (sync off)"
"$bin/zenedge-load" fill-log --config "$work/zenedge.toml" --events "$events" | tee "$work/fill.out"
last=$(sed -n 's/^\([0-9]*\) events.*/\1/p' "$work/fill.out")

catch_up() { # run: a fresh hub store, then the daemon from its start to the hub holding everything
  start_hub
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
  python3 -c "s=$end-$start; print(f'$store run $1: caught up {$last} events in {s:.2f} s ({$last/s:.0f} events/s)')"
  grep -o 'VmHWM:.*' "/proc/$edge_pid/status" | sed 's/^/  edge peak RSS /'
  grep -o 'VmHWM:.*' "/proc/$hub_pid/status" | sed 's/^/  hub peak RSS /'
}

consumer="$pki/consumer-bench.pem,$pki/consumer-bench.key"
for store in $stores; do
  echo "== [$store] catch-up of $last events to the hub over mutual TLS, $repeats runs"
  for i in $(seq "$repeats"); do
    catch_up "$i"
    if [ "$i" -lt "$repeats" ]; then
      kill "$edge_pid" "$hub_pid"; wait "$edge_pid" "$hub_pid" 2>/dev/null || true
    fi
  done
  if [ "$store" = postgres ]; then
    "$pg_bin/psql" -X -A -t -h 127.0.0.1 -p "$pg_port" -U postgres -d zenedge_hub \
      -c "SELECT 'hub database on disk: ' || pg_size_pretty(pg_database_size('zenedge_hub'))"
    echo "== [$store] the consumers' read rate: the whole feed from the start"
    "$bin/zenedge-load" feed-read --hub "https://localhost:$hub_port" --ca "$pki/ca.pem" --consumer "$consumer"
  else
    du -sh "$work/hub" | sed 's/\t.*//; s/^/hub state on disk: /'
  fi

  echo "== [$store] steady state: $rate msg/s for $duration, ACK to stored at the hub"
  "$bin/zenedge-load" sync-lag --mllp "127.0.0.1:$port" --hub "https://localhost:$hub_port" --edge bench \
    --ca "$pki/ca.pem" --cert "$pki/edge.pem" --key "$pki/edge.key" --rate "$rate" --duration "$duration"
  kill "$edge_pid" "$hub_pid"; wait "$edge_pid" "$hub_pid" 2>/dev/null || true

  echo "== [$store] $edges edges at $edge_rate events/s each for $duration: taken to stored at the hub"
  start_hub
  extra=()
  [ "$store" = postgres ] && extra=(--consumer "$consumer")
  "$bin/zenedge-load" hub-load --hub "https://localhost:$hub_port" --ca "$pki/ca.pem" --certs "$pki" \
    --edges "$edges" --rate "$edge_rate" --duration "$duration" "${extra[@]}"
  grep -o 'VmHWM:.*' "/proc/$hub_pid/status" | sed 's/^/  hub peak RSS /'
  kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
  if [ "$store" = postgres ]; then
    echo "== [$store] a consumer's wake-up: 2 edges at 100 events/s for $duration, long-polling consumer"
    start_hub
    "$bin/zenedge-load" hub-load --hub "https://localhost:$hub_port" --ca "$pki/ca.pem" --certs "$pki" \
      --edges 2 --rate 100 --duration "$duration" --consumer "$consumer"
    kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
  fi
done
