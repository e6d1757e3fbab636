"""CPU per message of each thread of the main ``postroom serve`` process during an SMTP burst.

Python 3.11 does not give its threads an OS name, so a ``sitecustomize`` put on
``PYTHONPATH`` (for the server only) names each thread after its Python name
(``prctl(PR_SET_NAME)``, 15 characters) as it starts; the figures come from
``/proc/PID/task/*/stat`` (user + system) before the burst and once the process has been
idle for a second after it. The server is warm (sent once its HTTP port is open and it is
idle), as ``ingest_compare.py --warm``; the burst is Postfix's ``smtp-source``, 10 sessions.

    .venv/bin/python benchmarks/thread_cpu.py --n 2000 --rounds 3 . /tmp/pre

prints one line per run (trees alternate, in the order given): µs of CPU per message by
thread (``main`` is the event loop's thread), then the medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import write as write_fixture
from ingest import _wait_port, free_port, smtp_source
from ingest_compare import _settle
from procs import stop_group

TICK = os.sysconf("SC_CLK_TCK")
NAMING = """\
import ctypes, threading
_libc = ctypes.CDLL(None)
_start = threading.Thread._bootstrap_inner
def _named(self):
    try:
        _libc.prctl(15, self.name[:15].encode(), 0, 0, 0)
    except Exception:
        pass
    _start(self)
threading.Thread._bootstrap_inner = _named
"""


def threads(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) and OS name of each thread of ``pid``."""
    out: dict[int, tuple[str, float]] = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (t / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(t.name)] = (
            stat[stat.index("(") + 1 : stat.rindex(")")],
            (int(fields[11]) + int(fields[12])) / TICK,
        )
    return out


def run(tree: Path, n: int, msg: str = "html") -> dict[str, float]:
    """µs of CPU per message of each thread (by name; ``main`` for the loop's) of one burst."""
    tmp = tempfile.mkdtemp(prefix="postroom-threads-")
    Path(tmp, "sitecustomize.py").write_text(NAMING)
    # POP3 and IMAP on ports of their own too: on their defaults, a run failed whenever another
    # postroom (another benchmark on a shared machine) held them
    ports = {"smtp": free_port(), "http": free_port(), "pop3": free_port(), "imap": free_port()}
    fixture = write_fixture(msg, Path(tmp))
    cmd = [str(tree / ".venv/bin/postroom"), "serve", "--smtp", f"127.0.0.1:{ports['smtp']}",
           "--http", f"127.0.0.1:{ports['http']}", "--pop3", f"127.0.0.1:{ports['pop3']}",
           "--imap", f"127.0.0.1:{ports['imap']}", "--db", f"{tmp}/store.db", "--quiet"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": tmp}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_port(ports["smtp"], proc)
        _settle(proc.pid, ports["http"], proc)
        before = threads(proc.pid)
        sent = subprocess.run(smtp_source(ports["smtp"], 10, n, fixture), capture_output=True, text=True)
        if sent.returncode:
            raise RuntimeError(f"smtp-source failed ({tree}): {sent.stderr.strip()[-500:]}")
        total = -1.0
        while True:  # until the process has been idle for a second
            time.sleep(1.0)
            after = threads(proc.pid)
            if abs((now := sum(t for _, t in after.values())) - total) < 0.02:
                break
            total = now
        out: dict[str, float] = {}
        for tid, (name, t) in after.items():
            key = "main" if tid == proc.pid else name.rstrip("0123456789_")
            out[key] = out.get(key, 0.0) + (t - before.get(tid, (name, 0.0))[1]) * 1e6 / n
        return {k: round(v) for k, v in sorted(out.items()) if v > 0}
    finally:
        stop_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", type=Path, help="checkouts with their .venv")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    rows: dict[Path, list[dict[str, float]]] = {t: [] for t in args.trees}
    for r in range(args.rounds):
        order = args.trees if r % 2 == 0 else args.trees[::-1]
        for tree in order:
            rows[tree].append(run(tree.resolve(), args.n))
            print(tree, rows[tree][-1], f"load {os.getloadavg()[0]:.1f}", flush=True)
    for tree, runs in rows.items():
        names = sorted({k for row in runs for k in row})
        med = {k: statistics.median(row.get(k, 0.0) for row in runs) for k in names}
        print("median", tree, med)
    return 0


if __name__ == "__main__":
    sys.exit(main())
