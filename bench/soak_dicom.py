#!/usr/bin/env python3
"""Steady DICOM C-STORE load for bench/soak.sh.

Every --every seconds (fixed schedule; when late, the next association starts at once)
opens one association and sends --batch instances: copies of small template instances
(a gen_corpus.py corpus's dicom/tiny) with a fresh Study/Series/SOP Instance UID and
accession number, so every instance is a new one the daemon stores (none is a re-send).
Writes one JSON line per association to --out:
  {"t": start (epoch s), "sent": n, "ok": n, "failed": n, "secs": association time,
   "store_ms_max": slowest C-STORE in it, "error": null or text, "sender_race": bool}
"sender_race" says that pynetdicom logged "Received unexpected C-STORE service message" during
the association: its reactor thread took the C-STORE response meant for send_c_store (a race
between pausing the reactor and sending, in pynetdicom itself), which then times out after
dimse_timeout (30 s) and aborts the association. Such failures are the sender's, not the
receiver's.
Runs for --duration seconds or until SIGTERM/SIGINT.
Needs pydicom and pynetdicom.
"""
import argparse
import copy
import glob
import json
import logging
import os
import signal
import sys
import time

from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE, debug_logger  # noqa: F401

stop = False


class RaceCounter(logging.Handler):
    """Counts pynetdicom's "Received unexpected ... service message" warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.n = 0

    def emit(self, record):
        if "Received unexpected" in record.getMessage():
            self.n += 1


race = RaceCounter()
logging.getLogger("pynetdicom").addHandler(race)


def on_signal(*_):
    global stop
    stop = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("templates", help="directory of small .dcm files (searched recursively)")
    p.add_argument("--aec", default="ZENEDGE")
    p.add_argument("--aet", default="SOAK")
    p.add_argument("--every", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--duration", type=float, default=3600.0)
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", default="SOAK", help="accession number prefix")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    files = sorted(glob.glob(os.path.join(a.templates, "**", "*.dcm"), recursive=True))[:64]
    if not files:
        sys.exit(f"no .dcm under {a.templates}")
    templates = [dcmread(f) for f in files]
    ae = AE(ae_title=a.aet)
    ae.acse_timeout = 30
    ae.dimse_timeout = 30
    ae.network_timeout = 30
    seen = set()
    for t in templates:
        key = (t.SOPClassUID, t.file_meta.TransferSyntaxUID)
        if key not in seen:
            seen.add(key)
            ae.add_requested_context(t.SOPClassUID, t.file_meta.TransferSyntaxUID)

    out = open(a.out, "a", buffering=1)
    start = time.time()
    n = 0
    next_t = start
    while not stop and time.time() - start < a.duration:
        now = time.time()
        if now < next_t:
            time.sleep(min(next_t - now, 0.5))
            continue
        next_t += a.every
        if next_t < now:  # late: do not try to catch up in a burst
            next_t = now + a.every
        study, series = generate_uid(), generate_uid()
        acc = f"{a.prefix}{n:08d}"
        n += 1
        rec = {"t": round(now, 3), "sent": 0, "ok": 0, "failed": 0, "secs": None,
               "store_ms_max": None, "error": None, "sender_race": False}
        races = race.n
        t0 = time.time()
        try:
            assoc = ae.associate(a.host, a.port, ae_title=a.aec)
            if not assoc.is_established:
                rec["error"] = "association not established"
                rec["failed"] = a.batch
            else:
                worst = 0.0
                for i in range(a.batch):
                    ds = copy.deepcopy(templates[(n + i) % len(templates)])
                    ds.StudyInstanceUID = study
                    ds.SeriesInstanceUID = series
                    ds.SOPInstanceUID = generate_uid()
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                    ds.AccessionNumber = acc
                    ds.InstanceNumber = i + 1
                    s0 = time.time()
                    rec["sent"] += 1
                    st = assoc.send_c_store(ds)
                    worst = max(worst, time.time() - s0)
                    if st and getattr(st, "Status", None) == 0x0000:
                        rec["ok"] += 1
                    else:
                        rec["failed"] += 1
                        rec["error"] = f"status {getattr(st, 'Status', None)!r}"
                    if not assoc.is_established:
                        break
                rec["store_ms_max"] = round(worst * 1000, 2)
                if assoc.is_established:
                    assoc.release()
                else:
                    rec["error"] = rec["error"] or "association aborted"
                    rec["failed"] += a.batch - rec["sent"]
        except Exception as e:  # noqa: BLE001 - a soak records every failure and goes on
            rec["error"] = repr(e)
            rec["failed"] = a.batch - rec["ok"]
        rec["secs"] = round(time.time() - t0, 4)
        rec["sender_race"] = race.n > races
        out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
