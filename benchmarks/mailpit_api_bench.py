"""What Mailpit's API shapes cost (docs/mailpit.md): a summary complete when read, /metrics.

postroom indexes a message moments after committing it; Mailpit parses it while storing.
To look like Mailpit, ``POST /api/v1/send`` answers once the message is indexed and an
``/api/v1`` listing holding just-arrived mail waits for it (``/api/v2`` does not). This
measures, against a ``postroom serve`` on loopback (SQLite file, its own indexer process):

* ``send``: ``POST /api/v1/send`` of a small HTML message with an attachment, one at a time;
* ``v1 list after send`` / ``v2 list after send``: ``GET /api/v1/messages`` (and the same
  from ``/api/v2``) right after each send: the wait's cost shows as their difference;
* ``metrics``: one ``GET /metrics`` scrape with the store holding every message sent.

Rounds alternate the calls; each figure is the median (and p95) in milliseconds.

  python benchmarks/mailpit_api_bench.py [--sends 300]

``suite(quick)`` is the entry point of ``benchmarks/run.py`` (suite ``mailpit-api``).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rows_suite

ROOT = Path(__file__).resolve().parent.parent

BODY = json.dumps(
    {
        "From": {"Email": "bench@example.org"},
        "To": [{"Email": "inbox@example.org"}],
        "Subject": "bench",
        "Text": "hello\nworld\n" * 20,
        "HTML": "<p>hello <b>world</b></p>\n" * 40,
        "Attachments": [{"Content": base64.b64encode(b"hello world " * 100).decode(), "Filename": "a.txt"}],
    }
).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server() -> Iterator[str]:
    http, smtp = _free_port(), _free_port()
    tmp = tempfile.mkdtemp(prefix="postroom-mpbench-")
    cmd = [sys.executable, "-m", "postroom", "serve", "--http", f"127.0.0.1:{http}", "--smtp", f"127.0.0.1:{smtp}",
           "--pop3", "off", "--imap", "off", "--db", os.path.join(tmp, "db"), "--quiet", "--max", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("postroom serve did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{http}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _call(url: str, body: bytes | None = None) -> float:
    """Milliseconds from sending the request to reading the whole answer."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(
        url, data=body, headers=headers, method="POST" if body is not None else "GET"
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
    return (time.perf_counter() - t0) * 1000


def measure(sends: int) -> list[dict[str, Any]]:
    times: dict[str, list[float]] = {
        "send": [],
        "v1 list after send": [],
        "v2 list after send": [],
        "metrics": [],
    }
    with _server() as base:
        for _ in range(5):  # warm up (imports, the indexer process, caches)
            _call(base + "/api/v1/send", BODY)
        for i in range(sends):
            times["send"].append(_call(base + "/api/v1/send", BODY))
            first, second = ("v1", "v2") if i % 2 else ("v2", "v1")  # alternate which list goes first
            for api in (first, second):
                times[f"{api} list after send"].append(_call(f"{base}/api/{api}/messages?limit=50"))
            if i % 10 == 0:
                times["metrics"].append(_call(base + "/metrics"))
    rows = []
    for name, values in times.items():
        values.sort()
        rows.append(
            {
                "call": name,
                "n": len(values),
                "median_ms": round(statistics.median(values), 2),
                "p95_ms": round(values[min(len(values) - 1, int(len(values) * 0.95))], 2),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| call | n | median ms | p95 ms |", "| --- | --- | --- | --- |"]
    out += [f"| {r['call']} | {r['n']} | {r['median_ms']} | {r['p95_ms']} |" for r in rows]
    return "\n".join(out)


def suite(quick: bool) -> dict[str, Any]:
    return rows_suite.suite(
        "Mailpit API: send answered once indexed, listings right after, /metrics (ms, loopback)",
        measure(60 if quick else 300),
        markdown,
    )


if __name__ == "__main__":
    rows_suite.main(measure, markdown, "--sends", 300)
