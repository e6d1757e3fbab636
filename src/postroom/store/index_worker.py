"""The indexer: full MIME parse, snippet, attachment count, full-text rows and conversations,
off the ingest path.

Parsing runs in its own process by default (``--indexer process``) so that it uses the
machine's second core instead of competing with the SMTP loop for the GIL; in a thread
(``--indexer thread``) for small embedded uses such as a test's in-process server.

In a thread, results go to the store's one writer thread (its next group commit). In its
own process, the worker writes them itself, in transactions of :data:`WRITE_CHUNK` rows
during a burst of SMTP and of ``index_process.QUIET_CHUNK`` after it, so the main process spends no
CPU on full-text rows. The worker switches FTS5's merging at insert off and merges segments
when it has nothing to index (:func:`merge_fts`). Both writers
take the lock with :func:`begin_immediate`, which retries from every 0.2 ms: SQLite's
built-in busy handler sleeps whole milliseconds between tries.

The process (:mod:`.index_process`: start-up, pacing, the pipe protocol) runs at the lowest
CPU priority, and during a burst of SMTP (:data:`BURST_SPAN` messages within
:data:`BURST_WINDOW` seconds) it takes a batch now and then only. The index falls behind
during a burst and catches up after it; a message or a few are indexed at once. Once no mail
has arrived for :data:`QUIET_AFTER` seconds, a backlog is indexed in parallel: the process
keeps a pool of helper processes (started with it) that parse and write their share of each
batch of at least :data:`PARALLEL_MIN` messages (snippet, full-text row, tags, in a
transaction of their own) while it does its own share. The text of
a message is written by whoever parsed it, guarded by ``indexed = 0`` so that it is never
written twice; its conversation is written by this process only, after the helper's part
(meanwhile the message is ``indexed =`` :data:`TEXT_ONLY`).

The indexer is also the one authority on conversations (``ThreadID``, docs/threads.md):
it keeps a :class:`~postroom.store.thread_index.ConversationIndex` in memory, built at its
start from the ``message`` table, threads each new message in row id order, and ships the
thread id with the message's results, plus the older conversations the message merged;
:func:`write_index` applies both in one transaction.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from ..threads import ThreadingOptions
from .header_scan import header_rows
from .index_write import (
    TEXT_ONLY,
    ImapBlobs,
    Row,
    begin_immediate,
    defer_fts_merges,
    merge_fts,
    write_header_rows,
    write_index,
)
from .rawcodec import unpack
from .thread_index import (
    RECORD_COLUMNS,
    ConversationIndex,
    record_from_row,
)

__all__ = [
    "TEXT_ONLY",
    "Indexer",
    "Row",
    "begin_immediate",
    "defer_fts_merges",
    "extract_pending",
    "main",
    "merge_fts",
    "write_header_rows",
    "write_index",
]

log = logging.getLogger(__name__)

BATCH = 250  # messages per frame / per writer call
# ... and no more messages than BATCH_BYTES (their sizes summed, at least one message): 250
# messages with attachments of a few hundred KB each would otherwise make the indexer hold
# hundreds of MB while it parses them (and the next batch, fetched ahead).
BATCH_BYTES = 16 * 1024 * 1024
PARALLEL_MIN = 64  # a batch at least this large is indexed by the helper processes too ...
PARALLEL_MIN_BYTES = 512 * 1024  # ... or whose stored (compressed) messages take this many bytes
# This process parses and writes 1 / (HELPER_SHARE * helpers + 1) of such a batch, each helper
# HELPER_SHARE times as much; this process also threads the whole batch and writes every
# conversation. 1 (halves, with one helper) was quickest on 2 cores: 2 and 0.6 were slower.
HELPER_SHARE = 1
QUIET_AFTER = 0.1  # seconds since the newest message arrived: then SMTP is quiet
BURST_SPAN = 32  # a burst: this many messages arrived within BURST_WINDOW seconds ...
BURST_WINDOW = 0.5  # ... (fewer are indexed at once, burst or not)
# The conversation index is rebuilt from the database (dropping what pruned messages left
# behind) when it holds this many times the stored messages, plus COMPACT_SLACK.
COMPACT_FACTOR = 2
COMPACT_SLACK = 10_000

# The rows of results: index_write.Row.


def _extractor() -> Callable[[bytes], Any] | None:
    try:
        from .indexer import extract
    except ImportError:
        return None
    return extract


# A helper process's own write connection and tagging rules: (database path, connection, rules).
_HELPER_DB: tuple[str, sqlite3.Connection, Any] | None = None


def _helper_db(path: str) -> tuple[sqlite3.Connection, Any]:
    global _HELPER_DB
    if _HELPER_DB is None or _HELPER_DB[0] != path:
        from .header_scan import register_functions

        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=0")  # see begin_immediate
        conn.execute("PRAGMA synchronous=NORMAL")
        register_functions(conn)  # tagging rules may use header: searches
        _HELPER_DB = (path, conn, load_rules(os.environ.get("POSTROOM_TAG_RULES")))
    return _HELPER_DB[1], _HELPER_DB[2]


def _index_many(path: str, items: list[tuple[int, bytes]]) -> tuple[list[str], list[int]]:
    """In a helper process: parse each stored message ``(id, data)`` and write its text itself
    (snippet, attachment count, full-text row, tags: :func:`write_index` without conversations,
    which only the indexer assigns), in one transaction of its own. Returns the public IDs
    written and the ids it could not parse (the indexer parses those again, which logs why)."""
    extract = _extractor()
    rows: list[Row] = []
    failed: list[int] = []
    for mid, data in items:
        try:
            raw = unpack(data)
            d = extract_bounded(extract, raw) if extract is not None else None
        except Exception:
            d = None
        if d is None:
            failed.append(mid)
        else:
            rows.append(
                (mid, 0, (), d.snippet, d.attachments, d.subject, d.addresses, d.body, d.attachment_names,
                 header_rows(raw, packed=False), d.inline)
            )  # fmt: skip
    if not rows:
        return [], failed
    conn, rules = _helper_db(path)
    begin_immediate(conn)
    try:
        pids = write_index(conn, rows, rules, TEXT_ONLY)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return pids, failed


def _parallel_parts(
    pool: Executor | None, helpers: int, path: str, items: list[tuple[int, bytes]]
) -> list[tuple[int, int, Future[tuple[list[str], list[int]]]]]:
    """Hand all but this process's share of a large batch to the helper processes, which
    parse and write their parts themselves: ``(start, end, future)`` for each part handed
    out, in order, the last ending the batch."""
    if pool is None or helpers < 1 or not items or not path:
        return []
    if len(items) < PARALLEL_MIN and sum(len(d) for _, d in items) < PARALLEL_MIN_BYTES:
        return []
    start = len(items) // (HELPER_SHARE * helpers + 1)  # this process's share
    size = -(-(len(items) - start) // helpers)
    parts = []
    for i in range(start, len(items), size):
        try:
            parts.append((i, min(i + size, len(items)), pool.submit(_index_many, path, items[i : i + size])))
        except RuntimeError:  # the pool is broken (a helper was killed): parse everything here
            for _, _, future in parts:
                future.cancel()
            return []
    return parts


# Seconds of CPU-bound parsing one message may take in the indexer process (and its
# helpers): past it, the parse is interrupted (SIGALRM) and the message is indexed from its
# raw text (indexer.extract_raw). The parsers are linear, so only a huge message comes near
# it. POSTROOM_INDEX_PARSE_SECONDS sets another value (0: no budget).
INDEX_PARSE_SECONDS = 10.0
_budget = 0.0  # set in the indexer process by main(); its helper processes inherit it


class _Overrun(BaseException):
    """The time budget of one parse ran out (raised by the SIGALRM handler). A
    BaseException: the parsers' ``except Exception`` fallbacks must not swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Overrun


