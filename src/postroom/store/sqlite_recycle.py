"""Throwaway databases kept between test servers: emptied, not deleted and copied again.

A test suite starts and closes a throwaway (``--db :memory:``) store per test. A fresh one
is a copy of the migrated template (``sqlite_schema.schema_template``) opened by new
connections, and every new connection parses the schema and prepares each statement it
runs afresh: a test's first message and first read cost about a millisecond more than the
next ones, and copying, connecting and deleting another half.

So when a throwaway store closes small and healthy, its writer empties the database in one
transaction (:func:`reset`: every table as in the template; only the tables that hold
rows are rewritten) and keeps its connection open;
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


@dataclass(frozen=True)
class _Plan:
    """What empties a throwaway database: the same for every one (one schema)."""

    probe: str  # one SELECT: sqlite_stat1 there?, each FTS5 table's settings and data, each table's rows
    ftses: list[str]  # contentless FTS5 tables ('delete-all' empties them)
    tables: list[str]  # every other table, sqlite_sequence included


_plan: _Plan | None = None
_template_probe: tuple[object, ...] | None = None  # the probe's answer on the template


def _make_plan(conn: sqlite3.Connection) -> _Plan:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    ftses = [n for n, sql in rows if str(sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
    shadow = {n for n, _ in rows for v in ftses if n.startswith(v + "_")}
    tables = [
        n
        for n, _ in rows
        if n not in ftses and n not in shadow and (not n.startswith("sqlite_") or n == "sqlite_sequence")
    ]
    columns = ["EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1')"]
    for v in ftses:
        # its settings (an indexer process's differ: then not kept), then its content: the
        # data records (the template's are an empty index's) and whether any row is elsewhere
        columns.append(
            f"(SELECT group_concat(quote(k) || '=' || quote(v), ',') FROM "
            f'(SELECT * FROM "{v}_config" ORDER BY k))'
        )
        others = [
            n for n in sorted(shadow) if n.startswith(v + "_") and n not in (v + "_config", v + "_data")
        ]
        columns.append(
            f"(SELECT group_concat(id || ':' || hex(block), ',') FROM "
            f'(SELECT id, block FROM "{v}_data" ORDER BY id))'
            + "".join(f' || EXISTS (SELECT 1 FROM "{n}")' for n in others)
        )
    columns += [f'EXISTS (SELECT 1 FROM "{n}")' for n in tables]
    return _Plan("SELECT " + ", ".join(columns), ftses, tables)


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
    that differs from the template's (an indexer process's), an error.

    One query finds what differs from the template, and only that is emptied: an empty
    table left alone is not rewritten (``DELETE FROM`` writes its pages, and its indexes',
    even when it holds nothing), and a store that stored nothing costs no transaction."""
    global _plan, _template_probe
    try:
        if _plan is None:
            _plan = _make_plan(conn)
        plan = _plan
        if _template_probe is None:
            with contextlib.closing(sqlite3.connect(template)) as t:
                _template_probe = tuple(t.execute(plan.probe).fetchone())
        begin_immediate(conn)
        try:
            found = tuple(conn.execute(plan.probe).fetchone())
            if found[0] or any(
                found[1 + 2 * i] != _template_probe[1 + 2 * i] for i in range(len(plan.ftses))
            ):
                conn.execute("ROLLBACK")
                return False  # ANALYZE ran (the template has no statistics), or other FTS5 settings
            for i, v in enumerate(plan.ftses):
                if found[2 + 2 * i] != _template_probe[2 + 2 * i]:
                    conn.execute(f'INSERT INTO "{v}"("{v}") VALUES (\'delete-all\')')  # contentless
            rows = found[1 + 2 * len(plan.ftses) :]
            for name, has in zip(plan.tables, rows, strict=True):
                if has:
                    conn.execute(f'DELETE FROM "{name}"')
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
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
