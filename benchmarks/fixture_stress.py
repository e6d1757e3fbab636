"""Stress runs of the pytest plugin (issue 20, "done means"), through pytest as a user runs it.

  make bench ARGS="fixture-stress"          # 1,000 runs under load; 200 tests -n 2, 5,000 stored
  make bench ARGS="fixture-stress --quick"  # 200 runs; 200 tests -n 2, 1,000 stored
  .venv/bin/python benchmarks/fixture_stress.py --runs 30 --shared-tests 40 --stored 200

1. **Under load**: one pytest run of N tests, each with the ``mail`` fixture (a fresh
   in-process server per test, as a user gets it): send a message with a PDF attachment to
   its own address, ``msg = mail.wait_for(to=...)``, then ``assert_received("has:attachment")
   == [msg]`` and a full-text query that must find it, while two processes spin on the CPU
   (both cores busy). The bar: no test fails.
2. **Shared server under pytest-xdist**: ``postroom serve --db :memory:`` in its own process,
   holding M old messages, and ``pytest -n 2 --postroom-url=...``: 200 tests, each sending to
   ``mail.unique_address()`` and to a common address that every test uses (``team@``: the
   other worker's and the earlier tests' mail arrives during each test), then asserting that
   it sees exactly its own message (``assert_received(count=1)``, ``len(messages()) == 1``).
   The bar: all pass.

Each run prints (and ``make bench`` saves) the test count, failures (with the first
failure's text), wall time and the median per-test cost. pytest runs in this checkout's
virtualenv (pytest-xdist is a test dependency), plugin autoloading off, the plugins named.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fixture_bench  # noqa: E402  (the shared-server helper and the timing plugin)

SPIN = "while True: pass"

LOAD_TEST = """
import smtplib
from email.message import EmailMessage

import pytest


@pytest.mark.parametrize("i", range(N))
def test_attachment_is_found_at_once(mail, i):
    to = f"user{i}@example.com"
    m = EmailMessage()
    m["From"] = "app@example.com"
    m["To"] = to
    m["Subject"] = f"Invoice {i}"
    m.set_content("Your invoice is attached.\\n" + "lorem ipsum dolor sit amet\\n" * 200)
    m.add_attachment(b"%PDF-1.4 " * 500, maintype="application", subtype="pdf", filename="invoice.pdf")
    with smtplib.SMTP(mail.host, mail.smtp_port) as c:
        c.send_message(m)
    msg = mail.wait_for(to=to)
    assert mail.assert_received("has:attachment") == [msg]
    assert mail.messages("invoice lorem") == [msg]
"""

SHARED_TEST = """
import smtplib

import pytest


@pytest.mark.parametrize("i", range(N))
def test_sees_only_its_own_mail(mail, i):
    mine = mail.unique_address(f"user{i}")
    with smtplib.SMTP(mail.host, mail.smtp_port) as c:
        c.sendmail("app@example.com", [mine], f"Subject: mine {i}\\r\\n\\r\\nhello\\r\\n".encode())
        c.sendmail("app@example.com", ["team@example.com"], f"Subject: team {i}\\r\\n\\r\\nx\\r\\n".encode())
    assert mail.wait_for(to=mine).subject == f"mine {i}"
    assert [m.subject for m in mail.assert_received(count=1)] == [f"mine {i}"]
    assert len(mail.messages()) == 1
"""

# the timing plugin of fixture_bench, writing its file from the xdist controller only
TIMER = fixture_bench.TIMER.replace(
    "def pytest_sessionfinish(session):\n",
    "def pytest_sessionfinish(session):\n    if hasattr(session.config, 'workerinput'):\n        return\n",
)


def _run(body: str, n: int, work: Path, name: str, extra: list[str]) -> dict[str, Any]:
    d = work / name
    d.mkdir(exist_ok=True)
    (d / "stress_timer.py").write_text(TIMER)
    (d / "test_stress.py").write_text(f"N = {n}\n" + body)
    out = d / "result.json"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "BENCH_OUT": str(out), "CI": ""}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "stress_timer"]
    args += ["-p", "postroom.testing.plugin", *extra, "test_stress.py"]
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if not out.exists():
        raise RuntimeError(f"{name}: pytest did not finish\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    res: dict[str, Any] = json.loads(out.read_text())
    first = ""
    if res["failed"]:  # the first failure's own lines, from pytest's summary
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("E ", "FAILED"))]
        first = " / ".join(lines[:4])[:600]
    return {
        "name": name,
        "tests": res["tests"],
        "failed": len(res["failed"]),
        "first_failure": first,
        "wall_s": round(wall, 1),
        "per_test_ms": round(statistics.median(res["per_test"]) * 1000, 2) if res["per_test"] else None,
    }


def under_load(runs: int, work: Path) -> dict[str, Any]:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)]
    try:
        return _run(LOAD_TEST, runs, work, "under-load", ["-p", "no:xdist"])
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def shared_xdist(tests: int, stored: int, work: Path) -> dict[str, Any]:
    fixture_bench._python = lambda: sys.executable  # postroom serve from this virtualenv
    proc, options = fixture_bench.start_shared(stored)
    try:
        return _run(SHARED_TEST, tests, work, "shared-n2", ["-p", "xdist.plugin", "-n", "2", *options])
    finally:
        proc.terminate()
        proc.wait(30)


def suite(
    quick: bool, runs: int | None = None, shared_tests: int = 200, stored: int | None = None
) -> dict[str, Any]:
    runs = runs or (200 if quick else 1000)
    stored = (1000 if quick else 5000) if stored is None else stored
    with tempfile.TemporaryDirectory(prefix="postroom-fixture-stress-") as tmp:
        work = Path(tmp)
        load = under_load(runs, work)
        shared = shared_xdist(shared_tests, stored, work)
    rows = [
        {"run": f"{runs:,} tests, `mail` fixture, both cores busy", **load},
        {
            "run": f"{shared_tests} tests, `pytest -n 2`, one shared server holding {stored:,} messages",
            **shared,
        },
    ]
    lines = [
        "Stress runs of the pytest plugin (issue 20): send with an attachment, `wait_for(to=...)`, "
        "`assert_received('has:attachment')` and a full-text query under CPU load; and isolation of "
        "tests sharing one server under pytest-xdist.",
        "",
        "| run | tests | failed | wall | per test (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['tests']} | {r['failed']} | {r['wall_s']:.1f} s | {r['per_test_ms']} ms |"
        )
    for r in rows:
        if r["failed"]:
            lines += ["", f"First failure ({r['name']}): {r['first_failure']}"]
    return {"title": "Stress runs of the pytest fixture", "rows": rows, "markdown": "\n".join(lines)}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--runs", type=int, default=None, help="tests under load (default 1,000; 200 with --quick)"
    )
    ap.add_argument("--shared-tests", type=int, default=200, help="tests under -n 2 (default 200)")
    ap.add_argument("--stored", type=int, default=None, help="messages on the shared server (default 5,000)")
    a = ap.parse_args()
    result = suite(a.quick, a.runs, a.shared_tests, a.stored)
    print(result["markdown"])
    sys.exit(1 if any(r["failed"] for r in result["rows"]) else 0)
