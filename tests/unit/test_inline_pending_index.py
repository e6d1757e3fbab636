"""The index of messages whose inline parts are not counted (0020_inline_pending_indexed.sql)
holds only indexed mail: a delivery's INSERT writes no entry to it, and the background pass
over mail stored before the count existed still reads it."""

from __future__ import annotations

import sqlite3

from postroom.store.sqlite_schema import apply_migrations

# the background pass's query (sqlite_background.py: _backfill with backfill_inline's term)
BACKFILL = (
    "SELECT m.id, r.data FROM message m JOIN raw r ON r.id = m.id "
    "WHERE m.inline_parts IS NULL AND m.indexed != 0 ORDER BY m.id LIMIT ?"
)


def _store() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_migrations(conn)
    return conn


def _entries(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT sum(ncell) FROM dbstat WHERE name = 'message_inline_pending' AND pagetype = 'leaf'"
    )
    return int(row.fetchone()[0] or 0)


def _deliver(conn: sqlite3.Connection, n: int) -> None:
    for i in range(n):  # as the writer stores new mail: indexed and inline_parts at their defaults
        mid = conn.execute(
            "INSERT INTO message(pid, created, subject, size) VALUES (?, ?, ?, 1)", (f"P{i}", i, f"s{i}")
        ).lastrowid
        conn.execute("INSERT INTO raw(id, data) VALUES (?, x'00')", (mid,))


def test_new_mail_is_not_in_the_index_until_indexed_without_a_count() -> None:
    conn = _store()
    _deliver(conn, 50)
    assert _entries(conn) == 0  # 50 before 0020
    # the indexer counts the parts in the statement that marks the message indexed
    conn.execute("UPDATE message SET indexed = 1, inline_parts = 0 WHERE id <= 20")
    assert _entries(conn) == 0
    # mail stored before the count existed: indexed, not counted
    conn.execute("UPDATE message SET indexed = 1 WHERE id > 40")
    assert _entries(conn) == 10
    assert [r[0] for r in conn.execute(BACKFILL, (100,))] == list(range(41, 51))


def test_the_background_pass_reads_the_index() -> None:
    conn = _store()
    _deliver(conn, 5)
    plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + BACKFILL, (100,)))
    assert (
        "USING COVERING INDEX message_inline_pending" in plan or "USING INDEX message_inline_pending" in plan
    ), plan
