"""Soak test: mixed good and hostile traffic on every protocol, then no acknowledged mail lost.

Starts a real ``postroom serve`` (default settings: two SMTP worker processes, the indexer
process) on free loopback ports with a fresh database in a temporary directory, and runs,
for ``--minutes`` minutes (default 10), threads that each loop until the time is up:

- ordinary mail: SMTP senders of plain and HTML messages, each with a unique Message-ID,
  every 250 remembered; readers of those messages through the HTTP API, POP3 and IMAP;
- hostile traffic: SMTP garbage, NUL bytes and overlong lines, a client trickling a byte
  every 3 s, DATA over the size limit, MIME bombs (deep nesting, thousands of parts,
  50,000 encoded words), the 90-byte HTML of issue 14 item 1; HTTP garbage, an overlong
  request line, a trickled request, the odd queries of issue 14 item 8, a JSON body of
  100,000 ``[``, ``DELETE /api/v1/search?query=%00``; POP3 and IMAP garbage, overlong
  lines, trickles, and an IMAP ``APPEND {52428800}`` before login.

Every few seconds it samples the proportional and resident set sizes (PSS and RSS, from
/proc/PID/smaps_rollup) of the server's whole process tree. At the end it checks, through the
API, that every Message-ID that got a 250 is stored (then again after a restart), that no
request for an ordinary message took more than 2 s (SMTP transaction, API read, POP3 RETR,
IMAP FETCH), and that the PSS stayed under ``--max-pss-mb``. It prints the three results
(acknowledged against stored, the memory peaks, the ordinary requests over 2 s) and the
whole summary as JSON (also to ``--out``), and exits non-zero if a check failed.

Loopback only; bounded in what it sends and in time: the traffic stops after ``--minutes``,
and a watchdog ends the run (killing the server it started, exit status 3) if the checks
after it have not finished :data:`CHECK_GRACE` seconds later. The traffic itself is
``benchmarks/soak_traffic.py``. ``python benchmarks/soak.py
--minutes 1`` is a quick run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from procs import stop_group
from soak_traffic import ORDINARY_LIMIT, Server, Stats, actors, http_get

CHECK_GRACE = 300.0  # seconds after the traffic for stopping it, the checks and the restart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(db: Path, log: Path) -> Iterator[Server]:
    ports = [free_port() for _ in range(4)]
    cmd = [sys.executable, "-m", "postroom", "serve", "--db", str(db), "--max", "0",
           "--smtp", f"127.0.0.1:{ports[0]}", "--http", f"127.0.0.1:{ports[1]}",
           "--pop3", f"127.0.0.1:{ports[2]}", "--imap", f"127.0.0.1:{ports[3]}"]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        for port in ports:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"postroom exited at start (status {proc.returncode}); see {log}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"postroom did not open port {port}; see {log}") from None
                    time.sleep(0.1)
        yield Server(proc, *ports)
    finally:
        stop_group(proc, 30)


# -- checks -------------------------------------------------------------------------------


def stored_message_ids(srv: Server) -> set[str]:
    found: set[str] = set()
    start = 0
    while True:
        status, body = http_get(srv, f"/api/v1/messages?start={start}&limit=1000", timeout=120)
        if status != 200:
            raise SystemExit(f"listing messages failed with {status}")
        page = json.loads(body)
        found.update(m["MessageID"] for m in page["messages"])
        start += len(page["messages"])
        if not page["messages"] or start >= page["total"]:
            return found


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def memory_mb(samples_kb: list[int]) -> dict[str, float]:
    """First, peak and last of memory samples in kB, in MB."""
    if not samples_kb:
        return {"first": 0, "peak": 0, "last": 0, "samples": 0}
    first, peak, last = (round(kb / 1024, 1) for kb in (samples_kb[0], max(samples_kb), samples_kb[-1]))
    return {"first": first, "peak": peak, "last": last, "samples": len(samples_kb)}


def start_watchdog(seconds: float, servers: list[Server]) -> None:
    """End the whole run after ``seconds`` whatever it is doing: kill the servers it started
    (their process groups) and exit with status 3."""

    def bite() -> None:
        time.sleep(seconds)
        print(f"soak: not finished {seconds:.0f} s after its start; stopping", file=sys.stderr, flush=True)
        for srv in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(srv.proc.pid, signal.SIGKILL)
        os._exit(3)

    threading.Thread(target=bite, name="watchdog", daemon=True).start()


def report(
    st: Stats,
    lost: list[str],
    lost_after_restart: list[str],
    alive: bool,
    traffic_seconds: float,
    max_pss_mb: float,
) -> dict[str, Any]:
    """The run's summary (printed as JSON, and as :func:`headline`); ``ok`` says whether every
    check passed: nothing acknowledged lost (before or after a restart), the server alive, no
    ordinary request over :data:`ORDINARY_LIMIT`, the PSS under ``max_pss_mb``, no unexpected
    error."""
    summary: dict[str, Any] = {
        "duration_s": round(traffic_seconds, 1),
        "acknowledged": len(st.acked),
        "stored": len(st.acked) - len(lost),
        "lost": len(lost),
        "lost_examples": lost[:10],
        "lost_after_restart": len(lost_after_restart),
        "server_alive_at_end": alive,
        "ordinary_requests": st.ordinary,
        "ordinary_over_2s": len(st.slow),
        "ordinary_over_2s_examples": [(n, round(s, 2)) for n, s in st.slow[:10]],
        "latency_ms": {
            name: {
                "n": len(v),
                "p50": round(percentile(v, 0.5) * 1000, 1),
                "p99": round(percentile(v, 0.99) * 1000, 1),
                "max": round(max(v) * 1000, 1),
            }
            for name, v in sorted(st.latencies.items())
        },
        "pss_mb": memory_mb([kb for _, kb in st.pss]),
        "rss_mb": memory_mb([kb for _, kb in st.rss]),
        "counts": dict(sorted(st.counts.items())),
        "unexpected_errors": st.errors,
    }
    ok = (
        not lost
        and not lost_after_restart
        and alive
        and not st.slow
        and summary["pss_mb"]["peak"] <= max_pss_mb
        and len(st.acked) > 0
        and not st.errors
    )
    summary["ok"] = ok
    return summary


def headline(summary: dict[str, Any]) -> str:
    """The three results the soak is for, in words."""
    return "\n".join(
        [
            f"acknowledged (250) {summary['acknowledged']}, stored {summary['stored']}: "
            f"lost {summary['lost']} (after a restart: {summary['lost_after_restart']})",
            f"process tree memory: PSS max {summary['pss_mb']['peak']} MB, RSS max {summary['rss_mb']['peak']} MB "
            f"({summary['pss_mb']['samples']} samples)",
            f"ordinary requests over {ORDINARY_LIMIT:.0f} s: {summary['ordinary_over_2s']} of "
            f"{summary['ordinary_requests']}",
            "ok" if summary["ok"] else "FAILED",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=10, help="minutes of traffic (default 10)")
    ap.add_argument("--max-pss-mb", type=float, default=1024, help="PSS bound for the process tree")
    ap.add_argument("--out", type=Path, help="write the summary as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (database, log)")
    args = ap.parse_args(argv)
    if not 0 < args.minutes <= 120:
        ap.error("--minutes must be more than 0 and at most 120")
    duration = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="postroom-soak-"))
    servers: list[Server] = []
    start_watchdog(duration + CHECK_GRACE, servers)
    db, log = work / "soak.db", work / "server.log"
    st = Stats()
    stop = threading.Event()
    with serve(db, log) as srv:
        servers.append(srv)
        started = time.monotonic()
        threads = []
        for name, fn, extra in actors(started):
            t = threading.Thread(target=fn, args=(srv, st, stop, *extra), name=name, daemon=True)
            t.start()
            threads.append(t)
        stop.wait(duration)
        stop.set()
        joined_by = time.monotonic() + 180  # a hostile actor finishes its exchange (<= 120 s)
        for t in threads:
            t.join(max(0.0, joined_by - time.monotonic()))
        traffic_seconds = time.monotonic() - started
        time.sleep(2)
        stored = stored_message_ids(srv)
        alive = srv.proc.poll() is None
    lost = sorted(st.acked - stored)
    with serve(db, log) as srv:  # and after a restart (SIGTERM, then a new serve)
        servers.append(srv)
        lost_after_restart = sorted(st.acked - stored_message_ids(srv))
    summary = report(st, lost, lost_after_restart, alive, traffic_seconds, args.max_pss_mb)
    ok = bool(summary["ok"])
    text = json.dumps(summary, indent=2)
    print(text)
    print(headline(summary))
    if args.out:
        args.out.write_text(text + "\n")
    if args.keep:
        print(f"kept {work}", file=sys.stderr)
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
