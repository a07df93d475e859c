#!/usr/bin/env bash
# Forwarding to the central archive (issue 17) beside DCMTK's storescu, against the same
# Orthanc (Debian package), from the same gen_corpus.py corpus (tiny instances, then CT-sized
# 512x512 ones). For each set:
#   * zenedge: the set is stored at the edge while the archive is down (the backlog), then
#     Orthanc starts and the time until the destination's lag is 0 is taken (confirm = "store",
#     the default 2 associations and batch 64; a short retry so the first try after the archive
#     is up is not delayed by the backoff);
#   * storescu: the same files sent to a fresh Orthanc by ../shared/tools/dicom_load.py over 2
#     associations (TCP_NODELAY, as zenedge sets it).
# Prints instances/s for both and the ratio. Usage: bench/forward.sh [REPEATS=1]
# (ZENEDGE_BIN_DIR= uses the binaries of that directory instead of building target/release)
# Needs ../shared/tools (dicom_load.py, gen_corpus.py, setup_peers.sh for DCMTK/Orthanc/pydicom).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-1}
tools=${BENCH_TOOLS:-../shared/tools}
venv=${PEERS_VENV:-/tmp/zenedge-peers-venv}
corpus=${BENCH_CORPUS:-/tmp/zenedge-bench-corpus}
if [ -z "${ZENEDGE_BIN_DIR:-}" ]; then cargo build --release --locked --bins >/dev/null; fi
bin=${ZENEDGE_BIN_DIR:-target/release}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
dicom_port=$((port + 2)) mllp_port=$((port + 3)) oport=$((port + 4)) ohttp=$((port + 5))
. bench/lib.sh

if [ ! -d "$corpus/dicom/tiny" ]; then
  echo "generating the corpus in $corpus" >&2
  "$venv/bin/python3" "$tools/gen_corpus.py" "$corpus" --studies 8 --series 2 --instances 25 --tiny 1000 --tiny-per-study 20 >/dev/null
fi

orthanc_start() { # storage dir
  cat >"$work/orthanc.json" <<JSON
{ "Name": "archive", "StorageDirectory": "$1", "IndexDirectory": "$1",
  "DicomAet": "ARCHIVE", "DicomPort": $oport, "HttpPort": $ohttp, "RemoteAccessAllowed": false,
  "DicomCheckCalledAet": false, "AuthenticationEnabled": false, "SaveJobs": false, "Plugins": [] }
JSON
  TCP_NODELAY=1 Orthanc "$work/orthanc.json" >"$work/orthanc.log" 2>&1 &
  opid=$!
  wait_port "$oport"
}

orthanc_stop() { kill "$opid" 2>/dev/null || true; wait "$opid" 2>/dev/null || true; }

# lag: the destination's lag_instances and cursor, and the log's last seq, from /readyz.
lag() {
  curl -sf "http://127.0.0.1:$((port + 1))/readyz" | python3 -c "
import json, sys
d = json.load(sys.stdin); f = d['checks']['forward'][0]
print(f['lag_instances'], f['lag_events'])"
}

for r in $(seq "$repeats"); do
  for set in tiny large; do
    files=$(find "$corpus/dicom/$set" -name '*.dcm' | wc -l)
    # zenedge: the backlog first, the archive down.
    rm -rf "$work/state" "$work/archive" && mkdir -p "$work/archive"
    write_config
    cat >>"$work/zenedge.toml" <<TOML
[[forward.destinations]]
name = "central"
host = "127.0.0.1"
port = $oport
called_ae = "ARCHIVE"
confirm = "store"
retry_base = "20ms"
retry_cap = "100ms"
breaker_open = "100ms"
TOML
    "$bin/zenedge" serve --config "$work/zenedge.toml" 2>"$work/zenedge.log" &
    zpid=$!
    wait_port "$dicom_port"
    python3 "$tools/dicom_load.py" 127.0.0.1 "$dicom_port" "$corpus/dicom/$set" -j 4 --aec ZENEDGE --json >/dev/null
    orthanc_start "$work/archive"
    t0=$(date +%s.%N)
    while :; do
      read -r instances events < <(lag || echo "x x")
      if [ "$instances" = 0 ] && [ "$events" = 0 ]; then break; fi
      sleep 0.05
    done
    t1=$(date +%s.%N)
    kill "$zpid"; wait "$zpid" 2>/dev/null || true
    held=$(curl -sf "http://127.0.0.1:$ohttp/statistics" | python3 -c "import json,sys; print(json.load(sys.stdin)['CountInstances'])")
    orthanc_stop
    ours=$(python3 -c "print(round($files / ($t1 - $t0), 1))")
    # storescu: the same files to a fresh archive, 2 associations.
    rm -rf "$work/archive" && mkdir -p "$work/archive"
    orthanc_start "$work/archive"
    peer=$(python3 "$tools/dicom_load.py" 127.0.0.1 "$oport" "$corpus/dicom/$set" -j 2 --aec ARCHIVE --json |
      python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d.get('instances_per_s', d.get('instances_per_sec', 0)), 1))")
    orthanc_stop
    echo "$set: $files instances; zenedge forwarding $ours instances/s (archive holds $held), storescu $peer instances/s, ratio $(python3 -c "print(round($ours / $peer, 2) if $peer else 'n/a')")"
  done
done
