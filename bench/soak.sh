#!/usr/bin/env bash
# Soak (not CI): the release daemon, syncing to a local reference hub (`zenedge hub`) over
# mutual TLS, under a steady mixed load for DURATION:
#   * HL7 ORM^O01 orders over MLLP at RATE msg/s (default 100) over CONNECTIONS connections
#     (default 4), measured one minute at a time by `zenedge-load mllp --json` (control ids
#     `<run id>m<minute>-<n>`, unique over the run);
#   * DICOM C-STOREs from bench/soak_dicom.py: every DICOM_EVERY s (default 2) one association
#     with DICOM_BATCH (default 8) new small instances (fresh UIDs, from a gen_corpus.py corpus).
# Every minute one JSON line goes to $SOAK_OUT/soak.jsonl: ACK p50/p99/max and counts for the
# minute, DICOM instances sent/ok/failed and association times, the daemon's (and hub's)
# VmRSS sampled every 30 s, the log's size (zenedge.redb) and the instance files' bytes, the
# edge's last seq and the hub's stored_through. DICOM "failed" per minute counts the instances
# of the minute's batches not stored, sent or not. At the end: summary.json and a printed summary
# (RSS drift in %/hour: least-squares slope over the second half of the samples divided by the
# fitted RSS at the start of that half; also first-to-last, from the start and from the end of
# the warm-up: 5 minutes), worst per-minute ACK p99, totals,
# and whether the limits hold (RSS drift <= 5 %/hour, ACK p99 <= 50 ms in every minute).
#
# Usage: bench/soak.sh [DURATION=2h]      (s/m/h suffixes)
# Environment:
#   ZENEDGE_BIN_DIR  where zenedge and zenedge-load are (default ${CARGO_TARGET_DIR:-target}/release,
#                    built here when that default is used); point it at a copy nobody rebuilds
#   SOAK_OUT         results and state directory (default: a new temp dir, kept)
#   SYNC=0           run without the hub
#   RATE, CONNECTIONS, DICOM_EVERY, DICOM_BATCH   the load (see above)
#   BENCH_TOOLS      ../shared/tools (gen_corpus.py); PEERS_VENV  python with pydicom/pynetdicom
# Needs openssl and curl (sync), python3 with pydicom, pynetdicom, numpy (setup_peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
duration=${1:-2h}
case $duration in
  *h) secs=$((${duration%h} * 3600)) ;;
  *m) secs=$((${duration%m} * 60)) ;;
  *s) secs=${duration%s} ;;
  *) secs=$duration ;;
esac
minutes=$(((secs + 59) / 60))
rate=${RATE:-100}
conns=${CONNECTIONS:-4}
dicom_every=${DICOM_EVERY:-2}
dicom_batch=${DICOM_BATCH:-8}
sync=${SYNC:-1}
. bench/lib.sh
long_run_paths "${SOAK_OUT:-}"
work=$out/work
rm -rf "$work"
mkdir -p "$work"
results=$out/soak.jsonl
: >"$results"
: >"$out/rss.tsv"
: >"$out/dicom.jsonl"
mkdir -p "$out/mllp"

cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
hub_port=$((port + 3))
dicom_port=$((port + 2))
. bench/lib.sh
write_config

{
  echo "soak: $duration ($minutes minutes), $rate msg/s over $conns connections, $dicom_batch instances every ${dicom_every}s, sync=$sync"
  echo "binaries: $bin ($("$bin/zenedge" --version 2>/dev/null || echo '?'))"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  echo "started: $(date -u +%FT%TZ)"
} | tee "$out/info.txt"

if [ "$sync" = 1 ]; then
  enable_sync "$work" "$hub_port" soak-ca 3
  "$bin/zenedge" hub --listen "127.0.0.1:$hub_port" --state-dir "$work/hub" --tls-cert "$pki/hub.pem" \
    --tls-key "$pki/hub.key" --client-ca "$pki/ca.pem" 2>"$out/hub.log" &
  hub_pid=$!
  wait_port "$hub_port"
else
  hub_pid=
