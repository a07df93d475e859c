#!/usr/bin/env bash
# Two builds of the hub on PostgreSQL, interleaved (A, B, A, B…) so they share the machine's
# noise: the catch-up of one edge's log of EVENTS events (default 200,000, written once by
# `zenedge-load fill-log`) into a fresh database, timed from the edge's start to the hub's
# `stored_through` reaching the log's end; then the consumers' read of the whole feed from the
# start (`zenedge-load feed-read`) from the hub that stored it. Edge and hub talk loopback
# mutual TLS as in bench/sync.sh; the edge and the load tools are DIR_A's for both builds, so
# only the hub differs. PostgreSQL as in bench/sync.sh (durable defaults, in a temp dir). The
# hub's own CPU time (user + system, from /proc) is printed for each part.
#
# usage: bench/hub-ab.sh DIR_A DIR_B [REPEATS=3]
#   DIR_A, DIR_B: directories holding a `zenedge` and a `zenedge-load` (two target/release copies).
# Prints one line per run and a median [min-max] table per figure at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(cd "$1" && pwd); b=$(cd "$2" && pwd); repeats=${3:-3}
events=${EVENTS:-200000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${pg_bin:-}" ] && pg_stop "$work"; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000)); hub_port=$((port + 3)); pg_port=$((port + 4))
# shellcheck source=bench/lib.sh
. bench/lib.sh
write_config
enable_sync "$work" "$hub_port" bench-ca 2
(
  cd "$pki"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=consumer:bench" \
    -keyout consumer.key -out consumer.csr 2>/dev/null
  openssl x509 -req -in consumer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile <(printf 'extendedKeyUsage=clientAuth\n') -out consumer.pem 2>/dev/null
)
hub_get() { curl -sf --cacert "$pki/ca.pem" --cert "$pki/edge.pem" --key "$pki/edge.key" "https://localhost:$hub_port$1"; }
pg_start "$work" "$pg_port"
"$a/zenedge-load" fill-log --config "$work/zenedge.toml" --events "$events" >"$work/fill.out"
last=$(sed -n 's/^\([0-9]*\) events.*/\1/p' "$work/fill.out")
echo "log: $last events; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
results=$work/results
hz=$(getconf CLK_TCK)
# ticks PID: the process's CPU time so far (user + system), in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
for _ in $(seq "$repeats"); do
  for bin in "$a" "$b"; do
    tag=$([ "$bin" = "$a" ] && echo A || echo B)
    pg_fresh_db "$pg_port" zenedge_hub
    "$bin/zenedge" hub --listen "127.0.0.1:$hub_port" --postgres "postgres://postgres@127.0.0.1:$pg_port/zenedge_hub" \
      --tls-cert "$pki/hub.pem" --tls-key "$pki/hub.key" --client-ca "$pki/ca.pem" 2>"$work/hub.log" &
    hub_pid=$!
    wait_port "$hub_port"
    start=$(date +%s.%N)
    # The edge asks the hub where it stands at start: a fresh hub (404) gets the whole log.
    "$a/zenedge" serve --config "$work/zenedge.toml" 2>"$work/edge.log" &
    edge_pid=$!
    while [ "$(hub_stored_through hub_get bench)" -lt "$last" ]; do
      kill -0 "$edge_pid" 2>/dev/null || { echo "the daemon exited" >&2; tail "$work/edge.log" >&2; exit 1; }
      sleep 0.05
    done
    end=$(date +%s.%N)
    kill "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
    python3 -c "print('$tag catch-up', round($last / ($end - $start)))"
    echo "$tag catch-up-hub-cpu-ms $(($(ticks "$hub_pid") * 1000 / hz))"
    before=$(ticks "$hub_pid")
    "$a/zenedge-load" feed-read --hub "https://localhost:$hub_port" --ca "$pki/ca.pem" \
      --consumer "$pki/consumer.pem,$pki/consumer.key" | sed -n "s/.*(\([0-9]*\) events\/s).*/$tag feed-read \1/p"
    echo "$tag feed-read-hub-cpu-ms $((($(ticks "$hub_pid") - before) * 1000 / hz))"
    kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
  done
done | tee "$results"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
ab_summary "$results"
