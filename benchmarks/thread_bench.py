"""Threading cost at ingest: what conversations add to storing a message.

Generates N messages shaped like real traffic (conversations of 1-40 messages with
References chains, a few subject-only replies and localized prefixes, replies that arrive
before their parents, duplicate Message-IDs, unrelated mails with one subject) and
measures the design postroom ships (docs/threads.md): the indexer (its own process)
threads each message in an in-memory index and the writer stores the thread id with the
rest of the index results. Runs, alternating, the real ``SQLiteStore`` with threading and
with threading switched off (``threading = false``, the internal switch), and reports:

1. ingest: ``deliver()`` of all N messages, 256 in flight like many SMTP sessions (what a
   250 waits for), messages per second;
2. indexed: until every message is parsed, in full-text search and threaded;
3. the overhead of threading on both (best run of each side);
4. the indexer's own threading cost per message (``ConversationIndex.add``) and the time
   it takes to rebuild its index from N stored messages at start;
5. a check that the stored thread ids equal :func:`postroom.threads.conversations` of the
   stored messages, computed at once.

  python benchmarks/thread_bench.py [-n 100000] [--runs 2] [--sql]

``--sql`` also measures the rejected design (threading inline in the writer's transaction
with SQL lookups, docs/threads.md) against a control run. ``suite(quick)`` is the entry
point of ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from email.utils import formatdate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from postroom.store.thread_index import ConversationIndex, record_from_row
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


async def deliver_all(store: Any, raws: list[bytes]) -> None:
    """Deliver every message through ``store``, 256 at a time in flight (as many concurrent
    SMTP sessions, which share a group commit)."""
    from postroom.store.base import Envelope

    env = Envelope("a@bench.example", ("b@bench.example",))
    pending: set[asyncio.Task[str]] = set()
    for raw in raws:
        pending.add(asyncio.ensure_future(store.deliver(env, raw)))
        if len(pending) >= 256:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)


def ingest_store(raws: list[bytes], workdir: str) -> float:
    """Seconds to deliver every message through the real SQLite store."""
    from postroom.config import Settings
    from postroom.events import Bus
    from postroom.store.sqlite import SQLiteStore

    settings = Settings(db=os.path.join(workdir, "store.db"), max=0)
    store = SQLiteStore(settings.db, settings, Bus())
    store.start()

    async def run() -> float:
        t0 = time.perf_counter()
        await deliver_all(store, raws)
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


def store_run(raws: list[bytes], workdir: str, *, threading: bool) -> dict[str, Any]:
    """Deliver every message through the real store (indexer process) and wait for the index."""
    from postroom.config import Settings
    from postroom.events import Bus
    from postroom.store.sqlite import SQLiteStore

    path = os.path.join(workdir, f"store-{'on' if threading else 'off'}-{time.monotonic_ns()}.db")
    settings = Settings(db=path, max=0, extra={} if threading else {"threading": False})
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    store = SQLiteStore(path, settings, Bus())
    store.start()

    async def run() -> tuple[float, float]:
        t0 = time.perf_counter()
        await deliver_all(store, raws)
        ingest = time.perf_counter() - t0
        assert await asyncio.to_thread(store.wait_indexed, 3600)
        return ingest, time.perf_counter() - t0

    try:
        ingest_s, indexed_s = asyncio.run(run())
    finally:
        store.close()  # waits for the indexer process: its CPU time is in RUSAGE_CHILDREN now
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "ingest_s": ingest_s,
        "indexed_s": indexed_s,
        "path": path,
        "server_cpu_s": self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime,
        "indexer_cpu_s": kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime,
    }


def check_store(path: str) -> tuple[bool, float]:
    """(stored thread ids == conversations() of the stored messages, seconds to rebuild the index)."""
    conn = sqlite3.connect(path)
    try:
        t0 = time.process_time()  # CPU time: the machine is shared, wall time is noisy
        index = ConversationIndex(ThreadingOptions())
        fixes = list(index.load(conn))
        load_s = time.process_time() - t0
        rows = conn.execute(
            "SELECT id, message_id, in_reply_to, refs, subject, date, created, thread_id FROM message ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    stored = {r[0]: int(r[7]) for r in rows if r[7]}
    want = {m.uid: g[0].uid for g in conversations([record_from_row(r) for r in rows]) for m in g}
    return (not fixes and stored == want), load_s


def measure(n: int, runs: int) -> dict[str, Any]:
    """The integrated design: store ingest with and without threading, alternating runs."""
    pairs = generate(n)
    records = [r for r, _ in pairs]
    raws = [raw for _, raw in pairs]
    on: list[dict[str, Any]] = []
    off: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="thread-bench-") as tmp:
        for _ in range(runs):
            off.append(store_run(raws, tmp, threading=False))
            os.unlink(off[-1]["path"])
            on.append(store_run(raws, tmp, threading=True))
            correct, load_s = check_store(on[-1]["path"])
            on[-1].update(correct=correct, load_s=load_s)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(on[-1]["path"] + suffix):
                    os.unlink(on[-1]["path"] + suffix)
    t0 = time.process_time()
    index = ConversationIndex(ThreadingOptions())
    for m in records:
        index.add(m)
    add_s = time.process_time() - t0
    keys = ("ingest_s", "indexed_s", "server_cpu_s", "indexer_cpu_s")
    best = {k: min(r[k] for r in on) for k in keys}
    base = {k: min(r[k] for r in off) for k in keys}
    cpu_off = base["server_cpu_s"] + base["indexer_cpu_s"]
    cpu_on = best["server_cpu_s"] + best["indexer_cpu_s"]
    return {
        "messages": n,
        "runs": runs,
        "conversations": len(conversations(records)),
        "ingest_msg_per_s_off": round(n / base["ingest_s"]),
        "ingest_msg_per_s_on": round(n / best["ingest_s"]),
        "ingest_overhead_pct": round(100 * (best["ingest_s"] / base["ingest_s"] - 1), 1),
        "indexed_msg_per_s_off": round(n / base["indexed_s"]),
        "indexed_msg_per_s_on": round(n / best["indexed_s"]),
        "indexed_overhead_pct": round(100 * (best["indexed_s"] / base["indexed_s"] - 1), 1),
        "server_cpu_us_per_msg_off_on": [
            round(base["server_cpu_s"] / n * 1e6),
            round(best["server_cpu_s"] / n * 1e6),
        ],
        "indexer_cpu_us_per_msg_off_on": [
            round(base["indexer_cpu_s"] / n * 1e6),
            round(best["indexer_cpu_s"] / n * 1e6),
        ],
        "cpu_overhead_pct": round(100 * (cpu_on / cpu_off - 1), 1),
        # what threading adds to the indexer, over all the CPU that storing a message costs
        "threading_cpu_pct": round(100 * (best["indexer_cpu_s"] - base["indexer_cpu_s"]) / cpu_off, 1),
        "thread_us_per_msg": round(add_s / n * 1e6, 1),
        "index_rebuild_s": round(min(r["load_s"] for r in on), 2),
        "thread_ids_equal_batch": all(r["correct"] for r in on),
        "all_ingest_s": {
            "on": [round(r["ingest_s"], 2) for r in on],
            "off": [round(r["ingest_s"], 2) for r in off],
        },
        "all_indexed_s": {
            "on": [round(r["indexed_s"], 2) for r in on],
            "off": [round(r["indexed_s"], 2) for r in off],
        },
    }


def suite(quick: bool) -> dict[str, Any]:
    """Entry point of ``benchmarks/run.py``."""
    rows = [measure(5_000, 2)] if quick else [measure(20_000, 3), measure(100_000, 2)]
    lines = [
        "| messages | conversations | ingest msg/s off / on | overhead | indexed msg/s off / on | overhead "
        "| CPU µs/msg: server off / on | indexer off / on | threading share of CPU | ConversationIndex.add "
        "| index rebuild (CPU) | ids = batch |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        cpu = (r["server_cpu_us_per_msg_off_on"], r["indexer_cpu_us_per_msg_off_on"])
        lines.append(
            f"| {r['messages']:,} | {r['conversations']:,} | {r['ingest_msg_per_s_off']:,} / "
            f"{r['ingest_msg_per_s_on']:,} | {r['ingest_overhead_pct']:+.1f} % | {r['indexed_msg_per_s_off']:,} / "
            f"{r['indexed_msg_per_s_on']:,} | {r['indexed_overhead_pct']:+.1f} % | "
            f"{cpu[0][0]} / {cpu[0][1]} | {cpu[1][0]} / {cpu[1][1]} | {r['threading_cpu_pct']} % | "
            f"{r['thread_us_per_msg']} µs/msg | {r['index_rebuild_s']} s | "
            f"{'yes' if r['thread_ids_equal_batch'] else 'NO'} |"
        )
    lines += [
        "",
        "Threading runs in the indexer process (off the SMTP path); off = the internal switch "
        "`threading = false`. ingest = until every `deliver()` is acknowledged (what a 250 waits "
        "for); indexed = until every message is parsed, searchable and threaded. Overheads compare "
        "the best of alternating runs; wall times on this shared machine vary by ±20 % between runs "
        "or more, CPU times (per message, of the server process and of the indexer process) much "
        "less. Threading share = indexer CPU added by threading / server + indexer CPU without it.",
    ]
    return {
        "title": "Conversations: ingest with threading in the indexer vs. without",
        "rows": rows,
        "markdown": "\n".join(lines),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=2, help="alternating runs with and without threading")
    ap.add_argument(
        "--sql", action="store_true", help="also measure threading inline in SQL (rejected design)"
    )
    args = ap.parse_args()
    print(json.dumps(measure(args.n, args.runs)))
    if args.sql:
        sql_main(args.n)


def sql_main(n: int) -> None:
    """The rejected design: assign_thread with SQL lookups in the writer transaction."""
    t0 = time.perf_counter()
    pairs = generate(n)
    records = [r for r, _ in pairs]
    gen_s = time.perf_counter() - t0
    options = ThreadingOptions()
    with tempfile.TemporaryDirectory(prefix="thread-bench-") as tmp:
        ingest_s = ingest_store([raw for _, raw in pairs], tmp)
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
        "store_ingest_s": round(ingest_s, 2),
        "store_ingest_msg_per_s": round(n / ingest_s),
        "thread_sql_s": round(sql_s, 2),
        "thread_sql_us_per_msg": round(sql_s / n * 1e6, 1),
        "thread_memory_us_per_msg": round(mem_s / n * 1e6, 1),
        "batch_s": round(batch_s, 2),
        "overhead_pct": round(100 * sql_s / ingest_s, 1),
        "sql_equals_batch": partition(sql) == batch,
        "memory_equals_batch": index.partition() == batch,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
