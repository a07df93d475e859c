#!/usr/bin/env python3
"""Reads back and checks a day sent by bench/day_sender.py (for bench/day-under-fire.sh).

  day_check.py edge API CORPUS OUT.json
      the daemon's log (/api/v1/events, all of it) and what it decided, normalised so that two
      runs of the same day compare: matches (/api/v1/matches), cases of every patient id of the
      corpus (/api/v1/cases?patient_id=), studies and orders of every accession
      (/api/v1/studies?accession=, /api/v1/orders?accession=). Sequence numbers, event and
      message ids, case ids, times and file names are dropped or replaced by control ids.
  day_check.py hub URL CA CERT KEY EDGE OUT.json
      every envelope the hub holds for EDGE (/v1/edges/EDGE/events), by seq.
  day_check.py check SENT_DIR EDGE.json HUB.json [HUB2.json] [REFERENCE_EDGE.json]
      acknowledged items lost, duplicates, the hub against the edge's log (and against a second
      hub fed the whole log again: same envelopes), decisions against the fault-free run.
      Prints a summary; exit 1 if any check fails.
"""
import collections
import glob
import json
import os
import re
import ssl
import sys
import urllib.parse
import urllib.request

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DROP = {"seq", "match_seq", "case_id", "patient_case_id", "hl7_message_id", "file_path", "event_id",
        "waiting_since", "age_seconds", "next", "revision_seq", "replaces_seq", "peer"}


def auth_headers():
    """The edge API's token: ZENEDGE_TOKEN_FILE (the daemon's <state_dir>/local-api.token,
    read at each request: a restarted daemon writes a new one)."""
    path = os.environ.get("ZENEDGE_TOKEN_FILE")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return {"Authorization": "Bearer " + f.read().strip()}


def get(url, ctx=None):
    request = urllib.request.Request(url, headers=auth_headers())
    with urllib.request.urlopen(request, timeout=60, context=ctx) as r:
        return json.load(r)


def pages(base, path, ctx=None, limit=1000):
    after = 0
    while True:
        sep = "&" if "?" in path else "?"
        page = get(f"{base}{path}{sep}after={after}&limit={limit}", ctx)
        yield from page["items"]
        if page.get("next") is None:
            return
        after = page["next"]


def normalise(value, ids):
    if isinstance(value, dict):
        return {k: normalise(v, ids) for k, v in sorted(value.items())
                if k not in DROP and not k.endswith("_at") and not k.endswith("_seq")}
    if isinstance(value, list):
        items = [normalise(v, ids) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, str):
        m = UUID.match(value)
        if m:
            return ids.get(m.group(0), "<id>") + value[m.end():]
    return value


def corpus_keys(corpus):
    import csv
    patients, accessions = set(), set()
    for r in csv.DictReader(open(os.path.join(corpus, "studies.csv"))):
        patients.add(r["patient_id"])
        accessions.add(r["accession"])
    for r in csv.DictReader(open(os.path.join(corpus, "hl7_index.csv"))):
        if r["patient_id"]:
            patients.add(r["patient_id"])
        accessions.update(a for a in r["accessions"].split() if a)
    return sorted(patients), sorted(accessions)


def edge(api, corpus, out):
    events = list(pages(api, "/api/v1/events"))
    ids = {}
    for e in events:
        if e["event_type"] == "HL7MessageReceived":
            ids[e["aggregate"]["id"]] = e["data"]["control_id"]
    patients, accessions = corpus_keys(corpus)
    q = urllib.parse.quote
    state = {
        "matches": normalise(list(pages(api, "/api/v1/matches")), ids),
        "cases": {p: normalise(get(f"{api}/api/v1/cases?patient_id={q(p)}")["items"], ids) for p in patients},
        "studies": {a: normalise(get(f"{api}/api/v1/studies?accession={q(a)}")["items"], ids) for a in accessions},
        "orders": {a: normalise(get(f"{api}/api/v1/orders?accession={q(a)}")["items"], ids) for a in accessions},
    }
    # Case grouping, which the normalised cases keep only implicitly: per patient, the sets of
    # study UIDs that share a case.
    groups = {}
    for p in patients:
        for c in get(f"{api}/api/v1/cases?patient_id={q(p)}")["items"]:
            uids = sorted(s.get("study_instance_uid", "") for s in c.get("studies", []))
            groups.setdefault(p, []).append(uids)
    state["case_groups"] = {p: sorted(g) for p, g in groups.items()}
    slim = [{"seq": e["seq"], "event_id": e["event_id"], "event_type": e["event_type"],
             "control_id": e["data"].get("control_id") if e["event_type"] == "HL7MessageReceived" else None,
             "sop": e["data"].get("sop_instance_uid") if e["event_type"] == "InstanceStored" else None}
            for e in events]
    json.dump({"events": slim, "state": state}, open(out, "w"))
    print(f"edge: {len(events)} events, {len(state['matches'])} matches, "
          f"{sum(len(v) for v in state['cases'].values())} case listings read")


