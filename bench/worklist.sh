#!/usr/bin/env bash
# Modality worklist C-FIND behind BENCHMARKS.md: 100,000 open items (ORM^O01 over MLLP, 20
# orders a message), then DCMTK findscu -W queries one after the other: a date + modality
# query, a patient-name wildcard query, and one that matches 10,000 items. The daemon logs
# each query's time from its identifier to its final status ("worklist query answered",
# micros); the script reports p50/p99 of those and the client's wall time per run.
# Usage: bench/worklist.sh [QUERIES=200]   (ITEMS= changes the worklist size)
set -euo pipefail
cd "$(dirname "$0")/.."
queries=${1:-200}
items=${ITEMS:-100000}
cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
. bench/lib.sh
write_config
sed -i 's/log_level = "warn"/log_level = "info"/' "$work/zenedge.toml"
sed -i "s/^\[dicom\]$/[dicom]\nworklist = true\nworklist_max_results = 20000/" "$work/zenedge.toml"
target/release/zenedge serve --config "$work/zenedge.toml" 2>"$work/daemon.log" &
wait_port "$port"
wait_port $((port + 2))

# Orders: 365 days from 2027-01-01, 10 modalities, 20 orders a message, each message one
# patient FAMILY<message>; order n is on day n % 365 with modality n % 10.
python3 - "$port" "$items" <<'PY'
import datetime, socket, sys
port, items = int(sys.argv[1]), int(sys.argv[2])
modalities = ["CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF"]
start = datetime.date(2027, 1, 1)
s = socket.create_connection(("127.0.0.1", port))
def send(msg):
    s.sendall(b"\x0b" + msg.encode() + b"\x1c\x0d")
    buf = b""
    while not buf.endswith(b"\x1c\x0d"):
        buf += s.recv(65536)
    assert b"MSA|AA" in buf, buf
for m in range(0, items, 20):
    segs = [f"MSH|^~\\&|RIS|HOSP|ZENEDGE|EDGE|20261201090000||ORM^O01|B{m}|P|2.3.1",
            f"PID|1||P{m}^^^HOSP^MR||FAMILY{m // 20}^GIVEN||19700101|F"]
    for n in range(m, min(m + 20, items)):
        day = (start + datetime.timedelta(days=n % 365)).strftime("%Y%m%d")
        segs.append(f"ORC|NW|PL{n}|FL{n}||SC||^^^{day}0{n % 10}0000")
        segs.append(f"OBR|1|PL{n}|FL{n}|PROC^Procedure^L||||||||||||||ACC{n}|RP{n}|SPS{n}||||{modalities[n % 10]}")
    send("\r".join(segs) + "\r")
PY
echo "loaded $items items" >&2

run() { # label, then findscu keys
  local label=$1; shift
  local args=(-W -aet CT01 -aec ZENEDGE)
  for k in "$@"; do args+=(-k "$k"); done
  local before; before=$(grep -c "worklist query answered" "$work/daemon.log" || true)
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq "$queries"); do findscu "${args[@]}" 127.0.0.1 $((port + 2)) >/dev/null 2>&1; done
  t1=$(date +%s%N)
  grep "worklist query answered" "$work/daemon.log" | tail -n +$((before + 1)) |
    sed -n 's/.*micros[=":]*\([0-9]*\).*items[=":]*\([0-9]*\).*/\1 \2/p; s/.*items[=":]*\([0-9]*\).*micros[=":]*\([0-9]*\).*/\2 \1/p' |
    python3 -c "
import sys
rows = [tuple(map(int, l.split())) for l in sys.stdin if l.strip()]
us = sorted(r[0] for r in rows); n = len(us)
q = lambda p: us[min(n - 1, int(p * n))] / 1000
items = sum(r[1] for r in rows) / n
print(f'$label: {n} queries, {items:.0f} items each, server p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {us[-1]/1000:.2f} ms; items/s {items * n / (sum(us) / 1e6):.0f}; client wall {($t1 - $t0) / 1e6 / n:.1f} ms/run')
"
}
keys=(PatientName PatientID AccessionNumber StudyInstanceUID "ScheduledProcedureStepSequence[0].ScheduledStationAETitle")
run "date+modality" "${keys[@]}" "ScheduledProcedureStepSequence[0].Modality=CR" "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20270315"
run "name wildcard" "${keys[@]}" "PatientName=FAMILY1234*"
queries=$(( queries / 20 > 3 ? queries / 20 : 3 )) run "10k items" "${keys[@]}" "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20270101-20270206"
