"""imaptest stress, one mix, two builds of postroom interleaved: CPU per command, A/B.

On a shared machine the wall rate of one 30 s run moves by ±20-30 % with the load of
others; what a change does to the server's own work shows better in the main process's
CPU time per 1,000 commands. This runs imaptest (as ``imap_stress_bench``, without
Dovecot) against two postroom servers at once, one from a git revision (``--base``,
exported with ``git archive``) and one from this working tree, alternating which goes
first in each round, and reports medians [min-max] of:

* main-process CPU (user + system, from /proc) per 1,000 commands,
* the same for the whole process tree (with the indexer),
* commands/s.

  python benchmarks/imap_stress_ab.py --base main [--mix logout=0] [--secs 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from imap_bench import Postroom, load_average  # noqa: E402
from imap_scale_bench import _children  # noqa: E402
from imap_stress_bench import MIXES, _prepare, imaptest_binary, run_imaptest, write_mbox  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    """User + system CPU of one process (all its threads), in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK


def tree_cpu_ms(pid: int) -> float:
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        todo += _children(p)
        try:
            total += cpu_ms(p)
        except OSError:
            pass  # ended meanwhile
    return total


def export_src(rev: str, into: Path) -> Path:
    """``src/`` of git revision ``rev``, written under ``into``."""
    blob = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as t:
        t.extractall(into, filter="data")
    return into / "src"


def _median(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} [{min(xs):,.0f}-{max(xs):,.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main", help="git revision for build A (default main)")
    ap.add_argument("--mix", default="logout=0", choices=list(MIXES))
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    binary = imaptest_binary()
    tmp = Path(tempfile.mkdtemp(prefix="postroom-imap-stress-ab-"))
    servers: dict[str, Postroom] = {}
    res: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    loads = []
    try:
        mbox = tmp / "source.mbox"
        write_mbox(mbox)
        servers["A"] = Postroom(tmp, src=export_src(a.base, tmp / "base"), db="a.db")
        # a copy: the tree may be edited while the runs go on
        servers["B"] = Postroom(tmp, src=shutil.copytree(ROOT / "src", tmp / "this" / "src"), db="b.db")
        for s in servers.values():
            s.start()
            _prepare(s)
        for r in range(a.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                s = servers[name]
                assert s.proc is not None
                pid = s.proc.pid
                c0, t0 = cpu_ms(pid), tree_cpu_ms(pid)
                run: dict[str, Any] = run_imaptest(binary, s.port, mbox, a.clients, a.secs, MIXES[a.mix])
                c1, t1 = cpu_ms(pid), tree_cpu_ms(pid)
                n = sum(run["totals"].values())
                row = {"main": (c1 - c0) * 1000 / n, "tree": (t1 - t0) * 1000 / n, "rate": run["ops_per_s"]}
                res[name].append(row)
                print(f"  round {r + 1} {name}: {row['rate']} cmds/s, main {row['main']:.0f} ms, "
                      f"tree {row['tree']:.0f} ms per 1,000 commands, errors {run['errors']}",
                      file=sys.stderr)  # fmt: skip
            loads.append(load_average())
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"imaptest {a.mix}, {a.clients} clients, {a.secs} s runs, {a.rounds} rounds; A = {a.base}, "
          f"B = this tree; load after each round: {', '.join(loads)}")  # fmt: skip
    print("| build | main CPU ms / 1,000 cmds | tree CPU ms / 1,000 cmds | cmds/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, rows in res.items():
        print(f"| {name} | {_median([x['main'] for x in rows])} | {_median([x['tree'] for x in rows])} | "
              f"{_median([x['rate'] for x in rows])} |")  # fmt: skip


if __name__ == "__main__":
    socket.setdefaulttimeout(600)
    main()
