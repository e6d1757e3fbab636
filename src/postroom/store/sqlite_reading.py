"""Reading from the SQLite store: listings, single messages, mailboxes, counts.

:class:`Reader` is the :class:`~postroom.store.base.MessageReader` part of
:class:`postroom.store.sqlite.SQLiteStore`. Every read uses the calling thread's own
connection (:meth:`~postroom.store.sqlite_db.SQLiteDb.reader`, which first waits until every
journaled message is in SQLite, so that a client reading after its 250 finds its message).
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from .base import Envelope, MailboxInfo, MessagePage, StoreStats, Summary, ThreadPage
from .rows import SUMMARY_COLS, clamp_page, group_pairs, summaries_from_rows
from .sqlite_db import SQLiteDb, chunks
from .sqlite_threads import thread_listing

__all__ = ["Reader"]

SPARSE_MATCHES = 20_000  # up to this many matches, a listing collects ids first (see list_messages)
SPARSE_DENSITY = 20  # ... when fewer than 1 in this many messages match
_SUMMARY_COLS = SUMMARY_COLS


class Reader:
    """Listings, single messages, mailboxes, counts and conversations."""

    def __init__(self, db: SQLiteDb) -> None:
        self.db = db

    def folder_ids(self, conn: sqlite3.Connection, mailbox: str) -> list[int]:
        return [
            r[0]
            for r in conn.execute(
                "SELECT f.id FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = ?",
                (mailbox.lower(),),
            )
        ]

    def where(
        self, mailbox: str | None, query: str | None, conn: sqlite3.Connection | None = None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if mailbox:
            fids = self.folder_ids(conn or self.db.reader(), mailbox)
            marks = ",".join("?" * len(fids)) or "NULL"
            clauses.append(f"m.id IN (SELECT message FROM delivery WHERE folder_id IN ({marks}))")
            params.extend(fids)
        if query and query.strip():
            from .sqlite_search import compile_query  # with the first search (header_scan.py)

            sql, qp = compile_query(query)
            if sql:
                clauses.append(f"({sql})")
                params.extend(qp)
        return (" AND ".join(clauses) or "1"), params

    def _mailbox_counts(self, conn: sqlite3.Connection, fids: list[int]) -> tuple[int, int]:
        """(messages, unseen) of a mailbox, from the delivery index alone."""
        if not fids:
            return 0, 0
        marks = ",".join("?" * len(fids))
        if len(fids) == 1:  # one folder: a message is there at most once
            row = conn.execute(
                "SELECT count(*), coalesce(sum(seen = 0), 0) FROM delivery WHERE folder_id = ?", fids
            ).fetchone()
        else:
            row = conn.execute(
                f"SELECT count(DISTINCT message), count(DISTINCT CASE WHEN seen = 0 THEN message END) "
                f"FROM delivery WHERE folder_id IN ({marks})",
                fids,
            ).fetchone()
        return int(row[0]), int(row[1])

    def list_messages(
        self, *, mailbox: str | None = None, query: str | None = None, start: int = 0, limit: int = 50
    ) -> MessagePage:
        start, limit = clamp_page(start, limit)
        conn = self.db.reader()
        has_query = bool(query and query.strip())
        if mailbox:
            fids = self.folder_ids(conn, mailbox)
            total, unread = self._mailbox_counts(conn, fids)
            if not has_query:
                # walk the mailbox's deliveries newest first (index), then fetch just one page
                marks = ",".join("?" * len(fids)) or "NULL"
                rows = conn.execute(
                    f"SELECT {_SUMMARY_COLS} FROM message m WHERE m.id IN (SELECT DISTINCT message FROM "
                    f"delivery WHERE folder_id IN ({marks}) ORDER BY message DESC LIMIT ? OFFSET ?) "
                    f"ORDER BY m.id DESC",
                    [*fids, limit, start],
                ).fetchall()
                return MessagePage(total, unread, total, unread, start, self.summaries(conn, rows))
        else:
            # two index-only counts, not a scan of every row
            total = conn.execute("SELECT count(*) FROM message").fetchone()[0]
            unread = conn.execute("SELECT count(*) FROM message WHERE read = 0").fetchone()[0]
        if has_query and query is not None:
            # Free text alone, or one header: term (in a mailbox or not): page and counts from
            # the index itself.
            from .sqlite_search import fulltext_listing, has_header_term, header_listing

            within = None
            if mailbox:
                marks = ",".join("?" * len(fids)) or "NULL"
                within = (f"SELECT message FROM delivery WHERE folder_id IN ({marks})", fids)
            found = fulltext_listing(
                conn, query, columns=_SUMMARY_COLS, start=start, limit=limit, within=within,
                store_counts=None if mailbox else (total, unread),
            )  # fmt: skip
            if found is None:
                found = header_listing(
                    conn, query, columns=_SUMMARY_COLS, start=start, limit=limit, within=within,
                    store_counts=None if mailbox else (total, unread),
                )  # fmt: skip
            if found is not None:
                count, count_unread, rows = found
                return MessagePage(total, unread, count, count_unread, start, self.summaries(conn, rows))
            where, params = self.where(mailbox, query, conn)
            # Few matches (at most SPARSE_MATCHES, and fewer than 1 in SPARSE_DENSITY): walking
            # the table newest first would read most of it before the page fills (or all of it,
            # to find none). So first collect the matching ids and read flags from whatever index
            # covers the condition, in one scan that stops as soon as the matches are too many
            # to be few: for few matches it gives the counts and the page's ids at once.
            # A header: term costs the same (all the header's values) in each statement that
            # has it, however many it matches: there this one scan collects every match.
            cap = min(SPARSE_MATCHES, max(0, (total - 1) // SPARSE_DENSITY))
            one_pass = has_header_term(query)
            cur = conn.execute(f"SELECT m.id, m.read FROM message m WHERE {where}", params)
            found_ids = cur.fetchall() if one_pass else cur.fetchmany(cap + 1)
            cur.close()
            if one_pass or len(found_ids) <= cap:
                count = len(found_ids)
                count_unread = sum(1 for _, read in found_ids if not read)
                ids = sorted((i for i, _ in found_ids), reverse=True)[start : start + limit]
                marks = ",".join("?" * len(ids))
                rows = (
                    conn.execute(
                        f"SELECT {_SUMMARY_COLS} FROM message m WHERE m.id IN ({marks}) ORDER BY m.id DESC",
                        ids,
                    ).fetchall()
                    if ids
                    else []
                )
                return MessagePage(total, unread, count, count_unread, start, self.summaries(conn, rows))
            count, count_unread = conn.execute(
                f"SELECT count(*), coalesce(sum(m.read = 0), 0) FROM message m WHERE {where}", params
            ).fetchone()
        else:
            where, params, count, count_unread = "1", [], total, unread
        if count == 0 or start >= count:
            rows = []
        else:
            rows = conn.execute(
                f"SELECT {_SUMMARY_COLS} FROM message m WHERE {where} ORDER BY m.id DESC LIMIT ? OFFSET ?",
                [*params, limit, start],
            ).fetchall()
        return MessagePage(total, unread, count, count_unread, start, self.summaries(conn, rows))

    def summaries(self, conn: sqlite3.Connection, rows: list[Any]) -> list[Summary]:
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        tags = group_pairs(
            conn.execute(
                f"SELECT mt.message, t.name FROM message_tag mt JOIN tag t ON t.id = mt.tag "
                f"WHERE mt.message IN ({marks}) ORDER BY t.name COLLATE NOCASE",
                ids,
            )
        )
        boxes = group_pairs(
            conn.execute(
                f"SELECT DISTINCT d.message, mb.name FROM delivery d JOIN folder f ON f.id = d.folder_id "
                f"JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message IN ({marks})",
                ids,
            )
        )
        return summaries_from_rows(rows, tags, boxes)

    def get_summary(self, id: str) -> Summary | None:
        conn = self.db.reader()
        rows = conn.execute(f"SELECT {_SUMMARY_COLS} FROM message m WHERE m.pid = ?", (id,)).fetchall()
        s = self.summaries(conn, rows)
        return s[0] if s else None

    def get_raw(self, id: str) -> bytes | None:
        return self._raw(self.db.reader(), id)

    def get_raw_stored(self, id: str) -> bytes | None:
        return self._raw(self.db.reader(wait=False), id)

    def get_raws(self, ids: list[str], max_size: int) -> dict[str, bytes]:
        conn = self.db.reader()
        out: dict[str, bytes] = {}
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for pid, data in conn.execute(
                f"SELECT m.pid, r.data FROM raw r JOIN message m ON m.id = r.id WHERE m.pid IN ({marks}) "
                "AND m.size <= ?",
                [*chunk, max_size],
            ):
                out[pid] = self.db.decompress(data)
        return out

    def _raw(self, conn: sqlite3.Connection, id: str) -> bytes | None:
        row = conn.execute(
            "SELECT r.data FROM raw r JOIN message m ON m.id = r.id WHERE m.pid = ?", (id,)
        ).fetchone()
        return self.db.decompress(row[0]) if row else None

    def get_envelope(self, id: str) -> Envelope | None:
        row = self.db.reader().execute("SELECT envelope FROM message WHERE pid = ?", (id,)).fetchone()
        return Envelope.from_json(json.loads(row[0])) if row else None

    def latest_id(self, *, mailbox: str | None = None, query: str | None = None) -> str | None:
        where, params = self.where(mailbox, query)
        row = (
            self.db.reader()
            .execute(f"SELECT m.pid FROM message m WHERE {where} ORDER BY m.id DESC LIMIT 1", params)
            .fetchone()
        )
        return row[0] if row else None

    def mailboxes(self) -> list[MailboxInfo]:
        conn = self.db.reader()
        names: dict[int, str] = {}
        made: dict[str, int] = {}
        for fid, name, folder in conn.execute(
            "SELECT f.id, mb.name, f.name FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id"
        ):
            names[fid] = name
            made[name] = made.get(name, 0) + (folder != "INBOX")
        totals: dict[str, list[int]] = {
            n: [0, 0] for n in (r[0] for r in conn.execute("SELECT name FROM mailbox"))
        }
        # one pass over the (folder_id, message, seen) index; a message copied to two folders
        # of one mailbox counts twice here (as IMAP STATUS would count it)
        for fid, total, unseen in conn.execute(
            "SELECT folder_id, count(*), sum(seen = 0) FROM delivery GROUP BY folder_id"
        ):
            t = totals.setdefault(names.get(fid, ""), [0, 0])
            t[0] += total
            t[1] += unseen
        return [MailboxInfo(n, t[0], t[1], made.get(n, 0)) for n, t in sorted(totals.items()) if n]

    def stats(self) -> StoreStats:
        conn = self.db.reader()
        total, unread, size = conn.execute(
            "SELECT count(*), coalesce(sum(read = 0), 0), coalesce(sum(size), 0) FROM message"
        ).fetchone()
        path = self.db.path
        try:
            db_size = os.path.getsize(path) + (
                os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
            )
        except OSError:
            db_size = 0
        return StoreStats(
            messages=int(total),
            unread=int(unread),
            size=int(size),
            database=path if not self.db.throwaway else ":memory:",
            database_size=db_size,
            engine=f"SQLite {sqlite3.sqlite_version}",
        )

    def tags(self) -> list[str]:
        return [
            r[0]
            for r in self.db.reader().execute(
                "SELECT t.name FROM tag t WHERE EXISTS (SELECT 1 FROM message_tag mt WHERE mt.tag = t.id) "
                "ORDER BY t.name COLLATE NOCASE"
            )
        ]

    def list_threads(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> ThreadPage:
        """Conversations, newest activity first (counted within ``mailbox`` when given)."""
        start, limit = clamp_page(start, limit)
        return thread_listing(self.db.reader(), mailbox, start, limit)

    def thread_messages(self, thread_id: str, *, limit: int = 10_000) -> list[Summary]:
        """The messages of a conversation in arrival order; [] for an unknown id."""
        if not thread_id:
            return []
        conn = self.db.reader()
        rows = conn.execute(
            f"SELECT {SUMMARY_COLS} FROM message m WHERE m.thread_id = ? ORDER BY m.id LIMIT ?",
            (thread_id, max(0, int(limit))),
        ).fetchall()
        return self.summaries(conn, rows)
