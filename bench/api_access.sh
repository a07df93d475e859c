#!/usr/bin/env bash
# The read API with access control (issue 16) at 1,000 req/s: /healthz (the floor), /api/v1/status
# with a token (authentication alone: no patient data, no audit record), and every read path in
# turn with a token (authentication and the audit record of each read), at 8 and 64
# connections. A log of EVENTS events (default 200,000) written by `zenedge-load fill-log`.
# Usage: bench/api_access.sh   (EVENTS=, DURATION= change the log size and the measured time,
# EXTRA_TOML= adds config lines, ZENEDGE_BIN_DIR= uses the binaries of that directory instead of
# building target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
. bench/lib.sh
write_config
# EXTRA_TOML: lines appended to the config (e.g. $'[audit]\njournal = false' for the reads'
# records committed through the database, as before the audit journal).
if [ -n "${EXTRA_TOML:-}" ]; then printf '%s\n' "$EXTRA_TOML" >>"$work/zenedge.toml"; fi
if [ -n "${ZENEDGE_BIN_DIR:-}" ]; then
  bin=$ZENEDGE_BIN_DIR
else
  cargo build --release --locked --bins >/dev/null
  bin=target/release
fi
events=${EVENTS:-200000}
"$bin/zenedge-load" fill-log --config "$work/zenedge.toml" --events "$events" | tee "$work/fill.out"
exams=$(sed -n 's/.*(\([0-9]*\) exams).*/\1/p' "$work/fill.out")
"$bin/zenedge" serve --config "$work/zenedge.toml" &
wait_port $((port + 1))
sleep 1
paths=("${read_api_paths[@]}")
args=(); for p in "${paths[@]}"; do args+=(--path "$p"); done
echo "-- /healthz (floor, anonymous)"
"$bin/zenedge-load" http --addr "127.0.0.1:$((port + 1))" --exams "$exams" --rate 1000 --duration 20s --path /healthz
echo "-- all read paths in turn, with the local token (auth + audit)"
"$bin/zenedge-load" http --addr "127.0.0.1:$((port + 1))" --exams "$exams" --rate 1000 --duration "${DURATION:-30s}" \
  --token-file "$work/state/local-api.token" "${args[@]}"
echo "-- /api/v1/status with the token (auth, no audit: no patient data)"
"$bin/zenedge-load" http --addr "127.0.0.1:$((port + 1))" --exams "$exams" --rate 1000 --duration 20s \
  --token-file "$work/state/local-api.token" --path /api/v1/status
echo "-- all read paths in turn, auth + audit, 64 connections"
"$bin/zenedge-load" http --addr "127.0.0.1:$((port + 1))" --exams "$exams" --rate 1000 --duration 20s --connections 64 \
  --token-file "$work/state/local-api.token" "${args[@]}"
