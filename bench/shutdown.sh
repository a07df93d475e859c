#!/usr/bin/env bash
# Time from SIGTERM to exit while 32 connections keep sending (the daemon must exit within
# 2 s under load, acknowledging only what it committed). Usage: bench/shutdown.sh [REPEATS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
. bench/lib.sh
write_config
for r in $(seq "$repeats"); do
  target/release/zenedge serve --config "$work/zenedge.toml" &
  zpid=$!
  wait_port "$port"
  target/release/zenedge-load mllp --addr "127.0.0.1:$port" -c 32 --duration 30s --warmup 0s --timeout 2s >/dev/null 2>&1 &
  lpid=$!
  sleep 2
  start=$(date +%s%N)
  kill -TERM "$zpid"
  code=0; wait "$zpid" || code=$?
  end=$(date +%s%N)
  kill "$lpid" 2>/dev/null || true
  wait "$lpid" 2>/dev/null || true
  echo "run $r: exit $code after $(( (end - start) / 1000000 )) ms"
done
