"""Reads of the PostgreSQL backend: listings, summaries, conversations, counts.

Every read runs on a pooled connection in autocommit mode, so it sees every transaction
committed before it started, on this node or any other: read-your-writes holds because
:meth:`~postroom.store.postgres.PostgresStore.deliver` returns after its commit.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Envelope, MailboxInfo, MessagePage, StoreStats, Summary, ThreadPage
from .postgres_db import Conn, Db
from .postgres_search import attachment_only, compile_query, fulltext_query, header_ids
from .rawcodec import unpack
from .rows import (
    SUMMARY_COLS,
    ThreadQuery,
    clamp_page,
    group_pairs,
    summaries_from_rows,
    thread_page,
    threads_of,
)

__all__ = ["Reader", "summaries", "where"]

PARTICIPANT_ROWS = 50  # messages of a conversation read for its participants
# A free-text page is read by walking the matches' ids newest first while that reads at most
# this many rows; sparser matches are collected from the GIN index and sorted.
WALK_ROWS = 2000

_IN_MAILBOX = (
    "m.id IN (SELECT d.message FROM delivery d JOIN folder f ON f.id = d.folder_id "
    "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = %s)"
)


def where(mailbox: str | None, query: str | None) -> tuple[str, list[Any]]:
    """SQL condition over ``message m`` for a mailbox and a query (InvalidQuery if bad)."""
    clauses: list[str] = []
    params: list[Any] = []
    if mailbox:
        clauses.append(_IN_MAILBOX)
        params.append(mailbox.lower())
    if query and query.strip():
        sql, qp = compile_query(query)
        clauses.append(f"({sql})")
        params.extend(qp)
    return (" AND ".join(clauses) or "true"), params


def summaries(conn: Conn, rows: list[Any]) -> list[Summary]:
    """Summaries of ``rows`` of :data:`~postroom.store.rows.SUMMARY_COLS`, with their tags
    and mailboxes."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    tags = group_pairs(
        conn.execute(
            "SELECT mt.message, t.name FROM message_tag mt JOIN tag t ON t.id = mt.tag "
            "WHERE mt.message = ANY(%s) ORDER BY lower(t.name)",
            (ids,),
        )
    )
    boxes = group_pairs(
        conn.execute(
            "SELECT DISTINCT d.message, mb.name FROM delivery d JOIN folder f ON f.id = d.folder_id "
            "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message = ANY(%s)",
            (ids,),
        )
    )
    return summaries_from_rows(rows, tags, boxes)


