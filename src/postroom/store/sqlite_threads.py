"""Conversations in the SQLite store: listing them, and the messages of one.

Used by :class:`postroom.store.sqlite_reading.Reader`. Read-only: the indexer assigns
``message.thread_id`` (see :mod:`postroom.store.thread_index`); these queries read it.
A message the indexer has not reached yet (a few milliseconds after delivery) has an
empty thread id and is in no conversation.

The listing reads the ``thread`` table (each conversation's counts and last activity, kept
by triggers, 0013_thread_summary.sql) newest first; within a mailbox it groups the
``message_thread`` index ``(thread_id, read, created)`` (with the row id), so counts, unread
counts and the last activity come from the index alone. Only the page's conversations read
message rows (subject and participants).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .base import ThreadPage
from .rows import ThreadQuery, thread_page, threads_of

__all__ = ["PARTICIPANT_ROWS", "thread_listing"]

PARTICIPANT_ROWS = 200  # rows read to find a conversation's participants (oldest first)


def thread_listing(conn: sqlite3.Connection, mailbox: str | None, start: int, limit: int) -> ThreadPage:
    """A page of conversations, newest activity first (counted within ``mailbox`` when given)."""

    def run(sql: str, params: list[Any]) -> list[Any]:
        return conn.execute(sql, params).fetchall()

    if not mailbox:
        # the conversations' counts and last activity, kept by triggers (0013_thread_summary.sql)
        total = conn.execute("SELECT count(*) FROM thread").fetchone()[0]
        groups = run(
            "SELECT thread_id, messages, unread, last_created, last_id FROM thread "
            "ORDER BY last_id DESC LIMIT ? OFFSET ?",
            [limit, start],
        )
        everywhere = ThreadQuery("?", "", "", [], "1", [], PARTICIPANT_ROWS)
        return threads_of(run, everywhere, int(total), groups, start)
    # The counts walk the covering index (thread_id, read, created) and probe one set of the
    # mailbox's messages ("+" keeps SQLite from driving the query from that set, which reads
    # every message row: 1 s instead of 0.1-0.2 s at 100,000); the few rows of a page's
    # conversations are checked one by one.
    query = ThreadQuery(
        "?",
        "coalesce(sum(m.read = 0), 0)",
        "m.thread_id > '' AND +m.id IN (SELECT d.message FROM delivery d "
        "JOIN folder f ON f.id = d.folder_id JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = ?)",
        [mailbox.lower()],
        "EXISTS (SELECT 1 FROM delivery d JOIN folder f ON f.id = d.folder_id "
        "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message = m.id AND mb.name = ?)",
        [mailbox.lower()],
        PARTICIPANT_ROWS,
    )
    return thread_page(run, query, start, limit)
