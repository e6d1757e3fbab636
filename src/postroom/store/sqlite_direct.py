"""In-process test servers: a message committed by the thread that received it.

A store's writer thread applies journaled mail after the SMTP session has answered 250
(store/sqlite.py). For an in-process test server (a throwaway database indexed inline, as
``postroom.Server`` and the pytest ``mail`` fixture make it) that hand-off costs more than
the work: the SMTP session, the writer and the test's own thread then share the
interpreter lock while the test waits for the message, and on a busy machine every switch
between them waits for a core. So when its writer is idle, such a store stores, indexes and
commits the message on the SMTP session's thread, in one transaction, before the 250
(:func:`commit_now`): what the 250 acknowledges is committed to SQLite (its WAL), and
indexed, when the test's client gets it.

When the writer is busy (a batch, an IMAP derive, the close), or anything waits in its
queue (journaled mail, a change), the message takes the journal as on any store, so mail
is still stored in the order it was acknowledged and the session never waits behind the
writer. The writer holds :attr:`DirectCommit.lock` while it works.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .base import Envelope, StoreClosed, StoreError
from .ids import new_id
from .sqlite_jobs import _Ingest

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

__all__ = ["DirectCommit"]


class DirectCommit:
    """The writer's lock, and the connection a message may be committed on directly."""

    __slots__ = ("closed_here", "conn", "lock")

    def __init__(self) -> None:
        # held by the writer thread while it works, and by a direct commit
        self.lock = threading.Lock()
        # the writer's connection when the store commits directly (set at start), else None
        self.conn: sqlite3.Connection | None = None
        self.closed_here = False  # close_now() closed the database: the writer's loop only ends

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
        if conn is None or not self.lock.acquire(blocking=False):
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
        after: Callable[[], None],
    ) -> str | None:
        """Store, index and commit one message on this thread; its ID, or None when the
        writer is busy or has work queued (then journal it). ``after``: the writer's checks
        after a transaction (its checkpoint thread).

        Raises:
            StoreClosed: the store closed meanwhile.
            StoreError: the transaction failed (nothing of the message is kept: answer 451).
        """
        conn = self.conn
        if conn is None or not self.lock.acquire(blocking=False):
            return None
        try:
            if store.db.closed:
                raise StoreClosed("store is closed")
            if not self.ready(store):
                return None  # mail or changes ahead of this one: stored in their order
            pid = new_id()
            if not store._run_batch(conn, [_Ingest(envelope, raw, tags, None, pid=pid)]):
                raise StoreError("the message could not be stored")
            after()
            return pid
        finally:
            self.lock.release()
