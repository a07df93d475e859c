#!/usr/bin/env python3
"""The status page in a real headless Chromium (Debian's, driven by Playwright).

Run by the integration test tests/it/status_page.rs after it sent known traffic to a
daemon. One browser for every check:

* the page (opened at /, redirected to /status) loads with no console error, with HTTP Basic
  credentials of a client with the scope `status` only;
* every figure marked `data-status` equals the value of `/api/v1/status` at that path (the
  free disk space excepted: it moves with everything else on the machine), and its text too
  for counts (sizes, `data-unit="bytes"`, are shown in binary units);
* the listener rows count the traffic sent (`--hl7`, `--instances` in the last hour);
* the page reloads by itself (a second load event);
* both plots render: an SVG with a non-empty path and a visible size;
* the patient's name (`--patient`) is on no element for that client, and in the list for a
  client with the scope `read`;
* at 1024x768 nothing scrolls sideways;
* a screenshot goes to `--screenshot`.

Prints one line per check; exits 1 on the first failure, 0 when all hold.
"""

import argparse
import json
import sys
import tempfile
import urllib.request

from playwright.sync_api import sync_playwright

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def ok(message):
    print(f"ok   {message}", flush=True)


def api_status(url, token):
    request = urllib.request.Request(f"{url}/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def at(value, path):
    for key in path.split("."):
        if isinstance(value, list):
            value = value[int(key)]
        elif isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value


def check_figures(page, status):
    figures = page.eval_on_selector_all(
        "[data-status]",
        "els => els.map(e => ({path: e.dataset.status, value: e.dataset.value, unit: e.dataset.unit || null,"
        " text: e.textContent.trim()}))",
    )
    paths = {f["path"] for f in figures}
    for needed in ["last_seq", "stored.hl7_messages", "stored.dicom_instances", "ingest.hl7_messages.AA",
                   "ingest.dicom_instances_stored", "disk.reserve"]:
        if needed not in paths:
            fail(f"figure {needed} is not on the page")
    for f in figures:
        if f["path"] == "disk.free":
            continue
        expected = at(status, f["path"])
        if json.loads(f["value"]) != expected:
            fail(f"{f['path']}: page {f['value']}, /api/v1/status {json.dumps(expected)}")
        counted = isinstance(expected, int) and not isinstance(expected, bool) and f["unit"] is None
        if counted and f["text"] != str(expected):
            fail(f"{f['path']}: page shows {f['text']!r}, /api/v1/status {expected}")
    ok(f"{len(figures)} figures equal /api/v1/status")


def check_listeners(page, hl7, instances):
    def count(listener, field):
        text = page.text_content(f'tr[data-listener="{listener}"] td[data-field="{field}"]')
        return int(text.strip()) if text is not None else None

    if count("mllp", "last_hour") != hl7:
        fail(f"mllp last hour: {count('mllp', 'last_hour')}, sent {hl7}")
    if count("dicom", "last_hour") != instances:
        fail(f"dicom last hour: {count('dicom', 'last_hour')}, sent {instances}")
    state = page.text_content('tr[data-listener="mllp"] td:nth-child(3)').strip()
    if state != "up":
        fail(f"mllp state {state!r}")
    ok(f"listeners: mllp {hl7} answers, dicom {instances} in the last hour, up")


def check_plots(page):
    plots = page.eval_on_selector_all(
        "figure.plot svg",
        """svgs => svgs.map(s => ({
            d: (s.querySelector('path.line') || {getAttribute: () => ''}).getAttribute('d') || '',
            width: s.getBoundingClientRect().width,
            height: s.getBoundingClientRect().height,
        }))""",
    )
    if len(plots) != 2:
        fail(f"{len(plots)} plots, expected 2")
    for p in plots:
        if len(p["d"]) < 10 or p["width"] < 100 or p["height"] < 20:
            fail(f"a plot does not render: {p['width']}x{p['height']}, path {p['d'][:40]!r}")
    ok("2 plots render with non-empty paths")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--status-token", required=True)
    parser.add_argument("--read-token", required=True)
    parser.add_argument("--patient", required=True)
    parser.add_argument("--hl7", type=int, required=True)
    parser.add_argument("--instances", type=int, required=True)
    parser.add_argument("--screenshot", required=True)
    a = parser.parse_args()

    errors = []
    with tempfile.TemporaryDirectory(prefix="zenedge-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            args=ARGS,
            headless=True,
            viewport={"width": 1024, "height": 768},
            http_credentials={"username": "admin", "password": a.status_token},
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            loads = []
            page.on("load", lambda: loads.append(1))
            response = page.goto(f"{a.url}/", wait_until="load")
            if response is None or response.status != 200 or not response.url.endswith("/status"):
                fail(f"/ did not lead to the page: {response and response.status} {response and response.url}")
            ok("/ redirects to /status, answered 200 to Basic credentials")
            status = api_status(a.url, a.status_token)
            check_figures(page, status)
            check_listeners(page, a.hl7, a.instances)
            check_plots(page)
            html = page.content()
            if a.patient in html or a.patient.split("^")[0] in html:
                fail("the patient's name is on the page without the scope read")
            ok("no patient data without the scope read")
            width = page.evaluate("document.scrollingElement.scrollWidth")
            if width > 1024:
                fail(f"scrolls sideways at 1024x768: scrollWidth {width}")
            ok(f"usable at 1024x768 (scrollWidth {width})")
            page.screenshot(path=a.screenshot, full_page=True)
            ok(f"screenshot {a.screenshot}")
            page.wait_for_event("load", timeout=15000)
            if len(loads) < 2:
                fail(f"{len(loads)} load events")
            ok("the page reloaded by itself")
            if errors:
                fail("; ".join(errors))
            ok("no console errors")

            reader = context.new_page()
            reader.set_extra_http_headers({"Authorization": f"Bearer {a.read_token}"})
            reader.goto(f"{a.url}/status", wait_until="load")
            surname = a.patient.split("^")[0]
            cells = reader.locator("table.patients td", has_text=surname).count()
            if cells == 0:
                fail("the patient is not listed for a client with the scope read")
            ok(f"the patient is listed ({cells} cells) for a client with the scope read")
        finally:
            context.close()
    print("status page: all checks passed", flush=True)


if __name__ == "__main__":
    main()
