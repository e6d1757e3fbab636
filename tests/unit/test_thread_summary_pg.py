"""PostgreSQL's ``thread`` table (0017_thread_summary.sql) always equals grouping the message
table, as SQLite's does (test_thread_summary.py), and its ``message_count`` (0018) counting
it: the same seeded walk of the statements the store and the indexer issue (new mail,
conversations assigned and merged, read and unread, deletion, deleting everything) on the
real schema, compared with ``GROUP BY thread_id`` and ``count(*)`` after each step; and the
migrations fill both from messages already stored."""

from __future__ import annotations

import random
from collections.abc import Iterator
from importlib import resources

import psycopg
import pytest

from .. import pg


@pytest.fixture
def database() -> Iterator[str]:
    name, url = pg.fresh_database("postroom_threads")
    try:
        yield url
    finally:
        pg.drop_database(name)


def _migrate(conn: psycopg.Connection[tuple[object, ...]], after: int = 0, upto: int = 10**6) -> None:
    """The migrations numbered above ``after`` up to ``upto``, in order, as the store applies them."""
    folder = resources.files("postroom.store").joinpath("migrations/postgres")
    for f in sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name):
        if after < int(f.name.split("_", 1)[0]) <= upto:
            conn.execute(f.read_text("utf-8").encode())


def _grouped(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT thread_id, count(*), count(*) FILTER (WHERE NOT read), max(id), max(created) FROM message "
        "WHERE thread_id <> '' GROUP BY thread_id ORDER BY thread_id"
    ).fetchall()


def _table(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT thread_id, messages, unread, last_id, last_created FROM thread ORDER BY thread_id"
    ).fetchall()


def _counts(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...] | None:
    return conn.execute(
        "SELECT (SELECT coalesce(sum(messages), 0) FROM message_count), (SELECT coalesce(sum(unread), 0) "
        "FROM message_count), (SELECT count(*) FROM message), (SELECT count(*) FILTER (WHERE NOT read) FROM message)"
    ).fetchone()


def test_thread_table_and_counts_follow_every_change(database: str) -> None:
    """... and the store's message and unread counts (message_count, 0018), changed from two
    connections (two slots)."""
    with (
        psycopg.connect(database, autocommit=True) as first,
        psycopg.connect(database, autocommit=True) as second,
    ):
        _migrate(first)
        rng = random.Random(15)
        next_id = 1
        for step in range(400):
            conn = rng.choice((first, second))
            ids = [r[0] for r in conn.execute("SELECT id FROM message")]
            op = rng.random()
            if op < 0.35 or not ids:  # new mail: no conversation yet; arrival times not in id order
                conn.execute(
                    "INSERT INTO message(id, pid, created, read, size) VALUES (%s, %s, %s, %s, 1)",
                    (next_id, f"P{next_id}", rng.uniform(0, 1000), rng.random() < 0.3),
                )
                next_id += 1
            elif op < 0.6:  # the indexer assigns a conversation
                conn.execute(
                    "UPDATE message SET thread_id = %s WHERE id = %s",
                    (str(rng.randint(1, 12)), rng.choice(ids)),
                )
            elif op < 0.7:  # the indexer merges conversations into one
                a, b = str(rng.randint(1, 12)), str(rng.randint(1, 12))
                conn.execute("UPDATE message SET thread_id = %s WHERE thread_id = ANY(%s)", (a, [b]))
            elif op < 0.85:  # read / unread, of one message or many
                chosen = rng.sample(ids, min(len(ids), rng.randint(1, 5)))
                conn.execute("UPDATE message SET read = %s WHERE id = ANY(%s)", (rng.random() < 0.5, chosen))
            elif op < 0.99:  # deletion
                conn.execute("DELETE FROM message WHERE id = %s", (rng.choice(ids),))
            else:  # everything deleted
                conn.execute("DELETE FROM message")
            assert _table(conn) == _grouped(conn), f"step {step}"
            counts = _counts(conn)
            assert counts is not None and counts[:2] == counts[2:], f"step {step}: {counts}"
        assert _grouped(conn), "the walk ended with no conversation at all: it tested little"
        slots = first.execute("SELECT count(*) FROM message_count").fetchone()
        assert slots is not None and slots[0] >= 2  # both connections counted in slots of their own


def test_migration_fills_the_table_from_existing_conversations(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        _migrate(conn, upto=16)  # the schema before 0017, with conversations already assigned
        for i in range(1, 30):
            conn.execute(
                "INSERT INTO message(id, pid, created, read, thread_id, size) VALUES (%s, %s, %s, %s, %s, 1)",
                (i, f"P{i}", 1000 - i, i % 3 == 0, str(i % 4) if i % 5 else ""),
            )
        _migrate(conn, after=16)
        assert _table(conn) == _grouped(conn)
        assert len(_table(conn)) == 4
        assert _counts(conn) == (29, 20, 29, 20)
