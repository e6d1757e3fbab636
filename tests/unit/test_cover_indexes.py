"""The covering indexes of from:, subject: and to: (0017_cover_indexes_by_id.sql) lead with
the row id, and the searches still read them alone.

A substring match seeks nothing, so a search scans such an index whole whatever its column
order; a bulk read change ("mark all read", row id order) walks it in order only when the row
id comes first (issue 21: 1,000 recipients in turn made that change 2.2 times as costly).
"""

from __future__ import annotations

import sqlite3

import pytest

from postroom.store.sqlite_schema import apply_migrations
from postroom.store.sqlite_search import compile_query, register_functions

COVERS = {
    "message_from_cover": ["id", "from_addr", "from_name", "read"],
    "message_subject_cover": ["id", "subject", "read"],
    "message_to_cover": ["id", "to_json", "read"],
}


def _columns(conn: sqlite3.Connection, index: str) -> list[str]:
    return [r[2] for r in conn.execute(f"PRAGMA index_info({index})")]


def _store_at(version: int | None) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_migrations(conn, upto=version)
    return conn


def _fill(conn: sqlite3.Connection, n: int) -> None:
    for i in range(1, n + 1):
        conn.execute(
            "INSERT INTO message(id, pid, created, read, subject, from_addr, to_json, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            (
                i,
                f"P{i}",
                i,
                i % 2,
                f"order {i}",
                f"shop{i % 3}@example.com",
                f'[["","user{i % 5}@example.org"]]',
            ),
        )


def test_cover_indexes_lead_with_the_row_id() -> None:
    conn = _store_at(None)
    assert {name: _columns(conn, name) for name in COVERS} == COVERS


def test_migration_rebuilds_them_over_stored_mail() -> None:
    conn = _store_at(16)
    assert _columns(conn, "message_to_cover") == ["to_json", "read"]
    _fill(conn, 39)
    apply_migrations(conn)
    assert {name: _columns(conn, name) for name in COVERS} == COVERS
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    got = conn.execute(
        "SELECT count(*), sum(read = 0) FROM message INDEXED BY message_to_cover WHERE to_json LIKE '%user3@%'"
    ).fetchone()
    assert got == (8, 4)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("to:user3@ is:unread", "message_to_cover"),
        ("to:user3@", "message_to_cover"),
        ("from:shop1", "message_from_cover"),
        ("subject:order is:unread", "message_subject_cover"),
    ],
)
def test_searches_still_read_the_index_alone(query: str, index: str) -> None:
    conn = _store_at(None)
    _fill(conn, 400)
    conn.execute("ANALYZE message")  # as the store does once it holds mail (sqlite_background)
    register_functions(conn)
    where, params = compile_query(query)
    plan = " ".join(
        str(r[-1])
        for r in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT count(*), coalesce(sum(m.read = 0), 0) FROM message m WHERE {where}",
            params,
        )
    )
    assert f"COVERING INDEX {index}" in plan, plan
