"""Per-test cost of postroom's ``mail`` fixture against the lightest peers, and pytest start-up.

  make bench ARGS="fixture"            # 3 alternating rounds of 200 tests per tool
  make bench ARGS="fixture --quick"    # 2 rounds of 50

The same test, 200 times, with each tool's per-test SMTP server: send one message with
smtplib, then check it arrived (its subject):

* postroom -- the ``mail`` fixture (a fresh in-process server per test), ``mail.wait_for``;
* smtpdfix 0.5.3 -- its ``smtpd`` fixture, ``smtpd.messages``;
* pytest-localserver 0.10.0.post0 -- its ``smtpserver`` fixture, ``smtpserver.outbox``;
* aiosmtpd 1.4.6 -- a ``Controller`` with a collecting ``handle_DATA``, as a function fixture.

Each run is its own pytest process with plugin autoloading off and only the tool's plugin
loaded (``-p``), in a virtualenv holding the three peers and this checkout of postroom
(``$PEERS_DIR/fixture-venv``, made on first use). A small timing plugin adds up the setup,
call and teardown durations pytest reports for each test (what ``--durations`` shows), so
the figure is the per-test cost, without the interpreter start. Tools alternate within each
round; the table gives the median over rounds.

pytest start-up: ``pytest --collect-only`` of an empty directory, with no plugin and with
each tool's plugin loaded, alternating, N rounds: what a plugin adds to every pytest start
(and to every xdist worker). "Added" is the median over rounds of each run's time minus the
plugin-less run of the same round (paired: the load of a shared machine changes between
rounds more than within one), in wall time and in the CPU time of the pytest process (user +
system, which another process's load inflates much less).
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

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", Path.home() / ".cache" / "postroom-peers"))
VENV = PEERS_DIR / "fixture-venv"
PEERS = ["smtpdfix==0.5.3", "pytest-localserver==0.10.0.post0", "aiosmtpd==1.4.6", "pytest>=8"]

SEND = """
import smtplib

def send(host, port, i):
    with smtplib.SMTP(host, port) as c:
        c.sendmail("app@example.com", [f"user{i}@example.com"], f"Subject: n{i}\\r\\n\\r\\nhello\\r\\n".encode())
"""

TESTS = {
    "postroom": (
        "postroom.testing.plugin",
        """
import pytest
from sendhelper import send

@pytest.mark.parametrize("i", range(N))
def test_one(mail, i):
    send(mail.host, mail.smtp_port, i)
    assert mail.wait_for(to=f"user{i}@example.com").subject == f"n{i}"
""",
    ),
    "smtpdfix": (
        "smtpdfix.fixture",
        """
import pytest
from sendhelper import send

@pytest.mark.parametrize("i", range(N))
def test_one(smtpd, i):
    send(smtpd.hostname, smtpd.port, i)
    assert smtpd.messages[0]["Subject"] == f"n{i}"
""",
    ),
    "pytest-localserver": (
        "pytest_localserver.plugin",
        """
import pytest
from sendhelper import send

@pytest.mark.parametrize("i", range(N))
def test_one(smtpserver, i):
    host, port = smtpserver.addr
    send(host, port, i)
    assert smtpserver.outbox[0]["Subject"] == f"n{i}"
""",
    ),
    "aiosmtpd Controller": (
        "",
        """
import email
import socket
import pytest
from aiosmtpd.controller import Controller
from sendhelper import send

class Collect:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

@pytest.fixture
def smtp():
    with socket.socket() as s:  # a free port (Controller checks readiness by connecting)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, handler
    controller.stop()

@pytest.mark.parametrize("i", range(N))
def test_one(smtp, i):
    controller, handler = smtp
    send(controller.hostname, controller.port, i)
    assert handler.messages[0]["Subject"] == f"n{i}"
""",
    ),
}

TIMER = """
import json, os

_phases = {"setup": 0.0, "call": 0.0, "teardown": 0.0}
_per_test = {}
_failed = []

def pytest_runtest_logreport(report):
    _phases[report.when] += report.duration
    _per_test[report.nodeid] = _per_test.get(report.nodeid, 0.0) + report.duration
    if report.failed:
        _failed.append(report.nodeid)

def pytest_sessionfinish(session):
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump({"phases": _phases, "tests": len(_per_test), "per_test": list(_per_test.values()),
                   "failed": _failed}, f)
"""

SHARED_TEST = """
import pytest
from sendhelper import send

@pytest.mark.parametrize("i", range(N))
def test_one(mail, i):
    to = mail.unique_address(f"user{i}")
    import smtplib
    with smtplib.SMTP(mail.host, mail.smtp_port) as c:
        c.sendmail("app@example.com", [to], f"Subject: n{i}\\r\\n\\r\\nhello\\r\\n".encode())
    assert mail.wait_for(to=to).subject == f"n{i}"
    mail.assert_received(count=1)