fi
soak_hub_get() { curl -sf --cacert "$pki/ca.pem" --cert "$pki/edge.pem" --key "$pki/edge.key" "https://localhost:$hub_port$1"; }
stored_through() {
  [ "$sync" = 1 ] || return 0
  hub_stored_through soak_hub_get bench
}
last_seq() { curl -sf "http://127.0.0.1:$((port + 1))/readyz" | sed -n 's/.*"last_seq":\([0-9]*\).*/\1/p'; }

# Template instances: small ones from a gen_corpus.py corpus (made here, a few seconds).
"$py" "$tools/gen_corpus.py" "$work/corpus" --studies 0 --tiny 40 --tiny-per-study 20 --orm 10 --adt 0 \
  --no-bad --seed 7 >"$out/corpus.log" 2>&1

"$bin/zenedge" serve --config "$work/zenedge.toml" 2>"$out/edge.log" &
edge_pid=$!
wait_port "$port"
wait_port "$dicom_port"
echo "daemon pid $edge_pid, hub pid ${hub_pid:-none}, state $work/state" | tee -a "$out/info.txt"

# RSS every 30 s: time, edge VmRSS kB, hub VmRSS kB.
(
  while kill -0 "$edge_pid" 2>/dev/null; do
    e=$(awk '/^VmRSS/{print $2}' "/proc/$edge_pid/status" 2>/dev/null || echo)
    h=
    [ -n "$hub_pid" ] && h=$(awk '/^VmRSS/{print $2}' "/proc/$hub_pid/status" 2>/dev/null || echo)
    echo "$(date +%s.%N) ${e:-0} ${h:-0}" >>"$out/rss.tsv"
    sleep 30
  done
) &

"$py" bench/soak_dicom.py 127.0.0.1 "$dicom_port" "$work/corpus/dicom" --every "$dicom_every" \
  --batch "$dicom_batch" --duration $((minutes * 60 + 30)) --out "$out/dicom.jsonl" 2>"$out/dicom.err" &
dicom_pid=$!

run_id=s$(printf '%x' "$(date +%s)")
# DICOM and RSS records are assigned to minutes by time, in back-to-back windows (from the end
# of the previous minute), so that nothing falls between two minutes.
win=$(date +%s.%N)
for m in $(seq "$minutes"); do
  t0=$(date +%s.%N)
  "$bin/zenedge-load" mllp --addr "127.0.0.1:$port" --connections "$conns" --rate "$rate" --duration 60s \
    --warmup 0s --json --run-id "${run_id}m$m" --acked-out "$out/mllp/m$m.acked" \
    >"$out/mllp/m$m.json" 2>>"$out/mllp.err" || true
  t1=$(date +%s.%N)
  alive=1
  kill -0 "$edge_pid" 2>/dev/null || alive=0
  redb=$(stat -c %s "$work/state/zenedge.redb" 2>/dev/null || echo 0)
  inst=$(du -sb "$work/state/instances" 2>/dev/null | cut -f1)
  seq_now=$(last_seq || true)
  hub_now=$(stored_through || true)
  "$py" - "$m" "$t0" "$t1" "$out" "$alive" "$win" "$redb" "${inst:-0}" "${seq_now:-null}" "${hub_now:-null}" \
    >>"$results" <<'PY'
import json, sys
m, t0, t1, out, alive, win, redb, inst, seq, hub = sys.argv[1:]
t0, t1, win = float(t0), float(t1), float(win)
try:
    ml = json.load(open(f"{out}/mllp/m{m}.json"))
except Exception:
    ml = {}
