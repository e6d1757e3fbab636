"""In-process test servers: a message committed by the thread that received it.

A store's writer thread applies journaled mail after the SMTP session has answered 250
(store/sqlite.py). For an in-process test server (a throwaway database indexed inline, as
``postroom.Server`` and the pytest ``mail`` fixture make it) that hand-off costs more than
the work: the SMTP session, the writer and the test's own thread then share the
interpreter lock while the test waits for the message, and on a busy machine every switch
between them waits for a core. So when its writer is idle, such a store stores and commits
the message on the SMTP session's thread, in one transaction, before the 250
(:func:`commit_now`): what the 250 acknowledges is committed to SQLite (its WAL) when the
test's client gets it.

Its index waits for the first read that needs it (:meth:`DirectCommit.index_pending`, run
by ``SQLiteDb.reader`` before any read but those in ``SQLiteDb.unindexed_reads``: a test
server's reads without a query, which parse the message themselves). A test that waits for
its message and reads it never pays for the index (nor for emptying it after), and any
query, HTTP or IMAP read finds the message indexed. With tagging rules (their tags are the
index's) or the IMAP server's data to derive, the message is indexed in its transaction.

When the writer is busy (a batch, an IMAP derive, the close), or anything waits in its
queue (journaled mail, a change), the message takes the journal as on any store, so mail
is still stored in the order it was acknowledged and the session never waits behind the
writer. The writer holds :attr:`DirectCommit.lock` while it works.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .base import Envelope, StoreClosed, StoreError
from .ids import new_id
from .sqlite_jobs import _Ingest

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

__all__ = ["DirectCommit", "WriterLock"]


class WriterLock:
    """A reentrant lock that tells "no thread holds it" from "this thread holds it already".

    The writer holds it while it works, and a subscriber told of its commit may read on that
    thread (a reader indexing what waits takes it again). A non-blocking acquire of a plain
    RLock succeeds for that thread too, so it cannot say the writer is idle:
    :meth:`acquire_idle` can.
    """

    __slots__ = ("_depth", "_lock")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # nested holds by its owner (changed only while holding it)

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire_idle(self) -> bool:
        """Take the lock if no thread holds it, this one included; False (not taken) else."""
        if not self._lock.acquire(blocking=False):
            return False
        if self._depth:  # this thread holds it already: at work further up its stack
            self._lock.release()
            return False
        self._depth = 1
        return True

    def release(self) -> None:
        self._depth -= 1
        self._lock.release()


class DirectCommit:
    """The writer's lock, and the connection a message may be committed on directly."""

    __slots__ = ("closed_here", "conn", "indexing", "lock")

    def __init__(self) -> None:
        # held by the writer thread while it works, by a direct commit, and by a reader
        # indexing what waits (reentrant: a subscriber told of a commit may read on that thread)
        self.lock = WriterLock()
        # the writer's connection when the store commits directly (set at start), else None
        self.conn: sqlite3.Connection | None = None
        self.closed_here = False  # close_now() closed the database: the writer's loop only ends
        self.indexing = False  # index_pending() at work (its own reads do not start it again)

    @staticmethod
    def ready(store: SQLiteStore) -> bool:
        """Nothing waits for the writer: a message committed now keeps its order."""
        journal = store._journal
        return (
            not store._degraded
            and not store._retry
            and store.db.queue.empty()
            and (journal is None or store._applied_seq >= journal.seq)
        )

    def close_now(self, store: SQLiteStore) -> bool:
        """At the store's close, with the writer idle and nothing queued: empty (and keep) or
        close the database on this thread, as the writer's loop would at its stop; False when
        the writer has work (it closes the store itself then).

        A test server is closed by the next one's start: waking the old writer for this would
        have it compete for the interpreter lock with that start and the next test."""
        conn = self.conn
        if conn is None or not self.lock.acquire_idle():
            return False
        try:
            if not store.db.queue.empty():
                return False
            self.conn = None
            self.closed_here = True
            store.keep_or_close(conn)
            return True
        finally:
            self.lock.release()

    def commit_now(
        self,
        store: SQLiteStore,
        envelope: Envelope,
        raw: bytes,
        tags: tuple[str, ...],
        after: Callable[[sqlite3.Connection], None],
    ) -> str | None:
        """Store, index and commit one message on this thread; its ID, or None when the
        writer is busy or has work queued (then journal it). ``after``: the writer's checks
        after a transaction (its checkpoint thread).

        Raises:
            StoreClosed: the store closed meanwhile.
            StoreError: the transaction failed (nothing of the message is kept: answer 451).
        """
        conn = self.conn
        if conn is None or not self.lock.acquire_idle():
            return None
        try:
            if store.db.closed:
                raise StoreClosed("store is closed")
            if not self.ready(store):
                return None  # mail or changes ahead of this one: stored in their order
            pid = new_id()
            background = store.background
            # indexed by the first read that needs it, unless tagging rules (applied when
            # indexing) or the IMAP server's data (derived after it) are wanted of new mail
            lazy = not background.tag_rules and not background.imap_in_use
            if lazy:
                store.db.before_read = functools.partial(self.index_pending, store)
            if not store._run_batch(conn, [_Ingest(envelope, raw, tags, None, pid=pid)], index=not lazy):
                raise StoreError("the message could not be stored")
            after(conn)
            return pid
        finally:
            self.lock.release()

    def index_pending(self, store: SQLiteStore) -> None:
        """Index the stored mail that waits for it (committed by :meth:`commit_now` without
        its index), on this thread, before a read: whatever reads after finds it. A reader
        that comes meanwhile waits for it (the lock; the hook is removed once it is done).
        Nothing when the store's connection is in a transaction on this thread (a read by
        the writer's own work: its next transaction indexes it)."""
        with self.lock:
            conn = self.conn
            if self.indexing or store.db.before_read is None:
                return
            if conn is None or store.db.closed:
                store.db.before_read = None
                return
            if conn.in_transaction:
                return
            self.indexing = True
            try:
                store.background.index_now(conn)
                if conn.execute("SELECT EXISTS (SELECT 1 FROM message WHERE indexed = 0)").fetchone()[0]:
                    # its index write failed (logged): a new indexer looks again, the writer's
                    # (the readers that wait for indexing wake it: Background.unindexed)
                    store.background._inline_indexer = None
            finally:
                self.indexing = False
                store.db.before_read = None

    @staticmethod
    def indexed_before_reads(store: SQLiteStore) -> bool:
        """Mail waits for its index, and the next read (but :meth:`unindexed_reads`) indexes
        it first: every query finds every stored message."""
        return store.db.before_read is not None

    def unindexed_reads(self, store: SQLiteStore) -> contextlib.AbstractContextManager[None]:
        """This thread's reads meanwhile leave the mail waiting for its index as it is: for
        reads that need nothing of the index (a test server's listing without a query, whose
        messages the reader parses itself), unless tagging rules give the index's tags."""
        if store.background.tag_rules:
            return contextlib.nullcontext()
        return store.db.unindexed_reads()