def extract_bounded(extract: Callable[[bytes], Any], raw: bytes, fallback: bool = True) -> Any:
    """``extract(raw)`` within the process's time budget; the raw text's index data past it
    (without ``fallback``: :class:`_Overrun` is raised).

    The budget is a SIGALRM timer, so it applies only in the indexer process (main()
    installs the handler); elsewhere (``--indexer thread``, tests) this is ``extract``.
    """
    if not _budget:
        return extract(raw)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, _budget)
            return extract(raw)
        finally:  # (a one-shot timer: if it fires in here, it is spent)
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Overrun:
        if not fallback:
            raise
        from .indexer import extract_raw

        log.warning(
            "a message of %d bytes took over %g s to parse: indexed from its raw text", len(raw), _budget
        )
        return extract_raw(raw, f"time budget exceeded ({_budget:g} s)")


def imap_blobs(raw: bytes, meta: bool = True, text: bool = True) -> ImapBlobs | None:
    """The IMAP server's ``meta``, ``head`` and ``text`` blobs of a message (ENVELOPE,
    BODYSTRUCTURE, BODY, sent date; the header fields SEARCH, SORT and THREAD read; the
    search text SEARCH TEXT and BODY read; the format is ``servers.imap.persist``'s): the
    first two only with ``meta``, the last only with ``text`` (None for what is left out;
    the text alone is a quarter of the work), for a message whose other data is stored in
    the current format already. None when that fails or overruns the parse budget: the
    IMAP server then derives them on demand, as it does for a message not indexed yet."""
    try:
        from ..servers.imap.messages import index_blobs
    except ImportError:
        return None

    def derive(data: bytes) -> ImapBlobs:
        return index_blobs(data, meta=meta, text=text)

    try:
        return extract_bounded(derive, raw, fallback=False)  # type: ignore[no-any-return]
    except _Overrun:
        log.warning("a message of %d bytes took over %g s to derive its IMAP data", len(raw), _budget)
    except Exception:
        log.debug("IMAP data of a message not derived", exc_info=True)
    return None


