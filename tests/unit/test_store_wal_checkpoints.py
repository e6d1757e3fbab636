"""The SQLite writer's commits leave most checkpoints to the checkpoint thread and bound the
WAL (issue 15).

SQLite's default runs a checkpoint inside the COMMIT that takes the WAL past 1,000 pages
(copying pages into the database and ``fdatasync``): during a burst the writer did that
every ~25 transactions. The checkpoint thread copies the WAL every CHECKPOINT_INTERVAL, but
its PASSIVE checkpoints run while the writer commits and so never let the WAL restart during
a burst: the writer's COMMIT checkpoints past WRITER_CHECKPOINT_PAGES, which completes, and
the WAL is written from its start again (docs/architecture.md, "Checkpoints off the commit
path").
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store import sqlite_background
from postroom.store.base import Envelope
from postroom.store.sqlite import SQLiteStore


def message(i: int) -> bytes:
    body = base64.encodebytes(random.Random(i).randbytes(4096))  # ~4 KiB stored: not compressible
    return (
        f"From: Shop <shop{i}@example.com>\r\nTo: Alice <alice@example.org>\r\n"
        f"Subject: Your order #{i} has shipped\r\nMessage-ID: <order-{i}@example.com>\r\n\r\n"
    ).encode() + body


def burst(path: Path, count: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, int, int, int]:
    """Deliver ``count`` messages in transactions of up to 50; returns the database's size at
    the start and the end, the WAL's largest size seen after a transaction and at the end (in
    pages), and the writer's wal_autocheckpoint. No indexer: its writes would add pages, as
    many as it has found time for."""
    monkeypatch.setattr(sqlite_background.Background, "start_indexer", lambda self: None)

    async def main() -> tuple[int, int, int, int, int]:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(path), Settings(indexer="thread"), bus)
        store.start()
        try:
            start = os.path.getsize(path)
            env = Envelope("shop@example.com", ("alice@example.org",))
            largest = 0
            for first in range(0, count, 50):
                await asyncio.gather(*(store.deliver(env, message(i)) for i in range(first, first + 50)))
                assert store.list_messages(limit=1).total == first + 50  # waits until applied
                largest = max(largest, os.path.getsize(str(path) + "-wal") // 4096)
            pages = os.path.getsize(str(path) + "-wal") // 4096
            setting = store.db.write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            return start, os.path.getsize(path), largest, pages, setting
        finally:
            store.close()

    return asyncio.run(main())


def test_the_writers_commits_leave_checkpoints_to_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_background, "CHECKPOINT_INTERVAL", 600.0)  # the thread waits
    start, end, _, wal_pages, setting = burst(tmp_path / "s.db", 600, monkeypatch)
    assert 1000 < wal_pages < sqlite_background.WRITER_CHECKPOINT_PAGES  # SQLite's own would have run
    assert end == start  # nothing copied into the database but by the checkpoint thread
    assert setting == sqlite_background.WRITER_CHECKPOINT_PAGES


def test_the_wal_is_bounded_when_the_threads_checkpoints_do_not_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checkpoint thread waits (as if each of its checkpoints ended with frames written
    # after it began, as during a burst): the writer's own checkpoint restarts the WAL.
    monkeypatch.setattr(sqlite_background, "CHECKPOINT_INTERVAL", 600.0)
    monkeypatch.setattr(sqlite_background, "WRITER_CHECKPOINT_PAGES", 400)
    start, end, largest, _, setting = burst(tmp_path / "s.db", 2000, monkeypatch)
    # ~1.7 pages a message, ~3,400 in all; a transaction is ~90 pages and a restart waits
    # for a transaction that begins after the checkpoint with no reader on an older snapshot
    assert largest < 3 * 400
    assert end > start + 2000 * 4096  # copied by the writer's checkpoints
    assert setting == 400
