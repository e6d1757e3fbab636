"""Throwaway databases kept between test servers: emptied, not deleted and copied again.

A test suite starts and closes a throwaway (``--db :memory:``) store per test. A fresh one
is a copy of the migrated template (``sqlite_schema.schema_template``) opened by new
connections, and every new connection parses the schema and prepares each statement it
runs afresh: a test's first message and first read cost about a millisecond more than the
next ones, and copying, connecting and deleting another half.

So when a throwaway store closes small and healthy, its writer empties the database in one
transaction (:func:`reset`: every table as in the template) and keeps its connection open;
the store's read connections are kept with it, by thread. The next throwaway store of this
process takes them (:func:`take`) instead of copying the template and connecting. The
writer does that after ``close()`` has returned (``SQLiteStore.close``), so the next test
does not wait for it: it takes the database emptied before, and the two take turns. (An
in-process test server's store whose writer is idle at the close is emptied by the closing
thread instead: store/sqlite_direct.py.)

Only the database file and its connections are kept: every part of a store's state in
memory (folders, UIDs, caches, its journal's position) is new with each store, and the
file holds nothing of the previous test's mail (its rows are deleted; the freed pages are
reused by the next). A store that grew large (:data:`MAX_MESSAGES`), whose planner
statistics were computed, whose writes failed or that had SMTP worker journals is closed
and deleted as before. After a fork the parent's kept databases are left alone.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field

from .index_write import begin_immediate

__all__ = [
    "CLOSING_WAIT",
    "MAX_BYTES",
    "MAX_KEPT",
    "MAX_MESSAGES",
    "Kept",
    "closed",
    "closing",
    "keep",
    "reset",
    "small",
    "take",
]

# Databases kept (a test closes its store before the next one starts: one is usually used).
MAX_KEPT = 2
# A store that holds more messages than this, or whose database and WAL files have grown past
# MAX_BYTES, is deleted, not emptied.
MAX_MESSAGES = 500
MAX_BYTES = 8 << 20


@dataclass
class Kept:
    """An emptied throwaway database and its open connections."""

    tmpdir: str
    path: str
    fsync: bool  # the writer connection's PRAGMA synchronous (a setting)
    writer: sqlite3.Connection
    readers: dict[int, sqlite3.Connection] = field(default_factory=dict)  # thread ident -> conn
    pid: int = field(default_factory=os.getpid)

    def discard(self) -> None:
        for conn in (self.writer, *self.readers.values()):
            try:
                conn.close()
            except sqlite3.Error:
                pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)


_lock = threading.Lock()
_changed = threading.Condition(_lock)
_kept: list[Kept] = []
_closing = 0  # throwaway stores whose writer is still closing them (it may keep the database)
# How long the interpreter's exit waits for the stores still closing (to delete their files).
CLOSING_WAIT = 5.0
_reset_sql: list[str] | None = None
_config_sql: str | None = None  # reads the FTS5 configuration (kept by 'delete-all')
_template_config: list[tuple[object, ...]] | None = None


def _statements(conn: sqlite3.Connection) -> list[str]:
    """What empties the database: the same for every throwaway store (one schema)."""
    global _reset_sql, _config_sql
    if _reset_sql is None:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        virtual = [n for n, sql in rows if str(sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
        shadow = {n for n, _ in rows for v in virtual if n.startswith(v + "_")}
        sql = [f'INSERT INTO "{v}"("{v}") VALUES (\'delete-all\')' for v in virtual]  # contentless FTS5
        sql += [
            f'DELETE FROM "{n}"'
            for n, _ in rows
            if n not in virtual
            and n not in shadow
            and (not n.startswith("sqlite_") or n == "sqlite_sequence")
        ]
        configs = sorted(n for n in shadow if n.endswith("_config"))
        _config_sql = " UNION ALL ".join(f"SELECT '{n}', * FROM \"{n}\"" for n in configs) + " ORDER BY 1, 2"
        _reset_sql = sql
    return _reset_sql


def _config(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    assert _config_sql is not None
    return conn.execute(_config_sql).fetchall() if _config_sql.startswith("SELECT") else []


def small(path: str) -> bool:
    """The database and its WAL together are at most :data:`MAX_BYTES`."""
    size = 0
    for name in (path, path + "-wal"):
        try:
            size += os.path.getsize(name)
        except OSError:
            pass
    return size <= MAX_BYTES


def reset(conn: sqlite3.Connection, template: str) -> bool:
    """Empty a throwaway database back to the template's contents (writer's thread, no
    transaction open); False if it cannot be kept: planner statistics, an FTS5 setting
    that differs from the template's (an indexer process's), an error."""
    global _template_config
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            return False  # ANALYZE ran: the template has no statistics
        statements = _statements(conn)
        if _template_config is None:
            with contextlib.closing(sqlite3.connect(template)) as t:
                _template_config = _config(t)
        if _config(conn) != _template_config:
            return False
        begin_immediate(conn)
        try:
            for stmt in statements:
                conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error:
        return False
    return True


def keep(kept: Kept) -> None:
    """Keep an emptied database for the next throwaway store (or delete it: enough kept)."""
    with _lock:
        if len(_kept) < MAX_KEPT:
            _kept.append(kept)
            return
    kept.discard()


def closing() -> None:
    """A throwaway store's writer has started closing it (:func:`closed` when it is done)."""
    global _closing
    with _lock:
        _closing += 1


def closed() -> None:
    global _closing
    with _lock:
        _closing -= 1
        _changed.notify_all()


def wait_closed(timeout: float = CLOSING_WAIT) -> bool:
    """Wait until no throwaway store is being closed by its writer; False on timeout."""
    with _lock:
        return _changed.wait_for(lambda: _closing <= 0, timeout)


def take(fsync: bool) -> Kept | None:
    """An emptied database of this process whose writer connection fits ``fsync``, if any.

    It does not wait for the stores still closing: while one test's writer empties its
    database, the next test takes the one emptied before (two databases take turns)."""
    with _lock:
        for i in range(len(_kept) - 1, -1, -1):
            kept = _kept[i]
            if kept.pid != os.getpid():
                del _kept[i]  # the parent's, after a fork: its connections are not ours
            elif kept.fsync == fsync and os.path.exists(kept.path):
                del _kept[i]
                return kept
    return None


@atexit.register
def _discard_all() -> None:
    wait_closed()
    with _lock:
        mine = [k for k in _kept if k.pid == os.getpid()]
        _kept.clear()
    for kept in mine:
        kept.discard()
