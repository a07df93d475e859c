#!/usr/bin/env bash
# What the status page costs on a filled log: `zenedge-load fill-log --events EVENTS` (default
# 1,000,000: about 39,000 exams, one in twenty of them an order without a study and one in
# twenty a study without an order, so about 2,000 of each wait), then `GET /status` at RATE
# requests/s (default 20: four browsers refreshing every 5 s would make 0.8) for DURATION,
# open loop, as a client with the scope `status` only (no patient list, no audit record) and
# as the local operator (every scope: the 20 oldest waiting orders and studies are listed and
# each view is audited), with `/healthz` as the floor.
# Usage: bench/status_page.sh   (EVENTS=, RATE=, DURATION= to change them)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-1000000}
rate=${RATE:-20}
duration=${DURATION:-30s}
cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
. bench/lib.sh
write_config
bin=target/release

echo "== fill-log: $events events"
"$bin/zenedge-load" fill-log --config "$work/zenedge.toml" --events "$events" | tee "$work/fill.out"
exams=$(sed -n 's/.*(\([0-9]*\) exams).*/\1/p' "$work/fill.out")
"$bin/zenedge" token new status-page --scopes status >"$work/token.out"
sed -n 2p "$work/token.out" >"$work/status.token"
sed -n '/^\[\[http.clients\]\]/,$p' "$work/token.out" >>"$work/zenedge.toml"

"$bin/zenedge" serve --config "$work/zenedge.toml" &
http="127.0.0.1:$((port + 1))"
wait_port $((port + 1))
page_bytes=$(curl -s -H "Authorization: Bearer $(cat "$work/status.token")" "http://$http/status" | wc -c)
echo "page: $page_bytes bytes"
load() { # label token-file path
  echo "-- $1"
  "$bin/zenedge-load" http --addr "$http" --exams "$exams" --rate "$rate" --duration "$duration" \
    --token-file "$2" --path "$3"
}
load "/healthz (floor)" "$work/status.token" /healthz
load "/status, scope status" "$work/status.token" /status
load "/status, every scope (patients listed, each view audited)" "$work/state/local-api.token" /status
