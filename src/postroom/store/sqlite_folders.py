"""IMAP/POP3 view of the SQLite store: folders of a mailbox, deliveries, flags, copy/move.

Mixed into :class:`postroom.store.sqlite.SQLiteStore`; every change goes through the
writer thread (``self.write``), reads use the per-thread reader connection.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import FolderChanged, MessagesDeleted, ReadChanged, StoreTruncated
from .base import INBOX, AlreadyExists, Entry, FlagMode, FolderInfo, NotFound, StoreError
from .folder_sql import FolderSQL
from .sqlite_db import SQLiteDb, chunks
from .sqlite_jobs import SMALL_WRITE_ROWS, RowsHint

if TYPE_CHECKING:
    from .sqlite_writes import Writes

__all__ = ["Folders", "advance_folder", "next_uidvalidity", "uidvalidity_of"]

SQL = FolderSQL.of("?")


def advance_folder(conn: sqlite3.Connection, entry: list[int], added: int, unseen: int) -> None:
    """After deliveries were inserted into the folder of ``entry`` ([folder id, uidnext], the
    writer's cache): store its uidnext and add the ``added`` deliveries, ``unseen`` of them
    without \\Seen, to its counts (inside the writer's transaction).

    Every statement that inserts deliveries calls this once per folder (migration 0021:
    no trigger counts an INSERT; deletions and \\Seen changes are still counted by triggers).
    """
    conn.execute(
        "UPDATE folder SET uidnext = ?, messages = messages + ?, unseen = unseen + ? WHERE id = ?",
        (entry[1], added, unseen, entry[0]),
    )


def uidvalidity_of(conn: sqlite3.Connection, folder_id: int) -> int:
    """The UIDVALIDITY of a folder (inside the writer's transaction), for its change events."""
    return int(conn.execute("SELECT uidvalidity FROM folder WHERE id = ?", (folder_id,)).fetchone()[0])


def next_uidvalidity(conn: sqlite3.Connection, now: float, count: int = 1) -> int:
    """The first of ``count`` new UIDVALIDITY values (inside the caller's write transaction).

    RFC 3501 section 2.3.1.1: a name that is reused (a folder deleted and created again,
    or renamed onto) must get a different UIDVALIDITY. A clock-based value that is also
    above every value ever handed out does that; the highest is kept in ``meta`` because
    the folder that held it may be gone (issue 19: DELETE and CREATE within one second
    gave the new folder the old one's value).
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity_top'").fetchone()
    top = int(row[0]) if row is not None else 0
    top = max(top, int(conn.execute("SELECT coalesce(max(uidvalidity), 0) FROM folder").fetchone()[0]))
    first = max(int(now), top + 1)
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('uidvalidity_top', ?)", (str(first + count - 1),)
    )
    return first


class Folders:
    """The IMAP and POP3 view: folders, their deliveries (UIDs, flags, MODSEQ), copies."""

    def __init__(self, db: SQLiteDb, writes: Writes) -> None:
        self.db = db
        self.writes = writes
        # UIDVALIDITY by folder, with the writer's cache entry it was read for: a folder
        # created again, renamed or reloaded has a new entry (list), so a stale value is
        # never served (APPEND asks for it on the event loop every time)
        self._validities: dict[tuple[str, str], tuple[list[int], int]] = {}

    def _folder_id(self, mailbox: str, folder: str) -> int:
        """The id of an existing folder (inside a writer call). Raises NotFound."""
        entry = self.writes.folder_cache.get((mailbox, folder))
        if entry is None:
            raise NotFound(f"no folder {folder!r}")
        return entry[0]

    def _ensure_inbox(self, mailbox: str) -> None:
        if (mailbox, INBOX) not in self.writes.folder_cache:
            self.db.write(lambda c: self.writes.folder(c, mailbox, INBOX))

    def folders(self, mailbox: str) -> list[FolderInfo]:
        mailbox = mailbox.lower()
        self._ensure_inbox(mailbox)
        rows = self.db.reader().execute(SQL.infos, (mailbox,))
        return [_info(mailbox, r) for r in rows]

    def folder_info(self, mailbox: str, folder: str) -> FolderInfo | None:
        mailbox = mailbox.lower()
        folder = _norm(folder)
        if folder == INBOX:
            self._ensure_inbox(mailbox)
        row = self.db.reader().execute(SQL.info, (mailbox, folder)).fetchone()
        return _info(mailbox, row) if row else None

    def folders_now(self, mailbox: str) -> list[FolderInfo] | None:
        """:meth:`folders` without waiting, quick enough for the event loop (the folder rows,
        their counts kept by triggers): None when the mailbox has no INBOX yet (ask
        :meth:`folders` on a worker thread). Mail acknowledged but not yet stored is not
        waited for: the names and attributes are current (folders are written through the
        writer, whose commit comes before its caller goes on), the counts may lag them."""
        mailbox = mailbox.lower()
        if (mailbox, INBOX) not in self.writes.folder_cache:
            return None
        with self.db.unindexed_reads():  # folder rows need no index
            rows = self.db.reader(False).execute(SQL.infos, (mailbox,))
            return [_info(mailbox, r) for r in rows]

    def folder_info_now(self, mailbox: str, folder: str) -> FolderInfo | None:
        """:meth:`folder_info` of a folder the writer knows, quick enough for the event loop
        (one indexed row), when nothing acknowledged waits to be stored (its counts are then
        current); None otherwise (ask :meth:`folder_info` on a worker thread)."""
        mailbox = mailbox.lower()
        folder = _norm(folder)
        if (mailbox, folder) not in self.writes.folder_cache or not self.db.applied_now():
            return None
        with self.db.unindexed_reads():
            row = self.db.reader(False).execute(SQL.info, (mailbox, folder)).fetchone()
        return _info(mailbox, row) if row else None

    def count_above_now(self, mailbox: str, folder: str, after_uid: int) -> int | None:
        """How many deliveries of a folder the writer knows have a UID above ``after_uid``,
        counted on the event loop (a range of the ``(folder_id, uid)`` key; the caller bounds
        it) when nothing acknowledged waits to be stored; None otherwise."""
        entry = self.writes.folder_cache.get((mailbox.lower(), _norm(folder)))
        if entry is None or not self.db.applied_now():
            return None
        with self.db.unindexed_reads():
            sql = "SELECT count(*) FROM delivery WHERE folder_id = ? AND uid > ?"
            return int(self.db.reader(False).execute(sql, (entry[0], after_uid)).fetchone()[0])

    def folder_validity(self, mailbox: str, folder: str) -> int | None:
        """The UIDVALIDITY of an existing folder, None if there is none: what APPEND needs,
        without the message counts of :meth:`folder_info` (O(messages in the folder))."""
        mailbox = mailbox.lower()
        folder = _norm(folder)
        if folder == INBOX:
            self._ensure_inbox(mailbox)
        return self._validity(mailbox, folder, wait=True)

    def known_validity(self, mailbox: str, folder: str) -> int | None:
        """:meth:`folder_validity` of a folder the writer knows, quick enough for the event
        loop (one indexed read, no read-your-writes wait: folders are written through the
        writer, whose commit comes before its caller goes on); None if the writer does not
        know the folder (ask :meth:`folder_validity` on a worker thread)."""
        mailbox = mailbox.lower()
        folder = _norm(folder)
        entry = self.writes.folder_cache.get((mailbox, folder))
        if entry is None:
            return None
        kept = self._validities.get((mailbox, folder))
        if kept is not None and kept[0] is entry:
            return kept[1]
        validity = self._validity(mailbox, folder, wait=False)
        if validity is not None and self.writes.folder_cache.get((mailbox, folder)) is entry:
            self._validities[(mailbox, folder)] = (entry, validity)
        return validity

    def _validity(self, mailbox: str, folder: str, *, wait: bool) -> int | None:
        row = (
            self.db.reader(wait)
            .execute(
                "SELECT f.uidvalidity FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id "
                "WHERE mb.name = ? AND f.name = ?",
                (mailbox, folder),
            )
            .fetchone()
        )
        return int(row[0]) if row else None

    def create_folder(self, mailbox: str, folder: str, special_use: str = "") -> FolderInfo:
        mailbox = mailbox.lower()
        folder = _norm(folder)

        def fn(conn: sqlite3.Connection) -> None:
            if (mailbox, folder) in self.writes.folder_cache:
                raise AlreadyExists(f"folder {folder!r} exists")
            self.writes.folder(conn, mailbox, folder, special_use)

        self.db.write(fn)
        info = self.folder_info(mailbox, folder)
        assert info is not None
        return info

    def delete_folder(self, mailbox: str, folder: str) -> None:
        mailbox = mailbox.lower()
        folder = _norm(folder)
        if folder == INBOX:
            raise StoreError("INBOX cannot be deleted")

        def fn(conn: sqlite3.Connection) -> None:
            fid = self._folder_id(mailbox, folder)
            mids = [r[0] for r in conn.execute("SELECT message FROM delivery WHERE folder_id = ?", (fid,))]
            conn.execute("DELETE FROM delivery WHERE folder_id = ?", (fid,))
            conn.execute("DELETE FROM folder WHERE id = ?", (fid,))
            del self.writes.folder_cache[(mailbox, folder)]
            self._drop_orphans(conn, mids)

        self.db.write(fn)

    def rename_folder(self, mailbox: str, old: str, new: str) -> None:
        mailbox = mailbox.lower()
        old, new = _norm(old), _norm(new)

        def fn(conn: sqlite3.Connection) -> None:
            entry = self.writes.folder_cache.get((mailbox, old))
            if entry is None:
                raise NotFound(f"no folder {old!r}")
            if (mailbox, new) in self.writes.folder_cache:
                raise AlreadyExists(f"folder {new!r} exists")
            if old == INBOX:
                # RFC 3501 6.3.5: renaming INBOX moves its messages to the new name and leaves INBOX empty.
                dest = self.writes.folder(conn, mailbox, new)
                moved = self._move_all(conn, entry, dest)
                if moved:  # sessions with INBOX selected see the expunges (as after a MOVE)
                    validity = uidvalidity_of(conn, entry[0])
                    self.db.emit(FolderChanged(mailbox, INBOX, "expunge", tuple(moved), uidvalidity=validity))
                return
            # children move with their parent (hierarchy delimiter "/")
            renames = [
                (name, new + name[len(old) :])
                for (mb, name) in self.writes.folder_cache
                if mb == mailbox and (name == old or name.startswith(old + "/"))
            ]
            top = next_uidvalidity(conn, time.time(), len(renames)) - 1
            for i, (a, b) in enumerate(renames):
                e = self.writes.folder_cache.pop((mailbox, a))
                # a new name must not look like the folder that used it before: new UIDVALIDITY
                conn.execute(
                    "UPDATE folder SET name = ?, uidvalidity = ? WHERE id = ?", (b, top + 1 + i, e[0])
                )
                self.writes.folder_cache[(mailbox, b)] = [*e]  # a new entry: see _validities

        self.db.write(fn)

    def _move_all(self, conn: sqlite3.Connection, src: list[int], dest: list[int]) -> list[int]:
        """Every delivery of ``src`` moved to ``dest``; returns their UIDs in ``src``."""
        rows = conn.execute(
            "SELECT uid, message, flags, seen FROM delivery WHERE folder_id = ? ORDER BY uid", (src[0],)
        ).fetchall()
        for _uid, mid, flags, seen in rows:
            conn.execute(
                "INSERT INTO delivery(folder_id, uid, message, flags, seen) VALUES (?,?,?,?,?)",
                (dest[0], dest[1], mid, flags, seen),
            )
            dest[1] += 1
        conn.execute("DELETE FROM delivery WHERE folder_id = ?", (src[0],))
        advance_folder(conn, dest, len(rows), sum(1 for *_, seen in rows if not seen))
        return [r[0] for r in rows]

    def set_subscribed(self, mailbox: str, folder: str, subscribed: bool) -> None:
        mailbox = mailbox.lower()
        folder = _norm(folder)

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE folder SET subscribed = ? WHERE id = ?",
                (int(subscribed), self._folder_id(mailbox, folder)),
            )

        self.db.write(fn)

    def folder_entries(self, mailbox: str, folder: str, after_uid: int = 0) -> list[Entry]:
        return self._entries(SQL.entries_after, mailbox, folder, (after_uid,))

    def folder_changed(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> list[Entry]:
        return self._entries(SQL.entries_changed, mailbox, folder, (upto_uid, above_modseq))

    def _entries(self, sql: str, mailbox: str, folder: str, args: tuple[int, ...]) -> list[Entry]:
        rows = self.db.reader().execute(sql, (mailbox.lower(), _norm(folder), *args)).fetchall()
        return [Entry(r[0], r[1], frozenset(r[2].split()), r[3], r[4], r[5]) for r in rows]

    def imap_cache_range(
        self, kind: str, mailbox: str, folder: str, uidvalidity: int, uids: tuple[int, int], prefix: int
    ) -> dict[int, bytes] | None:
        from .sqlite_imapcache import TABLES

        table = TABLES[kind]  # (KeyError: not a kind)
        conn = self.db.reader()
        row = conn.execute(SQL.folder, (mailbox.lower(), _norm(folder))).fetchone()
        if row is None or row[1] != uidvalidity:
            return None
        sql = (
            f"SELECT d.uid, substr(c.data, 1, ?) FROM delivery d JOIN {table} c ON c.id = d.message "
            "WHERE d.folder_id = ? AND d.uid BETWEEN ? AND ?"
        )
        return dict(conn.execute(sql, (int(prefix), row[0], uids[0], uids[1])).fetchall())

    def folder_count(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> tuple[int, int]:
        args = (upto_uid, above_modseq, upto_uid, above_modseq, mailbox.lower(), _norm(folder))
        row = self.db.reader().execute(SQL.count, args).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def update_flags(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        return self.db.write(self._flags_call(mailbox, folder, uids, flags, mode), rows=len(uids))  # type: ignore[no-any-return]

    async def update_flags_async(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        call = self._flags_call(mailbox, folder, uids, flags, mode)
        return await self.db.write_async(call, rows=len(uids))  # type: ignore[no-any-return]

    def _flags_call(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> Callable[[sqlite3.Connection], list[Entry]]:
        """The writer call of a flag change: returns the entries as they are after it (read
        in the same transaction, so no reader goes over the folder afterwards)."""
        mailbox = mailbox.lower()
        folder = _norm(folder)

        def fn(conn: sqlite3.Connection) -> list[Entry]:
            fid = self._folder_id(mailbox, folder)
            modseq = conn.execute(
                "UPDATE folder SET modseq = modseq + 1 WHERE id = ? RETURNING modseq", (fid,)
            ).fetchone()[0]
            changed_msgs: set[int] = set()
            updates: list[tuple[str, int, int, int, int]] = []
            entries: list[Entry] = []
            for chunk in chunks(sorted(set(uids)), 500):
                marks = ",".join("?" * len(chunk))
                for uid, mid, old, pid, size, created, old_modseq in conn.execute(
                    "SELECT d.uid, d.message, d.flags, m.pid, m.size, m.created, d.modseq FROM delivery d "
                    f"JOIN message m ON m.id = d.message WHERE d.folder_id = ? AND d.uid IN ({marks})",
                    [fid, *chunk],
                ).fetchall():
                    cur = frozenset(old.split())
                    new = flags if mode == "set" else (cur | flags if mode == "add" else cur - flags)
                    if new == cur:
                        entries.append(Entry(uid, pid, cur, size, created, old_modseq))
                        continue
                    updates.append((" ".join(sorted(new)), int("\\Seen" in new), modseq, fid, uid))
                    entries.append(Entry(uid, pid, new, size, created, modseq))
                    if ("\\Seen" in new) != ("\\Seen" in cur):
                        changed_msgs.add(mid)
            if updates:
                conn.executemany(
                    "UPDATE delivery SET flags = ?, seen = ?, modseq = ? WHERE folder_id = ? AND uid = ?",
                    updates,
                )
            if changed_msgs:
                self._sync_read(conn, sorted(changed_msgs))
            entries.sort(key=lambda e: e.uid)
            validity = uidvalidity_of(conn, fid)
            self.db.emit(
                FolderChanged(mailbox, folder, "flags", tuple(uids), tuple(entries), modseq, validity)
            )
            return entries

        return fn

    def _sync_read(self, conn: sqlite3.Connection, mids: list[int]) -> None:
        """A message reads as read (API "Read") when every delivery of it is \\Seen."""
        marks = ",".join("?" * len(mids))
        rows = conn.execute(
            f"SELECT m.id, m.pid, m.read, NOT EXISTS (SELECT 1 FROM delivery d WHERE d.message = m.id "
            f"AND d.seen = 0) FROM message m WHERE m.id IN ({marks})",
            mids,
        ).fetchall()
        for read_state in (True, False):
            flip = [
                (mid, pid)
                for mid, pid, old, now in rows
                if bool(now) == read_state and bool(old) != read_state
            ]
            if flip:
                conn.executemany(
                    "UPDATE message SET read = ? WHERE id = ?", [(int(read_state), m) for m, _ in flip]
                )
                self.db.emit(ReadChanged(tuple(p for _, p in flip), read_state))

    def expunge(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        call = self._expunge_call(mailbox, folder, uids)
        return self.db.write(call, rows=self._expunge_rows(mailbox, folder, uids))  # type: ignore[no-any-return]

    async def expunge_async(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        call = self._expunge_call(mailbox, folder, uids)
        return await self.db.write_async(call, rows=self._expunge_rows(mailbox, folder, uids))  # type: ignore[no-any-return]

    def _expunge_rows(self, mailbox: str, folder: str, uids: list[int] | None) -> RowsHint:
        """How many deliveries an expunge removes at most (``_Call.rows``): with no UIDs,
        the folder's \\Deleted ones, counted on the writer before its transaction (up to
        past the bound of a small transaction)."""
        if uids is not None:
            return len(uids)
        mailbox, folder = mailbox.lower(), _norm(folder)

        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM delivery WHERE folder_id = ? "
                "AND (' ' || flags || ' ') LIKE '% \\Deleted %' LIMIT ?)",
                (self._folder_id(mailbox, folder), SMALL_WRITE_ROWS + 1),
            ).fetchone()
            return int(row[0])

        return count

    def _expunge_call(
        self, mailbox: str, folder: str, uids: list[int] | None
    ) -> Callable[[sqlite3.Connection], list[int]]:
        mailbox = mailbox.lower()
        folder = _norm(folder)

        def fn(conn: sqlite3.Connection) -> list[int]:
            fid = self._folder_id(mailbox, folder)
            rows = conn.execute(
                "SELECT uid, message FROM delivery WHERE folder_id = ? AND (' ' || flags || ' ') LIKE '% \\Deleted %' "
                "ORDER BY uid",
                (fid,),
            ).fetchall()
            if uids is not None:
                allowed = set(uids)
                rows = [r for r in rows if r[0] in allowed]
            for chunk in chunks([r[0] for r in rows], 500):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM delivery WHERE folder_id = ? AND uid IN ({marks})", [fid, *chunk])
            if rows:
                self._drop_orphans(conn, [r[1] for r in rows])
                gone = tuple(r[0] for r in rows)
                self.db.emit(
                    FolderChanged(mailbox, folder, "expunge", gone, uidvalidity=uidvalidity_of(conn, fid))
                )
            return [r[0] for r in rows]

        return fn

    def delete_mailbox(self, mailbox: str) -> list[str]:
        mailbox = mailbox.lower()

        def fn(conn: sqlite3.Connection) -> list[str]:
            row = conn.execute("SELECT id FROM mailbox WHERE name = ?", (mailbox,)).fetchone()
            if row is None:
                return []
            mids: list[int] = []
            for fid, fname, validity in conn.execute(
                "SELECT id, name, uidvalidity FROM folder WHERE mailbox_id = ?", (row[0],)
            ).fetchall():
                rows = conn.execute(
                    "SELECT uid, message FROM delivery WHERE folder_id = ?", (fid,)
                ).fetchall()
                conn.execute("DELETE FROM delivery WHERE folder_id = ?", (fid,))
                conn.execute("DELETE FROM folder WHERE id = ?", (fid,))
                self.writes.folder_cache.pop((mailbox, fname), None)
                mids += [r[1] for r in rows]
                if rows:  # sessions with the folder selected see the expunges
                    gone = tuple(r[0] for r in rows)
                    self.db.emit(FolderChanged(mailbox, fname, "expunge", gone, uidvalidity=validity))
            conn.execute("DELETE FROM mailbox WHERE id = ?", (row[0],))
            # Only what no other mailbox holds leaves the store; shared messages keep their
            # other deliveries (and their read state follows those).
            pids = self._drop_orphans(conn, mids)
            self.db.emit(StoreTruncated(mailbox))
            return pids

        return self.db.write(fn)  # type: ignore[no-any-return]

    def _drop_orphans(self, conn: sqlite3.Connection, mids: list[int]) -> list[str]:
        """Messages with no delivery left are deleted from the store; returns their IDs."""
        orphans = []
        for chunk in chunks(sorted(set(mids)), 500):
            marks = ",".join("?" * len(chunk))
            orphans += [
                r[0]
                for r in conn.execute(
                    f"SELECT m.id FROM message m WHERE m.id IN ({marks}) AND NOT EXISTS "
                    f"(SELECT 1 FROM delivery d WHERE d.message = m.id)",
                    chunk,
                )
            ]
        pids: list[str] = []
        if orphans:
            pids = self.writes.delete_ids(conn, orphans)
            self.db.emit(MessagesDeleted(tuple(pids)))
        rest = sorted(set(mids) - set(orphans))
        for chunk in chunks(rest, 500):
            self._sync_read(conn, chunk)
        return pids

    def copy(
        self, mailbox: str, folder: str, uids: list[int], dest: str, *, move: bool = False
    ) -> tuple[int, list[tuple[int, int]]]:
        mailbox = mailbox.lower()
        folder, dest = _norm(folder), _norm(dest)

        def fn(conn: sqlite3.Connection) -> tuple[int, list[tuple[int, int]]]:
            src = self.writes.folder_cache.get((mailbox, folder))
            dst = self.writes.folder_cache.get((mailbox, dest))
            if src is None:
                raise NotFound(f"no folder {folder!r}")
            if dst is None:
                raise NotFound(f"no folder {dest!r}")
            pairs: list[tuple[int, int]] = []
            rows = []
            for chunk in chunks(sorted(set(uids)), 500):
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(
                    f"SELECT uid, message, flags, seen FROM delivery WHERE folder_id = ? AND uid IN ({marks}) "
                    f"ORDER BY uid",
                    [src[0], *chunk],
                ).fetchall()
            for uid, mid, flags, seen in rows:
                conn.execute(
                    "INSERT INTO delivery(folder_id, uid, message, flags, seen) VALUES (?,?,?,?,?)",
                    (dst[0], dst[1], mid, flags, seen),
                )
                pairs.append((uid, dst[1]))
                dst[1] += 1
            advance_folder(conn, dst, len(rows), sum(1 for *_, seen in rows if not seen))
            if move and rows:
                for chunk in chunks([r[0] for r in rows], 500):
                    marks = ",".join("?" * len(chunk))
                    conn.execute(
                        f"DELETE FROM delivery WHERE folder_id = ? AND uid IN ({marks})", [src[0], *chunk]
                    )
                gone = tuple(r[0] for r in rows)
                validity = uidvalidity_of(conn, src[0])
                self.db.emit(FolderChanged(mailbox, folder, "expunge", gone, uidvalidity=validity))
            uidvalidity = uidvalidity_of(conn, dst[0])
            if rows:
                self.db.emit(FolderChanged(mailbox, dest, "exists", uidvalidity=uidvalidity))
            return uidvalidity, pairs

        return self.db.write(fn)  # type: ignore[no-any-return]


def _norm(folder: str) -> str:
    # RFC 3501 5.1: INBOX is case-insensitive; every other name is case-sensitive.
    return INBOX if folder.upper() == INBOX else folder


def _info(mailbox: str, r: Any) -> FolderInfo:
    return FolderInfo(
        mailbox=mailbox,
        name=r[1],
        uidvalidity=r[2],
        uidnext=r[3],
        subscribed=bool(r[4]),
        special_use=r[5],
        highestmodseq=r[6],
        exists=r[7],
        unseen=r[8],
    )
