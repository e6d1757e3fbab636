"""The IMAP cache in the SQLite store: blobs the IMAP server derives from a message.

A part of :class:`postroom.store.sqlite.SQLiteStore`. The IMAP layer (see
:mod:`postroom.servers.imap.messages`) parses a message once for ENVELOPE,
BODYSTRUCTURE, header fields and search text, and keeps the result here so that the
first FETCH or SEARCH after a restart reads rows instead of parsing every message again
(Dovecot keeps its ``dovecot.index.cache`` for the same reason). The store treats each
blob as opaque bytes under a ``kind``; the IMAP layer owns the format and its version.

The indexer writes the ``meta`` and ``head`` rows of each new message in the pass that
indexes it (``index_write.write_imap_blobs``); the IMAP server writes what it derives on
demand (a message not indexed yet, ``text``, a blob of an older format).

One table per kind (``imap_meta``, ``imap_head``, ``imap_text``), keyed by the internal ``message.id``,
which AUTOINCREMENT never reuses, and read through a join with ``message``: a deleted
message's rows can never be served. The trigger ``imap_cache_gc`` deletes them with their
message (every deletion path in the store deletes ``message`` rows). It is created
together with the first row, in the same transaction (the migration runner cannot hold a
trigger body; see 0004_imap_cache.sql).

Writes go through the writer (:meth:`~postroom.store.sqlite_db.SQLiteDb.write`); reads use the calling thread's
reader connection. Errors: the store's own (:class:`~.base.StoreClosed`, ...).
"""

from __future__ import annotations

import sqlite3

from .index_write import IMAP_GC_TRIGGER as _GC_TRIGGER
from .sqlite_db import SQLiteDb, chunks

__all__ = ["ImapCache"]

# Host parameters per statement (SQLite's default limit is 32766 since 3.32; chunks of
# 500 keep each IN list small, as the rest of the store does).
CHUNK = 500
# kind -> table (0004_imap_cache.sql)
TABLES = {"meta": "imap_meta", "head": "imap_head", "text": "imap_text"}


class ImapCache:
    """The IMAP server's cache of parsed message data, kept in the database."""

    def __init__(self, db: SQLiteDb) -> None:
        self.db = db
        self._imap_gc_ready = False  # the trigger is known to exist

    def get(self, kind: str, ids: list[str], prefix: int | None = None) -> dict[str, bytes]:
        """Cached blobs of ``kind`` for those of ``ids`` (public message IDs) that have one;
        with ``prefix``, the first ``prefix`` bytes of each."""
        table = _table(kind)
        conn = self.db.reader()
        out: dict[str, bytes] = {}
        data = "c.data" if prefix is None else f"substr(c.data, 1, {int(prefix)})"
        for chunk in chunks(ids, CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = (
                f"SELECT m.pid, {data} FROM message m JOIN {table} c ON c.id = m.id WHERE m.pid IN ({marks})"
            )
            out.update(conn.execute(sql, chunk).fetchall())
        return out

    def put(self, kind: str, items: dict[str, bytes]) -> None:
        """Store blobs of ``kind`` by public message ID (through the writer; blocks until
        committed). Messages deleted in the meantime are skipped."""
        sql = f"INSERT OR REPLACE INTO {_table(kind)}(id, data) SELECT id, ? FROM message WHERE pid = ?"
        if not items:
            return
        rows = [(data, pid) for pid, data in items.items()]
        ready = self._imap_gc_ready

        def fn(conn: sqlite3.Connection) -> None:
            if not ready:
                conn.execute(_GC_TRIGGER)
            conn.executemany(sql, rows)

        self.db.write(fn)
        self._imap_gc_ready = True

    def conversation_ids(self, ids: list[str]) -> dict[str, tuple[int, str, bool]]:
        """Public ID -> (row id, thread id, indexed) (:meth:`~.base.ImapStore.conversation_ids`)."""
        conn = self.db.reader()
        out: dict[str, tuple[int, str, bool]] = {}
        for chunk in chunks(ids, CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT pid, id, thread_id, indexed FROM message WHERE pid IN ({marks})"
            out.update((r[0], (r[1], r[2], r[3] == 1)) for r in conn.execute(sql, chunk))
        return out

    def message_tags(self, ids: list[str]) -> dict[str, list[str]]:
        """Public ID -> its tags, sorted (:meth:`~.base.ImapStore.message_tags`)."""
        conn = self.db.reader()
        out: dict[str, list[str]] = {}
        for chunk in chunks(ids, CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = (
                "SELECT m.pid, t.name FROM message m LEFT JOIN message_tag mt ON mt.message = m.id "
                f"LEFT JOIN tag t ON t.id = mt.tag WHERE m.pid IN ({marks})"
            )
            for pid, name in conn.execute(sql, chunk):
                got = out.setdefault(pid, [])
                if name is not None:
                    got.append(name)
        return {pid: sorted(names) for pid, names in out.items()}


def _table(kind: str) -> str:
    try:
        return TABLES[kind]
    except KeyError:
        raise ValueError(f"unknown IMAP cache kind {kind!r}") from None
