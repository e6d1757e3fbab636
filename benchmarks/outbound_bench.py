"""Outbound queue: relay throughput to Postfix's smtp-sink, and SMTP ingest while the queue
drains, side by side with ingest alone (same run, same machine, runs alternated).

Method: ``postroom serve --smtp-relay-all`` with a relay file pointing at ``smtp-sink``
(rate limit lifted, ``concurrency: 10``); Postfix's ``smtp-source`` sends N copies of the
html fixture over 10 sessions; the relay rate counts until every row of
``/api/v2/outbound`` is ``sent``. "ingest" is smtp-source's own time for N messages (the
sender's view), with the relay on and with it off.

  python benchmarks/outbound_bench.py [-n 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import write as write_fixture
from ingest import _wait_port, free_port, smtp_source

ROOT = Path(__file__).resolve().parent.parent
POSTROOM = str(ROOT / ".venv" / "bin" / "postroom")


def _counts(http: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v2/outbound", timeout=30) as r:
        return dict(json.load(r)["Counts"])


def run_one(n: int, relay: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="postroom-outbound-"))
    fixture = write_fixture("html", tmp)
    smtp, http, sink_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        args = [POSTROOM, "serve", "--smtp", f"127.0.0.1:{smtp}", "--http", f"127.0.0.1:{http}", "--pop3", "off",
                "--imap", "off", "--db", str(tmp / "store.db"), "--quiet", "--max", str(n * 2)]  # fmt: skip
        if relay:
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            sink = subprocess.Popen(
                ["smtp-sink", *user, f"127.0.0.1:{sink_port}", "200"], start_new_session=True
            )
            procs.append(sink)
            _wait_port(sink_port, sink)
            (tmp / "relay.yaml").write_text(
                f"host: 127.0.0.1\nport: {sink_port}\nrate: 100000\nburst: 1000\nconcurrency: 10\n"
            )
            args += ["--smtp-relay-config", str(tmp / "relay.yaml"), "--smtp-relay-all"]
        server = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL)
        procs.append(server)
        _wait_port(smtp, server)
        _wait_port(http, server)
        t0 = time.perf_counter()
        subprocess.run(smtp_source(smtp, 10, n, fixture), check=True, capture_output=True)
        t_ingest = time.perf_counter() - t0
        row: dict[str, Any] = {
            "relay": relay,
            "n": n,
            "ingest_s": round(t_ingest, 3),
            "ingest_msgs_per_s": round(n / t_ingest, 1),
        }
        if relay:
            while _counts(http).get("sent", 0) < n and time.perf_counter() - t0 < 600:
                time.sleep(0.1)
            t_sent = time.perf_counter() - t0
            row.update(
                sent=_counts(http).get("sent", 0),
                relayed_s=round(t_sent, 3),
                relayed_msgs_per_s=round(n / t_sent, 1),
            )
        return row
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def suite(quick: bool) -> dict[str, Any]:
    n, rounds = (300, 1) if quick else (2000, 2)
    rows = []
    for _ in range(rounds):  # alternate, so both see the same moments of the machine
        rows.append(run_one(n, relay=False))
        rows.append(run_one(n, relay=True))
    lines = [
        f"{n} html messages over 10 SMTP sessions (smtp-source); relay to Postfix's smtp-sink with 10 connections.",
        "",
        "| run | ingest msgs/s (sender's view) | relayed msgs/s (all sent) |",
        "| --- | ---: | ---: |",
    ]
    for r in rows:
        relayed = f"{r['relayed_msgs_per_s']:,.1f} ({r['sent']} sent)" if r["relay"] else "-"
        lines.append(
            f"| {'relay-all on' if r['relay'] else 'relay off'} | {r['ingest_msgs_per_s']:,.1f} | {relayed} |"
        )
    return {
        "title": "Outbound queue: relay throughput, and ingest while it drains",
        "rows": rows,
        "markdown": "\n".join(lines),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    for _ in range(a.rounds):
        print(json.dumps(run_one(a.n, relay=False)))
        print(json.dumps(run_one(a.n, relay=True)))
