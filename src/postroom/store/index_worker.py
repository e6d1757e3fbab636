"""The indexer: full MIME parse, snippet, attachment count and full-text rows, off the ingest path.

Parsing runs in its own process by default (``--indexer process``) so that it uses the
machine's second core instead of competing with the SMTP loop for the GIL; in a thread
(``--indexer thread``) for small embedded uses such as a test's in-process server.

The parser only *reads* the database. Its results go back to the store's one writer
thread, which writes them in its next group commit: a second writer would make the SMTP
path wait on SQLite's lock (its busy handler sleeps in steps of milliseconds), which is
exactly the latency group commit exists to avoid.

Process protocol: the store wakes the worker with a byte on its stdin after each commit
(stdin closing means "stop"); the worker answers with frames on its stdout, each a 4-byte
big-endian length and a ``marshal`` dump of a list of result tuples (see :data:`Row`).
"""

from __future__ import annotations

import logging
import marshal
import os
import select
import sqlite3
import struct
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import zstandard

__all__ = ["Row", "extract_pending", "main", "read_frame", "write_index"]

log = logging.getLogger(__name__)

BATCH = 250  # messages per frame / per writer call
IDLE_POLL = 2.0  # seconds between checks when nobody wakes us
NICENESS = 10  # scheduling priority drop of the worker process (see main)
MAX_FRAME = 512 * 1024 * 1024  # a frame larger than this is a broken pipe, not data

# (message id, snippet, attachments, subject, addresses, body, attachment names); or
# (message id,) when the message could not be parsed (it is marked indexed, without text).
Row = tuple[Any, ...]


def _extractor() -> Callable[[bytes], Any] | None:
    try:
        from .indexer import extract
    except ImportError:
        return None
    return extract


def extract_pending(
    conn: sqlite3.Connection, extract: Callable[[bytes], Any], after: int, limit: int = BATCH
) -> list[Row]:
    """Parse up to ``limit`` not yet indexed messages with ids above ``after``."""
    dctx = zstandard.ZstdDecompressor()
    rows = conn.execute(
        "SELECT m.id, r.data FROM message m JOIN raw r ON r.id = m.id WHERE m.indexed = 0 AND m.id > ? "
        "ORDER BY m.id LIMIT ?",
        (after, limit),
    ).fetchall()
    out: list[Row] = []
    for mid, data in rows:
        try:
            d = extract(dctx.decompress(data))
            out.append((mid, d.snippet, d.attachments, d.subject, d.addresses, d.body, d.attachment_names))
        except Exception:  # one broken message must not stop the others
            log.exception("indexing message %s failed", mid)
            out.append((mid,))
    return out


def write_index(conn: sqlite3.Connection, rows: list[Row], rules: Any = None) -> list[str]:
    """Write parsed results (inside the caller's transaction). Returns the public IDs indexed.

    Applies the tagging rules (an ``indexer.TagRules``) once a message's full-text row exists.
    """
    done: list[int] = []
    for row in rows:
        mid = row[0]
        if len(row) == 1:
            conn.execute("UPDATE message SET indexed = 1 WHERE id = ?", (mid,))
            continue
        cur = conn.execute(
            "UPDATE message SET snippet = ?, attachments = ?, indexed = 1 WHERE id = ? AND indexed = 0",
            (row[1], row[2], mid),
        )
        if cur.rowcount:  # still there, and not indexed meanwhile
            conn.execute(
                "INSERT INTO fts(rowid, subject, addresses, body, attachments) VALUES (?, ?, ?, ?, ?)",
                (mid, row[3], row[4], row[5], row[6]),
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


def read_frame(stream: IO[bytes]) -> list[Row] | None:
    """Read one frame from the worker's stdout; None at end of stream."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME:
        raise ValueError(f"indexer frame of {size} bytes")
    body = stream.read(size)
    if len(body) < size:
        return None
    rows: list[Row] = marshal.loads(body)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of the indexer process: ``python -m postroom.store.index_worker DB``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s indexer: %(message)s")
    extract = _extractor()
    if extract is None or not args:
        return 1
    # Parsing can always wait; a burst of SMTP must not: yield the CPU to the server.
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    conn = connect_readonly(args[0])
    stdin = sys.stdin.fileno()
    out = sys.stdout.buffer
    os.set_blocking(stdin, False)
    after = 0
    while True:
        while rows := extract_pending(conn, extract, after):
            after = rows[-1][0]
            data = marshal.dumps(rows)
            try:
                out.write(struct.pack(">I", len(data)) + data)
                out.flush()
            except BrokenPipeError:
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
