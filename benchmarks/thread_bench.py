"""Threading cost at ingest: what conversations add to storing a message.

Generates N messages shaped like real traffic (conversations of 1-40 messages with
References chains, a few subject-only replies and localized prefixes, replies that arrive
before their parents, duplicate Message-IDs, unrelated mails with one subject) and
measures, in one run on one machine:

1. ingest: ``SQLiteStore.deliver()`` of all N messages (the real store: group commit,
   zstd, one row per message), messages per second;
2. threading in SQL: :func:`postroom.threads.assign_thread` for every message against the
   ``thread_ref`` schema and queries of docs/threads.md (a WAL file database like the
   store's, one transaction per 64 messages like a group commit), including the writes,
   minus a control run that inserts the same rows without threading;
3. threading in memory: :class:`postroom.threads.MemoryThreadIndex`;
4. batch: :func:`postroom.threads.conversations` once, and a check that (2) and (3)
   found exactly its partition.

  python benchmarks/thread_bench.py [-n 100000] [--skip-store]

Prints one JSON object; ``overhead_pct`` is (2) per message over (1) per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from email.utils import formatdate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from postroom.threads import (
    MemoryThreadIndex,
    ThreadingOptions,
    ThreadMessage,
    assign_thread,
    conversations,
)

BASE = 1_704_067_200
PREFIXES = ["Re: ", "RE: ", "AW: ", "SV: ", "回复: ", "Re: Re: "]
BATCH = 64  # messages per transaction, like the store's group commit


def generate(n: int, seed: int = 1) -> list[tuple[ThreadMessage, bytes]]:
    """N (record, raw message) pairs in arrival order; uid = arrival number (1-based)."""
    rnd = random.Random(seed)
    out: list[tuple[ThreadMessage, dict[str, str]]] = []
    conv = 0
    while len(out) < n:
        conv += 1
        size = min(n - len(out), rnd.choice([1, 1, 1, 2, 3, 5, 8, 13, 40]))
        subject = f"Topic {conv % 5000}"  # subjects repeat across far-apart conversations
        start = BASE + rnd.randint(0, 365 * 86400)
        ids = [f"c{conv}.{i}@bench.example" for i in range(size)]
        msgs = []
        for i in range(size):
            parent = rnd.randint(0, i - 1) if i else -1
            chain: list[str] = []
            p = parent
            while p >= 0:
                chain.append(ids[p])
                p = rnd.randint(0, p - 1) if p and rnd.random() < 0.1 else p - 1
            chain.reverse()
            chain = chain[:1] + chain[-9:] if len(chain) > 10 else chain
            subject_only = i and rnd.random() < 0.03
            msgs.append(
                {
                    "Message-ID": ids[i] if rnd.random() > 0.002 else ids[0],
                    "References": "" if subject_only else " ".join(f"<{x}>" for x in chain),
                    "Subject": (rnd.choice(PREFIXES) if i else "") + subject,
                    "Date": formatdate(start + 600 * i),
                }
            )
        if size > 2 and rnd.random() < 0.2:
            msgs[1], msgs[2] = msgs[2], msgs[1]  # a reply before its parent
        for m in msgs:
            out.append((ThreadMessage(0), m))
    rnd.shuffle(out)  # conversations interleave
    pairs = []
    for uid, (_, h) in enumerate(out, start=1):
        rec = ThreadMessage.from_headers(
            uid,
            message_id=f"<{h['Message-ID']}>",
            references=h["References"],
            subject=h["Subject"],
            date=h["Date"],
            internaldate=float(BASE + uid),
        )
        raw = (
            f"From: a@bench.example\r\nTo: b@bench.example\r\nMessage-ID: <{h['Message-ID']}>\r\n"
            f"References: {h['References']}\r\nSubject: {h['Subject']}\r\nDate: {h['Date']}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Hello, this is a test message.\r\n" * 20
        ).encode()
        pairs.append((rec, raw))
    return pairs


SCHEMA = """
CREATE TABLE message (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL DEFAULT '',
  thread_id INTEGER NOT NULL DEFAULT 0, subject_key TEXT NOT NULL DEFAULT '',
  subject_eligible INTEGER NOT NULL DEFAULT 0, sort_date INTEGER NOT NULL DEFAULT 0);
