"""The SQLite writer's own state and the row writes that ingest and every change share.

:class:`Writes` belongs to the writer thread (``sqlite.py``): it caches each folder's id and
next UID and each tag's id (only the writer changes them, so the caches stay true), counts
the messages for ``--max``, and writes the rows of new messages (:meth:`Writes.ingest`),
deletes messages (:meth:`Writes.delete_ids`) and applies retention. The parts that change
the store (``sqlite_changes.py``, ``sqlite_folders.py``) receive it explicitly and use it
inside their writer calls.
"""

from __future__ import annotations

import sqlite3
import time

from ..events import Event, FolderChanged, MessagesPruned, MessageStored, Placement
from ..mailboxes import mailbox_for
from .base import INBOX, Address, Entry, Summary
from .compactjson import compact_text
from .headers import scan_headers
from .ids import new_id
from .index_write import begin_immediate
from .rawcodec import compress
from .sqlite_db import SQLiteDb, chunks
from .sqlite_folders import advance_folder, next_uidvalidity, uidvalidity_of
from .sqlite_jobs import _Call, _Ingest, small_transaction

__all__ = ["PRUNE_INTERVAL", "Writes"]

PRUNE_INTERVAL = 30.0  # seconds between age-based retention sweeps


class Writes:
    """The writer thread's caches and shared row writes (see the module docstring)."""

    def __init__(self, db: SQLiteDb) -> None:
        self.db = db
        self.folder_cache: dict[tuple[str, str], list[int]] = {}  # (mailbox, folder) -> [folder_id, uidnext]
        self.tag_cache: dict[str, int] = {}
        self.count = 0  # messages stored
        self.last_prune = 0.0
        # the temp_store this object last set (begin), and on which connection: a throwaway
        # store's writer connection may come from an earlier store (sqlite_recycle.py)
        self._subjournals_in_memory: bool | None = None
        self._subjournal_conn: sqlite3.Connection | None = None

    def begin(self, conn: sqlite3.Connection, calls: list[_Call]) -> None:
        """Begin the writer's transaction (``begin_immediate``), its statement journals in
        memory unless its calls change many rows (``small_transaction``).

        A statement that may stop halfway keeps the pages it changes in a statement journal,
        and a call's savepoint keeps every page the call changes in it; SQLite writes them to
        a temporary file past 64 KiB. The INSERT of one message (13 indexes, the conversation
        triggers) passes that, and from then on every statement of the transaction wrote the
        pages it touched to the file: ~37 more write system calls per message (issue 15). An
        IMAP STORE or EXPUNGE of a few messages passed it too: a file created, written and
        unlinked per transaction (issue 19). ``temp_store=MEMORY`` keeps them in memory: one
        statement's pages, a few hundred KiB at most for new mail (also for the indexer's
        transaction after it: its batch of messages' index rows), and at most
        SMALL_WRITE_ROWS rows' pages for calls. A transaction whose calls change more rows or
        do not say how many (a delete of a folder or of everything) keeps SQLite's default, a
        file. It is set between transactions (SQLite reads it at BEGIN; it refuses to change
        it inside one) and only when it changes.
        """
        in_memory = small_transaction(conn, calls) if calls else True
        if conn is not self._subjournal_conn:
            self._subjournal_conn, self._subjournals_in_memory = conn, None
        if in_memory != self._subjournals_in_memory and not conn.in_transaction:
            conn.execute("PRAGMA temp_store=" + ("MEMORY" if in_memory else "DEFAULT"))
            self._subjournals_in_memory = in_memory
        begin_immediate(conn)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Reload the caches from the database (after a rolled-back transaction)."""
        self.load_folders(conn)
        self.count = conn.execute("SELECT count(*) FROM message").fetchone()[0]
        self.tag_cache.clear()

    def load_folders(self, conn: sqlite3.Connection) -> None:
        self.folder_cache.clear()
        for fid, uidnext, fname, mname in conn.execute(
            "SELECT f.id, f.uidnext, f.name, mb.name FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id"
        ):
            self.folder_cache[(mname, fname)] = [fid, uidnext]

    def folder(
        self, conn: sqlite3.Connection, mailbox: str, folder: str = INBOX, special_use: str = ""
    ) -> list[int]:
        """[folder id, uidnext] of a folder, creating the mailbox and folder when missing."""
        entry = self.folder_cache.get((mailbox, folder))
        if entry is not None:
            return entry
        now = time.time()
        row = conn.execute("SELECT id FROM mailbox WHERE name = ?", (mailbox,)).fetchone()
        if row is None:
            mid = conn.execute("INSERT INTO mailbox(name, created) VALUES (?, ?)", (mailbox, now)).lastrowid
            created_mailbox = True
        else:
            mid = row[0]
            created_mailbox = False
        uidvalidity = next_uidvalidity(conn, now)  # RFC 3501 2.3.1.1: never reused
        fid = conn.execute(
            "INSERT INTO folder(mailbox_id, name, uidvalidity, uidnext, special_use) VALUES (?, ?, ?, 1, ?)",
            (mid, folder, uidvalidity, special_use),
        ).lastrowid
        assert fid is not None
        entry = [fid, 1]
        self.folder_cache[(mailbox, folder)] = entry
        if created_mailbox and folder != INBOX:
            self.folder(conn, mailbox, INBOX)
        return entry

    def ingest(self, conn: sqlite3.Connection, jobs: list[_Ingest], events: list[Event]) -> None:
        s = self.db.settings
        msg_rows = []
        raw_rows = []
        now = time.time()
        plans = []
        for j in jobs:
            env = j.envelope
            h = j.head if j.head is not None else scan_headers(j.raw)
            size = j.size or len(j.raw)
            pid = j.pid or new_id()
            listed = {a.lower() for _, a in h.to} | {a.lower() for _, a in h.cc}
            bcc = [("", r) for r in env.rcpt_to if r.lower() not in listed]
            tags = list(dict.fromkeys([*h.tags, *j.tags]))
            wanted: dict[tuple[str, str], None] = {}
            if j.folder is not None:
                wanted[j.folder] = None
            else:
                for r in env.rcpt_to:
                    name, tag = mailbox_for(r, s.mailbox_key, s.subaddress)
                    wanted[(name, INBOX)] = None
                    if tag and tag not in tags:
                        tags.append(tag)
            created = env.received_at or now
            envelope_json = j.envelope_json or env.dumps()
            msg_rows.append(
                (
                    pid,
                    created,
                    h.date,
                    h.message_id,
                    h.subject,
                    h.from_[0] if h.from_ else "",
                    h.from_[1] if h.from_ else "",
                    _jaddr(h.to),
                    _jaddr(h.cc),
                    _jaddr(bcc),
                    _jaddr(h.reply_to),
                    h.in_reply_to,
                    " ".join(h.references),
                    size,
                    env.auth_user or "",
                    envelope_json,
                    j.thread_key,
                )
            )
            raw_rows.append(j.zraw if j.zraw is not None else compress(j.raw))
            plans.append((j, pid, h, bcc, tags, list(wanted), created, size))
        cur = conn.cursor()
        ids = []
        for row, data in zip(msg_rows, raw_rows, strict=True):
            cur.execute(
                "INSERT INTO message(pid, created, date, message_id, subject, from_name, from_addr, to_json, "
                "cc_json, bcc_json, reply_to_json, in_reply_to, refs, size, username, envelope, thread_key) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            mid = cur.lastrowid
            ids.append(mid)
            cur.execute("INSERT INTO raw(id, data) VALUES (?, ?)", (mid, data))
        deliveries = []
        touched: dict[tuple[str, str], list[int]] = {}
        # the new deliveries of each folder as a listing shows them (a new row's MODSEQ is
        # the column's default, 1): the folder's event carries them, so an IMAP session
        # with the folder selected need not read them back (issue 19)
        added: dict[tuple[str, str], list[Entry]] = {}
        tag_rows = []
        for (j, pid, h, bcc, tags, targets, created, size), mid in zip(plans, ids, strict=True):
            placed = []
            seen_flag = "\\Seen" in j.flags
            flag_text = " ".join(sorted(j.flags))
            flag_set = frozenset(flag_text.split())  # as folder_entries reads the column
            for key in targets:
                entry = self.folder(conn, *key)
                uid = entry[1]
                entry[1] += 1
                deliveries.append((entry[0], uid, mid, flag_text, int(seen_flag)))
                placed.append(Placement(key[0], key[1], uid))
                touched.setdefault(key, entry)
                added.setdefault(key, []).append(Entry(uid, pid, flag_set, size, created, 1))
            for t in tags:
                tag_rows.append((mid, self.tag_id(conn, t)))
            j.result = pid if j.folder is None else (placed[0].uid if placed else 0)
            summary = Summary(
                id=pid,
                message_id=h.message_id,
                subject=h.subject,
                from_=Address(*h.from_) if h.from_ else None,
                to=[Address(*a) for a in h.to],
                cc=[Address(*a) for a in h.cc],
                bcc=[Address(*a) for a in bcc],
                reply_to=[Address(*a) for a in h.reply_to],
                created=created,
                date=h.date,
                size=size,
                read=seen_flag,
                tags=tags,
                username=j.envelope.auth_user or "",
                in_reply_to=h.in_reply_to,
                references=h.references,
                mailboxes=list(dict.fromkeys(p.mailbox for p in placed)),
            )
            events.append(MessageStored(summary, tuple(placed)))
        cur.executemany(
            "INSERT INTO delivery(folder_id, uid, message, flags, seen) VALUES (?,?,?,?,?)", deliveries
        )
        if tag_rows:
            cur.executemany("INSERT OR IGNORE INTO message_tag(message, tag) VALUES (?, ?)", tag_rows)
        if any(j.flags for j in jobs):
            cur.executemany(
                "UPDATE message SET read = 1 WHERE id = ?",
                [(mid,) for (j, *_), mid in zip(plans, ids, strict=True) if "\\Seen" in j.flags],
            )
        for (mailbox, folder), entry in touched.items():
            new = added[(mailbox, folder)]
            advance_folder(conn, entry, len(new), sum(1 for e in new if "\\Seen" not in e.flags))
            validity = uidvalidity_of(conn, entry[0])
            events.append(FolderChanged(mailbox, folder, "exists", entries=tuple(new), uidvalidity=validity))
        self.count += len(jobs)

    def tag_id(self, conn: sqlite3.Connection, name: str) -> int:
        key = name.lower()
        tid = self.tag_cache.get(key)
        if tid is None:
            row = conn.execute("SELECT id FROM tag WHERE name = ?", (name,)).fetchone()
            if row is None:
                tid = conn.execute("INSERT INTO tag(name) VALUES (?)", (name,)).lastrowid
            else:
                tid = row[0]
            assert tid is not None
            self.tag_cache[key] = tid
        return tid

    def retention(self, conn: sqlite3.Connection, events: list[Event]) -> None:
        """Prune by count (every batch, cheap) and by age (every PRUNE_INTERVAL seconds)."""
        s = self.db.settings
        victims: list[int] = []
        if s.max and self.count > s.max:
            over = self.count - s.max
            victims = [r[0] for r in conn.execute("SELECT id FROM message ORDER BY id LIMIT ?", (over,))]
        age = s.max_age_seconds
        now = time.monotonic()
        if age and now - self.last_prune > PRUNE_INTERVAL:
            self.last_prune = now
            cutoff = time.time() - age
            victims += [r[0] for r in conn.execute("SELECT id FROM message WHERE created < ?", (cutoff,))]
        if victims:
            pids = self.delete_ids(conn, sorted(set(victims)))
            events.append(MessagesPruned(tuple(pids)))

    def delete_ids(self, conn: sqlite3.Connection, ids: list[int]) -> list[str]:
        """Delete messages by internal id (inside a writer transaction). Returns public IDs."""
        pids: list[str] = []
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            pids += [r[0] for r in conn.execute(f"SELECT pid FROM message WHERE id IN ({marks})", chunk)]
            folders = conn.execute(
                f"SELECT DISTINCT f.name, mb.name FROM delivery d JOIN folder f ON f.id = d.folder_id "
                f"JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message IN ({marks})",
                chunk,
            ).fetchall()
            for table, col in (
                ("raw", "id"),
                ("header_field", "message"),
                ("delivery", "message"),
                ("message_tag", "message"),
                ("message", "id"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {col} IN ({marks})", chunk)
            for fname, mname in folders:
                self.db.emit(FolderChanged(mname, fname, "expunge"))
        self.count = max(0, self.count - len(pids))
        return pids


def _jaddr(addrs: list[tuple[str, str]]) -> str:
    """An address list as the message table's columns hold it: ``[["name","addr"],...]``."""
    return compact_text(addrs) if addrs else "[]"  # a (name, addr) tuple is a JSON array
