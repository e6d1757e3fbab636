"""What every part of the SQLite backend shares: :class:`SQLiteDb`.

The backend (:class:`~postroom.store.sqlite.SQLiteStore`) is built from parts that each
receive this object explicitly: the reader (``sqlite_reading.py``), the IMAP cache
(``sqlite_imapcache.py``), the changes and folders (``sqlite_changes.py``,
``sqlite_folders.py``), the background work (``sqlite_background.py``) and the writer
(``sqlite.py``). It holds the database path and settings, the read connections (one per
thread), the writer's queue with :meth:`SQLiteDb.write`, and the events a writer call
queues for publication after its commit (:meth:`SQLiteDb.emit`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..events import Event
from .base import StoreClosed
from .header_scan import register_functions
from .rawcodec import unpack
from .sqlite_jobs import RowsHint, WriterQueue, _Call

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import Bus

__all__ = ["SQLiteDb", "chunks"]


def _no_wait() -> None:
    return None


class SQLiteDb:
    """The shared handle of one SQLite database (see the module docstring)."""

    def __init__(self, path: str, settings: Settings, bus: Bus, *, throwaway: bool) -> None:
        self.path = path
        self.settings = settings
        self.bus = bus
        self.throwaway = throwaway  # a ``:memory:`` store in a temporary directory
        self.queue = WriterQueue()  # the writer's jobs
        self.closed = False
        # Read-your-writes: called before a read until every acknowledged message is stored
        # (the writer sets it once its journal is open).
        self.wait_applied: Callable[[], None] = _no_wait
        self.applied_now: Callable[[], bool] = lambda: True  # would wait_applied return at once?
        # Set while stored mail waits to be indexed on demand (sqlite_direct.py): called
        # before a read, unless this thread reads in :meth:`unindexed_reads`.
        self.before_read: Callable[[], None] | None = None
        self.stats_gen = 0  # bumped when the planner's statistics change (readers reload them)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # read connections of a kept throwaway database (sqlite_recycle.py), by thread ident:
        # a thread takes its own the first time it reads
        self._adopted: dict[int, sqlite3.Connection] = {}
        self._reader_threads: dict[sqlite3.Connection, int] = {}  # each reader's thread ident
        self._events = threading.local()

    def reader(self, wait: bool = True) -> sqlite3.Connection:
        """This thread's read connection; first, unless ``wait`` is False, wait until every
        acknowledged message is stored (read-your-writes)."""
        if self.closed:
            raise StoreClosed("store is closed")
        if wait:
            self.wait_applied()
        hook = self.before_read  # read once: another thread's indexing may clear it meanwhile
        if hook is not None and not getattr(self._local, "unindexed_ok", False):
            hook()  # index what waits first: every query finds it
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._readers_lock:
                conn = self._adopted.pop(threading.get_ident(), None) if self._adopted else None
            if conn is None:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA query_only=1")
                register_functions(conn)
            self._local.conn = conn
            self._local.stats_gen = self.stats_gen
            with self._readers_lock:
                self._readers.append(conn)
                self._reader_threads[conn] = threading.get_ident()
        elif self._local.stats_gen != self.stats_gen:
            # new planner statistics (sqlite_background.Background.maybe_analyze): load them
            self._local.stats_gen = self.stats_gen
            conn.execute("PRAGMA query_only=0")
            conn.execute("ANALYZE sqlite_schema")  # only reads sqlite_stat1 into this connection
            conn.execute("PRAGMA query_only=1")
        return conn

    @contextlib.contextmanager
    def unindexed_reads(self) -> Iterator[None]:
        """This thread's reads meanwhile do not index what waits (:attr:`before_read`): for a
        reader that needs none of the index (a test server's listing without a query, and its
        messages' bytes, parsed by the reader itself)."""
        self._local.unindexed_ok = True
        try:
            yield
        finally:
            self._local.unindexed_ok = False

    def adopt_readers(self, readers: dict[int, sqlite3.Connection]) -> None:
        """Read connections (by thread ident) of a kept throwaway database, before start."""
        self._adopted = dict(readers)

    def hand_over_readers(self) -> dict[int, sqlite3.Connection]:
        """Every read connection, by the ident of the thread it serves (the store is closed:
        a kept throwaway database takes them along)."""
        with self._readers_lock:
            out = dict(self._adopted)
            self._adopted.clear()
            for conn, ident in self._reader_threads.items():
                out[ident] = conn
            self._readers.clear()
            self._reader_threads.clear()
        return out

    def close_readers(self) -> None:
        with self._readers_lock:
            for c in [*self._readers, *self._adopted.values()]:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()
            self._adopted.clear()
            self._reader_threads.clear()

    def write(
        self, fn: Callable[[sqlite3.Connection], Any], timeout: float = 60, *, rows: RowsHint = None
    ) -> Any:
        """Run ``fn(conn)`` in the writer's next transaction and wait for the commit.
        ``rows``: how many rows it changes at most (``_Call.rows``; None: not known)."""
        if self.closed:
            raise StoreClosed("store is closed")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.queue.put(_Call(fn, fut, rows))
        return fut.result(timeout)

    async def write_async(self, fn: Callable[[sqlite3.Connection], Any], *, rows: RowsHint = None) -> Any:
        """:meth:`write` for an event loop: no thread waits for the commit. Calls that come
        while the writer commits share its next transaction and commit; each is resolved
        only after that commit (one hop to the loop for all of a batch's)."""
        if self.closed:
            raise StoreClosed("store is closed")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put(_Call(fn, fut, rows))
        return await fut

    def pending(self) -> list[Event]:
        """Events queued by the writer thread's current transaction."""
        pending: list[Event] | None = getattr(self._events, "pending", None)
        if pending is None:
            pending = self._events.pending = []
        return pending

    def emit(self, event: Event) -> None:
        """Queue an event from inside a writer call; published after commit."""
        self.pending().append(event)

    @staticmethod
    def decompress(data: bytes) -> bytes:
        return unpack(data)


def chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    """``items`` in lists of at most ``size`` (SQL ``IN`` lists stay short)."""
    return [items[i : i + size] for i in range(0, len(items), size)]