# What imap_batch() returns: (message id, (meta, head, text) or None when it could not be
# derived; meta and head None when the message had both in the current format already,
# text None when it had that).
ImapRow = tuple[int, ImapBlobs | None]
IMAP_BATCH = 100  # messages per IMAP batch (a transaction of its own; ~40 ms of parsing)
IMAP_SCAN = 5000  # messages imap_batch() checks per query (~50 ms of reading rows; our choice)


def _parse_one(extract: Callable[[bytes], Any], row: Any) -> tuple[Any, list[tuple[str, int, str]]]:
    """The index data of a stored message (None when it cannot be parsed) and its header
    fields (read from the message decompressed once, for both)."""
    try:
        raw = unpack(row[-1])
    except Exception:  # a corrupt frame: nothing to index, no header fields
        log.exception("indexing message %s failed", row[0])
        return None, []
    fields = header_rows(raw, packed=False)
    try:
        return extract_bounded(extract, raw), fields
    except Exception:  # one broken message must not stop the others
        log.exception("indexing message %s failed", row[0])
        return None, fields


@dataclass
class _Batch:
    """Pending messages fetched and threaded, their parsing handed out (if any)."""

    rows: list[Any]
    assigned: list[tuple[int, tuple[int, ...]]]
    parts: list[tuple[int, int, Future[tuple[list[str], list[int]]]]]  # handed to helper processes
    more: bool = True  # the fetch stopped at its limit (count or bytes): more may be pending

    @property
    def mine(self) -> int:
        """How many rows (from the first) this process parses itself."""
        return self.parts[0][0] if self.parts else len(self.rows)


