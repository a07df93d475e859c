#!/usr/bin/env python3
"""The host-side peer of the package tests (packaging/test-install.sh, test-systemd.sh): it
sends HL7 v2 orders over MLLP to the installed daemon and reads its event log back through
the HTTP API. Python's standard library only, so it runs on any CI host.

  peer.py ready HTTP_PORT [--timeout S]
      waits until /readyz answers 200
  peer.py send MLLP_PORT ID [ID...]
      one ORM^O01 per control id, on one connection; each must be answered MSA|AA
  peer.py stream MLLP_PORT PREFIX ACKED_FILE STOP_FILE [--max-seconds S] [--max-count N]
      sends orders with control ids PREFIX-000001, -000002... one at a time, as fast as they
      are answered, and appends each id answered AA to ACKED_FILE; a lost connection (the
      daemon was killed) is retried until the daemon is back, and the message whose answer
      was lost is sent again (a sender's duty; the daemon answers a re-send without a second
      event). Stops when STOP_FILE exists, or fails past the limits.
  peer.py hold MLLP_PORT ID [--timeout S]
      sends one order on a connection it then keeps open and idle, like a RIS does; prints
      "held" once answered AA and exits 0 when the daemon closes the connection
  peer.py logged HTTP_PORT FILE [FILE...] [--token-file F]
      every control id in the files (one a line) is in the log as exactly one
      HL7MessageReceived; the API is asked with the token in F (the daemon's
      <state_dir>/local-api.token, which the test reads as root)

Messages carry made-up test data only.
"""

import argparse
import json
import os
import socket
import sys
import time
import urllib.request

START, END = b"\x0b", b"\x1c\x0d"


def orm(control_id):
    return (
        f"MSH|^~\\&|RIS|HOSP|ZENEDGE|HOSP|20261123120000||ORM^O01|{control_id}|P|2.5\r"
        "PID|1||PID-1^^^HOSP||DOE^JANE||19700101|F\r"
        f"ORC|NW|PL-{control_id}|FL-{control_id}\r"
        f"OBR|1|PL-{control_id}|FL-{control_id}|CT^CT HEAD|||||||||||||||ACC-{control_id}\r"
    ).encode()


def exchange(sock, control_id):
    """Sends one order and returns its ACK's MSA segment (raises OSError on a lost connection)."""
    sock.sendall(START + orm(control_id) + END)
    ack = b""
    while not ack.endswith(END):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"connection closed before the ACK of {control_id}")
        ack += chunk
    segments = ack.strip(START + END).decode().split("\r")
    msa = next((s for s in segments if s.startswith("MSA|")), "")
    if msa.split("|")[2:3] != [control_id]:
        sys.exit(f"ACK for {control_id} does not echo it: {segments!r}")
    return msa


def cmd_ready(args):
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/readyz", timeout=2) as r:
                r.read()
            return
        except Exception as e:  # not listening yet, or 503 while opening
            if time.monotonic() > deadline:
                sys.exit(f"/readyz did not answer 200 within {args.timeout} s: {e}")
            time.sleep(0.2)


def cmd_send(args):
    with socket.create_connection(("127.0.0.1", args.port), timeout=10) as s:
        for control_id in args.ids:
            msa = exchange(s, control_id)
            if not msa.startswith("MSA|AA|"):
                sys.exit(f"{control_id}: expected MSA|AA, got {msa}")
            print("HL7 ACK:", msa)


def cmd_stream(args):
    deadline = time.monotonic() + args.max_seconds
    sent = acked = reconnects = resent = 0
    sock = None
    pending = None  # sent, answer not received: sent again on the next connection
    with open(args.acked, "a") as out:
        while not os.path.exists(args.stop):
            if time.monotonic() > deadline or acked >= args.max_count:
                sys.exit(f"stream: gave up ({acked} acked) before {args.stop} appeared")
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
                except OSError:
                    time.sleep(0.1)
                    continue
            if pending is None:
                sent += 1
                control_id = f"{args.prefix}-{sent:06d}"
            else:
                control_id, resent = pending, resent + 1
            pending = control_id
            try:
                msa = exchange(sock, control_id)
            except OSError:
                sock.close()
                sock, reconnects = None, reconnects + 1
                continue
            code = msa.split("|")[1]
            if code == "AA":
                pending = None
                acked += 1
                out.write(control_id + "\n")
                out.flush()
            elif code == "AR":  # could not take it now: the same message again shortly
                time.sleep(0.1)
            else:
                sys.exit(f"stream: {control_id} answered {msa}")
    if sock is not None:
        sock.close()
    print(f"stream: {acked} orders acknowledged, {reconnects} lost connections, {resent} re-sent")


def cmd_hold(args):
    with socket.create_connection(("127.0.0.1", args.port), timeout=10) as s:
        msa = exchange(s, args.id)
        if not msa.startswith("MSA|AA|"):
            sys.exit(f"{args.id}: expected MSA|AA, got {msa}")
        print("held", flush=True)
        s.settimeout(args.timeout)
        try:
            rest = s.recv(4096)
        except socket.timeout:
            sys.exit(f"hold: the connection was still open after {args.timeout} s")
        except ConnectionResetError:
            rest = b""
        if rest:
            sys.exit(f"hold: unexpected bytes on an idle connection: {rest!r}")
    print("hold: the daemon closed the idle connection")


def cmd_logged(args):
    wanted = []
    for name in args.files:
        with open(name) as f:
            wanted += [line.strip() for line in f if line.strip()]
    counts, after = {}, 0
    while True:
        url = f"http://127.0.0.1:{args.port}/api/v1/events?after={after}&limit=1000"
        headers = {}
        if args.token_file:
            with open(args.token_file) as f:
                headers["Authorization"] = "Bearer " + f.read().strip()
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            page = json.load(r)
        for event in page["items"]:
            if event["event_type"] == "HL7MessageReceived":
                control_id = event["data"]["control_id"]
                counts[control_id] = counts.get(control_id, 0) + 1
        if page["next"] is None:
            break
        after = page["next"]
    missing = [c for c in wanted if c not in counts]
    doubled = [c for c in wanted if counts.get(c, 0) > 1]
    if missing or doubled:
        sys.exit(
            f"of {len(wanted)} acknowledged orders, {len(missing)} are not in the log "
            f"(first: {missing[:5]}) and {len(doubled)} are there more than once (first: {doubled[:5]})"
        )
    print(f"all {len(wanted)} acknowledged orders are in the log, once each ({sum(counts.values())} HL7 events)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("ready")
    c.add_argument("port", type=int)
    c.add_argument("--timeout", type=float, default=60)
    c.set_defaults(run=cmd_ready)
    c = sub.add_parser("send")
    c.add_argument("port", type=int)
    c.add_argument("ids", nargs="+")
    c.set_defaults(run=cmd_send)
    c = sub.add_parser("stream")
    c.add_argument("port", type=int)
    c.add_argument("prefix")
    c.add_argument("acked")
    c.add_argument("stop")
    c.add_argument("--max-seconds", type=float, default=300)
    c.add_argument("--max-count", type=int, default=50000)
    c.set_defaults(run=cmd_stream)
    c = sub.add_parser("hold")
    c.add_argument("port", type=int)
    c.add_argument("id")
    c.add_argument("--timeout", type=float, default=60)
    c.set_defaults(run=cmd_hold)
    c = sub.add_parser("logged")
    c.add_argument("port", type=int)
    c.add_argument("files", nargs="+")
    c.add_argument("--token-file")
    c.set_defaults(run=cmd_logged)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
