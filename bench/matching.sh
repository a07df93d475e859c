#!/usr/bin/env bash
# Matching benchmarks behind BENCHMARKS.md, on one log of EVENTS events (default 1,000,000)
# written by `zenedge-load fill-log` (orders, 20 instances per study, completions, and the
# matches and cases they trigger):
#   1. `zenedge rebuild` of that log, REPEATS times (the replay rate it prints);
#   2. `zenedge verify` of it;
#   3. the writer's match lookup in-process (`zenedge-load match-lookup`);
#   4. the read API at 1,000 requests/s, open loop: /healthz as the floor, then every read path
#      in turn, then each path alone.
# Usage: bench/matching.sh [REPEATS=3]   (EVENTS=... for another log size)
# Needs only this repository; the state is a temp dir (about 1.6 GB for 1M events).
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
. bench/lib.sh
write_config
bin=target/release

echo "== fill-log: $events events"
/usr/bin/time -f "fill: %e s wall, peak RSS %M KiB" "$bin/zenedge-load" fill-log --config "$work/zenedge.toml" --events "$events" |
  tee "$work/fill.out"
exams=$(sed -n 's/.*(\([0-9]*\) exams).*/\1/p' "$work/fill.out")
du -sh "$work/state" | sed 's/\t.*//; s/^/state on disk: /'

for i in $(seq "$repeats"); do
  echo "== rebuild $i/$repeats"
  /usr/bin/time -f "rebuild: %e s wall, peak RSS %M KiB" "$bin/zenedge" rebuild --config "$work/zenedge.toml" 2>&1 |
    grep -v '^\s*$' | grep -E 'projections|replayed|rebuild:'
done

echo "== verify"
/usr/bin/time -f "verify: %e s wall, peak RSS %M KiB" "$bin/zenedge" verify --config "$work/zenedge.toml" 2>&1 |
  grep -E 'projections|verify:' || true

echo "== match lookup over $exams exams"
"$bin/zenedge-load" match-lookup --config "$work/zenedge.toml" --exams "$exams" --lookups 100000

echo "== read API at $rate req/s for $duration"
"$bin/zenedge" serve --config "$work/zenedge.toml" &
http="127.0.0.1:$((port + 1))"
wait_port $((port + 1))
paths=("${read_api_paths[@]}")
load() { # label path...
  local label=$1; shift
  local args=()
  for p in "$@"; do args+=(--path "$p"); done
  echo "-- $label"
  "$bin/zenedge-load" http --addr "$http" --exams "$exams" --rate "$rate" --duration "$duration" \
    --token-file "$work/state/local-api.token" "${args[@]}"
}
load "/healthz (floor)" /healthz
load "all read paths in turn" "${paths[@]}"
if [ "${PER_PATH:-1}" = 1 ]; then
  for p in "${paths[@]}"; do load "$p" "$p"; done
fi