def _fetch(
    conn: sqlite3.Connection,
    after: int,
    limit: int,
    threads: ConversationIndex | None,
    pool: Executor | None,
    helpers: int,
    path: str = "",
) -> _Batch:
    """Fetch and thread up to ``limit`` not yet indexed messages with ids above ``after``, and
    hand the helpers' share out (to be parsed and written by them in the database at ``path``)."""
    last = after
    total = 0
    seen = 0
    for mid, size in conn.execute(
        "SELECT id, size FROM message WHERE indexed = 0 AND id > ? ORDER BY id LIMIT ?", (after, limit)
    ):
        last = mid
        total += size
        seen += 1
        if total >= BATCH_BYTES:
            break
    more = seen >= limit or total >= BATCH_BYTES
    rows = conn.execute(
        f"SELECT m.id, {', '.join('m.' + c.strip() for c in RECORD_COLUMNS.split(','))}, r.data "
        "FROM message m JOIN raw r ON r.id = m.id WHERE m.indexed = 0 AND m.id > ? AND m.id <= ? "
        "ORDER BY m.id",
        (after, last),
    ).fetchall()
    # Thread the whole batch first, then parse it: interleaved with the parser, whose working
    # set evicts the index's from the CPU caches, threading costs twice as much (thread_bench).
    assigned: list[tuple[int, tuple[int, ...]]] = []
    if threads is not None:
        for row in rows:
            a = threads.add(record_from_row(row))
            assigned.append((a.thread_id, a.merged))
    parts = _parallel_parts(pool, helpers, path, [(row[0], row[-1]) for row in rows])
    return _Batch(rows, assigned, parts, more)


_WRITTEN = object()  # a message whose text a helper process has written


def _finish(batch: _Batch, extract: Callable[[bytes], Any], announce: list[str] | None = None) -> list[Row]:
    """Parse this process's share, wait for the helpers' (whose public IDs go to ``announce``),
    and make the rows to write: with the text for what this process parsed, the conversation
    only for what a helper wrote."""
    rows = batch.rows
    parsed: list[Any] = [_parse_one(extract, row) for row in rows[: batch.mine]]
    for first, last, part in batch.parts:
        try:
            pids, failed = part.result()
        except Exception:  # a helper process died: parse (and write) its share here
            log.exception("an indexing helper process failed")
            parsed += [_parse_one(extract, rows[k]) for k in range(first, last)]
            continue
        if announce is not None:
            announce += pids
        again = set(failed)  # parsed again here, which logs why it fails
        parsed += [
            _parse_one(extract, rows[k]) if rows[k][0] in again else _WRITTEN for k in range(first, last)
        ]
    out: list[Row] = []
    for row, p, (tid, merged) in zip(rows, parsed, batch.assigned or [(0, ())] * len(rows), strict=True):
        mid = row[0]
        if p is _WRITTEN:
            out.append((mid, tid, merged))
            continue
        d, fields = p
        if d is None:  # could not be parsed: no text, but its header fields are searchable
            out.append((mid, tid, merged, "", 0, "", "", "", "", fields, 0))
        else:
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
                    fields,
                    d.inline,
                )
            )
    return out


def extract_pending(
    conn: sqlite3.Connection,
    extract: Callable[[bytes], Any],
    after: int,
    limit: int = BATCH,
    threads: ConversationIndex | None = None,
) -> list[Row]:
    """Parse (and thread) up to ``limit`` not yet indexed messages with ids above ``after``."""
    return _finish(_fetch(conn, after, limit, threads, None, 0), extract)


