"""The indexer: full MIME parse, snippet, attachment count, full-text rows and conversations,
off the ingest path.

Parsing runs in its own process by default (``--indexer process``) so that it uses the
machine's second core instead of competing with the SMTP loop for the GIL; in a thread
(``--indexer thread``) for small embedded uses such as a test's in-process server.

In a thread, results go to the store's one writer thread (its next group commit). In its
own process, the worker writes them itself, in transactions of :data:`WRITE_CHUNK` rows,
so the main process spends no CPU on full-text rows during a burst of SMTP. Both writers
take the lock with :func:`begin_immediate`, which retries every 0.2 ms: SQLite's built-in
busy handler sleeps whole milliseconds between tries, and every one of those would be
added to an SMTP reply.

The indexer is also the one authority on conversations (``ThreadID``, docs/threads.md):
it keeps a :class:`~postroom.store.thread_index.ConversationIndex` in memory, built at its
start from the ``message`` table, threads each new message in row id order, and ships the
thread id with the message's results, plus the older conversations the message merged;
:func:`write_index` applies both in one transaction.

Process protocol: the store wakes the worker with a byte on its stdin after each commit
(stdin closing means "stop"); after each transaction the worker prints one line with the
public IDs it indexed, which the store announces as ``update`` events. Tagging rules come
as JSON in the ``POSTROOM_TAG_RULES`` environment variable.
Arguments: ``DB [--threads-subject replies|all|off] [--threads-window DAYS] [--no-threads]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from ..threads import ThreadingOptions
from .rawcodec import unpack
from .thread_index import (
    DAY,
    RECORD_COLUMNS,
    SUBJECT_POLICIES,
    ConversationIndex,
    record_from_row,
)

__all__ = ["Indexer", "Row", "extract_pending", "main", "write_index"]

log = logging.getLogger(__name__)

BATCH = 250  # messages per frame / per writer call
IDLE_POLL = 2.0  # seconds between checks when nobody wakes us
NICENESS = 19  # the lowest priority: a burst of SMTP comes first (docs/performance.md)
# The conversation index is rebuilt from the database (dropping what pruned messages left
# behind) when it holds this many times the stored messages, plus COMPACT_SLACK.
COMPACT_FACTOR = 2
COMPACT_SLACK = 10_000

# (message id, thread id, merged thread ids, snippet, attachments, subject, addresses, body,
# attachment names); or (message id, thread id, merged) when there is no text to store: the
# message could not be parsed (it is marked indexed, without text), or it was indexed before
# and only its conversation changes. Thread id 0: conversations are switched off.
Row = tuple[Any, ...]


def _extractor() -> Callable[[bytes], Any] | None:
    try:
        from .indexer import extract
    except ImportError:
        return None
    return extract


def extract_pending(
    conn: sqlite3.Connection,
    extract: Callable[[bytes], Any],
    after: int,
    limit: int = BATCH,
    threads: ConversationIndex | None = None,
) -> list[Row]:
    """Parse (and thread) up to ``limit`` not yet indexed messages with ids above ``after``."""
    rows = conn.execute(
        f"SELECT m.id, {', '.join('m.' + c.strip() for c in RECORD_COLUMNS.split(','))}, r.data "
        "FROM message m JOIN raw r ON r.id = m.id WHERE m.indexed = 0 AND m.id > ? ORDER BY m.id LIMIT ?",
        (after, limit),
    ).fetchall()
    # Thread the whole batch first, then parse it: interleaved with the parser, whose working
    # set evicts the index's from the CPU caches, threading costs twice as much (thread_bench).
    assigned: list[tuple[int, tuple[int, ...]]] = []
    if threads is not None:
        for row in rows:
            a = threads.add(record_from_row(row))
            assigned.append((a.thread_id, a.merged))
    out: list[Row] = []
    for n, row in enumerate(rows):
        mid, data = row[0], row[-1]
        tid, merged = assigned[n] if assigned else (0, ())
        try:
            d = extract(unpack(data))
            out.append(
                (
                    mid,
                    tid,
                    merged,
                    d.snippet,
                    d.attachments,
                    d.subject,
                    d.addresses,
                    d.body,
                    d.attachment_names,
                )
            )
        except Exception:  # one broken message must not stop the others
            log.exception("indexing message %s failed", mid)
            out.append((mid, tid, merged))
    return out


class Indexer:
    """The indexer's state between batches: where it is, and the conversation index.

    Used by the worker process (:func:`main`) and by the store's indexer thread alike.

    Args:
        conn: a read-only connection (:func:`connect_readonly`).
        extract: the parser (``postroom.store.indexer.extract``).
        options: how to form conversations; None switches them off.
    """

    def __init__(
        self, conn: sqlite3.Connection, extract: Callable[[bytes], Any], options: ThreadingOptions | None
    ) -> None:
        self.conn = conn
        self.extract = extract
        self.options = options
        self.after = 0
        self.threads: ConversationIndex | None = None
        self._check_at = COMPACT_SLACK  # index size at which idle() next looks at the store

    def start(self) -> list[Row]:
        """Build the conversation index from the stored messages; returns the rows to fix."""
        if self.options is None:
            return []
        self.threads = ConversationIndex(self.options)
        fixes = [(mid, tid, merged) for mid, tid, merged in self.threads.load(self.conn)]
        self._check_at = max(COMPACT_SLACK, self.threads.messages + COMPACT_SLACK // 2)
        return fixes

    def next_batch(self) -> list[Row]:
        """Parse and thread the next pending messages (empty when there are none)."""
        rows = extract_pending(self.conn, self.extract, self.after, threads=self.threads)
        if rows:
            self.after = rows[-1][0]
        return rows

    def idle(self) -> list[Row]:
        """Housekeeping between bursts: rebuild an index that pruned messages bloated.

        Only when everything shipped so far is written (no message is waiting to be
        indexed), so the rebuilt index holds exactly what the store holds.
        """
        threads = self.threads
        if threads is None or threads.messages < self._check_at:
            return []
        # Cheap first (the partial index of pending messages), then at most one count (a
        # scan of an index) per COMPACT_SLACK / 2 messages threaded: idle() runs after
        # every wake-up, hundreds of times a second in a burst.
        if self.conn.execute("SELECT EXISTS (SELECT 1 FROM message WHERE indexed = 0)").fetchone()[0]:
            return []
        self._check_at = threads.messages + COMPACT_SLACK // 2
        stored = self.conn.execute("SELECT count(*) FROM message").fetchone()[0]
        if threads.messages <= COMPACT_FACTOR * stored + COMPACT_SLACK:
            return []
        log.debug("rebuilding the conversation index (%d entries, %d messages)", threads.messages, stored)
        return self.start()


def write_index(conn: sqlite3.Connection, rows: list[Row], rules: Any = None) -> list[str]:
    """Write parsed results (inside the caller's transaction). Returns the public IDs indexed.

    Applies each row's conversation first (older conversations it merged are re-labelled
    in one ``UPDATE``; rows arrive in threading order, so the labels stay consistent), then
    the tagging rules (an ``indexer.TagRules``) once a message's full-text row exists.
    """
    done: list[int] = []
    for row in rows:
        mid, tid, merged = row[0], row[1], row[2]
        thread = str(tid) if tid else None
        if merged:
            marks = ",".join("?" * len(merged))
            conn.execute(
                f"UPDATE message SET thread_id = ? WHERE thread_id IN ({marks})", (thread, *map(str, merged))
            )
        if len(row) == 3:
            conn.execute(
                "UPDATE message SET indexed = 1, thread_id = coalesce(?, thread_id) WHERE id = ?",
                (thread, mid),
            )
            continue
        cur = conn.execute(
            "UPDATE message SET snippet = ?, attachments = ?, indexed = 1, thread_id = coalesce(?, thread_id) "
            "WHERE id = ? AND indexed = 0",
            (row[3], row[4], thread, mid),
        )
        if cur.rowcount:  # still there, and not indexed meanwhile
            conn.execute(
                "INSERT INTO fts(rowid, subject, addresses, body, attachments) VALUES (?, ?, ?, ?, ?)",
                (mid, row[5], row[6], row[7], row[8]),
            )
            done.append(mid)
            if rules:
                for tag in rules.tags_for(conn, mid):
                    _add_tag(conn, mid, tag)
    pids: list[str] = []
    for i in range(0, len(done), 500):
        chunk = done[i : i + 500]
        marks = ",".join("?" * len(chunk))
        pids += [r[0] for r in conn.execute(f"SELECT pid FROM message WHERE id IN ({marks})", chunk)]
    return pids


def _add_tag(conn: sqlite3.Connection, mid: int, name: str) -> None:
    row = conn.execute("SELECT id FROM tag WHERE name = ?", (name,)).fetchone()
    tid = row[0] if row else conn.execute("INSERT INTO tag(name) VALUES (?)", (name,)).lastrowid
    conn.execute("INSERT OR IGNORE INTO message_tag(message, tag) VALUES (?, ?)", (mid, tid))


def connect_readonly(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA query_only=1")
    return conn


def _parse_args(args: list[str]) -> tuple[str, ThreadingOptions | None]:
    ap = argparse.ArgumentParser(prog="python -m postroom.store.index_worker")
    ap.add_argument("db")
    ap.add_argument("--threads-subject", choices=sorted(SUBJECT_POLICIES), default="replies")
    ap.add_argument("--threads-window", type=float, default=30.0, help="days; 0: no limit")
    ap.add_argument("--no-threads", action="store_true")
    a = ap.parse_args(args)
    if a.no_threads:
        return a.db, None
    window = a.threads_window * DAY if a.threads_window > 0 else None
    return a.db, ThreadingOptions(subject_policy=SUBJECT_POLICIES[a.threads_subject], subject_window=window)


WRITE_CHUNK = 32  # rows per worker transaction: holds SQLite's write lock a few ms at most
BUSY_RETRY = 0.0002  # seconds between first tries for the write lock (SQLite's own handler sleeps ms)
BUSY_RETRY_MAX = 0.002  # ... growing to this
BUSY_LIMIT = 60.0  # give up on the lock after this long


def begin_immediate(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retrying (every :data:`BUSY_RETRY` s at first) while another writer holds the lock.

    The connection must have ``PRAGMA busy_timeout=0``: SQLite's built-in busy handler sleeps
    1, 2, 5, 10... ms between tries, which would add whole milliseconds to an SMTP reply.
    """
    deadline = time.monotonic() + BUSY_LIMIT
    pause = BUSY_RETRY
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
            # a holder that is not running (the indexer is at the lowest CPU priority) is
            # waited for with fewer, longer sleeps
            pause = min(pause * 1.5, BUSY_RETRY_MAX)


