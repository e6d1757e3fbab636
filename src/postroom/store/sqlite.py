"""The default backend: embedded SQLite (WAL), one writer thread with group commit.

Ingest path: :meth:`SQLiteStore.deliver` puts the raw message on the writer's queue and
awaits a future. The writer takes everything queued (up to :data:`MAX_BATCH` jobs),
runs it in one transaction, commits once, and only then resolves the futures of the
whole batch with one hop to the event loop. So many SMTP sessions share one commit, and
a 250 reply is only ever sent for a committed message.

Readers use one connection per thread (WAL lets them read while the writer writes).
Heavy work (MIME parse, full-text index) runs in the indexer thread after commit."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import Event
from . import sqlite_recycle as recycle
from .base import Entry, Envelope, FlagMode, NotFound, StoreClosed, StoreError
from .composed import Composed
from .header_scan import register_functions
from .ids import new_id
from .index_write import TEXT_ONLY
from .journal import Journal, JournalTail, keep_damaged, read_journal, segment_path
from .owner import StoreLock
from .sqlite_background import ANALYZE_FROM, Background
from .sqlite_changes import Changes
from .sqlite_db import SQLiteDb
from .sqlite_direct import DirectCommit
from .sqlite_folders import Folders
from .sqlite_imapcache import ImapCache
from .sqlite_jobs import (
    _INDEX,
    _STOP,
    _TAIL,
    MAX_BATCH,
    _Call,
    _fail,
    _Ingest,
    _ingest_from_record,
    drain_after_stop,
    resolve_calls,
    resolve_ingests,
    run_split,
)
from .sqlite_reading import Reader
from .sqlite_schema import TEMPLATE_PAGE_SIZE, apply_migrations, schema_template
from .sqlite_tails import TAIL_BYTES, WorkerJournals
from .sqlite_writes import Writes
from .writer_pool import run_writer

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import Bus
    from .sqlite_outbound import SQLiteOutbound

__all__ = ["TAIL_BYTES", "SQLiteStore"]

log = logging.getLogger(__name__)

# While SMTP workers keep writing, the writer reads their journals again after each batch;
# when it found fewer than TAIL_BATCH messages it first waits TAIL_PAUSE seconds, so that a
# steady stream is stored in batches, not one transaction per message (mail is listed a few
# milliseconds later; the SMTP reply never waits for this, and a reader waiting for its own
# writes cancels the pause).
TAIL_BATCH = 32
TAIL_PAUSE = 0.004
# A reader waits for acknowledged mail to be stored as long as the writer makes progress; after
# this long without any, it reads anyway (and says so in the log): a stuck writer must not
# hold up the API, POP3 or IMAP (issue 14 item 2; it was 10 s). While the writer fails
# outright (a full disk) readers do not wait at all.
READ_WAIT_LIMIT = 3.0
# Seconds between attempts to store journaled mail after a write failed (a full disk,
# SQLITE_FULL): the mail is safe in the journal; meanwhile new mail gets 451 at once, and
# the first attempt that succeeds (space is back) accepts mail again, with no restart.
RETRY_INTERVAL = 1.0


class SQLiteStore(Composed):
    """SQLite implementation of :class:`postroom.store.base.Store`."""

    def __init__(self, target: str, settings: Settings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self._tmpdir: str | None = None
        # an emptied throwaway database of an earlier store, with its connections
        self._kept = recycle.take(settings.fsync) if target == ":memory:" else None
        self._keep_conn: sqlite3.Connection | None = None  # the writer's, emptied at stop
        # close() left the rest of the close to the pooled writer thread (_pooled_write_loop)
        self._close_lock = threading.Lock()
        self._close_in_writer = False
        self._writer_ended = False
        if self._kept is not None:
            self._tmpdir, target = self._kept.tmpdir, self._kept.path
        elif target == ":memory:":
            base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self._tmpdir = tempfile.mkdtemp(prefix="postroom-", dir=base)
            target = os.path.join(self._tmpdir, "store.db")
        self.path = target
        self.db = SQLiteDb(target, settings, bus, throwaway=self._tmpdir is not None)
        if self._kept is not None:
            self.db.adopt_readers(self._kept.readers)
        self.writes = Writes(self.db)
        reading = Reader(self.db)
        self.folder_view = Folders(self.db, self.writes)  # typed as itself: delete_mailbox too
        super().__init__(reading, Changes(self.db, self.writes, reading), self.folder_view)
        self.imap_cache = ImapCache(self.db)
        self.background = Background(self.db, self.writes, lambda conn, jobs: self._run_batch(conn, jobs))
        self.db.wait_applied, self.db.applied_now = self._wait_applied, self._applied_now
        self._owner = StoreLock(target, private=self._tmpdir is not None)  # a throwaway's: no lock
        self._writer: threading.Thread | None = None
        self._writer_done: threading.Event | None = None  # set when a pooled writer's loop ended
        # writes are failing (disk full...): journaled mail waits in _retry, new mail is refused
        self._degraded = False
        self._retry: list[_Ingest] = []
        self._journal: Journal | None = None
        self._applied_seq = 0
        self.workers = WorkerJournals(
            self.db, lambda *a, **k: self._run_batch(*a, **k), lambda: self._journal is not None
        )
        self._tail_reads_small = False  # the last read of the workers' journals found a little
        self._waiting = 0  # readers waiting for their writes (guarded by _applied_cond)
        self._applied_cond = threading.Condition()
        self.direct = DirectCommit()  # the writer's lock; an in-process test server's mail (start)
        self._outbound: SQLiteOutbound | None = None

    @property
    def outbound(self) -> SQLiteOutbound:
        """The outbound queue kept in this database (:class:`postroom.store.outbound.HasOutbound`)."""
        if self._outbound is None:
            from .sqlite_outbound import SQLiteOutbound  # on first use: a test server has no relay

            self._outbound = SQLiteOutbound(self.db)
        return self._outbound

    # -- served by the parts themselves (composed.Composed) but for these -------------------------
    def imap_cache_get(self, kind: str, ids: list[str], prefix: int | None = None) -> dict[str, bytes]:
        self.background.imap_in_use = True  # from now on the indexer derives it for new mail
        return self.imap_cache.get(kind, ids, prefix)

    def imap_cache_put(self, kind: str, items: dict[str, bytes]) -> None:
        self.imap_cache.put(kind, items)

    def conversation_ids(self, ids: list[str]) -> dict[str, tuple[int, str, bool]]:
        got = self.imap_cache.conversation_ids(ids)
        if not all(done for _, _, done in got.values()):
            self.background.wake_indexer()  # a caller waiting for a thread id: it may be asleep
        return got

    def message_tags(self, ids: list[str]) -> dict[str, list[str]]:
        return self.imap_cache.message_tags(ids)

    def delete_mailbox(self, mailbox: str) -> list[str]:
        return self.folder_view.delete_mailbox(mailbox)

    async def update_flags_async(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        # straight to the writer's queue: no thread waits, and concurrent changes share a commit
        return await self.folder_view.update_flags_async(mailbox, folder, uids, flags, mode)

    async def expunge_async(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        return await self.folder_view.expunge_async(mailbox, folder, uids)

    # -- SMTP workers' journals (sqlite_tails.WorkerJournals) --------------------------------
    def open_worker_journal(self, slot: int) -> JournalTail:
        """Create the (empty) journal of SMTP worker ``slot`` (it writes to ``tail.base``)."""
        return self.workers.open(slot)

    def poke_journals(self) -> None:
        """An SMTP worker has written to its journal: have the writer read it (thread-safe)."""
        self.workers.poke()

    # -- indexing (sqlite_background.Background) ----------------------------------------------
    def unindexed(self, ids: list[str]) -> list[str]:
        return self.background.unindexed(ids)

    def wait_indexed(self, timeout: float = 30) -> bool:
        return self.background.wait_indexed(timeout)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._owner.acquire()  # one postroom per database, before anything else (owner.py)
        except OSError as e:
            raise StoreError(f"cannot open database {self.path}: {e}") from None
        fresh = False  # a copy of the migrated, empty template: nothing to migrate or count
        try:
            if self._kept is not None:  # emptied by the store that used it (sqlite_recycle.py)
                conn, fresh = self._kept.writer, True
            else:
                if self._tmpdir and not os.path.exists(self.path):
                    shutil.copyfile(self._template(), self.path)
                    fresh = True
                conn = self._connect()
        except (OSError, sqlite3.Error) as e:
            self._owner.release()
            raise StoreError(f"cannot open database {self.path}: {e}") from None
        if not fresh:
            try:
                self._migrate(conn)
            except sqlite3.DatabaseError as e:
                conn.close()
                raise StoreError(f"cannot use database {self.path}: {e}") from None
            # text written by an indexing helper whose conversation the indexer did not write
            # before postroom stopped: done, so that the indexer's start fixes the conversation
            # (TEXT_ONLY spelled out: the partial index message_text_only serves it)
            conn.execute(f"UPDATE message SET indexed = 1 WHERE indexed = {TEXT_ONLY:d}")
        self.writes.count = conn.execute("SELECT count(*) FROM message").fetchone()[0] if not fresh else 0
        if rules := self.settings.extra.get("tags"):  # else None: the indexer loads with the first search
            from .indexer import RuleError, TagRules

            try:
                self.background.tag_rules = TagRules(rules)
            except RuleError as e:
                conn.close()
                raise StoreError(str(e)) from None
        # the writer's state, made here before it starts (nothing else writes yet): the
        # start waits for no hand-off between threads
        self.writes.load_folders(conn)
        try:
            self._open_journal(conn)
        except Exception as e:
            conn.close()
            self._owner.release()
            raise StoreError(f"cannot replay the ingest journal of {self.path}: {e}") from None
        if not self._tmpdir:  # its checkpoint thread starts below (a throwaway's: _checkpoint_due)
            self.background.writer_checkpoints(conn)
        if self._tmpdir and self.background.index_inline and self._journal is not None:
            self.direct.conn = conn  # an in-process test server's (sqlite_direct.py): its
            self.db.queue.start_with_first(lambda: self._start_pooled(conn))  # writer, if needed
        elif self._tmpdir:
            self._start_pooled(conn)
        else:
            self._writer = threading.Thread(
                target=self._write_loop, args=(conn,), name="postroom-writer", daemon=True
            )
            self._writer.start()
        self.background.start_indexer()
        if not self._tmpdir:  # a throwaway store's starts with its 1,000th message (write loop)
            self.background.start_checkpointer()

    def close(self) -> None:
        if self.db.closed:
            return
        self.db.closed = True
        if not self.workers.tails and self.direct.close_now(self):  # no writer at work: closed here
            if not self.db.queue.cancel_start():
                self.db.queue.put(_STOP)  # its loop just returns (back to the pool)
            return self._finish_close()
        self.db.queue.start_writer()  # one that never started closes the store as any writer
        if self._writer is not None:
            if self.workers.tails:
                self.db.queue.put(_TAIL)  # the workers have stopped: apply what they acknowledged
            elif self._writer_done is not None:
                # else a throwaway store's pooled writer finishes the close itself after its
                # last transaction: the caller goes on (the next store takes another database)
                with self._close_lock:
                    if not self._writer_ended:
                        self._close_in_writer = True
                        recycle.closing()
                if self._close_in_writer:
                    self.db.queue.put(_STOP)
                    return
            self.db.queue.put(_STOP)
            if self._writer_done is not None:
                self._writer_done.wait(30)
            else:
                self._writer.join(30)
        self._finish_close()

    def _start_pooled(self, conn: sqlite3.Connection) -> None:
        """A test's store: its writer thread is kept for the next (writer_pool.py)."""
        self._writer, self._writer_done = run_writer(lambda: self._pooled_write_loop(conn))

    def _finish_close(self) -> None:
        """What closing does once the writer has stopped (on the closing thread, or on a
        throwaway store's writer thread: see :meth:`close`)."""
        for tail in self.workers.tails:
            done = not self._degraded and tail.applied >= tail.mark()
            tail.close()
            if done:  # everything its worker acknowledged is stored: nothing to replay
                try:
                    os.remove(segment_path(tail.base, tail.gen))
                except OSError:
                    pass
        if self._journal is not None:
            if self._applied_seq >= self._journal.seq and not self._degraded:
                self._journal.reset()
            self._journal.close()
        with self._applied_cond:
            self._applied_cond.notify_all()
        self.background.stop()
        kept = self._keep_conn
        if kept is not None and self._tmpdir and not self._degraded:
            readers = self.db.hand_over_readers()
            self._owner.release()
            recycle.keep(recycle.Kept(self._tmpdir, self.path, self.settings.fsync, kept, readers))
            return
        if kept is not None:
            kept.close()
        self.db.close_readers()
        self._owner.release()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _pooled_write_loop(self, conn: sqlite3.Connection) -> None:
        """A throwaway store's write loop (on a pooled writer thread), then the rest of its
        close when :meth:`close` left that to this thread."""
        try:
            self._write_loop(conn)
        finally:
            with self._close_lock:
                self._writer_ended = True
                finish = self._close_in_writer
            if finish:
                try:
                    self._finish_close()
                finally:
                    recycle.closed()

    def _template(self) -> str:  # the empty database a throwaway store copies (small pages: a test server's)
        return schema_template(self._connect_file, TEMPLATE_PAGE_SIZE if self.background.index_inline else 0)

    def _connect(self) -> sqlite3.Connection:
        return self._connect_file(self.path)

    def _connect_file(self, path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL (default): a commit is written to the WAL before it returns, so a 250 survives
        # a crash or kill -9 of postroom; the WAL is fsynced at checkpoints. FULL (--fsync) also
        # fsyncs every commit, surviving power loss: group commit shares that fsync among the
        # batch, but it still costs ~4 ms per commit on a busy shared disk (measured here).
        conn.execute("PRAGMA synchronous=" + ("FULL" if self.settings.fsync else "NORMAL"))
        conn.execute("PRAGMA busy_timeout=0")  # the indexer process may hold the lock: begin_immediate
        conn.execute("PRAGMA cache_size=-16000")
        register_functions(conn)  # header: searches run on the writer too (set_read/delete by query)
        return conn

    def _recyclable(self) -> bool:
        """A throwaway store whose database the next one can take emptied (sqlite_recycle)."""
        return (
            self._tmpdir is not None
            and self.background.index_inline  # no indexer of its own (its FTS5 settings differ)
            and not self._degraded
            and not self._retry
            and not self.workers.tails
            and self.background.checkpointer is None
            and self.writes.count <= recycle.MAX_MESSAGES
            and recycle.small(self.path)
            and (self._journal is None or self._applied_seq >= self._journal.seq)
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        apply_migrations(conn)

    def _wait_applied(self) -> None:
        """Read-your-writes: wait until every journaled message is in SQLite (usually at once)."""
        journal = self._journal
        if journal is None or self._applied_now():
            return  # all there; or the writer cannot store anything now: read what is there
        target = journal.seq
        behind = [(t, m) for t, m in ((t, t.mark()) for t in self.workers.tails) if t.applied < m]
        if behind:
            self.workers.poke()  # in case the worker's note is still on its way
        deadline = time.monotonic() + READ_WAIT_LIMIT
        progress = self._progress()
        with self._applied_cond:
            self._waiting += 1  # the writer does not pause for batching meanwhile
            try:
                while not self.db.closed and not self._degraded:
                    # a journal drained after its worker died is done once what was read is
                    # stored; one its worker cut back (a failed write) is done at its new end
                    if self._applied_seq >= target and all(t.applied >= min(m, t.mark()) for t, m in behind):
                        return
                    now = time.monotonic()
                    if self._progress() != progress:  # the writer is getting there: keep waiting
                        progress = self._progress()
                        deadline = now + READ_WAIT_LIMIT
                    elif now >= deadline:
                        log.warning("read without waiting for all acknowledged mail: the writer is stuck")
                        return
                    self._applied_cond.wait(min(deadline - now, 1.0))
            finally:
                self._waiting -= 1

    def _applied_now(self) -> bool:
        """A read would not wait (:meth:`_wait_applied`): every journaled message is in SQLite,
        or the writer cannot store any now, or this is the writer."""
        journal = self._journal
        if journal is None or self._degraded or threading.current_thread() is self._writer:
            return True
        return self._applied_seq >= journal.seq and all(t.applied >= t.mark() for t in self.workers.tails)

    def _progress(self) -> tuple[Any, ...]:
        """What the writer has applied so far (changes whenever it commits journaled mail)."""
        return (self._applied_seq, *(t.applied for t in self.workers.tails))

    # -- the writer thread -------------------------------------------------------------
    def _write_loop(self, conn: sqlite3.Connection) -> None:
        q = self.db.queue
        while True:
            if self._retry:  # a batch of journaled mail failed: try it again now and then
                try:
                    jobs = [q.get(timeout=RETRY_INTERVAL)]
                except queue.Empty:
                    jobs = []
                jobs[:0], self._retry = self._retry, []
            else:
                jobs = [q.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(q.get_nowait())
                except queue.Empty:
                    break
            with self.direct.lock:  # no direct commit (sqlite_direct.py) meanwhile
                stop = any(j is _STOP for j in jobs)
                tail = any(j is _TAIL for j in jobs)
                index = any(j is _INDEX for j in jobs)
                jobs = [j for j in jobs if j is not _STOP and j is not _TAIL and j is not _INDEX]
                if tail:
                    if not stop and len(jobs) == 0 and self._tail_reads_small and not self._waiting:
                        time.sleep(TAIL_PAUSE)  # let mail gather: fewer, larger transactions
                    got = self.workers.read(max(MAX_BATCH - len(jobs), 64))
                    self._tail_reads_small = 0 < len(got) < TAIL_BATCH
                    jobs += got
                run_split(jobs, lambda part: self._run_batch(conn, part))  # new mail apart
                if index and not stop:
                    self.background.index_now(conn)
                if not stop:
                    self._checkpoint_due(conn)
                if stop:
                    drain_after_stop(q)
                    if not self.direct.closed_here:  # else close() did it (sqlite_direct.py)
                        self.direct.conn = None
                        self.keep_or_close(conn)
                    return

    def _checkpoint_due(self, conn: sqlite3.Connection) -> None:
        """After a transaction, on the thread that has the writer's connection ``conn``: a
        throwaway store's checkpoint thread starts with its 1,000th message."""
        if self.background.checkpointer is None and self.writes.count >= ANALYZE_FROM:
            self.background.writer_checkpoints(conn)
            self.background.start_checkpointer()

    def keep_or_close(self, conn: sqlite3.Connection) -> None:
        """At the close: the writer's connection emptied and kept (sqlite_recycle.py), or closed."""
        if self._recyclable() and recycle.reset(conn, self._template()):
            self._keep_conn = conn  # the next throwaway store's (_finish_close)
        else:
            conn.close()

    def _open_journal(self, conn: sqlite3.Connection) -> None:
        """Apply what a previous run acknowledged but had not stored yet, then open the journal.

        With ``--fsync`` there is no journal: every message waits for SQLite's own fsynced
        commit instead."""
        path = self.path + "-journal-postroom"
        if self._kept is not None and not self.settings.fsync:
            # an emptied database (sqlite_recycle), all applied, no worker journals: no replay
            self._journal = Journal(path, 0)
            self._journal.reset()
            return
        row = conn.execute("SELECT value FROM meta WHERE key = 'journal_seq'").fetchone()
        applied = int(row[0]) if row else 0
        records, damaged = read_journal(path)
        pending = [r for r in records if r.seq > applied]
        if pending:
            log.warning("replaying %d acknowledged messages from the ingest journal", len(pending))
            for i in range(0, len(pending), MAX_BATCH):
                jobs = [_ingest_from_record(r, None) for r in pending[i : i + MAX_BATCH]]
                if not self._run_batch(conn, jobs, replay=True):
                    raise StoreError("replay failed")
            applied = max(r.seq for r in pending)
        self.workers.replay(conn)
        if damaged:  # what could be read of it is committed: keep the file aside, not delete it
            keep_damaged(path, damaged, len(records))
        self._applied_seq = applied
        if self.settings.fsync:
            if os.path.exists(path):
                os.remove(path)
            return
        self._journal = Journal(path, applied)
        self._journal.reset()

    def _run_batch(
        self, conn: sqlite3.Connection, jobs: list[Any], *, replay: bool = False, index: bool = True
    ) -> bool:
        """Apply ``jobs`` in one transaction; False if it failed (journaled mail in it is then
        kept for another attempt, unless ``replay``: the caller stops the start)."""
        events: list[Event] = []
        done: list[tuple[Any, Any, BaseException | None]] = []
        ingests = [j for j in jobs if isinstance(j, _Ingest)]
        calls = [j for j in jobs if isinstance(j, _Call)]
        indexed = not index  # every new message indexed here (index_in_transaction), or on demand
        try:
            self.writes.begin(conn, calls)
            if ingests:
                self.writes.ingest(conn, ingests, events)
                if self.background.index_inline and index and not replay:  # one commit for both
                    indexed = self.background.index_in_transaction(conn)
            for c in calls:
                sp = "sp"
                conn.execute(f"SAVEPOINT {sp}")
                mark = len(self.db.pending())
                try:
                    res = c.fn(conn)
                    conn.execute(f"RELEASE {sp}")
                    done.append((c.future, res, None))
                except Exception as e:  # the call's own failure, reported to its caller
                    conn.execute(f"ROLLBACK TO {sp}")
                    conn.execute(f"RELEASE {sp}")
                    del self.db.pending()[mark:]
                    self.writes.load_folders(conn)
                    done.append((c.future, None, e))
            self.writes.retention(conn, events)
            top_seq = max((j.seq for j in ingests), default=0)
            if self.workers.tails:
                self.workers.save_positions(conn)
            if top_seq:
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('journal_seq', ?)", (str(top_seq),)
                )
            conn.execute("COMMIT")
        except Exception as e:
            journaled = [j for j in ingests if j.seq or j.tail is not None]
            if journaled and not replay:
                # Acknowledged messages are safe in the journal: keep them to try again (the
                # write loop does, every RETRY_INTERVAL), and refuse new mail meanwhile.
                self._retry = journaled
                if not self._degraded:
                    log.exception("store write failed; %d messages kept to try again", len(journaled))
                    log.critical("the store cannot write: refusing mail (451) until it can")
                    self._degraded = True
                    for tail in self.workers.tails:
                        if tail.refuse is not None:
                            tail.refuse(True)  # the SMTP workers answer 451 from now on
            else:
                log.exception("store write failed; %d jobs rolled back", len(jobs))
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.writes.reset(conn)
            self.db.pending().clear()
            err = StoreError(f"write failed: {e}")
            for j in jobs:
                if j.future is not None:
                    _fail(j.future, err)
            with self._applied_cond:
                self._applied_cond.notify_all()
            return False
        if self._degraded:
            self._degraded = False
            log.warning("the store can write again: accepting mail")
            for tail in self.workers.tails:
                if tail.refuse is not None:
                    tail.refuse(False)
        # committed: now (and only now) tell the callers and the subscribers
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]] = {}
        for fut, res, call_err in done:
            if isinstance(fut, asyncio.Future):
                by_loop.setdefault(fut.get_loop(), []).append((fut, res, call_err))
            elif call_err is not None:
                fut.set_exception(call_err)
            else:
                fut.set_result(res)
        extra = self.db.pending()
        if extra:
            events.extend(extra)
            extra.clear()
        if events:
            self.bus.publish_many(events)
        # after the events: on the loop, other sessions have heard of a change before the
        # session that made it is answered (and its client can tell them to look); an IMAP
        # session's own APPEND has its folder's event, with the new entry, before it goes on
        if ingests:
            resolve_ingests(ingests)
            self.background.after_ingest(indexed)
            if top_seq or self.workers.tails:
                with self._applied_cond:
                    self.workers.committed()
                    self._applied_seq = max(self._applied_seq, top_seq)
                    self._applied_cond.notify_all()
                if self._journal is not None:
                    self._journal.truncate_if_applied(top_seq)
        for loop, results in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(resolve_calls, results)
        return True

    def write(self, fn: Callable[[sqlite3.Connection], Any], timeout: float = 60) -> Any:
        """Run ``fn(conn)`` in the writer's next transaction and wait for the commit."""
        return self.db.write(fn, timeout)

    # -- ingest ----------------------------------------------------------------------------
    async def deliver(self, envelope: Envelope, raw: bytes, *, tags: tuple[str, ...] = ()) -> str:
        if self.db.closed:
            raise StoreClosed("store is closed")
        if self._journal is not None:
            return self.deliver_journaled(envelope, raw, tags)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.db.queue.put(_Ingest(envelope, raw, tags, fut))
        return await fut

    @property
    def journaled(self) -> bool:
        """True when :meth:`deliver_journaled` can be used (not with ``--fsync``)."""
        return self._journal is not None

    def deliver_journaled(self, envelope: Envelope, raw: bytes, tags: tuple[str, ...] = ()) -> str:
        """Commit a message to the ingest journal and return its ID (thread-safe, no loop needed).

        Committed once the journal record is written (see journal.py); the writer applies it
        to SQLite right after, and readers wait for that (_reader), so a client that reads
        after its 250 always finds its message. Thread-safe, so importers and other
        processes' forwarders can call it without an event loop. An in-process test server's
        store commits it to SQLite here instead when its writer is idle (sqlite_direct.py).
        """
        journal = self._journal
        if self.db.closed or journal is None:
            raise StoreClosed("store is closed")
        if self._degraded:
            raise StoreError("the store cannot write at the moment (is the disk full?)")
        if not envelope.received_at:
            envelope = dataclasses.replace(envelope, received_at=time.time())
        if self.direct.conn is not None:  # an in-process test server's store (sqlite_direct.py)
            direct = self.direct.commit_now(self, envelope, raw, tags, self._checkpoint_due)
            if direct is not None:
                return direct
        pid = new_id()
        seq = journal.append(pid, envelope.dumps(), tags, raw)
        self.db.queue.put(_Ingest(envelope, raw, tags, None, pid=pid, seq=seq))
        return pid

    async def append(
        self,
        mailbox: str,
        folder: str,
        raw: bytes,
        flags: frozenset[str] = frozenset(),
        internaldate: float | None = None,
        thread_key: str = "",
    ) -> tuple[int, int]:
        if self.db.closed:
            raise StoreClosed("store is closed")
        # a folder the writer knows: read on the loop (a hop to a worker thread costs more)
        validity = self.folder_view.known_validity(mailbox, folder)
        if validity is None:
            validity = await asyncio.to_thread(self.folder_view.folder_validity, mailbox, folder)
        if validity is None:
            raise NotFound(f"no folder {folder!r}")
        env = Envelope(mail_from="", rcpt_to=(mailbox,), received_at=internaldate or time.time())
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.db.queue.put(
            _Ingest(env, raw, (), fut, folder=(mailbox, folder), flags=flags, thread_key=thread_key)
        )
        uid = await fut
        return validity, int(uid)
