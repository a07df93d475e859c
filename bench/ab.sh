#!/usr/bin/env bash
# Two builds of zenedge side by side, interleaved so they share the machine's noise: MLLP orders
# at 1 and 32 connections (zenedge-load) and tiny C-STORE instances over 1 and 4 associations
# (../shared/tools/dicom_load.py driving DCMTK's storescu), each on a fresh state directory.
# Prints one line per run and a median [min-max] table per workload at the end.
#
# usage: bench/ab.sh DIR_A DIR_B [REPEATS=5] [SECONDS=5]
#   DIR_A, DIR_B: directories holding a `zenedge` and a `zenedge-load` (e.g. two target/release
#   copies); DIR_A's zenedge-load drives both.
# Needs ../shared/tools (dicom_load.py, gen_corpus.py) and DCMTK, like bench/dicom.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(cd "$1" && pwd); b=$(cd "$2" && pwd); repeats=${3:-5}; secs=${4:-5}
tools=${BENCH_TOOLS:-../shared/tools}
venv=${PEERS_VENV:-/tmp/zenedge-peers-venv}
corpus=${BENCH_CORPUS:-/tmp/zenedge-bench-corpus}
[ -d "$corpus/dicom/tiny" ] || "$venv/bin/python3" "$tools/gen_corpus.py" "$corpus" --studies 8 --series 2 \
  --instances 25 --tiny 1000 --tiny-per-study 20 >/dev/null
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000)); dicom_port=$((port + 2))
# shellcheck source=bench/lib.sh
. bench/lib.sh
results=$work/results
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$repeats"); do
  for bin in "$a" "$b"; do
    tag=$([ "$bin" = "$a" ] && echo A || echo B)
    rm -rf "$work/state"; write_config
    "$bin/zenedge" serve --config "$work/zenedge.toml" & pid=$!
    wait_port "$port"; wait_port "$dicom_port"
    for c in 1 32; do
      "$a/zenedge-load" mllp --addr "127.0.0.1:$port" --duration "${secs}s" -c "$c" --json |
        python3 -c "import json,sys; d=json.load(sys.stdin); print('$tag mllp-c$c', d['msgs_per_s'])"
    done
    for j in 1 4; do
      python3 "$tools/dicom_load.py" 127.0.0.1 "$dicom_port" "$corpus/dicom/tiny" -j "$j" --aec ZENEDGE --json |
        python3 -c "import json,sys; d=json.load(sys.stdin); print('$tag tiny-j$j', d['instances_per_s'])"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done | tee "$results"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
ab_summary "$results"