class Reader:
    """The :class:`~postroom.store.base.MessageReader` part of the PostgreSQL backend."""

    def __init__(self, db: Db) -> None:
        self.db = db

    def list_messages(
        self, *, mailbox: str | None = None, query: str | None = None, start: int = 0, limit: int = 50
    ) -> MessagePage:
        start, limit = clamp_page(start, limit)
        cond, params = where(mailbox, query)  # InvalidQuery before any connection is taken
        with self.db.read() as conn:
            if mailbox:
                row = conn.execute(
                    "SELECT count(DISTINCT d.message), count(DISTINCT d.message) FILTER (WHERE NOT d.seen) "
                    "FROM delivery d JOIN folder f ON f.id = d.folder_id JOIN mailbox mb ON mb.id = f.mailbox_id "
                    "WHERE mb.name = %s",
                    (mailbox.lower(),),
                ).fetchone()
            else:
                # kept by statement triggers (0018_message_counts.sql), not a scan of every message
                row = conn.execute(
                    "SELECT coalesce(sum(messages), 0), coalesce(sum(unread), 0) FROM message_count"
                ).fetchone()
            assert row is not None
            total, unread = int(row[0]), int(row[1])
            hits = header_ids(query) if query and query.strip() else None
            if hits is not None:
                return self._header_page(conn, hits, mailbox, (total, unread), start, limit)
            text = fulltext_query(query) if query and query.strip() else None
            if text is not None:
                return self._text_page(conn, text, mailbox, (total, unread), start, limit)
            if query and query.strip() and not mailbox and attachment_only(query):
                # kept by the triggers of message_count (0020_message_text.sql)
                crow = conn.execute(
                    "SELECT coalesce(sum(attached), 0), coalesce(sum(attached_unread), 0) FROM message_count"
                ).fetchone()
                assert crow is not None
                count, count_unread = int(crow[0]), int(crow[1])
            elif query and query.strip():
                crow = conn.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE NOT m.read) FROM message m WHERE {cond}", params
                ).fetchone()
                assert crow is not None
                count, count_unread = int(crow[0]), int(crow[1])
            else:
                count, count_unread = total, unread
            rows: list[Any] = []
            if count and start < count and limit:
                rows = conn.execute(
                    f"SELECT {SUMMARY_COLS} FROM message m WHERE {cond} ORDER BY m.id DESC LIMIT %s OFFSET %s",
                    [*params, limit, start],
                ).fetchall()
            return MessagePage(total, unread, count, count_unread, start, summaries(conn, rows))

    def _text_page(
        self, conn: Conn, text: str, mailbox: str | None, counts: tuple[int, int], start: int, limit: int
    ) -> MessagePage:
        """A listing whose query is free text only (``text``: its one ``tsquery``): counts
        from ``message_text`` (0020_message_text.sql: narrow rows with the read flag, not
        the wide message rows), then one page of its ids, newest first. ``counts``: as for
        :meth:`_header_page`."""
        within, wparams = "", []
        if mailbox:
            within = (
                " AND t.id IN (SELECT d.message FROM delivery d JOIN folder f ON f.id = d.folder_id "
                "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = %s)"
            )
            wparams = [mailbox.lower()]
        match = f"FROM message_text t WHERE t.tsv @@ to_tsquery('simple', %s){within}"
        row = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE NOT t.read) {match}", [text, *wparams]
        ).fetchone()
        assert row is not None
        count, count_unread = int(row[0]), int(row[1])
        rows: list[Any] = []
        if count and start < count and limit:
            # Walking the ids newest first reads about (start + limit) * messages / count rows
            # to fill the page: fine when the matches are dense, not when they are few among
            # many (a rare word: 50,000 rows read for 50 of 100 matches). Then the matches
            # are sorted instead (``+ 0``: no index gives that order, so the planner collects
            # the matches from the GIN index).
            messages = counts[0] if not mailbox else self._messages(conn)
            order = "t.id + 0" if (start + limit) * messages > WALK_ROWS * count else "t.id"
            rows = conn.execute(
                f"SELECT {SUMMARY_COLS} FROM message m WHERE m.id IN (SELECT t.id {match} "
                f"ORDER BY {order} DESC LIMIT %s OFFSET %s) ORDER BY m.id DESC",
                [text, *wparams, limit, start],
            ).fetchall()
        total, unread = counts
        return MessagePage(total, unread, count, count_unread, start, summaries(conn, rows))

    @staticmethod
    def _messages(conn: Conn) -> int:
        row = conn.execute("SELECT coalesce(sum(messages), 0) FROM message_count").fetchone()
        return int(row[0]) if row else 0

    def _header_page(
        self,
        conn: Conn,
        hits: tuple[str, list[Any]],
        mailbox: str | None,
        counts: tuple[int, int],
        start: int,
        limit: int,
    ) -> MessagePage:
        """A listing whose query is one header: term: the matching ids from ``header_field``
        in one statement (counts and page from them), so that the values are read once, not
        once for the counts and again for the page, and a match is not looked up in the
        message table for its read flag unless some mail is read and some not (then through
        the partial index ``message_unread``). ``counts`` are the store's (messages, unread)
        without a mailbox, the mailbox's with one."""
        sql, params = hits
        if mailbox:
            sql = (
                f"SELECT x.id FROM ({sql}) x(id) WHERE x.id IN (SELECT d.message FROM delivery d "
                "JOIN folder f ON f.id = d.folder_id JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = %s)"
            )
            params = [*params, mailbox.lower()]
        ids = sorted({r[0] for r in conn.execute(sql, params)}, reverse=True)
        page = ids[start : start + limit]
        rows = (
            conn.execute(
                f"SELECT {SUMMARY_COLS} FROM message m WHERE m.id = ANY(%s) ORDER BY m.id DESC", (page,)
            ).fetchall()
            if page
            else []
        )
        # the store's counts (not a mailbox's: those are of its deliveries' seen flags)
        store_total, store_unread = counts if not mailbox else (-1, -1)
        if not ids or store_unread == 0:
            unread = 0
        elif store_unread == store_total:  # nothing read: every match is unread
            unread = len(ids)
        else:
            row = conn.execute(
                "SELECT count(*) FROM message WHERE NOT read AND id = ANY(%s)", (ids,)
            ).fetchone()
            assert row is not None
            unread = int(row[0])
        total, all_unread = counts
        return MessagePage(total, all_unread, len(ids), unread, start, summaries(conn, rows))

    def get_summary(self, id: str) -> Summary | None:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {SUMMARY_COLS} FROM message m WHERE m.pid = %s", (id,)).fetchall()
            found = summaries(conn, rows)
        return found[0] if found else None

    def get_raw(self, id: str) -> bytes | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT r.data FROM raw r JOIN message m ON m.id = r.id WHERE m.pid = %s", (id,)
            ).fetchone()
        return unpack(bytes(row[0])) if row else None

    def get_raws(self, ids: list[str], max_size: int) -> dict[str, bytes]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT m.pid, r.data FROM raw r JOIN message m ON m.id = r.id WHERE m.pid = ANY(%s) "
                "AND m.size <= %s",
                (ids, max_size),
            ).fetchall()
        return {pid: unpack(bytes(data)) for pid, data in rows}

    def get_raw_stored(self, id: str) -> bytes | None:
        """As :meth:`get_raw` (every read sees every commit; there is nothing to wait for)."""
        return self.get_raw(id)

    def get_envelope(self, id: str) -> Envelope | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT envelope FROM message WHERE pid = %s", (id,)).fetchone()
        return Envelope.from_json(json.loads(row[0])) if row else None

    def latest_id(self, *, mailbox: str | None = None, query: str | None = None) -> str | None:
        cond, params = where(mailbox, query)
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT m.pid FROM message m WHERE {cond} ORDER BY m.id DESC LIMIT 1", params
            ).fetchone()
        return str(row[0]) if row else None

    def mailboxes(self) -> list[MailboxInfo]:
        with self.db.read() as conn:
            totals: dict[str, list[int]] = {
                r[0]: [0, 0, int(r[1])]
                for r in conn.execute(
                    "SELECT mb.name, count(f.id) FILTER (WHERE f.name <> 'INBOX') FROM mailbox mb "
                    "LEFT JOIN folder f ON f.mailbox_id = mb.id GROUP BY mb.name"
                )
            }
            # a message copied to two folders of one mailbox counts twice (as IMAP STATUS would)
            for name, total, unseen in conn.execute(
                "SELECT mb.name, count(*), count(*) FILTER (WHERE NOT d.seen) FROM delivery d "
                "JOIN folder f ON f.id = d.folder_id JOIN mailbox mb ON mb.id = f.mailbox_id GROUP BY mb.name"
            ):
                totals.setdefault(name, [0, 0, 0])[:2] = [int(total), int(unseen)]
        return [MailboxInfo(n, t[0], t[1], t[2]) for n, t in sorted(totals.items())]

    def stats(self) -> StoreStats:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT read), coalesce(sum(size), 0), "
                "current_database(), pg_database_size(current_database()), current_setting('server_version') "
                "FROM message"
            ).fetchone()
        assert row is not None
        return StoreStats(
            messages=int(row[0]),
            unread=int(row[1]),
            size=int(row[2]),
            database=str(row[3]),
            database_size=int(row[4]),
            engine=f"PostgreSQL {row[5]}",
        )

    def tags(self) -> list[str]:
        with self.db.read() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT t.name FROM tag t WHERE EXISTS (SELECT 1 FROM message_tag mt WHERE mt.tag = t.id) "
                    "ORDER BY lower(t.name)"
                )
            ]

    def list_threads(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> ThreadPage:
        start, limit = clamp_page(start, limit)
        if not mailbox:
            # the conversations' counts and last activity, kept by a trigger (0017_thread_summary.sql)
            with self.db.read() as conn:

                def run(sql: str, p: list[Any]) -> list[Any]:
                    return conn.execute(sql, p).fetchall()

                total = run("SELECT count(*) FROM thread", [])[0][0]
                groups = run(
                    "SELECT thread_id, messages, unread, last_created, last_id FROM thread "
                    "ORDER BY last_id DESC LIMIT %s OFFSET %s",
                    [limit, start],
                )
                everywhere = ThreadQuery("%s", "", "", [], "true", [], PARTICIPANT_ROWS)
                return threads_of(run, everywhere, int(total), groups, start)
        cond, params = "m.thread_id <> ''", []
        if mailbox:
            cond += " AND " + _IN_MAILBOX
            params.append(mailbox.lower())
        query = ThreadQuery(
            "%s", "count(*) FILTER (WHERE NOT m.read)", cond, params, cond, params, PARTICIPANT_ROWS
        )
        with self.db.read() as conn:
            return thread_page(lambda sql, p: conn.execute(sql, p).fetchall(), query, start, limit)

    def thread_messages(self, thread_id: str, *, limit: int = 10_000) -> list[Summary]:
        if not thread_id:
            return []
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT {SUMMARY_COLS} FROM message m WHERE m.thread_id = %s ORDER BY m.id LIMIT %s",
                (thread_id, max(0, int(limit))),
            ).fetchall()
            return summaries(conn, rows)

    def unindexed(self, ids: list[str]) -> list[str]:
        with self.db.read() as conn:
            return [
                r[0]
                for r in conn.execute("SELECT pid FROM message WHERE pid = ANY(%s) AND indexed = 0", (ids,))
            ]

    def pending(self) -> bool:
        """True while some stored message waits for the indexer."""
        with self.db.read() as conn:
            return conn.execute("SELECT EXISTS (SELECT 1 FROM message WHERE indexed = 0)").fetchone() == (
                True,
            )
