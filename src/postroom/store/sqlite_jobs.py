"""What the SQLite store's writer thread takes from its queue (store/sqlite.py).

An :class:`_Ingest` is one message to store (from an SMTP session, IMAP APPEND, or an SMTP
worker's journal); a :class:`_Call` runs a function inside the writer's transaction;
``_STOP``, ``_TAIL`` and ``_INDEX`` are signals (stop; read the SMTP workers' journals;
index what was stored).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import Envelope, StoreClosed, StoreError
from .headers import HeaderSummary, summary_from_fields
from .journal import JournalTail, Record, json_text

__all__ = [
    "MAX_BATCH",
    "SMALL_WRITE_ROWS",
    "_INDEX",
    "_STOP",
    "_TAIL",
    "RowsHint",
    "WriterQueue",
    "_Call",
    "_Ingest",
    "_fail",
    "_ingest_from_record",
    "drain_after_stop",
    "resolve_calls",
    "resolve_ingests",
    "small_transaction",
    "split_batch",
]

RowsHint = int | Callable[[sqlite3.Connection], int] | None

MAX_BATCH = 512  # jobs per transaction; bounds commit latency under heavy load
# rows the calls of a transaction change at most for it to keep its statement journals in
# memory (Writes.begin): a savepoint's journal holds each page its call changes, a few dozen
# pages per expunged message at worst (its deliveries, raw, header fields, the indexes)
SMALL_WRITE_ROWS = 100


@dataclass(slots=True)
class _Ingest:
    envelope: Envelope
    raw: bytes
    tags: tuple[str, ...]
    future: asyncio.Future[str] | concurrent.futures.Future[str] | None  # None: journaled, already acked
    folder: tuple[str, str] | None = None  # (mailbox, folder) for IMAP APPEND
    flags: frozenset[str] = frozenset()
    result: Any = None
    pid: str = ""  # set when the ID was chosen before the writer (journaled messages)
    seq: int = 0  # journal sequence number, 0 when not journaled
    # prepared by an SMTP worker (raw is then empty): compressed bytes, size, header fields
    zraw: bytes | None = None
    size: int = 0
    head: HeaderSummary | None = None
    tail: JournalTail | None = None  # the worker journal it was read from
    envelope_json: str = ""  # the envelope as the worker serialized it
    thread_key: str = ""  # IMAP APPEND's X-POSTROOM-THREAD (message.thread_key)


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    # a thread's (SQLiteDb.write) or an event loop's (SQLiteDb.write_async); resolved after
    # the commit, a loop's all at once per batch
    future: concurrent.futures.Future[Any] | asyncio.Future[Any]
    # the rows it changes at most (``Writes.begin``: a small transaction keeps its statement
    # journals in memory), a function that counts them on the writer before its transaction,
    # or None: not known, taken as many
    rows: RowsHint = None


_STOP = object()
_TAIL = object()  # read what the SMTP workers' journals hold
_INDEX = object()  # index what was just stored, on the writer (a throwaway store's inline indexer)


def _ingest_from_record(rec: Record, tail: JournalTail | None) -> _Ingest:
    """A journal record (store/journal.py: the main process's or an SMTP worker's) as a
    writer job; ``tail`` is the worker journal it was read from, None for the main one or
    a replay."""
    envelope = Envelope.from_json(json_text(rec.envelope_json))
    if not rec.compressed:  # as received: the writer scans and compresses it
        return _Ingest(envelope, rec.body, rec.tags, None, pid=rec.pid, seq=rec.seq)
    return _Ingest(
        envelope,
        b"",
        rec.tags,
        None,
        pid=rec.pid,
        zraw=rec.body,
        size=rec.size,
        head=summary_from_fields(rec.head) if rec.head is not None else None,
        tail=tail,
        envelope_json=rec.envelope_json,
    )


class WriterQueue(queue.SimpleQueue[Any]):
    """The writer's queue. An in-process test server's store starts its writer thread with
    the first job (:meth:`start_with_first`; store/sqlite_direct.py): such a store commits
    mail itself while its writer is idle, and most never queue anything."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._start: Callable[[], None] | None = None

    def start_with_first(self, start: Callable[[], None]) -> None:
        self._start = start

    def start_writer(self) -> None:
        """Start the writer now if it waits for its first job (once; thread-safe)."""
        with self._lock:
            start, self._start = self._start, None
        if start is not None:
            start()

    def cancel_start(self) -> bool:
        """At the close: True when the writer never started (nor will)."""
        with self._lock:
            start, self._start = self._start, None
        return start is not None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if self._start is not None:
            self.start_writer()

    def put_nowait(self, item: Any) -> None:
        self.put(item)


