"""The SQLite writer's commits leave checkpoints to the checkpoint thread (issue 15).

SQLite's default runs a checkpoint inside the COMMIT that takes the WAL past 1,000 pages
(copying pages into the database and ``fdatasync``): during a burst the writer did that
every ~25 transactions. The checkpoint thread copies the WAL every CHECKPOINT_INTERVAL
instead (docs/architecture.md, "Checkpoints off the commit path").
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


def test_the_writers_commits_do_not_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_background, "CHECKPOINT_INTERVAL", 600.0)  # the thread waits
    path = tmp_path / "s.db"

    async def main() -> tuple[int, int, int, int]:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(path), Settings(indexer="thread"), bus)
        store.start()
        try:
            start = os.path.getsize(path)
            env = Envelope("shop@example.com", ("alice@example.org",))
            for first in range(0, 600, 50):  # transactions of up to 50 messages
                await asyncio.gather(*(store.deliver(env, message(i)) for i in range(first, first + 50)))
            assert store.list_messages(limit=1).total == 600  # waits until applied
            pages = os.path.getsize(str(path) + "-wal") // 4096
            setting = store.db.write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            return start, os.path.getsize(path), pages, setting
        finally:
            store.close()

    start, end, wal_pages, setting = asyncio.run(main())
    assert wal_pages > 1000  # SQLite's own checkpoint would have run
    assert end == start  # nothing copied into the database but by the checkpoint thread
    assert setting == 0