lat = ml.get("latency_ms", {})
dic = [json.loads(l) for l in open(f"{out}/dicom.jsonl") if l.strip()]
dic = [d for d in dic if win <= d["t"] < t1]
secs = sorted(d["secs"] for d in dic if d["secs"] is not None)
rss = [l.split() for l in open(f"{out}/rss.tsv") if l.strip()]
rss = [(float(t), int(e), int(h)) for t, e, h in rss if win <= float(t) < t1]
print(json.dumps({
    "minute": int(m), "t": round(t0, 1), "elapsed_s": round(t1 - t0, 2), "daemon_alive": alive == "1",
    "hl7": {"sent": ml.get("sent"), "acked": ml.get("acked"),
            "failed": (ml.get("sent") or 0) - (ml.get("acked") or 0),
            "by_code": ml.get("acked_by_code"), "errors": ml.get("errors"),
            "msgs_per_s": ml.get("msgs_per_s"),
            "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"), "max_ms": lat.get("max")},
    "dicom": {"associations": len(dic), "sent": sum(d["sent"] for d in dic),
              "ok": sum(d["ok"] for d in dic), "failed": sum(d["failed"] for d in dic),
              "sender_race_associations": sum(1 for d in dic if d.get("sender_race")),
              "assoc_s_p50": secs[len(secs) // 2] if secs else None,
              "assoc_s_max": secs[-1] if secs else None,
              "errors": sorted({d["error"] for d in dic if d["error"]})},
    "rss_kb": [e for _, e, _ in rss], "hub_rss_kb": [h for _, _, h in rss],
    "log_bytes": int(redb), "instance_bytes": int(inst),
    "last_seq": None if seq == "null" else int(seq), "hub_stored_through": None if hub == "null" else int(hub),
}))
PY
  win=$t1
  tail -n1 "$results" | "$py" -c "import json,sys; d=json.load(sys.stdin); h=d['hl7']; c=d['dicom']; print(f\"minute {d['minute']}: hl7 {h['acked']}/{h['sent']} p50 {h['p50_ms']} p99 {h['p99_ms']} max {h['max_ms']} ms; dicom {c['ok']}/{c['sent']}; rss {d['rss_kb']} kB; log {d['log_bytes']>>20} MiB; seq {d['last_seq']} hub {d['hub_stored_through']}\")"
  [ "$alive" = 1 ] || { echo "the daemon exited; see $out/edge.log" >&2; break; }
done

kill "$dicom_pid" 2>/dev/null || true
wait "$dicom_pid" 2>/dev/null || true
# A last RSS sample, then let the hub catch up (at most 2 minutes).
echo "$(date +%s.%N) $(awk '/^VmRSS/{print $2}' "/proc/$edge_pid/status" 2>/dev/null || echo 0) $([ -n "$hub_pid" ] && awk '/^VmRSS/{print $2}' "/proc/$hub_pid/status" 2>/dev/null || echo 0)" >>"$out/rss.tsv"
final_seq=$(last_seq || echo 0)
final_hub=
if [ "$sync" = 1 ]; then
  for _ in $(seq 240); do
    final_hub=$(stored_through || echo 0)
    [ "${final_hub:-0}" -ge "${final_seq:-0}" ] && break
    sleep 0.5
  done
fi
curl -sf -H "$(api_auth)" "http://127.0.0.1:$((port + 1))/api/v1/status" >"$out/status.json" || true

"$py" - "$out" "$final_seq" "${final_hub:-}" <<'PY' | tee "$out/summary.txt"
import json, sys
out, final_seq, final_hub = sys.argv[1:]
rows = [json.loads(l) for l in open(f"{out}/soak.jsonl") if l.strip()]
rss = [l.split() for l in open(f"{out}/rss.tsv") if l.strip()]
rss = [(float(t), int(e)) for t, e, _ in rss if int(e) > 0]
def fit(pts):  # least squares: (slope kB/s, value at the first point)
    n = len(pts)
    if n < 2:
        return None, None
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None, None
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var
    return slope, mv + slope * (pts[0][0] - mt)
