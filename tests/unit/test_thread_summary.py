"""The ``thread`` table (0013_thread_summary.sql) always equals grouping the message table.

Its triggers run in the transaction of every change; this drives the real schema through
the statements the store and the indexer issue (new mail, conversations assigned and merged,
read and unread, deletion, deleting everything) in a seeded random order and compares the
table with ``GROUP BY thread_id`` after each step.
"""

from __future__ import annotations

import random
import sqlite3

from postroom.store.sqlite_schema import apply_migrations


def _grouped(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT thread_id, count(*), coalesce(sum(read = 0), 0), max(id), max(created) FROM message "
        "WHERE thread_id <> '' GROUP BY thread_id ORDER BY thread_id"
    ).fetchall()


def _table(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT thread_id, messages, unread, last_id, last_created FROM thread ORDER BY thread_id"
    ).fetchall()


def test_thread_table_follows_every_change() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_migrations(conn)
    rng = random.Random(15)
    next_id = 1
    for step in range(600):
        ids = [r[0] for r in conn.execute("SELECT id FROM message")]
        op = rng.random()
        if op < 0.35 or not ids:  # new mail: no conversation yet; arrival times not in id order
            conn.execute(
                "INSERT INTO message(id, pid, created, read, size) VALUES (?, ?, ?, ?, 1)",
                (next_id, f"P{next_id}", rng.uniform(0, 1000), int(rng.random() < 0.3)),
            )
            next_id += 1
        elif op < 0.6:  # the indexer assigns a conversation
            conn.execute(
                "UPDATE message SET thread_id = ? WHERE id = ?", (str(rng.randint(1, 12)), rng.choice(ids))
            )
        elif op < 0.7:  # the indexer merges conversations into one
            a, b = str(rng.randint(1, 12)), str(rng.randint(1, 12))
            conn.execute("UPDATE message SET thread_id = ? WHERE thread_id IN (?)", (a, b))
        elif op < 0.85:  # read / unread, of one message or many
            chosen = rng.sample(ids, min(len(ids), rng.randint(1, 5)))
            marks = ",".join("?" * len(chosen))
            conn.execute(
                f"UPDATE message SET read = ? WHERE id IN ({marks})", [int(rng.random() < 0.5), *chosen]
            )
        elif op < 0.99:  # deletion
            conn.execute("DELETE FROM message WHERE id = ?", (rng.choice(ids),))
        else:  # everything deleted
            conn.execute("DELETE FROM message")
        assert _table(conn) == _grouped(conn), f"step {step}"
    assert _grouped(conn), "the walk ended with no conversation at all: it tested little"


def test_migration_fills_the_table_from_existing_conversations() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    # the schema before 0013, with conversations already assigned
    apply_migrations(conn, upto=12)
    for i in range(1, 30):
        conn.execute(
            "INSERT INTO message(id, pid, created, read, thread_id, size) VALUES (?, ?, ?, ?, ?, 1)",
            (i, f"P{i}", 1000 - i, i % 3 == 0, str(i % 4) if i % 5 else ""),
        )
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 12
    apply_migrations(conn)
    assert _table(conn) == _grouped(conn)
    assert len(_table(conn)) == 4
