"""Writing the indexer's results into SQLite, and the write lock they take.

Used by the indexer process and its helpers (``index_worker.py``) and by the store's own
indexer thread (``sqlite_background.py``): :func:`write_index` stores parsed results (text,
full-text row, header fields, conversation, tags) inside the caller's transaction;
:func:`begin_immediate` takes the write lock without SQLite's millisecond sleeps;
:func:`store_rows` writes results in short transactions; :func:`merge_fts` merges the
full-text index's segments while idle.
"""

from __future__ import annotations

import select
import sqlite3
import time
from typing import IO, Any

__all__ = [
    "IMAP_GC_TRIGGER",
    "TEXT_ONLY",
    "WRITE_CHUNK",
    "ImapBlobs",
    "Row",
    "begin_immediate",
    "defer_fts_merges",
    "merge_fts",
    "store_imap_rows",
    "store_rows",
    "write_header_rows",
    "write_imap_rows",
    "write_index",
]

# (message id, thread id, merged thread ids, snippet, attachments, subject, addresses, body,
# attachment names, header fields, inline parts); or (message id, thread id, merged) when only its
# conversation is written (a helper process wrote its text). Thread id 0: conversations are
# switched off. A message that cannot be parsed gets empty text (and its header fields).
Row = tuple[Any, ...]

# message.indexed: 0 pending, 1 done (text and conversation), TEXT_ONLY: a helper process
# wrote the text, the indexer has yet to write the conversation (which sets 1). The store
# turns TEXT_ONLY back into 1 when it opens, so the indexer's start fixes the conversation.
TEXT_ONLY = 2


def write_index(
    conn: sqlite3.Connection, rows: list[Row], rules: Any = None, done_state: int = 1
) -> list[str]:
    """Write parsed results (inside the caller's transaction). Returns the public IDs indexed.

    Applies each row's conversation first (older conversations it merged are re-labelled
    in one ``UPDATE``; rows arrive in threading order, so the labels stay consistent), then
    the tagging rules (an ``indexer.TagRules``) once a message's full-text row exists. A row
    with text marks its message ``indexed = done_state`` (a helper: :data:`TEXT_ONLY`).
    """
    written: list[Row] = []  # rows with text whose message was still waiting for it
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
            "UPDATE message SET snippet = ?, attachments = ?, inline_parts = ?, indexed = ?, hdr = 1, "
            "thread_id = coalesce(?, thread_id) WHERE id = ? AND indexed = 0",
            (row[3], row[4], row[10], done_state, thread, mid),
        )
        if cur.rowcount:  # still there, and not indexed meanwhile
            written.append(row)
    # the full-text and header rows of the whole chunk in one statement each (a statement
    # per message cost ~15% of the write)
    conn.executemany(
        "INSERT INTO fts(rowid, subject, addresses, body, attachments) VALUES (?, ?, ?, ?, ?)",
        [row[0:1] + row[5:9] for row in written],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO header_field(name, message, seq, value) VALUES (?, ?, ?, ?)",
        [(name, row[0], seq, value) for row in written for name, seq, value in row[9]],
    )
    done = [row[0] for row in written]
    if rules:  # once the message's full-text and header rows exist
        for mid in done:
            for tag in rules.tags_for(conn, mid):
                _add_tag(conn, mid, tag)
    pids: list[str] = []
    for i in range(0, len(done), 500):
        chunk = done[i : i + 500]
        marks = ",".join("?" * len(chunk))
        pids += [r[0] for r in conn.execute(f"SELECT pid FROM message WHERE id IN ({marks})", chunk)]
    return pids


def write_header_rows(conn: sqlite3.Connection, mid: int, fields: list[tuple[str, int, str]]) -> None:
    """The ``header_field`` index rows of message ``mid`` (see sqlite_search.header_rows)."""
    conn.executemany(
        "INSERT OR IGNORE INTO header_field(name, message, seq, value) VALUES (?, ?, ?, ?)",
        [(name, mid, seq, value) for name, seq, value in fields],
    )


# Deletes a message's IMAP cache rows with it (sqlite_imapcache.py): created with the first
# row stored, by the indexer or the IMAP server (IF NOT EXISTS: a no-op after that).
IMAP_GC_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS imap_cache_gc AFTER DELETE ON message BEGIN "
    "DELETE FROM imap_meta WHERE id = old.id; DELETE FROM imap_head WHERE id = old.id; "
    "DELETE FROM imap_text WHERE id = old.id; END"
)