class Indexer:
    """The indexer's state between batches: where it is, and the conversation index.

    Used by the worker process (:func:`main`) and by the store's indexer thread alike.

    Args:
        conn: a read-only connection (:func:`connect_readonly`).
        extract: the parser (``postroom.store.indexer.extract``).
        options: how to form conversations; None switches them off.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        extract: Callable[[bytes], Any],
        options: ThreadingOptions | None,
        pool: Executor | None = None,
        helpers: int = 0,
        path: str = "",
    ) -> None:
        self.conn = conn
        self.extract = extract
        self.options = options
        self.pool = pool  # helper processes that parse and write parts of large batches
        self.helpers = helpers
        self.path = path  # the database they write to
        self.announce: list[str] = []  # public IDs the helpers indexed, to be announced
        self._ahead: _Batch | None = None  # the next batch, its parsing handed out already
        self.after = 0
        self.threads: ConversationIndex | None = None
        self._check_at = COMPACT_SLACK  # index size at which idle() next looks at the store
        # the last fetch stopped at its limit: more may be pending (false: every message
        # that was waiting when it ran has been handed out)
        self.more = True
        self.imap_after = 0  # imap_batch() has seen the messages up to this id
        self.derive_imap = True  # False: imap_batch() derives nothing (no IMAP listener)

    def start(self) -> list[Row]:
        """Build the conversation index from the stored messages; returns the rows to fix."""
        if self.options is None:
            return []
        self.threads = ConversationIndex(self.options)
        fixes = [(mid, tid, merged) for mid, tid, merged in self.threads.load(self.conn)]
        self._check_at = max(COMPACT_SLACK, self.threads.messages + COMPACT_SLACK // 2)
        return fixes

    def next_batch(self) -> list[Row]:
        """Parse and thread the next pending messages (empty when there are none).

        With helper processes, batches are pipelined: before returning a batch (which the
        caller then writes), the helpers' share of the next one is handed out, so that they
        parse while this process writes.
        """
        batch = self._ahead or self._fetch()
        self._ahead = None
        self.more = batch.more
        if not batch.rows:
            return []
        if not batch.parts and self.pool is not None and self.helpers and not self.mail_arriving():
            # fetched ahead during a burst (this process's alone), and the burst is over: the
            # helpers take their share now (the first batch after a burst, ~0.1 s sooner)
            items = [(row[0], row[-1]) for row in batch.rows]
            batch.parts = _parallel_parts(self.pool, self.helpers, self.path, items)
        rows = _finish(batch, self.extract, self.announce)
        if self.pool is not None:
            self._ahead = self._fetch()
            self.more = bool(self._ahead.rows) or self._ahead.more
        return rows

    def _fetch(self) -> _Batch:
        # helpers only once mail has stopped arriving: during a burst the CPU is SMTP's
        helpers = self.helpers if self.pool is not None and not self.mail_arriving() else 0
        batch = _fetch(self.conn, self.after, BATCH, self.threads, self.pool, helpers, self.path)
        if batch.rows:
            self.after = batch.rows[-1][0]
        return batch

    def imap_batch(self, interrupted: Callable[[], bool] | None = None) -> list[ImapRow]:
        """The IMAP server's data (:func:`imap_blobs`) of the next indexed messages that lack
        any of their ``meta``, ``head`` and ``text`` rows in the current format
        (``servers.imap.persist.FORMAT``), in id order; empty when there are none. Each gets
        what it lacks only: the IMAP server derives the ENVELOPE and header fields of mail a
        client APPENDs, or FETCHes before the indexer got to it, and the search text of mail
        searched before that (a message with only one of these gets the other here); a row
        an older postroom wrote is derived again (after an upgrade).

        Called once the text index has caught up, so that a burst is searchable as soon as
        before (parsing for IMAP costs about as much again as for the index); the first
        FETCH ENVELOPE/BODYSTRUCTURE, SORT or SEARCH TEXT after that reads the rows instead
        of parsing.
        A message still waiting for the indexer ends the batch (it comes next time), and so
        does ``interrupted()`` turning true before a message (new mail to index first)."""
        out: list[ImapRow] = []
        if not self.derive_imap:
            return out
        total = 0
        # everything below the first message waiting for the text index is indexed
        (bound,) = self.conn.execute(
            "SELECT coalesce((SELECT min(id) FROM message WHERE indexed = 0), 1 << 62)"
        ).fetchone()
        try:
            from ..servers.imap.persist import FORMAT
        except ImportError:
            return out
        # A row of another FORMAT (an older postroom's) is as good as none: the IMAP server
        # reads it as a miss. Rows are written separately (the IMAP server stores meta and
        # head in separate transactions, text only when searched), so each kind is checked.
        current = "EXISTS (SELECT 1 FROM {} c WHERE c.id = m.id AND substr(c.data, 1, :n) = :fmt)"
        sql = (
            "SELECT id, data, has_meta, has_text FROM (SELECT m.id AS id, r.data AS data, "
            f"{current.format('imap_meta')} AND {current.format('imap_head')} AS has_meta, "
            f"{current.format('imap_text')} AS has_text "
            "FROM message m JOIN raw r ON r.id = m.id WHERE m.id > :after AND m.id < :bound) "
            "WHERE NOT (has_meta AND has_text) ORDER BY id LIMIT :limit"
        )
        # IMAP_SCAN messages at a time, ``interrupted()`` asked between them: checking the
        # rows' formats reads their first bytes (~1 s per 100,000 messages on the busy
        # shared machine, once per start), which new mail should not wait for.
        while True:
            (edge,) = self.conn.execute(
                "SELECT (SELECT id FROM message WHERE id > ? AND id < ? ORDER BY id LIMIT 1 OFFSET ?)",
                (self.imap_after, bound, IMAP_SCAN - 1),
            ).fetchone()
            params = {"n": len(FORMAT), "fmt": FORMAT, "after": self.imap_after}
            params |= {"bound": bound if edge is None else edge + 1, "limit": IMAP_BATCH}
            for mid, data, has_meta, has_text in self.conn.execute(sql, params):
                if interrupted is not None and interrupted():
                    return out
                self.imap_after = mid
                out.append((mid, imap_blobs(unpack(data), meta=not has_meta, text=not has_text)))
                total += len(data)
                if total >= BATCH_BYTES or len(out) >= IMAP_BATCH:
                    return out
            if edge is None:  # seen all up to the bound: the next call starts there
                (last,) = self.conn.execute("SELECT max(id) FROM message WHERE id < ?", (bound,)).fetchone()
                self.imap_after = max(self.imap_after, last or 0)
                return out
            self.imap_after = edge
            if out or (interrupted is not None and interrupted()):
                return out

    def mail_arriving(self) -> bool:
        """True during a burst of SMTP: the newest message is less than QUIET_AFTER seconds
        old, and the BURST_SPAN newest all arrived within BURST_WINDOW seconds.

        A message or a few, even in a steady trickle, are not a burst: they are indexed
        at once.
        """
        rows = self.conn.execute(
            "SELECT created FROM message ORDER BY id DESC LIMIT ?", (BURST_SPAN,)
        ).fetchall()
        if len(rows) < BURST_SPAN:
            return False
        now = time.time()
        newest, oldest = float(rows[0][0]), float(rows[-1][0])
        return now - newest <= QUIET_AFTER and now - oldest <= BURST_WINDOW

    def idle_due(self) -> bool:
        """Whether :meth:`idle` may have housekeeping to do (else it returns at once)."""
        return self.threads is not None and self.threads.messages >= self._check_at

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


def connect_readonly(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA query_only=1")
    return conn


def load_rules(rules_json: str | None) -> Any:
    """The tagging rules (config ``[[tags]]``) as an ``indexer.TagRules``, or None."""
    if not rules_json:
        return None
    from .indexer import TagRules

    rules = TagRules(json.loads(rules_json))
    return rules if rules else None


def start_parse_budget() -> None:
    """In the indexer process, before its helpers fork (they inherit it): arm the budget of
    :func:`extract_bounded` (``POSTROOM_INDEX_PARSE_SECONDS``, default
    :data:`INDEX_PARSE_SECONDS`; 0, or no SIGALRM on this platform: none)."""
    global _budget
    _budget = float(os.environ.get("POSTROOM_INDEX_PARSE_SECONDS", INDEX_PARSE_SECONDS))
    if _budget and hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, _on_alarm)
    else:
        _budget = 0.0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the indexer process: ``python -m postroom.store.index_worker DB [options]``
    (the process itself: :mod:`.index_process`)."""
    from .index_process import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
