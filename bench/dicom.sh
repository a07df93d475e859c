#!/usr/bin/env bash
# DICOM C-STORE benchmarks behind BENCHMARKS.md: zenedge against DCMTK storescp (writes files,
# no fsync), Orthanc (Debian package; fsync + index) and the client's ceiling (storescp
# --ignore: receives, stores nothing), all fed by DCMTK storescu through
# ../shared/tools/dicom_load.py from the same gen_corpus.py corpus, interleaved in one run.
# The peers run with TCP_NODELAY=1 (DCMTK's switch); the Nagle rows show a default storescu.
# zenedge runs twice: with shared flushes (the default) and with dicom.flush = "each" (each
# file and directory fsync'ed on its own, as before shared flushes); beside each figure, the
# flushes per instance from its /metrics: (syncfs or fsyncs + commits) / instances.
# Usage: bench/dicom.sh [REPEATS=3]
# Needs ../shared/tools (dicom_load.py, gen_corpus.py, setup_peers.sh for DCMTK/Orthanc/pydicom).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
tools=${BENCH_TOOLS:-../shared/tools}
venv=${PEERS_VENV:-/tmp/zenedge-peers-venv}
corpus=${BENCH_CORPUS:-/tmp/zenedge-bench-corpus}
cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
out="$work/results.jsonl"
port=$((20000 + RANDOM % 20000))
dicom_port=$port mllp_port=$((port + 2))
. bench/lib.sh

if [ ! -d "$corpus/dicom/tiny" ]; then
  echo "generating the corpus in $corpus" >&2
  "$venv/bin/python3" "$tools/gen_corpus.py" "$corpus" --studies 8 --series 2 --instances 25 --tiny 1000 --tiny-per-study 20 >/dev/null
fi

load() { # label dir jobs [extra dicom_load options]
  local label=$1 dir=$2 jobs=$3; shift 3
  python3 "$tools/dicom_load.py" 127.0.0.1 "$port" "$corpus/dicom/$dir" -j "$jobs" --aec ZENEDGE --json "$@" |
    python3 -c "import json,sys; d=json.load(sys.stdin); d['label']='$label'; print(json.dumps(d))" >>"$out" || true
}

start() { # receiver: zenedge | zenedge-each | storescp | ignore | orthanc
  rm -rf "$work/recv" && mkdir -p "$work/recv"
  case $1 in
    zenedge|zenedge-each)
      rm -rf "$work/state"; write_config
      if [ "$1" = zenedge-each ]; then sed -i 's/^\[dicom\]$/[dicom]\nflush = "each"/' "$work/zenedge.toml"; fi
      target/release/zenedge serve --config "$work/zenedge.toml" & ;;
    # Debian's DCMTK (also inside Orthanc) sets TCP_NODELAY only when asked to: ask, so the
    # peers are not measured against their delayed ACKs.
    storescp) TCP_NODELAY=1 storescp --fork -od "$work/recv" -aet ZENEDGE "$port" & ;;
    ignore) TCP_NODELAY=1 storescp --fork --ignore -aet ZENEDGE "$port" & ;;
    orthanc)
      cat >"$work/orthanc.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$work/recv", "IndexDirectory": "$work/recv",
  "DicomAet": "ZENEDGE", "DicomPort": $port, "HttpPort": $((port + 1)), "RemoteAccessAllowed": false,
  "DicomCheckCalledAet": false, "AuthenticationEnabled": false, "SaveJobs": false, "Plugins": [] }
JSON
      TCP_NODELAY=1 Orthanc "$work/orthanc.json" >/dev/null 2>&1 & ;;
  esac
  rpid=$!
  wait_port "$port"
}

# flushes LABEL: the running zenedge's flush counters as a result line.
flushes() {
  curl -sf -H "$(api_auth)" "http://127.0.0.1:$((port + 1))/metrics" | python3 -c "
import json, sys
m = {l.split(' ')[0]: float(l.split(' ')[1]) for l in sys.stdin if l and not l.startswith('#')}
print(json.dumps({'label': '$1', 'flushes': m.get('zenedge_dicom_flushes_total', 0),
  'batches': m.get('zenedge_dicom_flush_batch_instances_count', 0),
  'instances': m.get('zenedge_dicom_flush_batch_instances_sum', 0)}))" >>"$out" || true
}

