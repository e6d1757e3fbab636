"""SMTP ingest on PostgreSQL with one and two nodes, beside SQLite, in one run.

Each round starts fresh servers (``postroom serve``): SQLite (default settings), one node
on PostgreSQL, two nodes on one PostgreSQL database. Postfix's ``smtp-source`` sends N
copies of the HTML fixture (with two nodes, N/2 to each at once); the clock stops when
every message is listed through the first node's API. Rounds alternate the setups so
that a noisy neighbour on a shared machine hits all of them alike.

  python benchmarks/pg_ingest.py [-n 2000] [-s 10] [--rounds 3]

Prints one JSON object per run; the database server is the one the tests use
(127.0.0.1:5432, a database per run, dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import write as write_fixture  # noqa: E402
from ingest import _count_api_v1, _wait_port, free_port, smtp_source  # noqa: E402
from tests import pg  # noqa: E402


def _serve(db: str, tmp: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ports: dict[str, Any] = {"smtp": free_port(), "http": free_port()}
    cmd = [
        f"{ROOT}/.venv/bin/postroom", "serve", "--smtp", f"127.0.0.1:{ports['smtp']}",
        "--http", f"127.0.0.1:{ports['http']}", "--pop3", "off", "--imap", "off", "--db", db, "--quiet",
    ]  # fmt: skip
    log = open(os.path.join(tmp, f"server-{ports['smtp']}.log"), "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    _wait_port(ports["smtp"], proc)
    _wait_port(ports["http"], proc)  # SMTP answers first (its socket is bound early): the API is counted
    return proc, ports


def run(setup: str, n: int, sessions: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="postroom-pgbench-")
    fixture = write_fixture("html", Path(tmp))
    dbname = None
    if setup == "sqlite":
        db, nodes = f"{tmp}/store.db", 1
    else:
        dbname, db = pg.fresh_database("postroom_bench")
        nodes = 2 if setup == "postgres-2-nodes" else 1
    procs = []
    try:
        servers = [_serve(db, tmp) for _ in range(nodes)]
        procs = [p for p, _ in servers]
        time.sleep(0.5)
        share = n // nodes
        t0 = time.perf_counter()
        senders = [
            subprocess.Popen(
                smtp_source(ports["smtp"], max(1, sessions // nodes), share, fixture),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _, ports in servers
        ]
        for s in senders:
            s.wait()
        t_smtp = time.perf_counter() - t0
        want = share * nodes
        captured = 0
        while time.perf_counter() - t0 < t_smtp + 120:
            captured = _count_api_v1(servers[0][1])
            if captured == want:
                break
            time.sleep(0.05)
        t_visible = time.perf_counter() - t0
        return {
            "setup": setup, "n": want, "sessions": sessions, "smtp_s": round(t_smtp, 3),
            "msgs_per_s": round(want / t_smtp, 1), "captured": captured,
            "visible_msgs_per_s": round(want / t_visible, 1),
        }  # fmt: skip
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
        if dbname:
            pg.drop_database(dbname)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-s", type=int, default=10, help="parallel sessions (split across nodes)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for setup in ("sqlite", "postgres-1-node", "postgres-2-nodes"):
            print(json.dumps(run(setup, args.n, args.s)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