def hub(url, ca, cert, key, edge_id, out):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    items = list(pages(url, f"/v1/edges/{edge_id}/events", ctx))
    summary = get(f"{url}/v1/edges/{edge_id}", ctx)
    json.dump({"summary": summary, "items": items}, open(out, "w"))
    print(f"hub: {len(items)} envelopes, stored through {summary['stored_through']}")


def diff(a, b, path=""):
    """Up to a few differing paths between two JSON values."""
    if type(a) is not type(b):
        return [f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'faulted' if k in a else 'reference'}")
            else:
                out += diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}"]


def check(sent_dir, edge_path, hub_path, hub2_path=None, ref_path=None):
    ok = True
    e = json.load(open(edge_path))
    events = e["events"]
    hl7_acked = [l.strip() for l in open(os.path.join(sent_dir, "hl7_acked.txt")) if l.strip()]
    sop_acked = [l.strip() for f in glob.glob(os.path.join(sent_dir, "dicom_acked.*.txt"))
                 for l in open(f) if l.strip()]
    per_cid = collections.Counter(x["control_id"] for x in events if x["event_type"] == "HL7MessageReceived")
    per_sop = collections.Counter(x["sop"] for x in events if x["event_type"] == "InstanceStored")
    lost_hl7 = sorted(set(hl7_acked) - set(per_cid))
    lost_sop = sorted(set(sop_acked) - set(per_sop))
    dup_hl7 = {c: n for c, n in per_cid.items() if n > 1}
    dup_sop = {s: n for s, n in per_sop.items() if n > 1}
    unacked_stored = sorted(set(per_cid) - set(hl7_acked))
    print(f"HL7: {len(set(hl7_acked))} control ids acknowledged ({len(hl7_acked)} acknowledgements), "
          f"{sum(per_cid.values())} HL7MessageReceived events; lost {len(lost_hl7)}, duplicated {len(dup_hl7)}; "
          f"stored but never acknowledged {len(unacked_stored)}")
    print(f"DICOM: {len(set(sop_acked))} SOP instances acknowledged ({len(sop_acked)} Success answers), "
          f"{sum(per_sop.values())} InstanceStored events; lost {len(lost_sop)}, duplicated {len(dup_sop)}")
    for name, bad in (("lost HL7", lost_hl7), ("lost SOP", lost_sop), ("duplicated HL7", dup_hl7),
                      ("duplicated SOP", dup_sop)):
        if bad:
            ok = False
            print(f"  FAIL {name}: {list(bad)[:10]}")

    h = json.load(open(hub_path))
    seqs = [i["seq"] for i in h["items"]]
    edge_seqs = [x["seq"] for x in events]
    last = edge_seqs[-1] if edge_seqs else 0
    gaps = sorted(set(range(1, last + 1)) - set(seqs))
    dups = [s for s, n in collections.Counter(seqs).items() if n > 1]
    mism = [i["seq"] for i, x in zip(h["items"], events)
            if i["seq"] != x["seq"] or i["event"].get("event_id") != x["event_id"]
            or i["event"].get("event_type") != x["event_type"]]
    print(f"hub: {len(seqs)} envelopes (stored through {h['summary']['stored_through']}, "
          f"summary says {h['summary']['events']} events, skipped {h['summary']['skipped']}); edge log "
          f"{len(edge_seqs)} events, last seq {last}; gaps {len(gaps)}, duplicates {len(dups)}, "
          f"seq/event id/type mismatches {len(mism)}")
    if len(seqs) != len(edge_seqs) or gaps or dups or mism or h["summary"]["stored_through"] != last:
        ok = False
        print(f"  FAIL hub differs from the edge log: gaps {gaps[:10]} dups {dups[:10]} mismatches {mism[:10]}")
    if hub2_path:
        h2 = json.load(open(hub2_path))
        b = {i["seq"]: i["event"] for i in h2["items"]}
        differ = [i["seq"] for i in h["items"] if b.get(i["seq"]) != i["event"]]
        print(f"hub vs a fresh hub fed the whole log again: {len(h['items'])} envelopes compared, "
              f"{len(differ)} differ")
        if differ:
            ok = False
            print(f"  FAIL envelopes differ at seqs {differ[:10]}")
    if ref_path:
        r = json.load(open(ref_path))
        s, rs = e["state"], r["state"]
        def cases(st):
            distinct = {tuple(g) for v in st["case_groups"].values() for g in v}
            return (f"{len(st['matches'])} matches, {len(distinct)} cases holding "
                    f"{sum(len(g) for g in distinct)} studies (listed "
                    f"{sum(len(v) for v in st['case_groups'].values())} times under {len(st['case_groups'])} "
                    f"patient ids)")
        print(f"decisions: faulted run {cases(s)}; fault-free run {cases(rs)}")
        for k in ("matches", "case_groups", "cases", "studies", "orders"):
            d = diff(s[k], rs[k], k)
            print(f"  {k}: {'identical' if not d else f'{len(d)} differences'}")
            for line in d[:8]:
                print(f"    {line}")
            if d:
                ok = False
    print("RESULT:", "all checks passed" if ok else "CHECKS FAILED")
    return ok


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "edge":
        edge(*args)
    elif mode == "hub":
        hub(*args)
    elif mode == "check":
        sys.exit(0 if check(*args) else 1)
    else:
        sys.exit(__doc__)
