"""The folder counts (SQLite 0019_folder_counts.sql and 0021, PostgreSQL 0021) always equal
counting the folder's deliveries: a seeded walk of the statements the store issues (deliveries,
\\Seen set and cleared, expunges, deletion of messages and folders) on the real schema,
compared with ``count(*)`` after each step; and each migration fills the counts of folders
that already hold mail. On SQLite a delivery's INSERT is counted by the statement that
advances its folder's uidnext (``sqlite_folders.advance_folder``, as the writer does), not by
a trigger."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from postroom.store.sqlite_folders import advance_folder
from postroom.store.sqlite_schema import apply_migrations

from .. import pg
from .test_thread_summary_pg import _migrate

_COUNTED = (
    "SELECT f.id, (SELECT count(*) FROM delivery d WHERE d.folder_id = f.id), "
    "(SELECT count(*) FROM delivery d WHERE d.folder_id = f.id AND {unseen}) FROM folder f ORDER BY f.id"
)
_KEPT = "SELECT id, messages, unseen FROM folder ORDER BY id"


def _walk(
    execute: Any,
    p: str,
    unseen: str,
    steps: int = 400,
    delivered: Callable[[int, int, bool], None] | None = None,
) -> None:
    """Random deliveries, flag changes and deletions through ``execute`` (placeholder ``p``),
    checking the kept counts against counting after each step. ``delivered(folder, uidnext,
    seen)`` follows each delivery's INSERT where the store counts it itself (SQLite)."""
    rng = random.Random(19)
    uid = {1: 1, 2: 1}
    next_msg = 1
    for step in range(steps):
        op = rng.random()
        rows = execute("SELECT folder_id, uid, message FROM delivery").fetchall()
        if op < 0.4 or not rows:  # a delivery into one folder or both, seen or not
            execute(
                f"INSERT INTO message(id, pid, created, size) VALUES ({p}, {p}, 0, 1)",
                (next_msg, f"P{next_msg}"),
            )
            for fid in rng.sample([1, 2], rng.randint(1, 2)):
                seen = rng.random() < 0.3
                execute(
                    f"INSERT INTO delivery(folder_id, uid, message, seen) VALUES ({p}, {p}, {p}, {p})",
                    (fid, uid[fid], next_msg, seen),
                )
                uid[fid] += 1
                if delivered is not None:
                    delivered(fid, uid[fid], seen)
            next_msg += 1
        elif op < 0.75:  # STORE / the API's read state, on a few rows
            for fid, u, _ in rng.sample(rows, min(len(rows), 3)):
                execute(
                    f"UPDATE delivery SET seen = {p}, modseq = modseq + 1 WHERE folder_id = {p} AND uid = {p}",
                    (rng.random() < 0.5, fid, u),
                )
        elif op < 0.9:  # EXPUNGE of one delivery
            fid, u, _ = rng.choice(rows)
            execute(f"DELETE FROM delivery WHERE folder_id = {p} AND uid = {p}", (fid, u))
        elif op < 0.99:  # a message deleted through the API: its deliveries go with it
            _, _, mid = rng.choice(rows)
            execute(f"DELETE FROM delivery WHERE message = {p}", (mid,))
            execute(f"DELETE FROM message WHERE id = {p}", (mid,))
        else:
            execute("DELETE FROM delivery")
        counted = execute(_COUNTED.format(unseen=unseen)).fetchall()
        assert execute(_KEPT).fetchall() == counted, f"step {step}"


def _sqlite(version: int | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_migrations(conn, upto=version)
    conn.execute("INSERT INTO mailbox(id, name, created) VALUES (1, 'alice@example.org', 0)")
    for fid, name in ((1, "INBOX"), (2, "Work")):
        conn.execute("INSERT INTO folder(id, mailbox_id, name, uidvalidity) VALUES (?, 1, ?, 1)", (fid, name))
    return conn


def test_sqlite_counts_follow_every_change() -> None:
    conn = _sqlite()
    _walk(
        conn.execute,
        "?",
        "d.seen = 0",
        delivered=lambda fid, uidnext, seen: advance_folder(conn, [fid, uidnext], 1, int(not seen)),
    )


def test_sqlite_inserts_run_no_trigger() -> None:
    """Neither a message's INSERT nor a delivery's runs a trigger (0021): a trigger, even one
    whose WHEN fails, makes SQLite keep a statement journal of every page the INSERT changes
    and run the trigger's program per row, 8-11 µs of the writer's ~45 µs of SQLite per
    message. The counts of new deliveries come from ``advance_folder`` (the walk above); a
    new message has no conversation to count (thread_id is '' until the indexer's UPDATE)."""
    conn = _sqlite()
    found = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name IN ('message', 'delivery', 'raw') "
        "AND upper(sql) LIKE '%INSERT ON%'"
    ).fetchall()
    assert found == []
    columns = {r[1]: r[4] for r in conn.execute("PRAGMA table_info(message)")}
    assert columns["thread_id"] == "''"  # a message's row is inserted without a conversation


def test_sqlite_migration_counts_the_mail_already_there() -> None:
    conn = _sqlite(18)
    for i in range(1, 8):
        conn.execute("INSERT INTO message(id, pid, created, size) VALUES (?, ?, 0, 1)", (i, f"P{i}"))
        conn.execute(
            "INSERT INTO delivery(folder_id, uid, message, seen) VALUES (?, ?, ?, ?)",
            (i % 2 + 1, i, i, i % 3 == 0),
        )
    apply_migrations(conn)
    assert conn.execute(_KEPT).fetchall() == [(1, 3, 2), (2, 4, 3)]


@pytest.fixture
def database() -> Iterator[str]:
    name, url = pg.fresh_database("postroom_folder_counts")
    try:
        yield url
    finally:
        pg.drop_database(name)


def _pg_folders(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("INSERT INTO mailbox(id, name, created) VALUES (1, 'alice@example.org', 0)")
    for fid, name in ((1, "INBOX"), (2, "Work")):
        conn.execute(
            "INSERT INTO folder(id, mailbox_id, name, uidvalidity) VALUES (%s, 1, %s, 1)", (fid, name)
        )


def test_postgres_counts_follow_every_change(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        _migrate(conn)
        _pg_folders(conn)
        _walk(conn.execute, "%s", "NOT d.seen", steps=250)


def test_postgres_migration_counts_the_mail_already_there(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        _migrate(conn, upto=20)
        _pg_folders(conn)
        for i in range(1, 8):
            conn.execute("INSERT INTO message(id, pid, created, size) VALUES (%s, %s, 0, 1)", (i, f"P{i}"))
            conn.execute(
                "INSERT INTO delivery(folder_id, uid, message, seen) VALUES (%s, %s, %s, %s)",
                (i % 2 + 1, i, i, i % 3 == 0),
            )
        _migrate(conn, after=20)
        assert conn.execute(_KEPT).fetchall() == [(1, 3, 2), (2, 4, 3)]
