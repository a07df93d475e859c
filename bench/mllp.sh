#!/usr/bin/env bash
# MLLP benchmarks behind BENCHMARKS.md: zenedge against the physical ceiling (durable redb
# commits on the same disk) and against the python peers, with the same load generator,
# interleaved in one run. Usage:
#   bench/mllp.sh [SECONDS_PER_RUN=5] [REPEATS=3]
# The peers come from ../shared/tools/mllp_peer.py (skipped with a note when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
repeats=${2:-3}
peer=${MLLP_PEER:-../shared/tools/mllp_peer.py}
cargo build --release --locked --bins >/dev/null
load=target/release/zenedge-load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
out="$work/results.jsonl"
port=$((20000 + RANDOM % 20000))

. bench/lib.sh

record() { # label, then the load generator's arguments
  local label=$1; shift
  "$load" mllp --duration "${secs}s" --warmup 1s --json "$@" | python3 -c \
    "import json,sys; d=json.load(sys.stdin); d['label']='$label'; print(json.dumps(d))" >>"$out"
}

start_zenedge() {
  rm -rf "$work/state"
  write_config
  target/release/zenedge serve --config "$work/zenedge.toml" &
  zpid=$!
  wait_port "$port"
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

pyload=$(dirname "$peer")/mllp_load.py
record_py() { # label: the python generator the reference figures in the issue came from
  [ -f "$pyload" ] || return 0
  python3 "$pyload" 127.0.0.1 "$port" --count $((secs * 4000)) -c 16 --procs 2 --json 2>/dev/null | python3 -c \
    "import json,sys; d=json.load(sys.stdin); print(json.dumps({'label':'$1','msgs_per_s':d['msgs_per_s'],'latency_ms':{'p99':d['lat_ms']['p99']}}))" >>"$out"
}

for r in $(seq "$repeats"); do
  echo "repeat $r/$repeats" >&2
  for n in 1 32; do
    "$load" commit-ceiling --dir "$work/ceiling" --events-per-commit "$n" --commits 2000 --json |
      python3 -c "import json,sys; d=json.load(sys.stdin); d['label']='ceiling-$n'; print(json.dumps(d))" >>"$out"
    # The same with the daemon's transaction shape: ~2.6 KB events plus a duplicate-index row.
    "$load" commit-ceiling --dir "$work/ceiling" --events-per-commit "$n" --commits 2000 --event-bytes 2600 --index-row --json |
      python3 -c "import json,sys; d=json.load(sys.stdin); d['label']='shaped-$n'; print(json.dumps(d))" >>"$out"
  done
  start_zenedge
  record zenedge-c1 --addr "127.0.0.1:$port" -c 1
  stop "$zpid"
  start_zenedge
  record zenedge-c32 --addr "127.0.0.1:$port" -c 32
  grep VmHWM "/proc/$zpid/status" | awk -v l=zenedge-c32-rss '{print "{\"label\":\"" l "\",\"kib\":" $2 "}"}' >>"$out"
  record zenedge-rate2000 --addr "127.0.0.1:$port" -c 32 --rate 2000
  record zenedge-nagle-c1 --addr "127.0.0.1:$port" -c 1 --nagle
  record_py zenedge-py16
  stop "$zpid"
  if [ -f "$peer" ]; then
    for mode in group none; do
      python3 "$peer" --port "$port" --impl raw --durable "$mode" --log "$work/peer.log" >/dev/null 2>&1 &
      ppid=$!
      wait_port "$port"
      record "peer-$mode-c1" --addr "127.0.0.1:$port" -c 1
      record "peer-$mode-c32" --addr "127.0.0.1:$port" -c 32
      record "peer-$mode-rate2000" --addr "127.0.0.1:$port" -c 32 --rate 2000
      [ "$mode" = none ] && record "peer-none-nagle-c1" --addr "127.0.0.1:$port" -c 1 --nagle
      record_py "peer-$mode-py16"
      stop "$ppid"
      rm -f "$work/peer.log"
    done
  else
    echo "peers skipped: $peer not found" >&2
  fi
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
med = lambda label, f: statistics.median(f(r) for r in by[label]) if label in by else float("nan")
rate = lambda l: med(l, lambda r: r["msgs_per_s"])
p99 = lambda l: med(l, lambda r: r["latency_ms"]["p99"])
c1 = med("ceiling-1", lambda r: r["commits_per_s"])
t32 = med("ceiling-32", lambda r: r["commit_ms"]["mean"])
c32 = 32 / (t32 / 1000)
print(f"runs per figure: {len(by['zenedge-c1'])} (median shown)\n")
print("| load | zenedge msgs/s | p99 ms | ceiling | ratio | durable peer | ratio | no-store peer | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, z, ceil in [("1 connection", "c1", c1), ("32 connections", "c32", c32), ("32 conns, 2,000 msgs/s offered", "rate2000", None)]:
    zr, g, n = rate(f"zenedge-{z}"), rate(f"peer-group-{z}"), rate(f"peer-none-{z}")
    cell = f"{ceil:,.0f} | {zr/ceil:.2f}" if ceil else "– | –"
    print(f"| {name} | {zr:,.0f} | {p99(f'zenedge-{z}'):.2f} | {cell} | {g:,.0f} (p99 {p99(f'peer-group-{z}'):.2f}) | {zr/g:.2f} | {n:,.0f} (p99 {p99(f'peer-none-{z}'):.2f}) | {zr/n:.2f} |")
print()
print(f"single-event durable commit: {c1:,.0f}/s; one 32-event commit: {t32:.3f} ms")
s1 = med("shaped-1", lambda r: r["commits_per_s"])
s32 = 32 / (med("shaped-32", lambda r: r["commit_ms"]["mean"]) / 1000)
print(f"with the daemon's transaction shape (2.6 KB event + index row): {s1:,.0f}/s single, "
      f"32-connection ceiling {s32:,.0f}/s; zenedge reaches {rate('zenedge-c1')/s1:.2f} and {rate('zenedge-c32')/s32:.2f} of them")
if "zenedge-py16" in by and "peer-group-py16" in by:
    z, g, n = rate("zenedge-py16"), rate("peer-group-py16"), rate("peer-none-py16")
    print(f"python generator (mllp_load.py, 16 connections, 2 processes): zenedge {z:,.0f} msgs/s (p99 {p99('zenedge-py16'):.2f} ms), "
          f"durable peer {g:,.0f} ({z/g:.2f}x), no-store peer {n:,.0f} ({z/n:.2f}x)")
print(f"peak RSS under 32 connections: {med('zenedge-c32-rss', lambda r: r['kib'])/1024:.1f} MiB")
print(f"Nagle sender, 1 connection: zenedge {rate('zenedge-nagle-c1'):,.0f} msgs/s (p50 {med('zenedge-nagle-c1', lambda r: r['latency_ms']['p50']):.2f} ms); "
      f"peer without QUICKACK {rate('peer-none-nagle-c1'):,.0f} msgs/s (p50 {med('peer-none-nagle-c1', lambda r: r['latency_ms']['p50']):.2f} ms)")
PY
