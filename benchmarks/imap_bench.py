"""IMAP on a 10,000-message mailbox: postroom vs Dovecot, side by side in one run.

Both servers get the same generated messages by pipelined APPEND (not timed); postroom
runs as its own process (``postroom serve``), like Dovecot. Three operations:
``FETCH 1:* (UID FLAGS ENVELOPE)``, ``SEARCH TEXT`` (a word in 1% of the messages) and
``UID FETCH n BODY.PEEK[]`` for 200 random messages, each measured three ways:

* **warm**: the median of several runs on a connection that has run it before;
* **after restart**: both servers are stopped and started again (same data), then the
  operation runs once on a new connection; repeated for each operation on its own
  restart, over several rounds (median). Dovecot keeps its index and cache files on
  disk; postroom keeps its IMAP cache in the database, so this is what a client sees
  after a server restart;
* **first ever**: the first run right after the messages arrived, before either server
  has parsed them for IMAP (both pay their parsing cost here).

The machine is shared: postroom and Dovecot runs alternate, so load hits both alike, and
the load average is reported with the figures.

  python benchmarks/run.py imap [--quick]
  python benchmarks/imap_bench.py [--quick] [--n N] [--rounds R] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402
from tests.integration.imap_wire import _LITERAL, Wire  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import VOCAB  # noqa: E402

DOVECOT_UP = Path(__file__).resolve().parents[1] / "scripts" / "dovecot-up.sh"
USER = "alice@example.org"
SETTLE = 1.0  # seconds to let a restarted server finish starting up before timing it
WORDS = VOCAB[:12]  # the benchmark fixtures' vocabulary (fixtures.py)


def messages(n: int) -> list[bytes]:
    rng = random.Random(5)
    out = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(120))
        if i % 100 == 7:
            body += " zanzibar"
        out.append(
            (
                f"From: Shop {i % 50} <shop{i % 50}@example.com>\r\nTo: Alice <alice@example.org>\r\n"
                f"Cc: team{i % 7}@example.org\r\nSubject: Your order {i} has shipped\r\n"
                f"Date: Mon, 02 Nov 2026 12:{i % 60:02d}:00 +0000\r\nMessage-ID: <b{i}@example.com>\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            ).encode()
        )
    return out


def load(w: Wire, folder: str, msgs: list[bytes]) -> None:
    w.ok(f"CREATE {folder}")
    for start in range(0, len(msgs), 200):
        batch = msgs[start : start + 200]
        tags = []
        data = []
        for m in batch:
            t = w.tag()
            tags.append(t)
            data.append(f"{t} APPEND {folder} {{{len(m)}+}}\r\n".encode() + m + b"\r\n")
        w.send(b"".join(data))
        for t in tags:
            last = w.read_until(t)[-1]
            assert b" OK " in last, last


class FastWire(Wire):
    """:class:`Wire` with a reader that does not copy its buffer once per line (reading a
    10,000-line FETCH response with Wire costs the client tens of milliseconds, which
    would be added to both servers' times and pull every ratio towards 1)."""

    def __init__(self, host: str, port: int, *, timeout: float = 600) -> None:
        self.fbuf = bytearray()
        self.pos = 0
        super().__init__(host, port, timeout=timeout)  # reads the greeting with read_line

    def _more(self) -> None:
        if self.pos > (1 << 20):
            del self.fbuf[: self.pos]
            self.pos = 0
        data = self.sock.recv(1 << 18)
        if not data:
            raise ConnectionError("server closed the connection")
        self.fbuf += data

    def read_line(self) -> bytes:
        out = b""
        while True:
            idx = self.fbuf.find(b"\r\n", self.pos)
            if idx < 0:
                self._more()
                continue
            line = bytes(self.fbuf[self.pos : idx + 2])
            self.pos = idx + 2
            out += line
            m = _LITERAL.search(line) if line.endswith(b"}\r\n") else None
            if m is None:
                return out
            size = int(m.group(1))
            while len(self.fbuf) - self.pos < size:
                self._more()
            out += self.fbuf[self.pos : self.pos + size]
            self.pos += size


# -- the servers --------------------------------------------------------------------------------
def _wait_port(port: int, up: bool, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            Wire("127.0.0.1", port, timeout=5).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not come {'up' if up else 'down'}")


class Postroom:
    name = "postroom"

    def __init__(self, tmp: Path, http: bool = False, src: Path | None = None, db: str = "bench.db") -> None:
        self.db = tmp / db
        self.src = src or ROOT / "src"  # another build's source tree (imap-stress-ab)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.http_port = free_port() if http else 0  # the HTTP API too (imap-scale's fill)

    def start(self) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "postroom", "serve", "--imap", f"127.0.0.1:{self.port}"]
        cmd += [
            "--smtp",
            "off",
            "--http",
            f"127.0.0.1:{self.http_port}" if self.http_port else "off",
            "--pop3",
            "off",
            "--db",
            str(self.db),
            "--max",
            "0",
            "--quiet",
        ]
        env = {**os.environ, "PYTHONPATH": str(self.src)}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        try:
            _wait_port(self.port, up=True)
        except RuntimeError:
            self.proc.kill()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None


class Dovecot:
    name = "dovecot"

    def __init__(self) -> None:
        self.base = Path("/tmp") / f"postroom-bench-dovecot-{uuid.uuid4().hex[:6]}"
        self.base.mkdir(mode=0o755)
        self.port = free_port()
        self.conf = self.base / "dovecot.conf"
        self.running = False

    def start(self) -> None:
        if not self.conf.exists():
            subprocess.run(
                ["sh", str(DOVECOT_UP), str(self.base), str(self.port), str(free_port())], check=True
            )
        else:
            subprocess.run(["dovecot", "-c", str(self.conf)], check=True)
        self.running = True
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.running:
            subprocess.run(["doveadm", "-c", str(self.conf), "stop"], check=False)
            self.running = False
            _wait_port(self.port, up=False)
            # the master is gone once its pid file is (a new one must not find the old one)
            end = time.monotonic() + 10
            while (self.base / "run" / "master.pid").exists() and time.monotonic() < end:
                time.sleep(0.05)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def server_pair(prefix: str, http: bool = False) -> Iterator[tuple[Path, Postroom, Dovecot]]:
    """A scratch folder (``prefix`` names it), a postroom with its database there (and its
    HTTP API on with ``http``) and a Dovecot, neither started yet; on the way out both are
    stopped and their files removed. Every IMAP benchmark (imap, imap-scale, imap-stress)
    runs inside one."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    postroom = Postroom(tmp, http)
    dovecot = Dovecot()
    try:
        yield tmp, postroom, dovecot
    finally:
        postroom.stop()
        dovecot.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        dovecot.remove()


def load_average() -> str:
    """The 1/5/15-minute load averages as ``a/b/c`` (reported with the figures)."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def emit(result: dict[str, Any], json_path: Path | None, raw: Any = None) -> None:
    """Prints a suite's markdown table; with ``--json``, writes ``raw`` (default: its rows)."""
    print(result["markdown"])
    if json_path:
        json_path.write_text(json.dumps(result["rows"] if raw is None else raw, indent=1) + "\n")


# -- the operations -------------------------------------------------------------------------------
Op = Callable[[Wire], None]


def operations(n: int, uids: list[int]) -> dict[str, Op]:
    rng = random.Random(1)
    picks = [rng.choice(uids) for _ in range(200)]

    def fetch_all(w: Wire) -> None:
        lines = w.ok("FETCH 1:* (UID FLAGS ENVELOPE)")
        assert len(lines) == n, len(lines)

    def search(w: Wire) -> None:
        [line] = [x for x in w.ok('SEARCH TEXT "zanzibar"') if x.startswith(b"* SEARCH")]
        assert len(line.split()) - 2 == n // 100, line[:80]

    def bodies(w: Wire) -> None:
        for u in picks:
            lines = w.ok(f"UID FETCH {u} BODY.PEEK[]")
            assert len(lines) == 1 and b"BODY[] {" in lines[0], lines[:1]

    return {
        "FETCH 1:* (UID FLAGS ENVELOPE)": fetch_all,
        'SEARCH TEXT "zanzibar"': search,
        "UID FETCH n BODY.PEEK[] x200": bodies,
    }


def timed(fn: Op, w: Wire) -> float:
    t0 = time.perf_counter()
    fn(w)
    return (time.perf_counter() - t0) * 1000


def session(port: int, folder: str) -> Wire:
    w = FastWire("127.0.0.1", port, timeout=600)
    w.ok(f"LOGIN {USER} secret")
    w.ok(f"EXAMINE {folder}")
    return w


def suite(quick: bool, n: int | None = None, rounds: int | None = None) -> dict[str, Any]:
    n = n or (1000 if quick else 10_000)
    runs = 3 if quick else 7
    rounds = rounds or (1 if quick else 3)
    msgs = messages(n)
    folder = "bench" + uuid.uuid4().hex[:6]
    # results[server][op] = {"first": ms, "warm": [ms...], "restart": [ms...]}
    res: dict[str, dict[str, dict[str, Any]]] = {"postroom": {}, "dovecot": {}}
    loads = []
    with server_pair("postroom-imap-bench-") as (_, postroom, dovecot):
        servers: list[Postroom | Dovecot] = [postroom, dovecot]
        for s in servers:
            s.start()
            with Wire("127.0.0.1", s.port, timeout=600) as w:
                w.ok(f"LOGIN {USER} secret")
                load(w, folder, msgs)
        time.sleep(SETTLE * 3)  # postroom's indexer catches up on the new mail
        loads.append(load_average())
        conns = {s.name: session(s.port, folder) for s in servers}
        uids = {name: [int(x) for x in w.ok("UID SEARCH ALL")[0].split()[2:]] for name, w in conns.items()}
        ops = {name: operations(n, u) for name, u in uids.items()}
        names = list(ops["postroom"])
        # first ever, then warm: alternate the servers so that load hits both alike
        for op in names:
            for s in servers:
                res[s.name][op] = {"first": timed(ops[s.name][op], conns[s.name]), "warm": [], "restart": []}
        for r in range(runs):
            for op in names:
                for s in servers if r % 2 else servers[::-1]:
                    res[s.name][op]["warm"].append(timed(ops[s.name][op], conns[s.name]))
        for w in conns.values():
            w.close()
        loads.append(load_average())
        # after a restart: each operation on freshly started servers
        for r in range(rounds):
            for op in names:
                for s in servers:
                    s.stop()
                for s in servers:
                    s.start()
                time.sleep(SETTLE)
                for s in servers if r % 2 else servers[::-1]:
                    with session(s.port, folder) as w:
                        res[s.name][op]["restart"].append(timed(ops[s.name][op], w))
        loads.append(load_average())
    return _report(n, runs, rounds, res, loads)


def _report(
    n: int, runs: int, rounds: int, res: dict[str, dict[str, dict[str, Any]]], loads: list[str]
) -> dict[str, Any]:
    rows = []
    lines = [
        f"{n:,} messages in one folder; milliseconds. **warm**: median of {runs} runs on a connection "
        f"that ran the command before; **after restart**: both servers restarted, then the command "
        f"once on a new connection (median of {rounds} restart{'s' if rounds > 1 else ''}); "
        "**first ever**: the first run after the messages arrived (nothing parsed yet). "
        "postroom and Dovecot runs alternate. Load average (1/5/15 min) at the start of each "
        f"phase: {', '.join(loads)} on 2 cores.",
        "",
        "| operation | warm: postroom | Dovecot | ratio | after restart: postroom | Dovecot | ratio "
        "| first ever: postroom | Dovecot | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for op, p in res["postroom"].items():
        d = res["dovecot"][op]
        row: dict[str, Any] = {"operation": op}
        cells = [f"`{op}`"]
        for phase in ("warm", "restart", "first"):
            pv = statistics.median(p[phase]) if phase != "first" else p[phase]
            dv = statistics.median(d[phase]) if phase != "first" else d[phase]
            ratio = pv / dv if dv else float("inf")
            row[f"postroom_{phase}_ms"] = round(pv, 1)
            row[f"dovecot_{phase}_ms"] = round(dv, 1)
            row[f"{phase}_ratio"] = round(ratio, 2)
            if phase != "first":
                row[f"postroom_{phase}_all"] = [round(x, 1) for x in p[phase]]
                row[f"dovecot_{phase}_all"] = [round(x, 1) for x in d[phase]]
            cells += [f"{pv:.1f}", f"{dv:.1f}", f"**{ratio:.2f}x**" if phase != "first" else f"{ratio:.2f}x"]
        rows.append(row)
        lines.append("| " + " | ".join(cells) + " |")
    return {"title": "IMAP: postroom vs Dovecot", "rows": rows, "markdown": "\n".join(lines), "loads": loads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, help="messages (default 10,000; 1,000 with --quick)")
    ap.add_argument("--rounds", type=int, help="restart rounds (default 3; 1 with --quick)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    a = ap.parse_args()
    emit(suite(a.quick, a.n, a.rounds), a.json)


if __name__ == "__main__":
    socket.setdefaulttimeout(600)
    main()
