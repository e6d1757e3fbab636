"""CPU per message of the SQLite store's writer thread (and its checkpoint thread), in one process.

What the main process does with SMTP worker mail (store/sqlite_tails.py): an SMTP worker's
journal is filled with prepared records (``WorkerJournalWriter``, the ``html`` fixture by
default), ``--batch`` at a time; after each, the store is poked and the caller waits until
they are applied (read-your-writes), so the writer reads, converts, inserts and commits
them as a running server does under a steady stream (~10 messages per transaction on the
shared machine's bursts). The figures are the writer thread's CPU
(``pthread_getcpuclockid``) over the burst and the checkpoint thread's until a second after
it, per message: no sockets, no SMTP, none of the other threads' work, so far steadier than
``thread_cpu.py``'s clock ticks of a whole server.

    .venv/bin/python benchmarks/writer_cpu.py [-n 3000] [--batch 10] [--rounds 4] [TREE ...]

With trees (checkouts with their ``.venv``, such as ``/tmp/pre`` for ``git worktree add
/tmp/pre 1ba8b6b^``), each runs in its own interpreter, rounds interleaved, and the medians
are printed; without, this tree once. ``WRITER_CPU_IMAP=off`` opens the store as a server
with no IMAP listener (the indexer then derives no IMAP data). ``WRITER_CPU_CHECKPOINTS=off``
runs no checkpoint at all (neither the writer's nor the checkpoint thread's) and no indexer,
and also prints the WAL frames written per message (its 500 warm-up messages included): the writer's own work, the same in every
tree (before the renovation the writer's COMMIT checkpointed every ~1,000 pages, now the
checkpoint thread copies most of it, so the writer figures of the two trees differ in that).
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _worker_writer(base: str) -> Any:
    """The SMTP worker's journal writer of this tree (or of the tree before the renovation)."""
    try:
        from postroom.store.ingest import WorkerJournalWriter

        return WorkerJournalWriter(base)
    except ImportError:  # before the renovation: the worker wrote the journal itself
        from postroom.store.headers import scan_headers, summary_fields
        from postroom.store.ids import new_id
        from postroom.store.journal import SegmentedJournal
        from postroom.store.rawcodec import compress

        class Writer:
            def __init__(self) -> None:
                self.journal = SegmentedJournal(base)

            def commit(self, envelope: Any, raw: bytes) -> str:
                pid = new_id()
                head = summary_fields(scan_headers(raw))
                self.journal.append(pid, envelope.dumps(), (), compress(raw), len(raw), head)
                return pid

            def close(self) -> None:
                self.journal.close()

        return Writer()


def _measure(n: int, batch: int, msg: str) -> dict[str, float]:
    from fixtures import build

    from postroom.config import Settings
    from postroom.events import Bus
    from postroom.store import open_store
    from postroom.store.base import Envelope

    raw = build(msg).replace(b"\n", b"\r\n")  # as smtp-source sends it (thread_cpu.py)
    tmp = tempfile.mkdtemp(prefix="postroom-writer-cpu-")
    imap = {} if os.environ.get("WRITER_CPU_IMAP", "on") == "on" else {"imap": "off", "imaps": "off"}
    checkpoints = os.environ.get("WRITER_CPU_CHECKPOINTS", "on") == "on"
    if not checkpoints:
        _no_checkpoints()
    store: Any = open_store(Settings(db=f"{tmp}/store.db", **imap), Bus())
    try:
        store.start()
        if not checkpoints:
            store.write(lambda c: c.execute("PRAGMA wal_autocheckpoint=0"))
        tail = store.open_worker_journal(0)
        writer = _worker_writer(getattr(tail, "location", None) or tail.base)
        wait = store.db.wait_applied if hasattr(store, "db") else store._wait_applied
        env = Envelope(
            "sender@shop.example.com", ("alice@example.org",), peer="127.0.0.1:40000", helo="bench"
        )

        def burst(count: int) -> None:
            for _ in range(count // batch):
                for _ in range(batch):
                    writer.commit(env, raw)
                store.poke_journals()
                wait()

        def cpu(thread: Any) -> float:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident)) if thread else 0.0

        burst(500)  # warm: past the first pages of each index
        background = getattr(store, "background", store)
        checkpointer = getattr(background, "checkpointer", None) or getattr(store, "_checkpointer", None)
        w0, c0 = cpu(store._writer), cpu(checkpointer)
        burst(n)
        w1 = cpu(store._writer)
        time.sleep(1.2)  # the checkpoint thread's next rounds: it copies what the burst wrote
        c1 = cpu(checkpointer)
        writer.close()
        row = {"writer": (w1 - w0) * 1e6 / n, "checkpoint": (c1 - c0) * 1e6 / n}
        if not checkpoints:  # the WAL was never restarted: its header counts every frame
            with open(f"{tmp}/store.db-shm", "rb") as f:
                row["frames"] = int.from_bytes(f.read(20)[16:20], sys.byteorder) / (n + 500)
        return row
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _no_checkpoints() -> None:
    """No checkpoint thread (it waits a day) and no indexer (its commits checkpoint), in this
    tree or the one before the renovation."""
    from postroom.store import sqlite_background

    sqlite_background.CHECKPOINT_INTERVAL = 86400.0  # type: ignore[misc]
    background = getattr(sqlite_background, "Background", None)
    if background is not None:
        background.start_indexer = lambda self: None
    else:
        from postroom.store.sqlite import SQLiteStore

        SQLiteStore._start_indexer = lambda self: None  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", type=Path)
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=10, help="messages journaled between two waits")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--msg", default="html", choices=["small", "html", "attachment"])
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if not a.trees:
        row = _measure(a.n, a.batch, a.msg)
        print(json.dumps(row) if a.json else {k: round(v, 1) for k, v in row.items()})
        return 0
    runs: dict[Path, list[dict[str, float]]] = {t: [] for t in a.trees}
    for r in range(a.rounds):
        for tree in a.trees if r % 2 == 0 else a.trees[::-1]:
            cmd = [str(tree / ".venv/bin/python"), str(Path(__file__).resolve()), "-n", str(a.n),
                   "--batch", str(a.batch), "--msg", a.msg, "--json"]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(tree / "src")}
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=tree)
            runs[tree].append(json.loads(res.stdout))
            row = runs[tree][-1]
            print(
                tree, {k: round(v, 1) for k, v in row.items()}, f"load {os.getloadavg()[0]:.1f}", flush=True
            )
    for tree, rows in runs.items():
        med = {k: round(statistics.median(row[k] for row in rows), 1) for k in rows[0]}
        both = round(statistics.median(row["writer"] + row["checkpoint"] for row in rows), 1)
        print("median", tree, med, "writer + checkpoint", both, "µs/msg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