"""


def _python() -> str:
    return str(VENV / "bin" / "python")


def ensure_venv() -> None:
    """The peers' virtualenv, with this checkout of postroom installed (editable)."""
    py = _python()
    if not Path(py).exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = "import smtpdfix, pytest_localserver, aiosmtpd, postroom; print(postroom.__file__)"
    found = subprocess.run([py, "-c", probe], capture_output=True, text=True)
    if found.returncode != 0 or not found.stdout.strip().startswith(str(ROOT)):
        subprocess.run([py, "-m", "pip", "install", "-q", *PEERS, "-e", str(ROOT)], check=True)


def _env(out: Path) -> dict[str, str]:
    return {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "BENCH_OUT": str(out), "CI": ""}


def run_tests(tool: str, n: int, work: Path, extra: list[str] | None = None) -> dict[str, Any]:
    plugin, body = TESTS[tool] if extra is None else ("postroom.testing.plugin", SHARED_TEST)
    d = work / (tool.replace(" ", "_") + ("-shared" if extra else ""))
    d.mkdir(exist_ok=True)
    (d / "sendhelper.py").write_text(SEND)
    (d / "bench_timer.py").write_text(TIMER)
    (d / "test_bench.py").write_text(f"N = {n}\n" + body)
    out = d / "result.json"
    args = [_python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_timer"]
    if plugin:
        args += ["-p", plugin]
    started = time.perf_counter()
    proc = subprocess.run(
        [*args, *(extra or []), "test_bench.py"], cwd=d, env=_env(out), capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{tool}: pytest failed\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall"] = wall
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_shared(stored: int) -> tuple[subprocess.Popen[bytes], list[str]]:
    """A `postroom serve` holding ``stored`` messages; the pytest options that use it."""
    import smtplib

    smtp, http = _free_port(), _free_port()
    proc = subprocess.Popen(  # stopped by the caller (suite's finally), or below when filling fails
        [_python(), "-m", "postroom", "serve", "--db", ":memory:", "--smtp", f"127.0.0.1:{smtp}",
         "--http", f"127.0.0.1:{http}", "--pop3", "off", "--imap", "off", "--smtp-workers", "0", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        subprocess.run(
            [
                _python(),
                "-m",
                "postroom",
                "readyz",
                "--http",
                f"127.0.0.1:{http}",
                "--wait",
                "--timeout",
                "60",
            ],
            check=True,
        )
        for _ in range(100):  # readyz answers once HTTP does; SMTP is a moment behind at most
            try:
                smtplib.SMTP("127.0.0.1", smtp).quit()
                break
            except OSError:
                time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", smtp) as c:
            for i in range(stored):
                c.sendmail(
                    "old@example.com", [f"old{i % 50}@example.com"], f"Subject: old {i}\r\n\r\nx\r\n".encode()
                )
        # measure once the server is idle: every stored message indexed
        from postroom.testing import Client

        client = Client(f"http://127.0.0.1:{http}")
        deadline = time.monotonic() + 600
        while stored and time.monotonic() < deadline:
            page = client._json("GET", "/api/v1/search", {"query": "old", "limit": 1})
            if int(page.get("messages_count", 0)) >= stored:
                break
            time.sleep(0.5)
    except BaseException:
        proc.terminate()
        proc.wait(30)
        raise
    return proc, [f"--postroom-url=http://127.0.0.1:{http}", f"--postroom-smtp-port={smtp}"]


def pytest_start(plugin: str, work: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one ``pytest --collect-only`` run."""
    import resource

    d = work / "empty"
    d.mkdir(exist_ok=True)
    args = [_python(), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    if plugin:
        args += ["-p", plugin]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, cwd=d, env=env, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def suite(quick: bool) -> dict[str, Any]:
    ensure_venv()
    n = 50 if quick else 200
    rounds = 2 if quick else 3
    starts_n = 6 if quick else 25
    load_before = _load()
    per_test: dict[str, list[float]] = {t: [] for t in TESTS}
    phases: dict[str, list[dict[str, float]]] = {t: [] for t in TESTS}
    with tempfile.TemporaryDirectory(prefix="postroom-fixture-bench-") as tmp:
        work = Path(tmp)
        for t in TESTS:  # warm-up: bytecode caches, the page cache
            run_tests(t, 5, work)
        for r in range(rounds):
            order = list(TESTS) if r % 2 == 0 else list(reversed(TESTS))
            for t in order:
                res = run_tests(t, n, work)
                if res["failed"] or res["tests"] != n:
                    raise RuntimeError(f"{t}: {res['failed'][:3]} failed of {res['tests']}")
                per_test[t].append(statistics.median(res["per_test"]) * 1000)
                phases[t].append({k: v / n * 1000 for k, v in res["phases"].items()})
        shared: dict[str, list[float]] = {"empty": [], "5,000 stored": []}
        servers: dict[str, tuple[subprocess.Popen[bytes], list[str]]] = {}
        try:
            servers["empty"] = start_shared(0)
            servers["5,000 stored"] = start_shared(5000)
            for r in range(rounds):
                for name in list(servers) if r % 2 == 0 else list(reversed(servers)):
                    res = run_tests("postroom", n, work, servers[name][1])
                    if res["failed"] or res["tests"] != n:
                        raise RuntimeError(f"shared {name}: {res['failed'][:3]} failed of {res['tests']}")
                    shared[name].append(statistics.median(res["per_test"]) * 1000)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
        start_plugins = {"no plugin": "", **{t: p for t, (p, _) in TESTS.items() if p}}
        starts: dict[str, list[float]] = {k: [] for k in start_plugins}
        cpu: dict[str, list[float]] = {k: [] for k in start_plugins}
        for r in range(starts_n):
            for name in list(start_plugins) if r % 2 == 0 else list(reversed(start_plugins)):
                wall_s, cpu_s = pytest_start(start_plugins[name], work)
                starts[name].append(wall_s * 1000)
                cpu[name].append(cpu_s * 1000)
    load_after = _load()
    rows = []
    for t in TESTS:
        med = statistics.median(per_test[t])
        split = {k: statistics.median(p[k] for p in phases[t]) for k in ("setup", "call", "teardown")}
        rows.append(
            {
                "tool": t,
                "per_test_ms": round(med, 2),
                "setup_ms": round(split["setup"], 2),
                "call_ms": round(split["call"], 2),
                "teardown_ms": round(split["teardown"], 2),
                "rounds_ms": [round(x, 2) for x in per_test[t]],
            }
        )

    def added(runs: dict[str, list[float]], k: str) -> float:  # paired with the same round's
        return statistics.median(a - b for a, b in zip(runs[k], runs["no plugin"], strict=True))

    start_rows = [
        {
            "plugin": k,
            "start_ms": round(statistics.median(v), 1),
            "added_ms": round(added(starts, k), 1),
            "cpu_ms": round(statistics.median(cpu[k]), 1),
            "added_cpu_ms": round(added(cpu, k), 1),
        }
        for k, v in starts.items()
    ]
    lightest = min((r for r in rows if r["tool"] != "postroom"), key=lambda r: r["per_test_ms"])
    ours = next(r for r in rows if r["tool"] == "postroom")
    lines = [
        f"{rounds} alternating rounds of {n} tests per tool (send one message, check it arrived); "
        f"load average {load_before} before, {load_after} after (a shared 2-core machine).",
        "",
        "Per test: the median over the run's tests of setup + call + teardown (the first test also "
        "pays the imports); setup, call and teardown: totals / tests.",
        "",
        "| tool | per test (median) | setup | call | teardown | each round |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        each = ", ".join(f"{x:.1f}" for x in r["rounds_ms"])
        lines.append(
            f"| {r['tool']} | {r['per_test_ms']:.2f} ms | {r['setup_ms']:.2f} | {r['call_ms']:.2f} "
            f"| {r['teardown_ms']:.2f} | {each} |"
        )
    lines += [
        "",
        f"postroom / lightest peer ({lightest['tool']}): {ours['per_test_ms'] / lightest['per_test_ms']:.2f}x",
        "",
        f"pytest start-up (`--collect-only` of an empty directory, {starts_n} alternating rounds; "
        "start: median; added: median of the differences to the same round's run without a plugin; "
        "CPU: user + system time of the pytest process):",
        "",
        "| plugin loaded | start | added | CPU | added CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['plugin']} | {r['start_ms']:.1f} ms | {r['added_ms']:+.1f} ms | {r['cpu_ms']:.1f} ms "
        f"| {r['added_cpu_ms']:+.1f} ms |"
        for r in start_rows
    ]
    empty, full = statistics.median(shared["empty"]), statistics.median(shared["5,000 stored"])
    lines += [
        "",
        f"A shared server (`--postroom-url`, `postroom serve --db :memory:` in its own process): the same "
        f"{n} tests, each sending to `mail.unique_address()` and checking `assert_received(count=1)`, "
        "against a server holding no mail and one holding 5,000 messages (alternating):",
        "",
        "| shared server | per test (median) | each round |",
        "| --- | --- | --- |",
        *(
            f"| {k} | {statistics.median(v):.2f} ms | {', '.join(f'{x:.1f}' for x in v)} |"
            for k, v in shared.items()
        ),
        "",
        f"5,000 stored / empty: {full / empty:.2f}x",
    ]
    start_rows += [
        {"plugin": f"shared {k}", "per_test_ms": round(statistics.median(v), 2)} for k, v in shared.items()
    ]
    return {
        "title": "Per-test cost of the pytest fixture, and pytest start-up",
        "rows": rows + start_rows,
        "markdown": "\n".join(lines),
    }


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print(suite(quick)["markdown"])
