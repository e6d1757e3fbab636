"""Conversations in the SQLite store: listing them, and the messages of one.

Mixed into :class:`postroom.store.sqlite.SQLiteStore`. Read-only: the indexer assigns
``message.thread_id`` (see :mod:`postroom.store.thread_index`); these queries read it.
A message the indexer has not reached yet (a few milliseconds after delivery) has an
empty thread id and is in no conversation.

The listing groups the ``message_thread`` index ``(thread_id, read, created)`` (with the
row id), so counts, unread counts and the last activity come from the index alone; only
the page's conversations read message rows (subject and participants).
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from .base import Address, Summary, ThreadInfo, ThreadPage

__all__ = ["MAX_PARTICIPANTS", "ThreadsMixin"]

# Participants listed per conversation; the rows read to find them (oldest messages first).
MAX_PARTICIPANTS = 20
PARTICIPANT_ROWS = 200
PAGE_LIMIT_MAX = 1000  # as the message listing


class ThreadsMixin:
    if TYPE_CHECKING:

        def _reader(self, wait: bool = True) -> sqlite3.Connection: ...
        def _summaries(self, conn: sqlite3.Connection, rows: list[Any]) -> list[Summary]: ...

    def list_threads(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> ThreadPage:
        """Conversations, newest activity first (counted within ``mailbox`` when given)."""
        start = max(0, int(start))
        limit = max(0, min(int(limit), PAGE_LIMIT_MAX))
        conn = self._reader()
        where, params = "m.thread_id <> ''", []
        rows_where, rows_params = "", []
        if mailbox:
            # The counts walk the covering index (thread_id, read, created) and probe one set
            # of the mailbox's messages ("+" keeps SQLite from driving the query from that
            # set, which reads every message row: 1 s instead of 0.1-0.2 s at 100,000);
            # the few rows of a page's conversations are checked one by one.
            where = (
                "m.thread_id > '' AND +m.id IN (SELECT d.message FROM delivery d "
                "JOIN folder f ON f.id = d.folder_id JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = ?)"
            )
            params = [mailbox.lower()]
            rows_where = (
                " AND EXISTS (SELECT 1 FROM delivery d JOIN folder f ON f.id = d.folder_id "
                "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message = m.id AND mb.name = ?)"
            )
            rows_params = [mailbox.lower()]
        total = conn.execute(
            f"SELECT count(DISTINCT m.thread_id) FROM message m WHERE {where}", params
        ).fetchone()[0]
        groups = conn.execute(
            f"SELECT m.thread_id, count(*), coalesce(sum(m.read = 0), 0), max(m.created), max(m.id) AS last "
            f"FROM message m WHERE {where} GROUP BY m.thread_id ORDER BY last DESC LIMIT ? OFFSET ?",
            [*params, limit, start],
        ).fetchall()
        threads = []
        for tid, count, unread, last, _ in groups:
            rows = conn.execute(
                f"SELECT m.subject, m.from_name, m.from_addr, m.to_json, m.cc_json FROM message m "
                f"WHERE m.thread_id = ?{rows_where} ORDER BY m.id LIMIT ?",
                [tid, *rows_params, PARTICIPANT_ROWS],
            ).fetchall()
            threads.append(
                ThreadInfo(
                    thread_id=tid,
                    subject=rows[0][0] if rows else "",
                    messages=count,
                    unread=unread,
                    participants=_participants(rows),
                    last_activity=last,
                )
            )
        return ThreadPage(total, start, threads)

    def thread_messages(self, thread_id: str, *, limit: int = 10_000) -> list[Summary]:
        """The messages of a conversation in arrival order; [] for an unknown id."""
        from .sqlite_reading import SUMMARY_COLS as _SUMMARY_COLS

        if not thread_id:
            return []
        conn = self._reader()
        rows = conn.execute(
            f"SELECT {_SUMMARY_COLS} FROM message m WHERE m.thread_id = ? ORDER BY m.id LIMIT ?",
            (thread_id, max(0, int(limit))),
        ).fetchall()
        return self._summaries(conn, rows)


def _participants(rows: list[Any]) -> list[Address]:
    """Distinct addresses of From, To and Cc, in order of first appearance."""
    out: dict[str, Address] = {}
    for _, from_name, from_addr, to_json, cc_json in rows:
        pairs = [(from_name, from_addr)] if from_addr else []
        for text in (to_json, cc_json):
            if text and text != "[]":
                pairs.extend((n, a) for n, a in json.loads(text))
        for name, addr in pairs:
            key = addr.lower()
            if key and key not in out:
                out[key] = Address(name, addr)
                if len(out) >= MAX_PARTICIPANTS:
                    return list(out.values())
    return list(out.values())
