"""Background work of the SQLite store: WAL checkpoints and the indexer (parse, FTS, threads).

:class:`Background` is a part of :class:`postroom.store.sqlite.SQLiteStore`. The indexer parses in its own process
by default (see index_worker.py), which writes its results itself; with ``--indexer thread``
it runs here and writes through the store's writer. A throwaway store (``--db :memory:``, every
in-process test server) with ``--indexer thread`` is indexed by the writer itself, right after
each commit of new mail: a test server starts and stops no indexer thread, and a message is
indexed without waking one. The checkpoint thread of such a store starts with its 1,000th
message (until then SQLite's own automatic checkpoints keep its WAL small).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import MessagesIndexed
from .base import StoreClosed, StoreError
from .header_scan import header_rows
from .index_write import TEXT_ONLY, write_header_rows
from .sqlite_jobs import _INDEX

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import Settings
    from .sqlite_db import SQLiteDb
    from .sqlite_writes import Writes

__all__ = ["ANALYZE_FROM", "WRITER_CHECKPOINT_PAGES", "Background"]

log = logging.getLogger("postroom.store.sqlite")

# Seconds the indexer process gets to finish its batch once asked to stop (its stdin
# closed); then it and its helpers are killed, so that SIGTERM stops postroom within a few
# seconds even in the middle of a large backlog (issue 14).
INDEXER_STOP_GRACE = 2.0

CHECKPOINT_INTERVAL = 0.5  # seconds between background WAL checkpoints
WAL_RESTART_BYTES = 64 * 1024 * 1024  # truncate the WAL past this size, when idle
# The writer's COMMIT checkpoints once the WAL holds this many pages (~16 MB): what the
# checkpoint thread has not copied yet (Background.writer_checkpoints).
WRITER_CHECKPOINT_PAGES = 4000
# The query planner's statistics (sqlite_stat1) of the message table are gathered once it
# holds this many messages, and again whenever it has since grown (or shrunk) twofold. Without
# them SQLite takes "read = 0" for a selective condition and walks the unread index with a
# table lookup per row, where scanning a covering index is 3-4x quicker when, as usual in a
# mail catcher, most mail is unread (measured at 100,000: `subject:welcome is:unread` 31 ms
# against 9). ANALYZE of 100,000 messages takes ~45 ms, in this background thread.
# Statistics taken while the indexer lags behind describe messages without their conversation
# (an empty thread id), and led the planner to read /api/v2/threads one conversation at a time
# (194 ms at 10,000 messages, issue 15): while messages wait for the indexer, existing
# statistics are kept, and statistics gathered then (there were none) are gathered again
# once the indexer has caught up.
ANALYZE_FROM = 1000
# Messages stored before the header index existed whose header fields the checkpoint thread
# writes per round (every CHECKPOINT_INTERVAL while idle: 100,000 in under a minute).
HEADER_BACKFILL = 1000
INLINE_BACKFILL = 200  # messages per round whose inline parts the background pass counts
ANALYZE_GROWTH = 2.0


def _extractor() -> Callable[[bytes], Any] | None:
    """The parser the indexer runs (None: it cannot run, the index stays empty). Checked
    here, not through ``index_worker`` (the indexer process's twin): a store starts without
    loading the indexer, which an in-process test server loads with its first search."""
    try:
        from .indexer import extract
    except ImportError:
        return None
    return extract


_said_unavailable = False


def _unavailable() -> None:
    global _said_unavailable
    if not _said_unavailable:  # once per process: a test server's inline indexer asks per batch
        _said_unavailable = True
        log.warning("indexer not available: snippets and full-text search stay empty")


class Background:
    """The checkpoint thread and the indexer of one SQLite store (see the module docstring)."""

    def __init__(
        self, db: SQLiteDb, writes: Writes, run_batch: Callable[[sqlite3.Connection, list[Any]], bool]
    ) -> None:
        self.db = db
        self.writes = writes
        self._run_batch = run_batch  # the writer's: apply jobs in one transaction (inline indexer)
        self.tag_rules: Any = None  # indexer.TagRules, set by the store's start
        self._indexer: threading.Thread | None = None
        self.checkpointer: threading.Thread | None = None
        self._index_proc: subprocess.Popen[bytes] | None = None
        self._index_wakeup = threading.Event()
        # A throwaway store with --indexer thread (every in-process test server) is indexed
        # by its writer right after each commit: no thread to start, stop or wait for.
        self.index_inline = db.throwaway and db.settings.indexer == "thread"
        self._inline_indexer: Any = None  # index_worker.Indexer, made on the first message
        # Whether the indexer derives the IMAP server's data of new mail (Indexer.imap_batch):
        # a throwaway store's writer does once IMAP has read its cache (the first FETCH
        # derives on demand): most test servers never serve IMAP, and the derive costs about
        # as much again as the text index (~0.3-0.5 ms a message on the writer).
        # A server with no IMAP listener (--imap off --imaps off) has nobody to read it:
        # none is derived after a burst (~0.14 ms a message, both cores for seconds after
        # 100,000). If IMAP reads the cache after all (a store opened by another App), the
        # first read turns it on; mail indexed before then is derived on demand.
        self.imap_in_use = not self.index_inline and serves_imap(db.settings)
        self._index_queued = False
        self._stopping = threading.Event()  # set by stop(): background threads stop waiting
        self.analyzed_rows = -1  # messages at the last ANALYZE (-1: not looked up yet)
        self.analyzed_lagging = False  # the last ANALYZE ran while messages waited for the indexer

    def stop(self) -> None:
        """Stop the indexer, then the checkpoint thread (after the writer has stopped)."""
        self.stop_indexer()
        self._index_wakeup.set()
        self._stopping.set()
        if self.checkpointer is not None:
            self.checkpointer.join(10)

    @staticmethod
    def writer_checkpoints(conn: sqlite3.Connection) -> None:
        """The writer's own checkpoints bound the WAL (``conn``, on the thread that has it,
        before the checkpoint thread starts): its COMMIT that takes the WAL past
        WRITER_CHECKPOINT_PAGES copies what the checkpoint thread has not yet, and so the
        next transaction writes the WAL from its start again.

        The checkpoint thread's PASSIVE checkpoints run while the writer commits: during a
        burst each ends with frames written after it began, so the WAL never restarts and
        grew without end (issue 15: 360 MB after 15,500 html messages, then a TRUNCATE of
        it at idle; the writer appending to a new file). A checkpoint on the writer's thread
        completes: SQLite's default (1,000 pages) did so every ~25 transactions of a burst,
        copying an index's last leaves again each time; at 4,000 pages the checkpoint thread
        has copied most of it by then. A throwaway store keeps SQLite's 1,000 until its
        checkpoint thread starts (its 1,000th message)."""
        conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES:d}")

    def start_checkpointer(self) -> None:
        self.checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="postroom-checkpoint", daemon=True
        )
        self.checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database every CHECKPOINT_INTERVAL seconds (PASSIVE: it never
        blocks the writer or readers), and restart the WAL when it has grown large and nobody
        is writing, so it does not grow without end."""
        conn = sqlite3.connect(self.db.path, isolation_level=None, check_same_thread=False, timeout=0)
        wal = self.db.path + "-wal"
        try:
            while not self.db.closed:
                if self._stopping.wait(CHECKPOINT_INTERVAL):
                    break  # closing: one last checkpoint below, without waiting out the interval
                try:
                    size = os.path.getsize(wal) if os.path.exists(wal) else 0
                    mode = "TRUNCATE" if size > WAL_RESTART_BYTES and self.db.queue.empty() else "PASSIVE"
                    if size:
                        conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
                    self.maybe_analyze(conn)
                    self.backfill_headers(conn)
                    self.backfill_inline(conn)
                except sqlite3.Error:
                    pass  # busy: try again next round
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error:
                pass
        finally:
            conn.close()

    def maybe_analyze(self, conn: sqlite3.Connection) -> None:
        """Gather the planner's statistics of the message table when they are missing or its
        size has changed ANALYZE_GROWTH-fold since; readers reload them (``SQLiteDb.stats_gen``)."""
        if not self.db.queue.empty():
            return  # the writer is busy: ANALYZE holds the write lock (~45 ms per 100,000 messages)
        row = conn.execute("SELECT max(id) - min(id) + 1 FROM message").fetchone()  # two b-tree seeks
        estimate = int(row[0] or 0)
        if estimate < ANALYZE_FROM:
            return
        if self.analyzed_rows < 0:
            self.analyzed_rows = _analyzed_rows(conn)
        base = self.analyzed_rows
        if base and not self.analyzed_lagging and base / ANALYZE_GROWTH < estimate < base * ANALYZE_GROWTH:
            return
        lagging = bool(conn.execute("SELECT EXISTS (SELECT 1 FROM message WHERE indexed = 0)").fetchone()[0])
        if lagging and base:
            return  # keep the statistics there are until the indexer has caught up
        conn.execute("ANALYZE message")
        self.analyzed_lagging = lagging
        self.analyzed_rows = _analyzed_rows(conn)
        self.db.stats_gen += 1
        log.debug("planner statistics gathered at %d messages", self.analyzed_rows)

    def backfill_headers(self, conn: sqlite3.Connection) -> int:
        """Write the ``header_field`` rows of up to HEADER_BACKFILL indexed messages that have
        none (stored before the index existed), through the writer; returns how many."""

        def apply(c: sqlite3.Connection, mid: int, found: Any) -> None:
            if c.execute("UPDATE message SET hdr = 1 WHERE id = ? AND hdr = 0", (mid,)).rowcount:
                write_header_rows(c, mid, found)  # still there, and not written meanwhile

        return self._backfill(conn, "m.hdr = 0", HEADER_BACKFILL, header_rows, apply)

    def backfill_inline(self, conn: sqlite3.Connection) -> int:
        """Count the inline parts of up to INLINE_BACKFILL indexed messages stored before the
        count existed (``inline_parts`` NULL), through the writer; returns how many."""
        from .indexer import count_inline

        def apply(c: sqlite3.Connection, mid: int, count: Any) -> None:
            c.execute(
                "UPDATE message SET inline_parts = ? WHERE id = ? AND inline_parts IS NULL", (count, mid)
            )

        return self._backfill(conn, "m.inline_parts IS NULL", INLINE_BACKFILL, count_inline, apply)

    def _backfill(
        self,
        conn: sqlite3.Connection,
        missing: str,
        limit: int,
        derive: Callable[[bytes], Any],
        apply: Callable[[sqlite3.Connection, int, Any], None],
    ) -> int:
        """One round of filling what older messages lack: up to ``limit`` indexed messages
        matching ``missing`` (SQL over ``m``, the message), each parsed here by ``derive``
        (not on the writer's thread) and written by ``apply`` through the writer; returns
        how many were read."""
        if not self.db.queue.empty():
            return 0  # the writer is busy: another round
        rows = conn.execute(
            "SELECT m.id, r.data FROM message m JOIN raw r ON r.id = m.id "
            f"WHERE {missing} AND m.indexed != 0 ORDER BY m.id LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            return 0
        derived = [(mid, derive(data)) for mid, data in rows]

        def fn(c: sqlite3.Connection) -> None:
            for mid, value in derived:
                apply(c, mid, value)

        try:
            self.db.write(fn, timeout=10)
        except (StoreError, TimeoutError):
            return 0  # closing, or the write failed: another round (or the next start) goes on
        return len(rows)

    # -- the indexer (parsing in its own process by default, see index_worker.py) ---------
    def start_indexer(self) -> None:
        if self.index_inline:  # the writer's, loaded with its first index (index_in_transaction)
            if self.writes.count:  # the writer indexes what the store holds already
                self.wake_indexer()
            return
        if _extractor() is None:
            log.warning("indexer not available: snippets and full-text search stay empty")
            return
        if self.db.settings.indexer == "process":
            spawned: list[BaseException] = []
            ready = threading.Event()
            self._indexer = threading.Thread(
                target=self._index_receiver, args=(spawned, ready), name="postroom-index", daemon=True
            )
            self._indexer.start()
            ready.wait()
            if spawned:
                raise spawned[0]
        else:
            self._indexer = threading.Thread(target=self._index_loop, name="postroom-index", daemon=True)
            self._indexer.start()
        self.wake_indexer()

    def _spawn_indexer(self) -> subprocess.Popen[bytes]:
        from ..lifeline import PARENT_ENV
        from .thread_index import options_from_settings, worker_args

        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "postroom.store.index_worker",
                self.db.path,
                *worker_args(options_from_settings(self.db.settings)),
                *([] if self.imap_in_use else ["--no-imap-data"]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            # its own process group, with its helper processes: stopping kills them all
            # at once when they do not finish in time (_stop_indexer)
            start_new_session=True,
            env={
                **os.environ,
                "POSTROOM_TAG_RULES": json.dumps(self.db.settings.extra.get("tags") or []),
                PARENT_ENV: str(os.getpid()),  # it ends when this process does (lifeline.py)
            },
        )
        assert proc.stdin is not None
        os.set_blocking(proc.stdin.fileno(), False)
        return proc

    def _index_job(self, rows: list[Any]) -> Callable[[sqlite3.Connection], None]:
        """A writer job storing parsed results; they are announced once committed."""
        from .index_write import write_index

        def fn(conn: sqlite3.Connection) -> None:
            pids = write_index(conn, rows, self.tag_rules)
            if pids:
                self.db.emit(MessagesIndexed(tuple(pids)))

        return fn

    def _imap_job(self, rows: list[Any]) -> Callable[[sqlite3.Connection], None]:
        """A writer job storing the IMAP data the indexer derived (index_write.write_imap_rows)."""
        from .index_write import write_imap_rows

        return lambda conn: write_imap_rows(conn, rows)

    def write_index(self, rows: list[Any]) -> None:
        """Hand parsed results to the writer (its next group commit); announce them after."""
        self.db.write(self._index_job(rows), rows=len(rows))  # a row a message (_Call.rows)

    def index_now(self, conn: sqlite3.Connection) -> None:
        """The inline indexer (writer thread only): parse and store what is not indexed yet."""
        import concurrent.futures

        from .sqlite_jobs import _Call

        self._index_queued = False

        def apply(rows: list[Any]) -> None:
            self._run_batch(conn, [_Call(self._index_job(rows), concurrent.futures.Future(), len(rows))])

        try:
            indexer = self._inline(conn, apply)
            while not self.db.closed and (rows := indexer.next_batch()):
                apply(rows)
            while self.imap_in_use and not self.db.closed and (imap := indexer.imap_batch()):
                self._run_batch(conn, [_Call(self._imap_job(imap), concurrent.futures.Future(), len(imap))])
            if not self.db.closed and (rows := indexer.idle()):
                apply(rows)
        except sqlite3.Error:
            log.exception("indexing failed (tried again with the next message)")

    def _inline(self, conn: sqlite3.Connection, apply: Callable[[list[Any]], None]) -> Any:
        """The inline indexer (index_worker.Indexer), made on first use; ``apply`` writes the
        conversation fixes its start finds."""
        indexer = self._inline_indexer
        if indexer is None:
            from .index_worker import BATCH, Indexer
            from .thread_index import options_from_settings

            assert _extractor() is not None  # checked by _start_indexer
            from .indexer import extract_shared as extract  # parses the reader may take

            # It reads through the writer's own connection, between the writer's
            # transactions (a connection of its own would parse the schema again, and
            # the store's copy of the schema template has FTS5's automerge set already).
            indexer = Indexer(conn, extract, options_from_settings(self.db.settings))
            self._inline_indexer = indexer
            fixes = indexer.start()  # the conversation index, from the stored messages
            for i in range(0, len(fixes), BATCH):
                apply(fixes[i : i + BATCH])
        return indexer

    def index_in_transaction(self, conn: sqlite3.Connection) -> bool:
        """The inline indexer inside the writer's open transaction, right after it stored new
        mail: the messages are committed indexed, in the same commit, and announced with
        their MessageStored. A failure here leaves the mail's transaction alone (its own
        savepoint is rolled back) and the next index_now tries again.

        Returns:
            True when every new message is indexed and the indexer has nothing else to do
            (no IMAP data to derive, no housekeeping due): no index_now needed after the
            commit (:meth:`after_ingest`).
        """
        if _extractor() is None:
            _unavailable()
            return False
        conn.execute("SAVEPOINT ix")
        mark = len(self.db.pending())
        try:
            indexer = self._inline(conn, lambda rows: self._index_job(rows)(conn))
            while rows := indexer.next_batch():
                self._index_job(rows)(conn)
                if not indexer.more:
                    # nothing new can arrive inside the transaction: a fetch that stopped
                    # short of its limit took every pending message (no look that finds none)
                    break
            conn.execute("RELEASE ix")
            return not self.imap_in_use and not indexer.idle_due()
        except Exception:
            log.exception("indexing failed (tried again after the commit)")
            conn.execute("ROLLBACK TO ix")
            conn.execute("RELEASE ix")
            del self.db.pending()[mark:]
            self._inline_indexer = None  # its conversation index may hold what was rolled back
            return False

    def _index_receiver(self, spawned: list[BaseException], ready: threading.Event) -> None:
        """Start the worker process, then announce what it indexed (it writes its results
        itself, in short transactions, so the SMTP path never waits behind full-text work:
        one line of IDs each). It is started on this thread, which lives as long as it does:
        the kernel's parent-death signal follows the thread that started a process
        (lifeline.py)."""
        try:
            proc = self._index_proc = self._spawn_indexer()
        except BaseException as e:
            spawned.append(e)
            return
        finally:
            ready.set()
        assert proc.stdout is not None
        with proc.stdout:  # closed at its end (the worker exited), not left to the collector
            for line in proc.stdout:
                pids = line.decode("ascii", "replace").split()
                if pids and not self.db.closed:
                    self.db.bus.publish(MessagesIndexed(tuple(pids)))

    def _index_loop(self) -> None:
        from .index_worker import BATCH, Indexer, connect_readonly
        from .thread_index import options_from_settings

        extract = _extractor()
        assert extract is not None
        conn = connect_readonly(self.db.path)
        indexer = Indexer(conn, extract, options_from_settings(self.db.settings))
        try:
            # FTS5 merges at insert here (the worker process switches that off and merges
            # when idle; the same database may have been indexed by one before)
            self.db.write(lambda c: c.execute("INSERT INTO fts(fts, rank) VALUES ('automerge', 4)"))
            fixes = indexer.start()  # the conversation index, from the stored messages
            for i in range(0, len(fixes), BATCH):
                self.write_index(fixes[i : i + BATCH])
            while not self.db.closed:
                self._index_wakeup.wait(2)
                self._index_wakeup.clear()
                while not self.db.closed and (rows := indexer.next_batch()):
                    self.write_index(rows)
                # then the IMAP server's data of what is indexed (a batch at a time, so that
                # new mail waiting for the text index goes first)
                while (
                    not self.db.closed
                    and not self._index_wakeup.is_set()
                    and (imap := indexer.imap_batch(self._index_wakeup.is_set))
                ):
                    self.db.write(self._imap_job(imap), rows=len(imap))
                if not self.db.closed and (rows := indexer.idle()):
                    self.write_index(rows)
        except StoreClosed:
            pass
        except sqlite3.Error:
            if not self.db.closed:
                log.exception("indexer stopped")
        finally:
            conn.close()

    def after_ingest(self, indexed: bool) -> None:
        """New mail was committed: have the indexer look, unless ``indexed`` (what
        :meth:`index_in_transaction` returned for that transaction): a look that finds
        nothing to do costs the writer another turn and a query per message."""
        if not (indexed and self.index_inline):
            self.wake_indexer()

    def wake_indexer(self) -> None:
        proc = self._index_proc
        if self.index_inline:
            if not self._index_queued:
                self._index_queued = True
                self.db.queue.put(_INDEX)
        elif proc is not None and proc.stdin is not None:
            try:
                os.write(proc.stdin.fileno(), b".")
            except (OSError, ValueError):
                pass  # already woken (pipe full), gone, or being stopped (pipe closed); it polls anyway
        else:
            self._index_wakeup.set()

    def stop_indexer(self) -> None:
        """Stop parsing; called before the writer stops, so results in flight are dropped."""
        self._index_wakeup.set()
        proc = self._index_proc
        if proc is not None:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            try:
                proc.wait(INDEXER_STOP_GRACE)
            except subprocess.TimeoutExpired:
                # Busy with a batch: what it has not committed is parsed again at the next
                # start (a message is marked indexed in the transaction that writes it).
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._indexer is not None:
            self._indexer.join(10)
        self._inline_indexer = None  # its connection is the writer's (closed by the writer)

    def unindexed(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` whose indexing (text, attachments, conversation) is not done yet,
        so a full-text or ``has:`` query would not find them; deleted IDs are left out.

        The test helpers wait on this (see postroom.testing) so that a message they return
        is found by every query. Waking the indexer is part of the call: it may be asleep.
        """
        if not ids:
            return []
        conn = self.db.reader()
        pending: list[str] = []
        for i in range(0, len(ids), 500):  # SQLite's variable limit is 32,766; keep it small
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            pending += [
                r[0]
                for r in conn.execute(
                    f"SELECT pid FROM message WHERE pid IN ({marks}) AND indexed != 1", chunk
                )
            ]
        if pending:
            self.wake_indexer()
        return pending

    def wait_indexed(self, timeout: float = 30) -> bool:
        """Block until every stored message is indexed, its conversation included (for tests
        and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = self.db.reader()
            # both tests are partial-index seeks (message_pending, message_text_only)
            if not conn.execute(
                "SELECT EXISTS (SELECT 1 FROM message WHERE indexed = 0) "
                f"OR EXISTS (SELECT 1 FROM message WHERE indexed = {TEXT_ONLY:d})"
            ).fetchone()[0]:
                return True
            self.wake_indexer()
            time.sleep(0.02)
        return False


def _analyzed_rows(conn: sqlite3.Connection) -> int:
    """How many messages the table held when its statistics were gathered (0: never)."""
    try:
        row = conn.execute(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = 'message' AND idx = 'sqlite_autoindex_message_1'"
        ).fetchone()
    except sqlite3.OperationalError:  # no sqlite_stat1 table yet
        return 0
    return int(row[0].split()[0]) if row and row[0] else 0


def serves_imap(settings: Settings) -> bool:
    """Whether the server has an IMAP listener (plain or implicit TLS)."""
    return settings.imap != "off" or settings.imaps != "off"
