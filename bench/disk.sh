#!/usr/bin/env bash
# On-disk bytes per HL7 message: the daemon takes COUNT generated ORM^O01 orders (~1 KiB each,
# `zenedge-load mllp`, 16 connections) into a fresh state directory, is stopped cleanly, and the
# state directory's allocated blocks (`du -B1`, not the sparse file length) are divided by
# COUNT. Usage:
#   bench/disk.sh [COUNT=100000]...
# Prints one line per COUNT: messages, allocated bytes, file length, bytes per message; then
# `zenedge disk-usage` (what each table holds). STORE_TOML= adds lines to [store] (e.g.
# STORE_TOML='value_dictionary_after = 0' for values compressed without a dictionary).
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-100000}")
cargo build --release --locked --bins >/dev/null
load=target/release/zenedge-load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))

. bench/lib.sh

for count in "${counts[@]}"; do
  rm -rf "$work/state"
  write_config
  target/release/zenedge serve --config "$work/zenedge.toml" &
  zpid=$!
  wait_port "$port"
  "$load" mllp --addr "127.0.0.1:$port" -c 16 --count "$count" --size 1024 >/dev/null
  kill "$zpid"
  wait "$zpid" 2>/dev/null || true
  allocated=$(du -sB1 "$work/state" | cut -f1)
  length=$(stat -c %s "$work/state/zenedge.redb")
  echo "$count messages: $allocated bytes allocated ($((allocated / count)) per message), file length $length"
  target/release/zenedge disk-usage --config "$work/zenedge.toml"
done