CREATE INDEX message_thread ON message(thread_id);
CREATE INDEX message_subject ON message(subject_key, sort_date) WHERE subject_key <> '';
CREATE TABLE thread_ref (message_id TEXT PRIMARY KEY, thread_id INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX thread_ref_thread ON thread_ref(thread_id);
"""


class SqlThreadLookup:
    """The ThreadLookup of docs/threads.md over one sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def threads_by_message_ids(self, ids: Sequence[str]) -> Iterable[int]:
        found: set[int] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = f"SELECT DISTINCT thread_id FROM thread_ref WHERE message_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.conn.execute(sql, chunk))
        return found

    def threads_by_subject(
        self, key: str, since: float | None, until: float | None, *, eligible_only: bool
    ) -> Iterable[int]:
        sql = (
            # "subject_key <> ''" lets SQLite use the partial index
            "SELECT DISTINCT thread_id FROM message WHERE subject_key = ? AND subject_key <> '' AND sort_date >= ? "
            "AND sort_date <= ?" + (" AND subject_eligible = 1" if eligible_only else "")
        )
        lo = -(2**62) if since is None else since
        hi = 2**62 if until is None else until
        return [r[0] for r in self.conn.execute(sql, (key, lo, hi))]


def thread_in_sql(
    records: list[ThreadMessage], path: str, options: ThreadingOptions, *, threading: bool = True
) -> dict[int, int]:
    """Insert a row per message in batches; with ``threading``, thread it as docs/threads.md
    says (the assignment is made before the insert, so the row is written once)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # the store's settings
    conn.execute("PRAGMA cache_size=-16000")
    conn.executescript(SCHEMA)
    lookup = SqlThreadLookup(conn)
    insert = (
        "INSERT INTO message(id, message_id, thread_id, subject_key, subject_eligible, sort_date) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    for start in range(0, len(records), BATCH):
        conn.execute("BEGIN")
        for m in records[start : start + BATCH]:
            if not threading:
                conn.execute(insert, (m.uid, m.message_id, m.uid, "", 0, 0))
                continue
            a = assign_thread(m, lookup, new_thread_id=m.uid, options=options)
            if a.merged:
                marks = ",".join("?" * len(a.merged))
                args = (a.thread_id, *a.merged)
                conn.execute(f"UPDATE message SET thread_id = ? WHERE thread_id IN ({marks})", args)
                conn.execute(f"UPDATE thread_ref SET thread_id = ? WHERE thread_id IN ({marks})", args)
            conn.executemany(
                "INSERT OR IGNORE INTO thread_ref(message_id, thread_id) VALUES (?, ?)",
                [(i, a.thread_id) for i in a.keys.ids],
            )
            k = a.keys
            conn.execute(
                insert, (m.uid, m.message_id, a.thread_id, k.subject_key, int(k.subject_eligible), k.when)
            )
        conn.execute("COMMIT")
    result = dict(conn.execute("SELECT id, thread_id FROM message"))
    conn.close()
    return result


def ingest_store(raws: list[bytes], workdir: str) -> float:
    """Seconds to deliver every message through the real SQLite store."""
    from postroom.config import Settings
    from postroom.events import Bus
    from postroom.store.base import Envelope
    from postroom.store.sqlite import SQLiteStore

    settings = Settings(db=os.path.join(workdir, "store.db"), max=0)
    store = SQLiteStore(settings.db, settings, Bus())
    store.start()

    async def run() -> float:
        env = Envelope("a@bench.example", ("b@bench.example",))
        t0 = time.perf_counter()
        pending: set[asyncio.Task[str]] = set()
        for raw in raws:
            pending.add(asyncio.ensure_future(store.deliver(env, raw)))
            if len(pending) >= 256:  # many concurrent SMTP sessions share a group commit
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)
        return time.perf_counter() - t0

    try:
        return asyncio.run(run())
    finally:
        store.close()


def partition(assigned: dict[int, int]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for uid, tid in assigned.items():
        groups.setdefault(tid, []).append(uid)
    return sorted(sorted(g) for g in groups.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--skip-store", action="store_true", help="do not measure the store's ingest")
    args = ap.parse_args()
    t0 = time.perf_counter()
    pairs = generate(args.n)
    records = [r for r, _ in pairs]
    gen_s = time.perf_counter() - t0
    options = ThreadingOptions()
    with tempfile.TemporaryDirectory(prefix="thread-bench-") as tmp:
        ingest_s = None if args.skip_store else ingest_store([raw for _, raw in pairs], tmp)
        t0 = time.perf_counter()
        thread_in_sql(records, os.path.join(tmp, "control.db"), options, threading=False)
        control_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sql = thread_in_sql(records, os.path.join(tmp, "threads.db"), options)
        sql_s = time.perf_counter() - t0 - control_s
    t0 = time.perf_counter()
    index = MemoryThreadIndex(options)
    for m in records:
        index.add(m)
    mem_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = [[m.uid for m in g] for g in conversations(records, options)]
    batch_s = time.perf_counter() - t0
    n = len(records)
    out = {
        "messages": n,
        "conversations": len(batch),
        "generate_s": round(gen_s, 2),
        "store_ingest_s": None if ingest_s is None else round(ingest_s, 2),
        "store_ingest_msg_per_s": None if ingest_s is None else round(n / ingest_s),
        "thread_sql_s": round(sql_s, 2),
        "thread_sql_us_per_msg": round(sql_s / n * 1e6, 1),
        "thread_memory_us_per_msg": round(mem_s / n * 1e6, 1),
        "batch_s": round(batch_s, 2),
        "overhead_pct": None if ingest_s is None else round(100 * sql_s / ingest_s, 1),
        "sql_equals_batch": partition(sql) == batch,
        "memory_equals_batch": index.partition() == batch,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
