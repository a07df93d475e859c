#!/usr/bin/env python3
"""Sends a gen_corpus.py corpus as one hospital day, for bench/day-under-fire.sh.

Three phases, the same in a faulted and a fault-free run, so that what the daemon decides
(matches, cases) can be compared between the two:
  A. the day: new orders (ORM^O01 NW) and ADT A01/A04/A08 in MSH-7 order over one MLLP
     connection, evenly spread over --day seconds; each DICOM study goes, on one of
     --modalities parallel C-STORE senders, a few seconds after its order was acknowledged;
  B. wait until every study of the corpus is completed (the daemon's `stable_after`);
  C. the follow-ups (ORM XO/SC/CA) and the merges (ADT A40), in MSH-7 order.
Senders retry whatever was not acknowledged: an HL7 message without MSA-1 AA/CA is sent again
(after reconnecting) until it is; an instance without Success status is sent again on a
new association until it is. The daemon may be killed at any moment in between.
pynetdicom (3.0.4) has a race of its own: its reactor thread can take the C-STORE response
meant for send_c_store ("Received unexpected C-STORE service message"), which then waits for
dimse_timeout (15 s) and aborts; stats.json counts those ("dicom_sender_races"); the
instances go again like any other failure.
Writes to --out: hl7_acked.txt (control ids answered AA/CA), dicom_acked.txt (SOP instance
UIDs answered Success), hl7_rejected.txt (AE, not retried), and stats.json.
Needs pydicom and pynetdicom.
"""
import argparse
import csv
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.request

from pydicom import dcmread
from pynetdicom import AE

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
lock = threading.Lock()
stats = {"hl7_sent": 0, "hl7_acked": 0, "hl7_resends": 0, "hl7_rejected": 0, "hl7_reconnects": 0,
         "dicom_sent": 0, "dicom_acked": 0, "dicom_resends": 0, "dicom_associations": 0,
         "dicom_association_failures": 0, "dicom_sender_races": 0}