half = rss[len(rss) // 2:]
slope, v0 = fit(half)
drift_fit = slope * 3600 / v0 * 100 if slope is not None else None
span_h = (rss[-1][0] - rss[0][0]) / 3600 if len(rss) > 1 else 0
drift_ends = (rss[-1][1] - rss[0][1]) / rss[0][1] * 100 / span_h if span_h else None
# The first sample is taken before any load: first-to-last again from the first sample
# after the warm-up (5 minutes, or a tenth of a shorter run).
warm = [p for p in rss if p[0] >= rss[0][0] + min(300, span_h * 360)] if rss else []
warm_h = (warm[-1][0] - warm[0][0]) / 3600 if len(warm) > 1 else 0
drift_warm = (warm[-1][1] - warm[0][1]) / warm[0][1] * 100 / warm_h if warm_h else None
p99s = [(r["hl7"]["p99_ms"], r["minute"]) for r in rows if r["hl7"]["p99_ms"] is not None]
worst = max(p99s) if p99s else (None, None)
over = [m for p, m in p99s if p > 50]
sent = sum(r["hl7"]["sent"] or 0 for r in rows)
acked = sum(r["hl7"]["acked"] or 0 for r in rows)
# DICOM totals from every association record (also those after the last minute).
dic = [json.loads(l) for l in open(f"{out}/dicom.jsonl") if l.strip()]
d_sent = sum(d["sent"] for d in dic)
d_ok = sum(d["ok"] for d in dic)
d_race = sum(1 for d in dic if d.get("sender_race"))
d_unsent = sum(d["failed"] for d in dic) - (d_sent - d_ok)
missing = [r["minute"] for r in rows if r["hl7"]["p99_ms"] is None]
alive = all(r["daemon_alive"] for r in rows)
s = {
    "minutes": len(rows), "rss_samples": len(rss),
    "rss_kb_first": rss[0][1] if rss else None, "rss_kb_last": rss[-1][1] if rss else None,
    "rss_kb_max": max(v for _, v in rss) if rss else None,
    "rss_drift_pct_per_h_fit_second_half": None if drift_fit is None else round(drift_fit, 2),
    "rss_drift_pct_per_h_first_to_last": None if drift_ends is None else round(drift_ends, 2),
    "rss_drift_pct_per_h_first_to_last_after_warmup": None if drift_warm is None else round(drift_warm, 2),
    "worst_minute_p99_ms": worst[0], "worst_minute": worst[1], "minutes_p99_over_50ms": over,
    "minutes_without_figures": missing,
    "hl7_sent": sent, "hl7_acked": acked, "hl7_failed": sent - acked,
    "dicom_sent": d_sent, "dicom_ok": d_ok, "dicom_failed": d_sent - d_ok,
    "dicom_not_sent_after_abort": d_unsent, "dicom_sender_race_associations": d_race,
    "log_bytes_end": rows[-1]["log_bytes"] if rows else None,
    "last_seq": int(final_seq or 0), "hub_stored_through": int(final_hub) if final_hub else None,
    "daemon_alive_throughout": alive,
}
s["limit_rss_drift_ok"] = drift_fit is not None and drift_fit <= 5
s["limit_p99_ok"] = bool(p99s) and not over and not missing
s["limits_hold"] = s["limit_rss_drift_ok"] and s["limit_p99_ok"] and alive
json.dump(s, open(f"{out}/summary.json", "w"), indent=1)
print("== soak summary")
print(f"minutes: {len(rows)}; RSS {s['rss_kb_first']} -> {s['rss_kb_last']} kB (max {s['rss_kb_max']}), {len(rss)} samples")
print(f"RSS drift: {s['rss_drift_pct_per_h_fit_second_half']} %/h (least-squares fit over the second half, "
      f"relative to the fitted value at its start); {s['rss_drift_pct_per_h_first_to_last']} %/h first to last sample; "
      f"{s['rss_drift_pct_per_h_first_to_last_after_warmup']} %/h first to last after the warm-up")
print(f"HL7: {acked} acked / {sent} sent ({sent - acked} not acked); worst minute p99 {worst[0]} ms (minute {worst[1]}); "
      f"minutes over 50 ms: {over or 'none'}")
print(f"DICOM: {d_ok} stored / {d_sent} sent ({d_sent - d_ok} without Success, {d_unsent} more not sent after an abort); "
      f"{d_race} associations hit the sender's own race (pynetdicom took its C-STORE response, see bench/soak_dicom.py)")
print(f"log {s['log_bytes_end']} bytes; last seq {s['last_seq']}, hub stored through {s['hub_stored_through']}")
print(f"limits: RSS drift <= 5 %/h: {'yes' if s['limit_rss_drift_ok'] else 'NO'}; "
      f"ACK p99 <= 50 ms every minute: {'yes' if s['limit_p99_ok'] else 'NO'}; "
      f"daemon alive throughout: {'yes' if alive else 'NO'}")
PY
