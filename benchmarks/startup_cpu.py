"""CPU that ``postroom serve`` spends on its start-up after the SMTP port opens, per process role.

  python benchmarks/startup_cpu.py [--against TREE] [--rounds 5]

postroom opens SMTP before the rest of its start-up is done (HTTP, IMAP and POP3, the SMTP
worker processes, the indexer): that rest competes with the first mail a client sends. Each
round starts ``postroom serve`` on an empty store (every listener on), reads the CPU seconds
(user + system, ``/proc/PID/stat``) of every process of its tree when the SMTP greeting
arrives and again once the tree has been idle for a second, and prints the difference by
role (``main``, ``smtp`` workers, ``indexer``) with the seconds from start to greeting.
``--against`` is the path of another tree with its ``.venv`` (rounds alternate between the
two). CPU seconds move far less than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import free_port
from ingest_compare import _by_role, _cpu
from procs import stop_group, wait_greeting

ROOT = Path(__file__).resolve().parent.parent


def run(tree: Path) -> dict[str, Any]:
    """One start of ``tree``'s ``postroom serve``: seconds to greeting, CPU after it by role."""
    tmp = tempfile.mkdtemp(prefix="postroom-startcpu-")
    smtp = free_port()
    cmd = [str(tree / ".venv/bin/postroom"), "serve", "--smtp", f"127.0.0.1:{smtp}",
           "--http", f"127.0.0.1:{free_port()}", "--pop3", f"127.0.0.1:{free_port()}",
           "--imap", f"127.0.0.1:{free_port()}", "--db", f"{tmp}/store.db", "--quiet"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_greeting(smtp, time.monotonic() + 60, proc, interval=0.002)
        greeting = time.perf_counter() - t0
        at_greeting = _cpu(proc.pid)
        total = -1.0
        while True:
            time.sleep(1.0)
            now = _cpu(proc.pid)
            if abs((s := sum(t for _, t in now.values())) - total) < 0.02:
                break
            total = s
        after = _by_role(now, at_greeting)
        return {"greeting_s": round(greeting, 3), "before_greeting": round(sum(t for _, t in at_greeting.values()), 2),
                "after": after | {"total": round(sum(after.values()), 2)}}  # fmt: skip
    finally:
        stop_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", type=Path, help="another tree with its .venv")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    trees = {"this": ROOT} | ({"other": a.against.resolve()} if a.against else {})
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    for i in range(a.rounds):
        for name in list(trees) if i % 2 == 0 else list(trees)[::-1]:
            r = run(trees[name])
            rows[name].append(r)
            print(name, r, flush=True)
    for name, rs in rows.items():
        med = {k: statistics.median(r["after"][k] for r in rs) for k in rs[0]["after"]}
        print(f"{name}: greeting median {statistics.median(r['greeting_s'] for r in rs):.3f} s, "
              f"CPU after the greeting (median by role) {med}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
