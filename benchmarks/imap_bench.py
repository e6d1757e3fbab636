"""IMAP on a 10,000-message mailbox: postroom vs Dovecot, side by side in one run.

Both servers get the same generated messages by pipelined APPEND (not timed). Then, on
each server, the median of several runs of: ``FETCH 1:* (UID FLAGS ENVELOPE)``,
``SEARCH TEXT`` (a word in 1% of the messages) and ``UID FETCH n BODY.PEEK[]`` for 200
random messages. postroom runs as its own process (``postroom serve``), like Dovecot.

  python benchmarks/run.py imap [--quick]
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402
from tests.integration.imap_wire import Wire  # noqa: E402

DOVECOT_UP = Path("/work/shared/tools/dovecot-up.sh")
WORDS = [
    "order",
    "invoice",
    "shipping",
    "account",
    "password",
    "reset",
    "welcome",
    "team",
    "update",
    "report",
    "weekly",
    "summary",
]


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


def timed(fn: Any, runs: int) -> tuple[float, float]:
    """(first run, median of the rest) in milliseconds."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times[0], statistics.median(times[1:] or times)


def measure(w: Wire, folder: str, n: int, runs: int) -> dict[str, tuple[float, float]]:
    w.ok(f"EXAMINE {folder}")
    uids = [int(x) for x in w.ok("UID SEARCH ALL")[0].split()[2:]]
    rng = random.Random(1)
    picks = [rng.choice(uids) for _ in range(200)]

    def fetch_all() -> None:
        lines = w.ok("FETCH 1:* (UID FLAGS ENVELOPE)")
        assert len(lines) == n, len(lines)

    def search() -> None:
        [line] = [x for x in w.ok('SEARCH TEXT "zanzibar"') if x.startswith(b"* SEARCH")]
        assert len(line.split()) - 2 == n // 100, line[:80]

    def bodies() -> None:
        for u in picks:
            w.ok(f"UID FETCH {u} BODY.PEEK[]")

    return {
        "FETCH 1:* (UID FLAGS ENVELOPE)": timed(fetch_all, runs),
        'SEARCH TEXT "zanzibar"': timed(search, runs),
        "UID FETCH n BODY.PEEK[] x200": timed(bodies, runs),
    }


def start_postroom(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "postroom",
        "serve",
        "--imap",
        f"127.0.0.1:{port}",
        "--smtp",
        "off",
        "--http",
        "off",
        "--pop3",
        "off",
        "--db",
        str(tmp / "bench.db"),
        "--max",
        "0",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    for _ in range(200):
        try:
            Wire("127.0.0.1", port, timeout=5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("postroom did not start")


def start_dovecot() -> tuple[Path, int]:
    base = Path("/tmp") / f"postroom-bench-dovecot-{uuid.uuid4().hex[:6]}"
    base.mkdir(mode=0o755)
    port = free_port()
    subprocess.run(["sh", str(DOVECOT_UP), str(base), str(port), str(free_port())], check=True)
    for _ in range(100):
        try:
            Wire("127.0.0.1", port, timeout=5).close()
            break
        except OSError:
            time.sleep(0.05)
    return base, port


def suite(quick: bool) -> dict[str, Any]:
    n = 1000 if quick else 10_000
    runs = 3 if quick else 5
    msgs = messages(n)
    results: dict[str, dict[str, tuple[float, float]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="postroom-imap-bench-"))
    proc, pport = start_postroom(tmp)
    dbase, dport = start_dovecot()
    try:
        for name, port, user in (
            ("postroom", pport, "alice@example.org"),
            ("dovecot", dport, "alice@example.org"),
        ):
            with Wire("127.0.0.1", port, timeout=600) as w:
                w.ok(f"LOGIN {user} secret")
                folder = "bench" + uuid.uuid4().hex[:6]
                load(w, folder, msgs)
                results[name] = measure(w, folder, n, runs)
    finally:
        proc.terminate()
        proc.wait(30)
        subprocess.run(["doveadm", "-c", str(dbase / "dovecot.conf"), "stop"], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    lines = [
        f"{n:,} messages in one folder; milliseconds; median of {runs - 1} warm runs (first run in brackets).",
        "",
        "| operation | postroom | Dovecot | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for op in results["postroom"]:
        p_first, p = results["postroom"][op]
        d_first, d = results["dovecot"][op]
        ratio = p / d if d else float("inf")
        rows.append(
            {
                "operation": op,
                "postroom_ms": round(p, 1),
                "postroom_first_ms": round(p_first, 1),
                "dovecot_ms": round(d, 1),
                "dovecot_first_ms": round(d_first, 1),
                "ratio": round(ratio, 2),
            }
        )
        lines.append(f"| `{op}` | {p:.1f} ({p_first:.0f}) | {d:.1f} ({d_first:.0f}) | {ratio:.2f}x |")
    return {"title": "IMAP: postroom vs Dovecot", "rows": rows, "markdown": "\n".join(lines)}


if __name__ == "__main__":
    print(suite("--quick" in sys.argv)["markdown"])