class RaceCounter(logging.Handler):
    """Counts pynetdicom's "Received unexpected ... service message" warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record):
        if "Received unexpected" in record.getMessage():
            bump("dicom_sender_races")


logging.getLogger("pynetdicom").addHandler(RaceCounter())


def bump(key, n=1):
    with lock:
        stats[key] += n


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Mllp:
    def __init__(self, host, port, out):
        self.addr = (host, port)
        self.sock = None
        self.acked = open(os.path.join(out, "hl7_acked.txt"), "a", buffering=1)
        self.rejected = open(os.path.join(out, "hl7_rejected.txt"), "a", buffering=1)

    def _connect(self):
        while True:
            try:
                s = socket.create_connection(self.addr, timeout=5)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(10)
                self.sock = s
                return
            except OSError:
                time.sleep(0.2)

    def _ack(self):
        buf = b""
        while FS + CR not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        frame = buf[buf.index(VT) + 1:buf.index(FS + CR)]
        for seg in frame.split(b"\r"):
            if seg.startswith(b"MSA|"):
                return seg.split(b"|")[1].decode()
        return "?"

    def send(self, control_id, msg):
        """Sends until acknowledged AA/CA (or refused AE). Returns the code."""
        first = True
        while True:
            if self.sock is None:
                self._connect()
                if not first:
                    bump("hl7_reconnects")
            bump("hl7_sent")
            if not first:
                bump("hl7_resends")
            first = False
            try:
                self.sock.sendall(VT + msg + FS + CR)
                code = self._ack()
            except (OSError, ConnectionError, ValueError):
                self.close()
                time.sleep(0.2)
                continue
            if code in ("AA", "CA"):
                self.acked.write(control_id + "\n")
                bump("hl7_acked")
                return code
            if code in ("AE", "CE"):
                self.rejected.write(f"{control_id}\t{code}\n")
                bump("hl7_rejected")
                return code
            # AR/CR (stopping, storage refused) or unknown: reconnect and send again.
            self.close()
            time.sleep(0.5)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def msh7(msg):
    return msg.split(b"\r", 1)[0].split(b"|")[6].decode()


def dicom_lane(name, studies, host, port, aec, acked_path, acked_events, t0):
    out = open(acked_path, "a", buffering=1)
    ae = AE(ae_title=name)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
    contexts = set()
    loaded = []
    for when, orders, files in studies:
        dss = [dcmread(f) for f in files]
        for ds in dss:
            contexts.add((ds.SOPClassUID, ds.file_meta.TransferSyntaxUID))
        loaded.append((when, orders, dss))
    for c in sorted(contexts):
        ae.add_requested_context(*c)
    for when, orders, dss in loaded:
        for cid in orders:  # the order first, as a RIS would have it
            acked_events[cid].wait()
        delay = t0 + when - time.time()
        if delay > 0:
            time.sleep(delay)
        todo = list(dss)
        attempt = 0
        while todo:
            if attempt:
                time.sleep(0.5)
            attempt += 1
            try:
                assoc = ae.associate(host, port, ae_title=aec)
            except Exception:  # noqa: BLE001
                assoc = None
            bump("dicom_associations")
            if assoc is None or not assoc.is_established:
                bump("dicom_association_failures")
                continue
            left = []
            for ds in todo:
                if not assoc.is_established:
                    left.append(ds)
                    continue
                bump("dicom_sent")
                if attempt > 1:
                    bump("dicom_resends")
                try:
                    st = assoc.send_c_store(ds)
                    ok = st is not None and getattr(st, "Status", None) == 0x0000
                except Exception:  # noqa: BLE001
                    ok = False
                if ok:
                    out.write(ds.SOPInstanceUID + "\n")
                    bump("dicom_acked")
                else:
                    left.append(ds)
            todo = left
            try:
                if assoc.is_established:
                    assoc.release()
            except Exception:  # noqa: BLE001
                pass


def auth_headers():
    """The edge API's token: ZENEDGE_TOKEN_FILE (the daemon's <state_dir>/local-api.token,
    read at each request: a restarted daemon writes a new one)."""
    path = os.environ.get("ZENEDGE_TOKEN_FILE")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return {"Authorization": "Bearer " + f.read().strip()}


def wait_completed(api, uids):
    pending = set(uids)
    while pending:
        for uid in list(pending):
            try:
                request = urllib.request.Request(f"{api}/api/v1/studies/{uid}", headers=auth_headers())
                with urllib.request.urlopen(request, timeout=5) as r:
                    s = json.load(r)
                if not s.get("pending") and s.get("revision", 0) >= 1:
                    pending.discard(uid)
            except Exception:  # noqa: BLE001 - the daemon may be down for a moment
                pass
        if pending:
            time.sleep(3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mllp", type=int, required=True)
    p.add_argument("--dicom", type=int, required=True)
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--aec", default="ZENEDGE")
    p.add_argument("--day", type=float, default=900, help="seconds over which phase A is spread")
    p.add_argument("--followups", type=float, default=60, help="seconds over which phase C is spread")
    p.add_argument("--study-delay", type=float, default=3, help="seconds from an order to its study")
    p.add_argument("--modalities", type=int, default=3)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    rows = list(csv.DictReader(open(os.path.join(a.corpus, "hl7_index.csv"))))
    msgs = []
    for r in rows:
        raw = open(os.path.join(a.corpus, r["file"]), "rb").read().replace(b"\r\n", b"\r").rstrip(b"\r\n")
        msgs.append((msh7(raw), r["control_id"], r["type"], r["order_control"], raw))
    msgs.sort(key=lambda m: (m[0], m[1]))
    day = [m for m in msgs if m[3] == "NW" or m[2] in ("ADT^A01", "ADT^A04", "ADT^A08")]
    later = [m for m in msgs if m not in day]
    studies = list(csv.DictReader(open(os.path.join(a.corpus, "studies.csv"))))
    when_of = {m[1]: i * a.day / max(len(day), 1) for i, m in enumerate(day)}
    plan = []
    for s in studies:
        orders = s["orm_control_ids"].split()
        d = os.path.join(a.corpus, "dicom", s["kind"], s["accession"])
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(d) for f in fs if f.endswith(".dcm"))
        when = max([when_of.get(c, 0) for c in orders] or [0]) + a.study_delay
        plan.append((when, orders, files))
    plan.sort(key=lambda x: x[0])
    acked_events = {m[1]: threading.Event() for m in msgs}
    log(f"phase A: {len(day)} HL7 messages and {len(plan)} studies "
        f"({sum(len(p[2]) for p in plan)} instances) over {a.day:.0f} s")

    t0 = time.time()
    lanes = []
    for i in range(a.modalities):
        th = threading.Thread(target=dicom_lane, daemon=True, args=(
            f"MOD{i + 1}", plan[i::a.modalities], a.host, a.dicom, a.aec,
            os.path.join(a.out, f"dicom_acked.{i + 1}.txt"), acked_events, t0))
        th.start()
        lanes.append(th)
    mllp = Mllp(a.host, a.mllp, a.out)
    for i, (_, cid, _, _, raw) in enumerate(day):
        delay = t0 + i * a.day / len(day) - time.time()
        if delay > 0:
            time.sleep(delay)
        mllp.send(cid, raw)
        acked_events[cid].set()
    for th in lanes:
        th.join()
    log(f"phase A done in {time.time() - t0:.0f} s; phase B: waiting for {len(studies)} studies to complete")
    tb = time.time()
    wait_completed(f"http://{a.host}:{a.http}", [s["study_uid"] for s in studies])
    log(f"phase B done in {time.time() - tb:.0f} s; phase C: {len(later)} follow-ups and merges")
    tc = time.time()
    for i, (_, cid, _, _, raw) in enumerate(later):
        delay = tc + i * a.followups / max(len(later), 1) - time.time()
        if delay > 0:
            time.sleep(delay)
        mllp.send(cid, raw)
    mllp.close()
    stats["seconds"] = round(time.time() - t0, 1)
    stats["hl7_messages"] = len(msgs)
    stats["dicom_studies"] = len(studies)
    stats["dicom_instances"] = sum(len(p[2]) for p in plan)
    json.dump(stats, open(os.path.join(a.out, "stats.json"), "w"), indent=1)
    log(f"done: {json.dumps(stats)}")


if __name__ == "__main__":
    main()
