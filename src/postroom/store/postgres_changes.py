"""Changes of the PostgreSQL backend: read state, tags, deletion, and the IMAP/POP3 view.

Each method is one transaction (:meth:`~postroom.store.postgres_db.Db.write`). UIDs and
MODSEQs come from ``UPDATE folder ... RETURNING``: the folder row stays locked until the
commit, so two nodes can never hand out the same UID, and a UID is visible only after
every smaller one of its folder was committed or abandoned (RFC 3501 2.3.1.1). UIDVALIDITY
comes from the shared ``counter`` row, above every value handed out before.
"""

from __future__ import annotations

import time
from typing import Any

from ..events import (
    Event,
    FolderChanged,
    MessagesDeleted,
    ReadChanged,
    StoreTruncated,
    TagRenamed,
    TagsChanged,
)
from .base import INBOX, AlreadyExists, Entry, FlagMode, FolderInfo, NotFound, StoreError
from .folder_sql import FolderSQL
from .postgres_db import Conn, Db, chunks
from .postgres_read import where

__all__ = ["CACHE_KINDS", "Changes", "Folders", "folder_id", "norm", "tag_id"]

CACHE_KINDS = frozenset({"meta", "head", "text"})

SQL = FolderSQL.of("%s")


def norm(folder: str) -> str:
    # RFC 3501 5.1: INBOX is case-insensitive; every other name is case-sensitive.
    return INBOX if folder.upper() == INBOX else folder


def _info(mailbox: str, r: Any) -> FolderInfo:
    return FolderInfo(
        mailbox=mailbox, name=r[1], uidvalidity=int(r[2]), uidnext=int(r[3]), subscribed=bool(r[4]),
        special_use=r[5], highestmodseq=int(r[6]), exists=int(r[7]), unseen=int(r[8]),
    )  # fmt: skip


def folder_id(conn: Conn, mailbox: str, folder: str, *, create: bool = False, special_use: str = "") -> int:
    """The id of a folder; with ``create``, made (with its mailbox and INBOX) when missing.

    Raises:
        NotFound: no such folder and not ``create``.
    """
    row = conn.execute(
        "SELECT f.id FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = %s AND f.name = %s",
        (mailbox, folder),
    ).fetchone()
    if row is not None:
        return int(row[0])
    if not create:
        raise NotFound(f"no folder {folder!r}")
    now = time.time()
    conn.execute(
        "INSERT INTO mailbox (name, created) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (mailbox, now)
    )
    mrow = conn.execute("SELECT id FROM mailbox WHERE name = %s", (mailbox,)).fetchone()
    assert mrow is not None
    uv = _next_uidvalidity(conn)
    frow = conn.execute(
        "INSERT INTO folder (mailbox_id, name, uidvalidity, special_use) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (mailbox_id, name) DO NOTHING RETURNING id",
        (mrow[0], folder, uv, special_use),
    ).fetchone()
    if frow is None:  # another transaction made it meanwhile
        return folder_id(conn, mailbox, folder)
    if folder != INBOX:
        folder_id(conn, mailbox, INBOX, create=True)
    return int(frow[0])


def uidvalidity_of(conn: Conn, fid: int) -> int:
    """The UIDVALIDITY of a folder (inside the caller's transaction), for its change events."""
    row = conn.execute("SELECT uidvalidity FROM folder WHERE id = %s", (fid,)).fetchone()
    assert row is not None
    return int(row[0])


