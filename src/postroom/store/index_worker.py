"""The indexer: full MIME parse, snippet, attachment count and full-text rows, off the ingest path.

It runs in its own process by default (``--indexer process``) so that parsing uses the
machine's second core instead of competing with the SMTP loop for the GIL; in a thread
(``--indexer thread``) for small embedded uses such as a test's in-process server.

Either way it does the same thing: take messages with ``indexed = 0`` in id order, parse
them with :func:`postroom.store.indexer.extract`, and write the results in one short
transaction per batch. The main process wakes it after each commit by writing a byte to
its stdin; when stdin closes (the server stopped or died) the worker exits.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

import zstandard

__all__ = ["index_pending", "main"]

log = logging.getLogger(__name__)

BATCH = 250  # messages per transaction: short enough not to hold the write lock long
IDLE_POLL = 2.0  # seconds between checks when nobody wakes us


def _extractor() -> Callable[[bytes], Any] | None:
    try:
        from .indexer import extract  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return extract  # type: ignore[no-any-return]


def index_pending(
    conn: sqlite3.Connection, extract: Callable[[bytes], Any], rules: Any = None, limit: int = BATCH
) -> list[str] | None:
    """Index up to ``limit`` pending messages in one transaction.

    Applies the tagging rules (an ``indexer.TagRules``) to each message once its full-text
    row exists. Returns the public IDs of the messages indexed, or None when none was pending.
    """
    dctx = zstandard.ZstdDecompressor()
    rows = conn.execute(
        "SELECT m.id, r.data FROM message m JOIN raw r ON r.id = m.id WHERE m.indexed = 0 ORDER BY m.id LIMIT ?",
        (limit,),
    ).fetchall()
    if not rows:
        return None
    results = []
    for mid, data in rows:
        try:
            results.append((mid, extract(dctx.decompress(data))))
        except Exception:  # one broken message must not stop the others
            log.exception("indexing message %s failed", mid)
            results.append((mid, None))
    done: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for mid, d in results:
            if d is None:
                conn.execute("UPDATE message SET indexed = 1 WHERE id = ?", (mid,))
                continue
            cur = conn.execute(
                "UPDATE message SET snippet = ?, attachments = ?, indexed = 1 WHERE id = ? AND indexed = 0",
                (d.snippet, d.attachments, mid),
            )
            if cur.rowcount:  # still there, and not indexed by someone else meanwhile
                conn.execute(
                    "INSERT INTO fts(rowid, subject, addresses, body, attachments) VALUES (?, ?, ?, ?, ?)",
                    (mid, d.subject, d.addresses, d.body, d.attachment_names),
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
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return pids


def _add_tag(conn: sqlite3.Connection, mid: int, name: str) -> None:
    row = conn.execute("SELECT id FROM tag WHERE name = ?", (name,)).fetchone()
    tid = row[0] if row else conn.execute("INSERT INTO tag(name) VALUES (?)", (name,)).lastrowid
    conn.execute("INSERT OR IGNORE INTO message_tag(message, tag) VALUES (?, ?)", (mid, tid))


def load_rules(rules_json: str | None) -> Any:
    """The tagging rules (config ``[[tags]]``) as an ``indexer.TagRules``, or None."""
    if not rules_json:
        return None
    from .indexer import TagRules

    rules = TagRules(json.loads(rules_json))
    return rules if rules else None


def connect(path: str) -> sqlite3.Connection:
    from .sqlite_search import register_functions

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    register_functions(conn)  # tagging rules may use header: searches
    conn.execute("PRAGMA busy_timeout=60000")
    conn.execute("PRAGMA synchronous=NORMAL")  # the index can always be rebuilt from the messages
    return conn


def main(argv: list[str] | None = None) -> int:
    """Entry point of the indexer process: ``python -m postroom.store.index_worker DB [RULES_JSON]``.

    Prints a line with the public IDs of each indexed batch, for the parent to announce.
    """
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s indexer: %(message)s")
    extract = _extractor()
    if extract is None or not args:
        return 1
    conn = connect(args[0])
    rules = load_rules(args[1] if len(args) > 1 else None)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    while True:
        while (pids := index_pending(conn, extract, rules)) is not None:
            if pids:
                try:
                    sys.stdout.write(" ".join(pids) + "\n")
                    sys.stdout.flush()
                except BrokenPipeError:
                    return 0
        ready, _, _ = select.select([stdin], [], [], IDLE_POLL)
        if ready:
            try:
                data = os.read(stdin, 65536)
            except BlockingIOError:
                data = b"-"
            if not data:  # parent closed the pipe: it stopped or died
                conn.close()
                return 0
        time.sleep(0.005)  # let a burst accumulate into one batch


if __name__ == "__main__":
    sys.exit(main())