stop() { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; pkill -f "storescp.*$port" 2>/dev/null || true; }

for r in $(seq "$repeats"); do
  echo "repeat $r/$repeats" >&2
  for recv in zenedge zenedge-each storescp orthanc ignore; do
    for set in tiny large; do
      for j in 1 4 8; do
        start "$recv"; load "$recv-$set-$j" "$set" "$j"
        case $recv in zenedge*) flushes "$recv-$set-$j-flushes" ;; esac
        stop
      done
    done
  done
  for recv in zenedge storescp; do
    start "$recv"; load "$recv-tiny-1-nagle" tiny 1 --nagle; stop
  done
done

# Peak RSS while receiving one 1 GiB instance (pixel data of zeros, sent by storescu).
big="$work/big.dcm"
"$venv/bin/python3" - "$big" <<'PY'
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
ds.PatientID, ds.PatientName, ds.Modality = "BIG", "Big^Instance", "CT"
ds.save_as(sys.argv[1], enforce_file_format=True)
size = 1 << 30
with open(sys.argv[1], "ab") as f:
    f.write(b"\xe0\x7f\x10\x00OB\x00\x00" + size.to_bytes(4, "little"))
    f.truncate(f.tell() + size)
PY
start zenedge
storescu -aet CT01 -aec ZENEDGE 127.0.0.1 "$port" "$big"
echo "{\"label\":\"rss-1gib\",\"kib\":$(awk '/VmHWM/ {print $2}' "/proc/$rpid/status")}" >>"$out"
stop

python3 - "$out" <<'PY'
import json, statistics, sys
by = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    by.setdefault(r["label"], []).append(r)
def med(label, key):
    rows = by.get(label, [])
    return statistics.median(r[key] for r in rows) if rows else float("nan")
print(f"runs per figure: {len(by.get('zenedge-tiny-1', []))} (median shown); instances/s (MB/s)\n")
def per_instance(label):
    rows = [r for r in by.get(label, []) if r["instances"]]
    return statistics.median((r["flushes"] + r["batches"]) / r["instances"] for r in rows) if rows else float("nan")
print("| set | assocs | zenedge | flushes/inst | storescp | ratio | Orthanc | ratio | zenedge, each | flushes/inst | client ceiling |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for s in ["tiny", "large"]:
    for j in [1, 4, 8]:
        cell = lambda recv: f"{med(f'{recv}-{s}-{j}', 'instances_per_s'):,.0f} ({med(f'{recv}-{s}-{j}', 'MB_per_s'):.1f})"
        z, sc, o = (med(f"{r}-{s}-{j}", "instances_per_s") for r in ["zenedge", "storescp", "orthanc"])
        fz, fe = per_instance(f"zenedge-{s}-{j}-flushes"), per_instance(f"zenedge-each-{s}-{j}-flushes")
        print(f"| {s} | {j} | {cell('zenedge')} | {fz:.2f} | {cell('storescp')} | {z/sc:.2f} | {cell('orthanc')} | {z/o:.2f} | {cell('zenedge-each')} | {fe:.2f} | {cell('ignore')} |")
bad = {l: sum(r["failure"] + r["unanswered"] for r in rows) for l, rows in by.items() if "failure" in rows[0]}
print("flushes/inst: (syncfs, or file and directory fsyncs, + commits of the log) per instance, from /metrics")
print()
print("instances not stored (failure or unanswered), by run:", {l: n for l, n in bad.items() if n} or "none")
print(f"Nagle-default storescu, tiny, 1 association: zenedge {med('zenedge-tiny-1-nagle', 'instances_per_s'):,.0f}/s, "
      f"storescp {med('storescp-tiny-1-nagle', 'instances_per_s'):,.0f}/s")
print(f"peak RSS receiving one 1 GiB instance: {med('rss-1gib', 'kib')/1024:.1f} MiB")
PY