def _next_uidvalidity(conn: Conn) -> int:
    # RFC 3501 2.3.1.1: clock-based and above every value handed out before (shared row).
    row = conn.execute(
        "UPDATE counter SET value = greatest(value + 1, %s) WHERE name = 'uidvalidity' RETURNING value",
        (int(time.time()),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def tag_id(conn: Conn, name: str) -> int:
    conn.execute("INSERT INTO tag (name) VALUES (%s) ON CONFLICT (lower(name)) DO NOTHING", (name,))
    row = conn.execute("SELECT id FROM tag WHERE lower(name) = lower(%s)", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def delete_ids(conn: Conn, ids: list[int], events: list[Event]) -> list[str]:
    """Delete messages by internal id (raw, deliveries, tags and cache go with them)."""
    pids: list[str] = []
    for chunk in chunks(sorted(set(ids))):
        folders = conn.execute(
            "SELECT DISTINCT mb.name, f.name FROM delivery d JOIN folder f ON f.id = d.folder_id "
            "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message = ANY(%s)",
            (chunk,),
        ).fetchall()
        pids += [r[0] for r in conn.execute("DELETE FROM message WHERE id = ANY(%s) RETURNING pid", (chunk,))]
        events.extend(FolderChanged(m, f, "expunge") for m, f in folders)
    return pids


class Changes:
    """The :class:`~postroom.store.base.MessageAdmin` part of the PostgreSQL backend."""

    def __init__(self, db: Db) -> None:
        self.db = db

    def _select(self, conn: Conn, ids: list[str] | None, mailbox: str | None, query: str | None) -> list[int]:
        if ids is not None:
            return [
                r[0] for r in conn.execute("SELECT id FROM message WHERE pid = ANY(%s) ORDER BY id", (ids,))
            ]
        cond, params = where(mailbox, query)
        return [r[0] for r in conn.execute(f"SELECT m.id FROM message m WHERE {cond} ORDER BY m.id", params)]

    def set_read(
        self, ids: list[str] | None, read: bool, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        where(mailbox, query)  # InvalidQuery before the transaction

        def fn(conn: Conn, events: list[Event]) -> list[str]:
            mids = self._select(conn, ids, mailbox, query)
            changed = [
                r[0]
                for r in conn.execute(
                    "UPDATE message SET read = %s WHERE id = ANY(%s) AND read <> %s RETURNING pid",
                    (read, mids, read),
                )
            ]
            box = mailbox.lower() if mailbox else None
            rows = conn.execute(
                "SELECT d.folder_id, d.uid, d.flags, f.name, mb.name FROM delivery d "
                "JOIN folder f ON f.id = d.folder_id JOIN mailbox mb ON mb.id = f.mailbox_id "
                "WHERE d.message = ANY(%s) AND d.seen <> %s AND (%s::text IS NULL OR mb.name = %s) "
                "ORDER BY d.folder_id, d.uid",
                (mids, read, box, box),
            ).fetchall()
            by_folder: dict[int, list[Any]] = {}
            for r in rows:
                by_folder.setdefault(r[0], []).append(r)
            for fid, group in by_folder.items():
                row = conn.execute(
                    "UPDATE folder SET modseq = modseq + 1 WHERE id = %s RETURNING modseq", (fid,)
                ).fetchone()
                assert row is not None
                updates = []
                for _, uid, flags, _, _ in group:
                    fl = set(flags.split())
                    fl.add("\\Seen") if read else fl.discard("\\Seen")
                    updates.append((" ".join(sorted(fl)), read, row[0], fid, uid))
                with conn.cursor() as c:
                    c.executemany(
                        "UPDATE delivery SET flags = %s, seen = %s, modseq = %s WHERE folder_id = %s AND uid = %s",
                        updates,
                    )
                events.append(FolderChanged(group[0][4], group[0][3], "flags"))
            if changed:
                events.insert(0, ReadChanged(tuple(changed), read))
            return changed

        return self.db.write(fn)

    def delete_messages(
        self, ids: list[str] | None, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        where(mailbox, query)
        everything = ids is None and not mailbox and not (query and query.strip())

        def fn(conn: Conn, events: list[Event]) -> list[str]:
            if everything:
                pids = [r[0] for r in conn.execute("SELECT pid FROM message ORDER BY id")]
                folders = conn.execute(
                    "SELECT mb.name, f.name FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id"
                ).fetchall()
                conn.execute(
                    "TRUNCATE message, message_text, raw, delivery, message_tag, imap_cache, header_field, thread, "
                    "message_count"
                )
                conn.execute("UPDATE folder SET messages = 0, unseen = 0")  # TRUNCATE fires no trigger
                events.append(StoreTruncated(None))
                events.extend(FolderChanged(m, f, "expunge") for m, f in folders)
                return pids
            pids = delete_ids(conn, self._select(conn, ids, mailbox, query), events)
            if pids:
                events.insert(0, MessagesDeleted(tuple(pids)))
            return pids

        return self.db.write(fn)

    def delete_mailbox(self, mailbox: str) -> list[str]:
        mailbox = mailbox.lower()

        def fn(conn: Conn, events: list[Event]) -> list[str]:
            row = conn.execute("SELECT id FROM mailbox WHERE name = %s", (mailbox,)).fetchone()
            if row is None:
                return []
            mids: list[int] = []
            for fid, fname, validity in conn.execute(
                "SELECT id, name, uidvalidity FROM folder WHERE mailbox_id = %s", (row[0],)
            ).fetchall():
                gone = conn.execute(
                    "DELETE FROM delivery WHERE folder_id = %s RETURNING uid, message", (fid,)
                ).fetchall()
                mids += [g[1] for g in gone]
                if gone:
                    uids = tuple(sorted(g[0] for g in gone))
                    events.append(FolderChanged(mailbox, fname, "expunge", uids, uidvalidity=int(validity)))
            conn.execute("DELETE FROM mailbox WHERE id = %s", (row[0],))  # folders go with it
            pids = drop_orphans(conn, mids, events)
            events.append(StoreTruncated(mailbox))
            return pids

        return self.db.write(fn)

    def set_tags(self, ids: list[str], tags: list[str]) -> None:
        clean = list(dict.fromkeys(t.strip() for t in tags if t.strip()))

        def fn(conn: Conn, events: list[Event]) -> None:
            mids = self._select(conn, ids, None, None)
            if not mids:
                return
            tids = [tag_id(conn, t) for t in clean]
            conn.execute("DELETE FROM message_tag WHERE message = ANY(%s)", (mids,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO message_tag (message, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(m, t) for m in mids for t in tids],
                )
            events.append(TagsChanged(tuple(ids), tuple(clean)))

        self.db.write(fn)

    def rename_tag(self, old: str, new: str) -> None:
        def fn(conn: Conn, events: list[Event]) -> None:
            row = conn.execute("SELECT id FROM tag WHERE lower(name) = lower(%s)", (old,)).fetchone()
            if row is None:
                return
            other = conn.execute(
                "SELECT id FROM tag WHERE lower(name) = lower(%s) AND id <> %s", (new, row[0])
            ).fetchone()
            if other:  # merging into an existing tag
                conn.execute(
                    "INSERT INTO message_tag (message, tag) SELECT message, %s FROM message_tag WHERE tag = %s "
                    "ON CONFLICT DO NOTHING",
                    (other[0], row[0]),
                )
                conn.execute("DELETE FROM tag WHERE id = %s", (row[0],))
            else:
                conn.execute("UPDATE tag SET name = %s WHERE id = %s", (new, row[0]))
            events.append(TagRenamed(old, new))

        self.db.write(fn)

    def delete_tag(self, tag: str) -> None:
        def fn(conn: Conn, events: list[Event]) -> None:
            conn.execute("DELETE FROM tag WHERE lower(name) = lower(%s)", (tag,))

        self.db.write(fn)


def sync_read(conn: Conn, mids: list[int], events: list[Event]) -> None:
    """A message reads as read (API "Read") when every delivery of it is \\Seen."""
    for read_state in (True, False):
        flipped = [
            r[0]
            for r in conn.execute(
                "UPDATE message m SET read = %s WHERE m.id = ANY(%s) AND m.read <> %s AND "
                "(NOT EXISTS (SELECT 1 FROM delivery d WHERE d.message = m.id AND NOT d.seen)) = %s RETURNING pid",
                (read_state, mids, read_state, read_state),
            )
        ]
        if flipped:
            events.append(ReadChanged(tuple(flipped), read_state))


def drop_orphans(conn: Conn, mids: list[int], events: list[Event]) -> list[str]:
    """Messages with no delivery left are deleted; the others' read state follows theirs."""
    uniq = sorted(set(mids))
    orphans = [
        r[0]
        for r in conn.execute(
            "SELECT m.id FROM message m WHERE m.id = ANY(%s) AND NOT EXISTS "
            "(SELECT 1 FROM delivery d WHERE d.message = m.id)",
            (uniq,),
        )
    ]
    pids: list[str] = []
    if orphans:
        pids = delete_ids(conn, orphans, events)
        events.append(MessagesDeleted(tuple(pids)))
    rest = sorted(set(uniq) - set(orphans))
    if rest:
        sync_read(conn, rest, events)
    return pids


class Folders:
    """The :class:`~postroom.store.base.ImapStore` part (without reads of raw messages)."""

    def __init__(self, db: Db) -> None:
        self.db = db

    def _ensure_inbox(self, mailbox: str) -> None:
        with self.db.read() as conn:
            if conn.execute(
                "SELECT 1 FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = %s AND f.name = %s",
                (mailbox, INBOX),
            ).fetchone():
                return
        self.db.write(lambda conn, _: folder_id(conn, mailbox, INBOX, create=True))

    def folders(self, mailbox: str) -> list[FolderInfo]:
        mailbox = mailbox.lower()
        self._ensure_inbox(mailbox)
        with self.db.read() as conn:
            rows = conn.execute(SQL.infos, (mailbox,)).fetchall()
        return [_info(mailbox, r) for r in rows]

    def folders_now(self, mailbox: str) -> list[FolderInfo] | None:
        return None  # every read is a round trip to the server: on a worker thread

    def folder_info_now(self, mailbox: str, folder: str) -> FolderInfo | None:
        return None

    def count_above_now(self, mailbox: str, folder: str, after_uid: int) -> int | None:
        return None

    def folder_info(self, mailbox: str, folder: str) -> FolderInfo | None:
        mailbox, folder = mailbox.lower(), norm(folder)
        if folder == INBOX:
            self._ensure_inbox(mailbox)
        with self.db.read() as conn:
            row = conn.execute(SQL.info, (mailbox, folder)).fetchone()
        return _info(mailbox, row) if row else None

    def create_folder(self, mailbox: str, folder: str, special_use: str = "") -> FolderInfo:
        mailbox, folder = mailbox.lower(), norm(folder)

        def fn(conn: Conn, events: list[Event]) -> None:
            try:
                folder_id(conn, mailbox, folder)
            except NotFound:
                folder_id(conn, mailbox, folder, create=True, special_use=special_use)
                return
            raise AlreadyExists(f"folder {folder!r} exists")

        self.db.write(fn)
        info = self.folder_info(mailbox, folder)
        assert info is not None
        return info

    def delete_folder(self, mailbox: str, folder: str) -> None:
        mailbox, folder = mailbox.lower(), norm(folder)
        if folder == INBOX:
            raise StoreError("INBOX cannot be deleted")

        def fn(conn: Conn, events: list[Event]) -> None:
            fid = folder_id(conn, mailbox, folder)
            mids = [
                r[0]
                for r in conn.execute("DELETE FROM delivery WHERE folder_id = %s RETURNING message", (fid,))
            ]
            conn.execute("DELETE FROM folder WHERE id = %s", (fid,))
            drop_orphans(conn, mids, events)

        self.db.write(fn)

    def rename_folder(self, mailbox: str, old: str, new: str) -> None:
        mailbox, old, new = mailbox.lower(), norm(old), norm(new)

        def fn(conn: Conn, events: list[Event]) -> None:
            src = folder_id(conn, mailbox, old)
            try:
                folder_id(conn, mailbox, new)
            except NotFound:
                pass
            else:
                raise AlreadyExists(f"folder {new!r} exists")
            if old == INBOX:
                # RFC 3501 6.3.5: renaming INBOX moves its messages to the new name; INBOX stays.
                dest = folder_id(conn, mailbox, new, create=True)
                pairs = self._copy_rows(conn, src, dest, None, events)
                conn.execute("DELETE FROM delivery WHERE folder_id = %s", (src,))
                if pairs:  # sessions with INBOX selected see the expunges (as after a MOVE)
                    gone = tuple(p[0] for p in pairs)
                    validity = uidvalidity_of(conn, src)
                    events.append(FolderChanged(mailbox, INBOX, "expunge", gone, uidvalidity=validity))
                return
            # children move with their parent (hierarchy delimiter "/"); a new name must not
            # look like the folder that had it before: new UIDVALIDITY
            for fid, name in conn.execute(
                "SELECT f.id, f.name FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id "
                "WHERE mb.name = %s AND (f.name = %s OR starts_with(f.name, %s)) ORDER BY f.name",
                (mailbox, old, old + "/"),
            ).fetchall():
                conn.execute(
                    "UPDATE folder SET name = %s, uidvalidity = %s WHERE id = %s",
                    (new + name[len(old) :], _next_uidvalidity(conn), fid),
                )

        self.db.write(fn)

    def set_subscribed(self, mailbox: str, folder: str, subscribed: bool) -> None:
        mailbox, folder = mailbox.lower(), norm(folder)
        self.db.write(
            lambda conn, _: conn.execute(
                "UPDATE folder SET subscribed = %s WHERE id = %s",
                (subscribed, folder_id(conn, mailbox, folder)),
            )
        )

    def folder_entries(self, mailbox: str, folder: str, after_uid: int = 0) -> list[Entry]:
        return self._entries(SQL.entries_after, mailbox, folder, (after_uid,))

    def folder_changed(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> list[Entry]:
        return self._entries(SQL.entries_changed, mailbox, folder, (upto_uid, above_modseq))

    def _entries(self, sql: str, mailbox: str, folder: str, args: tuple[int, ...]) -> list[Entry]:
        with self.db.read() as conn:
            rows = conn.execute(sql, (mailbox.lower(), norm(folder), *args)).fetchall()
        return [Entry(int(r[0]), r[1], frozenset(r[2].split()), r[3], r[4], int(r[5])) for r in rows]

    def imap_cache_range(
        self, kind: str, mailbox: str, folder: str, uidvalidity: int, uids: tuple[int, int], prefix: int
    ) -> dict[int, bytes] | None:
        _kind(kind)
        with self.db.read() as conn:
            row = conn.execute(SQL.folder, (mailbox.lower(), norm(folder))).fetchone()
            if row is None or int(row[1]) != uidvalidity:
                return None
            rows = conn.execute(
                "SELECT d.uid, substring(c.data from 1 for %s) FROM delivery d "
                "JOIN imap_cache c ON c.message = d.message AND c.kind = %s "
                "WHERE d.folder_id = %s AND d.uid BETWEEN %s AND %s",
                (int(prefix), kind, row[0], uids[0], uids[1]),
            ).fetchall()
        return {int(r[0]): bytes(r[1]) for r in rows}

    def folder_count(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> tuple[int, int]:
        with self.db.read() as conn:
            args = (upto_uid, above_modseq, upto_uid, above_modseq, mailbox.lower(), norm(folder))
            row = conn.execute(SQL.count, args).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def update_flags(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        mailbox, folder = mailbox.lower(), norm(folder)

        def fn(conn: Conn, events: list[Event]) -> None:
            fid = folder_id(conn, mailbox, folder)
            row = conn.execute(
                "UPDATE folder SET modseq = modseq + 1 WHERE id = %s RETURNING modseq", (fid,)
            ).fetchone()
            assert row is not None
            changed_msgs: set[int] = set()
            updates = []
            for uid, mid, old in conn.execute(
                "SELECT uid, message, flags FROM delivery WHERE folder_id = %s AND uid = ANY(%s) ORDER BY uid",
                (fid, uids),
            ).fetchall():
                cur = frozenset(old.split())
                new = flags if mode == "set" else (cur | flags if mode == "add" else cur - flags)
                if new == cur:
                    continue
                updates.append((" ".join(sorted(new)), "\\Seen" in new, row[0], fid, uid))
                if ("\\Seen" in new) != ("\\Seen" in cur):
                    changed_msgs.add(mid)
            if updates:
                with conn.cursor() as c:
                    c.executemany(
                        "UPDATE delivery SET flags = %s, seen = %s, modseq = %s WHERE folder_id = %s AND uid = %s",
                        updates,
                    )
            if changed_msgs:
                sync_read(conn, sorted(changed_msgs), events)
            events.append(FolderChanged(mailbox, folder, "flags", tuple(uids)))

        self.db.write(fn)
        wanted = set(uids)
        return [e for e in self.folder_entries(mailbox, folder) if e.uid in wanted]

    def expunge(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        mailbox, folder = mailbox.lower(), norm(folder)

        def fn(conn: Conn, events: list[Event]) -> list[int]:
            fid = folder_id(conn, mailbox, folder)
            rows = conn.execute(
                "DELETE FROM delivery WHERE folder_id = %s AND ' ' || flags || ' ' LIKE '%% \\\\Deleted %%' "
                "AND (%s::bigint[] IS NULL OR uid = ANY(%s)) RETURNING uid, message",
                (fid, uids, uids),
            ).fetchall()
            rows.sort()
            if rows:
                drop_orphans(conn, [r[1] for r in rows], events)
                gone = tuple(r[0] for r in rows)
                validity = uidvalidity_of(conn, fid)
                events.append(FolderChanged(mailbox, folder, "expunge", gone, uidvalidity=validity))
            return [int(r[0]) for r in rows]

        return self.db.write(fn)

    def _copy_rows(
        self, conn: Conn, src: int, dst: int, uids: list[int] | None, events: list[Event]
    ) -> list[Any]:
        rows = conn.execute(
            "SELECT uid, message, flags, seen FROM delivery WHERE folder_id = %s "
            "AND (%s::bigint[] IS NULL OR uid = ANY(%s)) ORDER BY uid",
            (src, uids, uids),
        ).fetchall()
        if not rows:
            return []
        top = conn.execute(
            "UPDATE folder SET uidnext = uidnext + %s, modseq = modseq + 1 WHERE id = %s "
            "RETURNING uidnext - %s, modseq",
            (len(rows), dst, len(rows)),
        ).fetchone()
        assert top is not None
        first, modseq = int(top[0]), int(top[1])
        with conn.cursor() as c:
            c.executemany(
                "INSERT INTO delivery (folder_id, uid, message, flags, seen, modseq) VALUES (%s, %s, %s, %s, %s, %s)",
                [(dst, first + i, r[1], r[2], r[3], modseq) for i, r in enumerate(rows)],
            )
        return [(int(r[0]), first + i) for i, r in enumerate(rows)]

    def copy(
        self, mailbox: str, folder: str, uids: list[int], dest: str, *, move: bool = False
    ) -> tuple[int, list[tuple[int, int]]]:
        mailbox, folder, dest = mailbox.lower(), norm(folder), norm(dest)

        def fn(conn: Conn, events: list[Event]) -> tuple[int, list[tuple[int, int]]]:
            src = folder_id(conn, mailbox, folder)
            dst = folder_id(conn, mailbox, dest)
            pairs = self._copy_rows(conn, src, dst, sorted(set(uids)), events)
            if move and pairs:
                conn.execute(
                    "DELETE FROM delivery WHERE folder_id = %s AND uid = ANY(%s)",
                    (src, [p[0] for p in pairs]),
                )
                gone = tuple(p[0] for p in pairs)
                validity = uidvalidity_of(conn, src)
                events.append(FolderChanged(mailbox, folder, "expunge", gone, uidvalidity=validity))
            if pairs:
                events.append(FolderChanged(mailbox, dest, "exists"))
            row = conn.execute("SELECT uidvalidity FROM folder WHERE id = %s", (dst,)).fetchone()
            assert row is not None
            return int(row[0]), pairs

        return self.db.write(fn)

    def imap_cache_get(self, kind: str, ids: list[str], prefix: int | None = None) -> dict[str, bytes]:
        _kind(kind)
        data = "c.data" if prefix is None else f"substring(c.data from 1 for {int(prefix)})"
        with self.db.read() as conn:
            return {
                r[0]: bytes(r[1])
                for r in conn.execute(
                    f"SELECT m.pid, {data} FROM message m JOIN imap_cache c ON c.message = m.id "  # type: ignore[arg-type]
                    "WHERE c.kind = %s AND m.pid = ANY(%s)",
                    (kind, ids),
                )
            }

    def conversation_ids(self, ids: list[str]) -> dict[str, tuple[int, str, bool]]:
        """Public ID -> (row id, thread id, indexed) (:meth:`~.base.ImapStore.conversation_ids`)."""
        with self.db.read() as conn:
            return {
                r[0]: (int(r[1]), r[2], r[3] == 1)
                for r in conn.execute(
                    "SELECT pid, id, thread_id, indexed FROM message WHERE pid = ANY(%s)", (ids,)
                )
            }

    def message_tags(self, ids: list[str]) -> dict[str, list[str]]:
        """Public ID -> its tags, sorted (:meth:`~.base.ImapStore.message_tags`)."""
        out: dict[str, list[str]] = {}
        with self.db.read() as conn:
            for pid, name in conn.execute(
                "SELECT m.pid, t.name FROM message m LEFT JOIN message_tag mt ON mt.message = m.id "
                "LEFT JOIN tag t ON t.id = mt.tag WHERE m.pid = ANY(%s)",
                (ids,),
            ):
                got = out.setdefault(pid, [])
                if name is not None:
                    got.append(name)
        return {pid: sorted(names) for pid, names in out.items()}

    def imap_cache_put(self, kind: str, items: dict[str, bytes]) -> None:
        _kind(kind)
        if not items:
            return

        def fn(conn: Conn, events: list[Event]) -> None:
            with conn.cursor() as c:
                c.executemany(
                    "INSERT INTO imap_cache (kind, message, data) SELECT %s, id, %s FROM message WHERE pid = %s "
                    "ON CONFLICT (message, kind) DO UPDATE SET data = excluded.data",
                    [(kind, data, pid) for pid, data in items.items()],
                )

        self.db.write(fn)


def _kind(kind: str) -> None:
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown IMAP cache kind {kind!r}")
