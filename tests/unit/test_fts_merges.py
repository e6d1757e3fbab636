"""The indexer process merges FTS5 segments when idle instead of at each insert (index_worker)."""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store.index_worker import defer_fts_merges, merge_fts
from postroom.store.sqlite import SQLiteStore


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path, Settings(db=path, indexer="thread"), Bus())  # the schema
    store.start()
    store.close()
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA busy_timeout=0")
    yield c
    c.close()


@pytest.fixture
def wakeups() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


WORDS = [f"word{k}" for k in range(3000)]


def _insert_one_per_transaction(conn: sqlite3.Connection, first: int, n: int) -> None:
    """Documents of 2,500 words each: large enough that FTS5 merges at insert (it does merge
    work in proportion to what is written)."""
    rng = random.Random(first)
    for rowid in range(first, first + n):
        body = " ".join(rng.choice(WORDS) for _ in range(2500))
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO fts(rowid, subject, addresses, body, attachments) VALUES (?, ?, '', ?, '')",
            (rowid, f"subject {rowid}", f"zanzibar message {rowid} {body}"),
        )
        conn.execute("COMMIT")


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i


def _segments(conn: sqlite3.Connection) -> int:
    """FTS5's segment count, from its structure record (fts_data id 10: a 32-bit cookie, after
    a 0xFFFFFFFF marker in its newer form, then varints: levels, segments, ...)."""
    block = conn.execute("SELECT block FROM fts_data WHERE id = 10").fetchone()[0]
    start = 8 if block[:4] == b"\xff\xff\xff\xff" else 4
    _, i = _varint(block, start)
    return _varint(block, i)[0]


def _matches(conn: sqlite3.Connection, word: str) -> list[int]:
    return [r[0] for r in conn.execute("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rowid", (word,))]


def test_segments_wait_for_the_idle_merge_which_keeps_every_row(
    conn: sqlite3.Connection, wakeups: tuple[int, int]
) -> None:
    _insert_one_per_transaction(conn, 1, 30)  # FTS5's automerge at each commit
    merged_at_insert = _segments(conn)
    conn.execute("INSERT INTO fts(fts) VALUES ('delete-all')")

    defer_fts_merges(conn)
    _insert_one_per_transaction(conn, 1, 30)  # a segment per transaction, merged only in a crisis
    deferred = _segments(conn)
    assert deferred > merged_at_insert

    read_end, _ = wakeups
    assert merge_fts(conn, read_end) is False  # merged until nothing was due
    assert _segments(conn) <= merged_at_insert
    assert _matches(conn, "zanzibar") == list(range(1, 31))
    assert _matches(conn, '"message 17"') == [17]
    before = conn.total_changes
    assert merge_fts(conn, read_end) is False  # nothing left to merge
    assert conn.total_changes - before < 2
    conn.execute("INSERT INTO fts(fts, rank) VALUES ('integrity-check', 0)")


def test_a_wakeup_from_the_store_comes_before_merging(
    conn: sqlite3.Connection, wakeups: tuple[int, int]
) -> None:
    defer_fts_merges(conn)
    _insert_one_per_transaction(conn, 1, 12)
    segments = _segments(conn)
    assert segments == 12
    read_end, write_end = wakeups
    os.write(write_end, b"+")  # new mail stored: index it first
    assert merge_fts(conn, read_end) is True  # more to merge later
    assert _segments(conn) == segments
    os.read(read_end, 1)
    assert merge_fts(conn, read_end) is False
    assert _segments(conn) < segments
