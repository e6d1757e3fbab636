"""Changes that the API makes to messages: read state, deletion, tags.

Mixed into :class:`postroom.store.sqlite.SQLiteStore`; each change runs as a call in the
writer's next transaction (``self.write``) and announces itself after the commit.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from ..events import (
    FolderChanged,
    MessagesDeleted,
    ReadChanged,
    StoreTruncated,
    TagRenamed,
    TagsChanged,
)
from .sqlite_db import SQLiteDb, chunks

if TYPE_CHECKING:
    from .sqlite_reading import Reader
    from .sqlite_writes import Writes

__all__ = ["Changes"]


class Changes:
    """Read state, deletion and tags of messages (each change one writer call)."""

    def __init__(self, db: SQLiteDb, writes: Writes, reading: Reader) -> None:
        self.db = db
        self.writes = writes
        self.reading = reading

    # -- changes -------------------------------------------------------------------------------
    def _select_ids(
        self, conn: sqlite3.Connection, ids: list[str] | None, mailbox: str | None, query: str | None
    ) -> list[int]:
        if ids is not None:
            out: list[int] = []
            for chunk in chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                out += [r[0] for r in conn.execute(f"SELECT id FROM message WHERE pid IN ({marks})", chunk)]
            return out
        where, params = self.reading.where(mailbox, query, conn)
        return [r[0] for r in conn.execute(f"SELECT m.id FROM message m WHERE {where}", params)]

    def set_read(
        self, ids: list[str] | None, read: bool, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        if query:
            self.reading.where(mailbox, query)  # raise InvalidQuery here, not in the writer

        def fn(conn: sqlite3.Connection) -> list[str]:
            mids = self._select_ids(conn, ids, mailbox, query)
            changed: list[str] = []
            touched: dict[int, tuple[str, str]] = {}
            seen: list[tuple[int, int, str]] = []
            for chunk in chunks(mids, 500):
                marks = ",".join("?" * len(chunk))
                changed += [
                    r[0]
                    for r in conn.execute(
                        f"SELECT pid FROM message WHERE id IN ({marks}) AND read != ?", [*chunk, int(read)]
                    )
                ]
                # only the rows that change: an unchanged row would still be rewritten, with its
                # entries in every index that holds the flag
                conn.execute(
                    f"UPDATE message SET read = ? WHERE id IN ({marks}) AND read != ?",
                    [int(read), *chunk, int(read)],
                )
                seen += self._seen_flags(conn, chunk, read, mailbox, touched)
            # One change, one modification sequence per folder (RFC 7162 3.1.2): the deliveries
            # changed here carry the folder's next MODSEQ, which the folder then takes. Bumping
            # once per folder, not once per chunk, also keeps a change to 100,000 messages in
            # 1,000 mailboxes to 1,000 folder events.
            nxt = self._next_modseqs(conn, list(touched))
            # one prepared statement for all, in key order: the deliveries of a chunk of
            # messages are spread over every folder, so in message order each row was in
            # another part of the table (a Python call per row was once most of the time)
            seen.sort()
            conn.executemany(
                "UPDATE delivery SET flags = ?, seen = ?, modseq = ? WHERE folder_id = ? AND uid = ?",
                [(flags, int(read), nxt[fid], fid, uid) for fid, uid, flags in seen],
            )
            for fid, (fname, mname) in touched.items():
                conn.execute("UPDATE folder SET modseq = modseq + 1 WHERE id = ?", (fid,))
                self.db.emit(FolderChanged(mname, fname, "flags"))
            if changed:
                self.db.emit(ReadChanged(tuple(changed), read))
            return changed

        return self.db.write(fn)  # type: ignore[no-any-return]

    def _seen_flags(
        self,
        conn: sqlite3.Connection,
        mids: list[int],
        read: bool,
        mailbox: str | None,
        touched: dict[int, tuple[str, str]],
    ) -> list[tuple[int, int, str]]:
        """The deliveries of ``mids`` whose \\Seen changes, as (folder, uid, new flags); adds
        their folders to ``touched``."""
        marks = ",".join("?" * len(mids))
        rows = conn.execute(
            f"SELECT d.folder_id, d.uid, d.flags, f.name, mb.name FROM delivery d JOIN folder f ON f.id = d.folder_id "
            f"JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message IN ({marks}) AND d.seen != ?",
            [*mids, int(read)],
        ).fetchall()
        out: list[tuple[int, int, str]] = []
        for fid, uid, flags, fname, mname in rows:
            if mailbox and mname != mailbox.lower():
                continue
            fl = set(flags.split())
            fl.add("\\Seen") if read else fl.discard("\\Seen")
            out.append((fid, uid, " ".join(sorted(fl))))
            touched[fid] = (fname, mname)
        return out

    @staticmethod
    def _next_modseqs(conn: sqlite3.Connection, fids: list[int]) -> dict[int, int]:
        """Each folder's next MODSEQ (its current one plus one)."""
        out: dict[int, int] = {}
        for chunk in chunks(fids, 500):
            marks = ",".join("?" * len(chunk))
            out.update(
                conn.execute(f"SELECT id, modseq + 1 FROM folder WHERE id IN ({marks})", chunk).fetchall()
            )
        return out

    def delete_messages(
        self, ids: list[str] | None, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        if query:
            self.reading.where(mailbox, query)
        everything = ids is None and not mailbox and not (query and query.strip())

        def fn(conn: sqlite3.Connection) -> list[str]:
            if everything:
                pids = [r[0] for r in conn.execute("SELECT pid FROM message")]
                for table in ("raw", "header_field", "delivery", "message_tag", "message"):
                    conn.execute(f"DELETE FROM {table}")
                conn.execute("INSERT INTO fts(fts) VALUES ('delete-all')")
                self.writes.count = 0
                self.db.emit(StoreTruncated(None))
                for mname, fname in self.writes.folder_cache:
                    self.db.emit(FolderChanged(mname, fname, "expunge"))
                return pids
            pids = self.writes.delete_ids(conn, self._select_ids(conn, ids, mailbox, query))
            if pids:
                self.db.emit(MessagesDeleted(tuple(pids)))
            return pids

        return self.db.write(fn)  # type: ignore[no-any-return]

    def set_tags(self, ids: list[str], tags: list[str]) -> None:
        clean = list(dict.fromkeys(t.strip() for t in tags if t.strip()))

        def fn(conn: sqlite3.Connection) -> None:
            mids = self._select_ids(conn, ids, None, None)
            tids = [self.writes.tag_id(conn, t) for t in clean]
            for mid in mids:
                conn.execute("DELETE FROM message_tag WHERE message = ?", (mid,))
                conn.executemany(
                    "INSERT OR IGNORE INTO message_tag(message, tag) VALUES (?, ?)", [(mid, t) for t in tids]
                )
            if mids:
                self.db.emit(TagsChanged(tuple(ids), tuple(clean)))

        self.db.write(fn)

    def rename_tag(self, old: str, new: str) -> None:
        def fn(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT id FROM tag WHERE name = ?", (old,)).fetchone()
            if row is None:
                return
            other = conn.execute("SELECT id FROM tag WHERE name = ? AND id != ?", (new, row[0])).fetchone()
            if other:  # merging into an existing tag
                conn.execute(
                    "INSERT OR IGNORE INTO message_tag(message, tag) SELECT message, ? FROM message_tag "
                    "WHERE tag = ?",
                    (other[0], row[0]),
                )
                conn.execute("DELETE FROM message_tag WHERE tag = ?", (row[0],))
                conn.execute("DELETE FROM tag WHERE id = ?", (row[0],))
            else:
                conn.execute("UPDATE tag SET name = ? WHERE id = ?", (new, row[0]))
            self.writes.tag_cache.clear()
            self.db.emit(TagRenamed(old, new))

        self.db.write(fn)

    def delete_tag(self, tag: str) -> None:
        def fn(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM message_tag WHERE tag IN (SELECT id FROM tag WHERE name = ?)", (tag,))
            conn.execute("DELETE FROM tag WHERE name = ?", (tag,))
            self.writes.tag_cache.clear()

        self.db.write(fn)