def store_rows(conn: sqlite3.Connection, out: IO[bytes], rows: list[Row], rules: Any) -> bool:
    """Write results in short transactions of our own; report each chunk's IDs as a line.

    Returns False when the store is gone (stdout closed).
    """
    for i in range(0, len(rows), WRITE_CHUNK):
        begin_immediate(conn)
        try:
            pids = write_index(conn, rows[i : i + WRITE_CHUNK], rules)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if pids:
            try:
                out.write((" ".join(pids) + "\n").encode("ascii"))
                out.flush()
            except BrokenPipeError:
                return False
    return True


def load_rules(rules_json: str | None) -> Any:
    """The tagging rules (config ``[[tags]]``) as an ``indexer.TagRules``, or None."""
    if not rules_json:
        return None
    from .indexer import TagRules

    rules = TagRules(json.loads(rules_json))
    return rules if rules else None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the indexer process: ``python -m postroom.store.index_worker DB [options]``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s indexer: %(message)s")
    extract = _extractor()
    if extract is None or not args:
        return 1
    path, options = _parse_args(args)
    # Parsing can always wait; a burst of SMTP must not: yield the CPU to the server.
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    conn = connect_readonly(path)
    wconn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    wconn.execute("PRAGMA busy_timeout=0")  # see begin_immediate
    wconn.execute("PRAGMA synchronous=NORMAL")  # the index can always be rebuilt from the messages
    from .sqlite_search import register_functions

    register_functions(wconn)  # tagging rules may use header: searches
    rules = load_rules(os.environ.get("POSTROOM_TAG_RULES"))
    stdin = sys.stdin.fileno()
    out = sys.stdout.buffer
    os.set_blocking(stdin, False)
    indexer = Indexer(conn, extract, options)
    if not store_rows(wconn, out, indexer.start(), rules):
        return 0
    while True:
        while rows := indexer.next_batch():
            if not store_rows(wconn, out, rows, rules):
                return 0
        if not store_rows(wconn, out, indexer.idle(), rules):
            return 0
        ready, _, _ = select.select([stdin], [], [], IDLE_POLL)
        if ready:
            try:
                chunk = os.read(stdin, 65536)
            except BlockingIOError:
                chunk = b"-"
            if not chunk:  # the store closed the pipe: it stopped or died
                conn.close()
                return 0
        time.sleep(0.002)  # let a burst gather into one batch


if __name__ == "__main__":
    sys.exit(main())
