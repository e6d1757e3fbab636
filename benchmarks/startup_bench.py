"""Startup benchmark: is a fresh postroom per test affordable?

Measures, in this process:

* ``postroom.Server`` start + stop in a background thread (``with Server():``), every
  listener (SMTP, HTTP, POP3, IMAP) on a free port and a throwaway store (target <= 50 ms);
* the same with only SMTP;
* ``async with Server():`` inside a running loop;
* start + one message over smtplib + ``wait_for`` + stop (what a typical test does);

and, in a child pytest run, N generated tests (200; 50 with --quick), each with its own
server through the plugin's ``mail`` fixture, under pytest-xdist ``-n 2``: wall time and
whether every test passed (a port clash would fail one).

    python benchmarks/run.py startup [--quick]
"""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0

GENERATED = """
import smtplib
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_own_server(mail, n):
    with smtplib.SMTP("127.0.0.1", mail.smtp_port) as c:
        c.sendmail("app@example.com", [f"user{{n}}@example.com"], f"Subject: test {{n}}\\r\\n\\r\\nhi\\r\\n".encode())
    msg = mail.wait_for(to=f"user{{n}}@example.com")
    assert msg.subject == f"test {{n}}"
    assert len(mail.messages()) == 1
"""


def _times(fn: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _row(name: str, ms: list[float]) -> dict[str, Any]:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {
        "case": name,
        "runs": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(ms[-1], 2),
        "target_ms": TARGET_MS,
        "ok": statistics.median(ms) <= TARGET_MS,
    }


def _in_process(n: int) -> list[dict[str, Any]]:
    from postroom import Server

    with Server():  # first start pays the imports
        pass

    def full() -> None:
        with Server():
            pass

    def smtp_only() -> None:
        with Server(http=False, pop3=False, imap=False):
            pass

    def one_message() -> None:
        with Server(pop3=False, imap=False) as s:
            with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
                c.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n")
            s.wait_for(to="b@example.com")

    async def in_loop() -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            async with Server():
                pass
            out.append((time.perf_counter() - t0) * 1000)
        return out

    return [
        _row("with Server(): start+stop, all listeners (thread)", _times(full, n)),
        _row("with Server(smtp only): start+stop (thread)", _times(smtp_only, n)),
        _row("async with Server(): start+stop (running loop)", asyncio.run(in_loop())),
        _row("start + 1 message (smtplib) + wait_for + stop", _times(one_message, n)),
    ]


def _xdist(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_generated.py").write_text(textwrap.dedent(GENERATED.format(count=count)))
        Path(tmp, "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "2", "-q", tmp],
            cwd=tmp,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        wall = time.perf_counter() - t0
    tail = (r.stdout.strip().splitlines() or [""])[-1]
    m = re.search(r"(\d+) passed", tail)
    passed = int(m.group(1)) if m else 0
    return {
        "case": f"{count} tests, own server each, pytest -n 2",
        "tests": count,
        "passed": passed,
        "wall_s": round(wall, 2),
        "per_test_ms": round(wall * 1000 / count, 1),
        "ok": r.returncode == 0 and passed == count,
        "summary": tail,
    }


def suite(quick: bool) -> dict[str, Any]:
    """Run the benchmark; returns title, rows and a markdown table."""
    rows = _in_process(20 if quick else 100)
    xd = _xdist(50 if quick else 200)
    lines = [
        "| case | runs | median ms | p95 ms | max ms | target | ok |",
        "| --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['runs']} | {r['median_ms']} | {r['p95_ms']} | {r['max_ms']} | "
            f"≤ {r['target_ms']:g} ms | {'yes' if r['ok'] else 'NO'} |"
        )
    lines += [
        "",
        "| case | passed | wall s | per test ms | no clashes |",
        "| --- | ---: | ---: | ---: | :---: |",
        f"| {xd['case']} | {xd['passed']}/{xd['tests']} | {xd['wall_s']} | {xd['per_test_ms']} | "
        f"{'yes' if xd['ok'] else 'NO'} |",
    ]
    return {
        "title": "postroom.Server start/stop and a server per test under pytest-xdist",
        "rows": [*rows, xd],
        "markdown": "\n".join(lines),
    }


if __name__ == "__main__":
    print(suite("--quick" in sys.argv)["markdown"])