# (meta, head, text), None for what was not derived: see index_worker.imap_blobs
ImapBlobs = tuple[bytes | None, bytes | None, bytes | None]


def write_imap_rows(conn: sqlite3.Connection, rows: list[tuple[int, ImapBlobs | None]]) -> None:
    """The IMAP server's ``meta``, ``head`` and ``text`` cache rows derived by the indexer
    (``index_worker.Indexer.imap_batch``; the format is ``servers.imap.persist``'s), inside
    the caller's transaction. A message deleted meanwhile gets none; one whose data could
    not be derived neither (the IMAP server derives it on demand)."""
    items = [(mid, blobs) for mid, blobs in rows if blobs is not None]
    if not items:
        return
    conn.execute(IMAP_GC_TRIGGER)
    conn.executemany(
        "INSERT OR REPLACE INTO imap_meta(id, data) SELECT id, ? FROM message WHERE id = ?",
        [(meta, mid) for mid, (meta, _, _) in items if meta is not None],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO imap_head(id, data) SELECT id, ? FROM message WHERE id = ?",
        [(head, mid) for mid, (_, head, _) in items if head is not None],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO imap_text(id, data) SELECT id, ? FROM message WHERE id = ?",
        [(text, mid) for mid, (_, _, text) in items if text is not None],
    )


def store_imap_rows(conn: sqlite3.Connection, rows: list[tuple[int, ImapBlobs | None]]) -> None:
    """:func:`write_imap_rows` in a transaction of its own (the worker process)."""
    begin_immediate(conn)
    try:
        write_imap_rows(conn, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_tag(conn: sqlite3.Connection, mid: int, name: str) -> None:
    row = conn.execute("SELECT id FROM tag WHERE name = ?", (name,)).fetchone()
    tid = row[0] if row else conn.execute("INSERT INTO tag(name) VALUES (?)", (name,)).lastrowid
    conn.execute("INSERT OR IGNORE INTO message_tag(message, tag) VALUES (?, ?)", (mid, tid))


WRITE_CHUNK = 32  # rows per worker transaction during a burst: the write lock for a few ms at most
# Once SMTP is quiet, a whole batch per transaction (~35 ms of write lock for 250 messages):
# fewer, larger FTS5 segments and each touched page written once (~18% less write CPU).


# FTS5 merges its segments in the indexer's idle time, not during inserts ('automerge' 0):
# merging at commit cost ~25 us a message (of ~170) while a backlog is indexed, the step that
# sets how soon a burst is searchable. ``merge`` with a positive page count merges by the
# same rule as automerge (4 segments of one level, FTS5's 'usermerge'), so the index ends
# up with the same shape; 'crisismerge' still bounds the segments of a level (16) meanwhile.
MERGE_PAGES = 256  # pages of merged output per transaction (a few ms of write lock)
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


def store_rows(
    conn: sqlite3.Connection, out: IO[bytes], rows: list[Row], rules: Any, chunk: int = WRITE_CHUNK
) -> bool:
    """Write results in transactions of ``chunk`` rows; report each chunk's IDs as a line.

    Returns False when the store is gone (stdout closed).
    """
    for i in range(0, len(rows), chunk):
        begin_immediate(conn)
        try:
            pids = write_index(conn, rows[i : i + chunk], rules)
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


def defer_fts_merges(conn: sqlite3.Connection) -> None:
    """Switch FTS5's merging at insert off (it is done by :func:`merge_fts` when idle)."""
    _write(conn, "INSERT INTO fts(fts, rank) VALUES ('automerge', 0)")


def merge_fts(conn: sqlite3.Connection, stdin: int) -> bool:
    """Merge FTS5 segments, MERGE_PAGES at a time, until none are due (False) or the store
    wakes us because new mail is stored (True: there may be more to merge later)."""
    while True:
        if select.select([stdin], [], [], 0)[0]:
            return True
        before = conn.total_changes
        _write(conn, "INSERT INTO fts(fts, rank) VALUES ('merge', ?)", (MERGE_PAGES,))
        if conn.total_changes - before < 2:  # FTS5's sign that there was nothing to merge
            return False


def _write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> None:
    begin_immediate(conn)
    try:
        conn.execute(sql, params)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
