"""Open report.html in headless Chromium over the DevTools protocol: no console errors, no network
requests, every section and the headline values on the page, hostile text shown as text; save a
screenshot.  Skipped when chromium is not installed (``.ci/run`` installs Debian's)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tunebench.report import build_report
from tunebench.report.sections import HEADLINE
from tunebench.study import driver as study_module

from .test_report import SCRIPT, hostile_reviews
from .test_study import tiny_spec

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
WIDTH = 1280  # the window the report must fit without scrolling sideways
HEAD = {h: i for i, h in enumerate(["strategy", "settings"] + [h for h, _, _ in HEADLINE])}
SECTIONS = ["headline", "significance", "comparison", "pareto", "curves", "confusion", "errors", "dataset", "cost",
            "serving", "recommendation", "environment"]


class DevTools:
    """Just enough of a websocket client (RFC 6455, text frames) to speak the Chrome DevTools protocol."""

    def __init__(self, url: str) -> None:
        host, port, path = re.match(r"ws://([^:/]+):(\d+)(/.*)", url).groups()
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(1)
        assert b" 101 " in response.split(b"\r\n")[0], response
        self.next_id, self.events = 0, []

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        return data

    def _recv_message(self) -> dict:
        payload = b""
        while True:
            head = self._recv_exact(2)
            fin, length = head[0] & 0x80, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._recv_exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._recv_exact(8))[0]
            payload += self._recv_exact(length)
            if fin:
                return json.loads(payload)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        data = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        while True:
            message = self._recv_message()
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < end, f"no {method} within {timeout} s"
            self.events.append(self._recv_message())

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]


@pytest.fixture()
def browser(tmp_path):
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'profile'}",
                             f"--window-size={WIDTH},2000", "--hide-scrollbars", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        end = time.monotonic() + 30
        while port is None and time.monotonic() < end:
            line = proc.stderr.readline()
            if m := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line):
                port = m.group(1)
        assert port, "chromium did not start its DevTools server"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:  # localhost only
            page = next(t for t in json.load(resp) if t["type"] == "page")
        yield DevTools(page["webSocketDebuggerUrl"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def report(tiny_models, tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("browser")
    hostile_reviews().to_csv(root / "reviews.csv", index=False)
    spec = tiny_spec(tiny_models["bert"], root / "reviews.csv", root / "out", strategies=["full", "head"], epochs=2)
    records = study_module.run_study(spec)
    build_report(root / "out")
    return root / "out", records


def test_report_opens_offline_without_errors_or_requests(browser, report, tmp_path):
    out, records = report
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.events.clear()
    browser.call("Page.navigate", url=(out / "report.html").as_uri())
    browser.wait_for("Page.loadEventFired")
    time.sleep(0.3)  # let late console messages arrive
    browser.call("Runtime.evaluate", expression="1")  # drains events queued before this reply

    errors = [e for e in browser.events if e.get("method") in ("Runtime.exceptionThrown",)
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    requested = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested and all(u.startswith(("file:", "data:")) for u in requested), requested
    assert [u for u in requested if u.startswith("file:")] == [(out / "report.html").as_uri()]

    shown = browser.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
    # the convergence checks follow the headline when a tiny run is flagged (they are here: 2 epochs)
    assert [x for x in shown if x != "convergence"] == SECTIONS and shown.index("convergence") == 1
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    images = browser.evaluate("[...document.images].map(i => [i.complete && i.naturalWidth > 0, i.src.slice(0, 22)])")
    assert len(images) >= 6 and all(ok and src == "data:image/png;base64," for ok, src in images)
    text = browser.evaluate("document.body.innerText")
    assert SCRIPT in text  # shown as text, never run
    headline = browser.evaluate("[...document.querySelectorAll('table[data-table=headline] tbody tr')]"
                                ".map(r => [...r.cells].map(c => c.textContent))")
    # the study's rows (a flagged run carries ⚠), then the baselines as reference rows
    assert [row[0].removesuffix(" ⚠") for row in headline[:-2]] == [r["strategy"] for r in records]
    assert [row[0] for row in headline[-2:]] == ["majority (baseline)", "tfidf-logreg (baseline)"]
    for row, record in zip(headline[:-2], records, strict=True):
        assert row[HEAD["test macro-F1"]].startswith(f"{record['test']['macro_f1']:.3f}")
        assert row[HEAD["trainable"]].startswith(f"{record['params']['trainable']:,}")

    # nothing wider than the 1280-px window: neither the page nor any table (a table scrolls inside itself)
    width = browser.evaluate("window.innerWidth")
    assert width == WIDTH
    assert browser.evaluate("document.documentElement.scrollWidth") <= width
    wide = browser.evaluate("[...document.querySelectorAll('table')].filter(t => t.scrollWidth > t.clientWidth)"
                            ".map(t => [t.dataset.table, t.scrollWidth, t.clientWidth])")
    assert wide == []
    # a full-page screenshot at the window's width
    page = browser.call("Page.getLayoutMetrics")["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": width, "height": page["height"], "scale": 1}
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                         clip=clip)["data"])
    path = tmp_path / "report_screenshot.png"
    path.write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    with Image.open(path) as img:
        assert img.size[0] == width and img.size[1] >= page["height"] - 1 > 2000  # the whole page, not the window
