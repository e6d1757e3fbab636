"""CPU per message of the running SMTP worker processes, user and system, tree against tree.

``ingest_compare.py`` gives the workers' CPU seconds with everything running; on two cores
the main process and the indexer share the machine with them, so a busier main process
(or an indexer that runs during the burst) raises the workers' CPU per message too. With
``--isolate`` the main process and the indexer are stopped (SIGSTOP) for the burst and
continued after it: a worker acknowledges after its own journal ``write`` and never waits
for the main process, so the burst runs, and what the workers spend is theirs alone.

    .venv/bin/python benchmarks/worker_proc_cpu.py [--isolate] [-n 4000] [--rounds 5] TREE...

Each tree (a checkout with its ``.venv``) serves warm (``ingest_compare._settle``) and takes
``n`` copies of the html fixture from Postfix's ``smtp-source``, 10 sessions; trees alternate.
Prints one line per burst (µs per message: workers' user and system time, the main process's)
and the medians, from ``/proc/PID/stat`` (a clock tick over ``n`` messages: ±3 µs at 4,000).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import write as write_fixture
from ingest import _descendants, _wait_port, free_port, smtp_source
from ingest_compare import _settle
from procs import stop_group

TICK = os.sysconf("SC_CLK_TCK")


def _times(pids: list[int]) -> tuple[int, int]:
    """User and system clock ticks of ``pids``, summed."""
    user = system = 0
    for p in pids:
        stat = Path(f"/proc/{p}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def run(tree: Path, n: int, isolate: bool) -> dict[str, float]:
    """µs of CPU per message of one burst: the workers' user and system time, the main process's."""
    tmp = tempfile.mkdtemp(prefix="postroom-worker-cpu-")
    ports = {"smtp": free_port(), "http": free_port()}
    fixture = write_fixture("html", Path(tmp))
    cmd = [str(tree / ".venv/bin/postroom"), "serve", "--smtp", f"127.0.0.1:{ports['smtp']}",
           "--http", f"127.0.0.1:{ports['http']}", "--db", f"{tmp}/store.db", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_port(ports["smtp"], proc)
        _settle(proc.pid, ports["http"], proc)
        tree_pids = _descendants(proc.pid)
        workers = [p for p in tree_pids if b"smtp_workers" in Path(f"/proc/{p}/cmdline").read_bytes()]
        others = [proc.pid, *(p for p in tree_pids if p not in workers)] if isolate else []
        for p in others:
            os.kill(p, signal.SIGSTOP)
        before, main_before = _times(workers), _times([proc.pid])
        try:
            subprocess.run(smtp_source(ports["smtp"], 10, n, fixture), capture_output=True, check=True)
        finally:
            after, main_after = _times(workers), _times([proc.pid])
            for p in others:
                os.kill(p, signal.SIGCONT)
        per = 1e6 / TICK / n
        return {
            "user": round((after[0] - before[0]) * per, 1),
            "system": round((after[1] - before[1]) * per, 1),
            "main": round(sum(main_after) * per - sum(main_before) * per, 1),
        }
    finally:
        stop_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", type=Path, help="checkouts with their .venv")
    ap.add_argument("-n", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--isolate", action="store_true", help="stop the main process and the indexer for the burst"
    )
    a = ap.parse_args(argv)
    rows: dict[Path, list[dict[str, float]]] = {t: [] for t in a.trees}
    for r in range(a.rounds):
        for tree in a.trees if r % 2 == 0 else a.trees[::-1]:
            rows[tree].append(run(tree.resolve(), a.n, a.isolate))
            print(tree, rows[tree][-1], f"load {os.getloadavg()[0]:.1f}", flush=True)
    for tree, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("user", "system", "main")}
        total = statistics.median(r["user"] + r["system"] for r in runs)
        print("median", tree, med, "workers user+system", total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