def small_transaction(conn: sqlite3.Connection, calls: list[_Call]) -> bool:
    """True when ``calls`` change at most SMALL_WRITE_ROWS rows together, each by its
    ``rows`` (a count runs on the writer's connection, before its transaction). A call that
    does not say, or whose count fails (its own call then reports why), makes it bulk."""
    total = 0
    for c in calls:
        rows = c.rows
        if rows is None:
            return False
        if not isinstance(rows, int):
            try:
                rows = rows(conn)
            except Exception:  # e.g. its folder is gone: the call fails in the transaction
                return False
        total += rows
        if total > SMALL_WRITE_ROWS:
            return False
    return True


def split_batch(jobs: list[Any]) -> list[list[Any]]:
    """The transactions of one writer batch: new mail apart from other changes when it has
    both. A transaction of new mail alone keeps its statement journals in memory
    (``Writes.begin``); one with other changes keeps SQLite's temporary file unless they
    change few rows (``small_transaction``), and with mail in
    it every statement of the mail wrote its pages there (~45 write system calls per message
    instead of ~10, issue 15). The mail goes first, as it does in one transaction."""
    ingests = [j for j in jobs if isinstance(j, _Ingest)]
    if not ingests or len(ingests) == len(jobs):
        return [jobs] if jobs else []
    return [ingests, [j for j in jobs if not isinstance(j, _Ingest)]]


def run_split(jobs: list[Any], run: Callable[[list[Any]], bool]) -> None:
    """Run the transactions of :func:`split_batch` in order (``run`` returns False when one
    failed). When the new mail's fails (it is kept for another attempt), the changes queued
    with it fail too, as they did in one transaction: a delete of everything must not commit
    before acknowledged mail it was queued after is stored."""
    parts = split_batch(jobs)
    for i, part in enumerate(parts):
        if not run(part):
            err = StoreError("write failed: the mail queued before this change could not be stored")
            for j in (j for later in parts[i + 1 :] for j in later):
                if j.future is not None:
                    _fail(j.future, err)
            return


def drain_after_stop(q: queue.SimpleQueue[Any]) -> None:
    """Fail what was queued after the writer's stop."""
    while True:
        try:
            j = q.get_nowait()
        except queue.Empty:
            return
        if isinstance(j, _Ingest | _Call) and j.future is not None:
            _fail(j.future, StoreClosed("store is closed"))


def _set_exception(fut: asyncio.Future[Any], err: BaseException) -> None:
    if not fut.done():
        fut.set_exception(err)


def _fail(fut: Any, err: BaseException) -> None:
    if isinstance(fut, asyncio.Future):
        loop = fut.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_set_exception, fut, err)
    elif not fut.done():
        fut.set_exception(err)


def resolve_ingests(ingests: list[_Ingest]) -> None:
    """Answer each committed ingest's waiter: a plain future at once, an asyncio one on its loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Ingest]] = {}
    for j in ingests:
        fut = j.future
        if fut is None:
            continue
        if isinstance(fut, asyncio.Future):
            by_loop.setdefault(fut.get_loop(), []).append(j)
        else:
            fut.set_result(j.result)
    for loop, items in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_resolve_async, items)


def _resolve_async(items: list[_Ingest]) -> None:
    for j in items:
        fut = j.future
        if fut is not None and not fut.done():
            fut.set_result(j.result)


def resolve_calls(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, res, err in results:
        if fut.done():  # its caller was cancelled (a client gone): the change is committed anyway
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(res)
