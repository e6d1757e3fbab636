"""SMTP ingest of this tree against another revision, interleaved, with CPU seconds per process.

  python benchmarks/ingest_compare.py --against 1ba8b6b^ [--pairs 6] [-n 5000] [--msg html]
                                      [--warm] [--out benchmarks/results/ingest-compare.json]

``--against`` is a revision (checked out in a temporary worktree whose ``.venv`` is installed
with ``make .venv/.installed``, then removed) or the path of a tree that has its ``.venv``.
Each pair runs both servers one after the other, in alternating order, with the method of
``ingest.py`` (Postfix's ``smtp-source``, 10 sessions, a connection per message, sent 0.5 s
after the SMTP port opens; "visible" once ``/api/v1/messages?limit=1`` counts every
message). postroom opens SMTP before its other listeners, SMTP worker processes and
indexer are up, so that start-up work can overlap the first second of the burst;
``--warm`` sends only once the HTTP port is open and the process tree has been idle for
half a second (steady state: what each message costs, without start-up). Rates move with the machine;
the CPU seconds each process spent on the same traffic (from ``/proc/PID/stat``, from just
before the first message until the tree has been idle for a second, indexing included)
move far less, so they say where a difference comes from: ``main`` (HTTP, the store's
writer), ``smtp`` (the SMTP worker processes), ``indexer`` (the indexer and its helpers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import write as write_fixture
from ingest import _count_api_v1, _descendants, _wait_port, free_port, smtp_source
from procs import stop_group

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
IDLE = 1.0  # seconds without CPU use in the tree: indexing (and IMAP derivation) is done


def _cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) and role of every process of the tree under ``pid``."""
    out: dict[int, tuple[str, float]] = {}
    for p in [pid, *_descendants(pid)]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        role = "smtp" if "smtp_workers" in cmd else "indexer" if "--threads-subject" in cmd else "main"
        out[p] = (role, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def _by_role(after: dict[int, tuple[str, float]], before: dict[int, tuple[str, float]]) -> dict[str, float]:
    roles = {"main": 0.0, "smtp": 0.0, "indexer": 0.0}
    for p, (role, t) in after.items():
        roles[role] += t - before.get(p, (role, 0.0))[1]
    return {k: round(v, 2) for k, v in roles.items()}


def _settle(pid: int, http: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the HTTP port is open and the tree under ``pid`` has been idle for 0.5 s."""
    _wait_port(http, proc)
    total = -1.0
    while abs((now := sum(t for _, t in _cpu(pid).values())) - total) >= 0.02:
        total = now
        time.sleep(0.5)


def run(tree: Path, n: int, msg: str, warm: bool = False, settle: float = 120) -> dict[str, Any]:
    """One ``postroom serve`` of ``tree`` taking ``n`` messages: rates and CPU seconds."""
    tmp = tempfile.mkdtemp(prefix="postroom-compare-")
    # POP3 and IMAP on ports of their own too: on their defaults, a run failed whenever another
    # postroom (another benchmark on a shared machine) held them
    ports = {"smtp": free_port(), "http": free_port(), "pop3": free_port(), "imap": free_port()}
    fixture = write_fixture(msg, Path(tmp))
    cmd = [str(tree / ".venv/bin/postroom"), "serve", "--smtp", f"127.0.0.1:{ports['smtp']}",
           "--http", f"127.0.0.1:{ports['http']}", "--pop3", f"127.0.0.1:{ports['pop3']}",
           "--imap", f"127.0.0.1:{ports['imap']}", "--db", f"{tmp}/store.db", "--quiet"]  # fmt: skip
    log = open(os.path.join(tmp, "server.log"), "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        _wait_port(ports["smtp"], proc)
        if warm:
            _settle(proc.pid, ports["http"], proc)
        else:
            time.sleep(0.5)  # as ingest.py and the shared benchmark do
        before = _cpu(proc.pid)
        t0 = time.perf_counter()
        r = subprocess.run(smtp_source(ports["smtp"], 10, n, fixture), capture_output=True, text=True)
        t_smtp = time.perf_counter() - t0
        at_smtp_end = _cpu(proc.pid)
        captured = 0
        while captured != n and time.perf_counter() - t0 < t_smtp + settle:
            try:
                captured = _count_api_v1(ports)
            except Exception:
                captured = 0
            time.sleep(0.05)
        t_visible = time.perf_counter() - t0
        total = -1.0
        while True:  # until the whole tree has been idle for IDLE seconds
            time.sleep(IDLE)
            now = _cpu(proc.pid)
            if abs(sum(t for _, t in now.values()) - total) < 0.02:
                break
            total = sum(t for _, t in now.values())
        cpu = _by_role(now, before)
        return {
            "smtp_rc": r.returncode,
            "captured": captured,
            "msgs_per_s": round(n / t_smtp, 1),
            "visible_msgs_per_s": round(n / t_visible, 1) if captured == n else 0.0,
            "cpu_s": cpu | {"total": round(sum(cpu.values()), 2)},
            "cpu_s_during_smtp": _by_role(at_smtp_end, before),
        }
    finally:
        stop_group(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _tree(against: str, workdir: Path) -> tuple[Path, bool]:
    """The tree to compare with, and whether it is a worktree made here (to remove)."""
    if Path(against).is_dir():
        return Path(against).resolve(), False
    path = workdir / "against"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), against], check=True)
    subprocess.run(["make", "-C", str(path), ".venv/.installed"], check=True, stdout=subprocess.DEVNULL)
    return path, True


def _median(rows: list[dict[str, Any]], key: str, sub: str | None = None) -> float:
    return round(statistics.median(r[key][sub] if sub else r[key] for r in rows), 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", required=True, help="a revision, or a tree with its .venv")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--msg", default="html", choices=["small", "html", "attachment"])
    ap.add_argument("--warm", action="store_true", help="send once the server is fully started")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ingest-compare.json"))
    a = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="postroom-against-"))
    other, made = _tree(a.against, workdir)
    sides = {"this": ROOT, "against": other}
    rows: dict[str, list[dict[str, Any]]] = {"this": [], "against": []}
    try:
        for i in range(a.pairs):
            for side in ("this", "against") if i % 2 else ("against", "this"):
                row = run(sides[side], a.n, a.msg, a.warm) | {"pair": i}
                rows[side].append(row)
                print(json.dumps({"side": side, **row}), flush=True)
    finally:
        if made:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {
        side: {
            "msgs_per_s": _median(rs, "msgs_per_s"),
            "visible_msgs_per_s": _median(rs, "visible_msgs_per_s"),
            **{f"cpu_{k}": _median(rs, "cpu_s", k) for k in ("main", "smtp", "indexer", "total")},
        }
        for side, rs in rows.items()
    }
    result = {
        "against": a.against,
        "n": a.n,
        "msg": a.msg,
        "pairs": a.pairs,
        "warm": a.warm,
        "median": summary,
        "runs": rows,
    }
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
