"""The SQLite store's writer keeps an ingest transaction's statement journals in memory.

Each statement that may stop halfway (an INSERT into ``message``, with its 13 indexes and
the conversation triggers) keeps the pages it changes in a statement journal, which SQLite
writes to a temporary file once it passes 64 KiB: an INSERT of one message did, so every
later statement of the transaction wrote each page it touched to that file too (~37 more
write system calls per message from a burst of SMTP mail, issue 15).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store import sqlite_background
from postroom.store.base import Envelope
from postroom.store.sqlite import SQLiteStore
from postroom.store.sqlite_jobs import _Call
from postroom.store.sqlite_writes import Writes

BODY = ("<p>" + "lorem ipsum dolor sit amet " * 300 + "</p>\r\n").encode()


def message(i: int) -> bytes:
    return (
        f"From: Shop {i} <shop{i}@example.com>\r\nTo: Alice <alice{i % 7}@example.org>\r\n"
        f"Subject: Your order #{i} has shipped\r\nMessage-ID: <order-{i}@example.com>\r\n"
        f"Date: Sat, 21 Nov 2026 10:{i % 60:02d}:00 +0000\r\nContent-Type: text/html\r\n\r\n"
    ).encode() + BODY


def write_syscalls(store: SQLiteStore) -> int:
    """Write system calls of the store's writer thread so far (not the checkpoint's or the
    indexer's: a checkpoint that happened to run during the burst copied thousands of WAL
    pages, ~10 more a message, and failed the bound now and then under load)."""
    writer = store._writer  # this store's (other tests' stores may have writers still ending)
    assert writer is not None and writer.native_id is not None
    tid = writer.native_id
    for line in Path(f"/proc/self/task/{tid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/self/task/*/io")


def test_an_ingest_batch_writes_no_temporary_statement_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the writer's own checkpoints (past WRITER_CHECKPOINT_PAGES) copy pages: not counted
    monkeypatch.setattr(sqlite_background, "WRITER_CHECKPOINT_PAGES", 1_000_000)

    async def main() -> float:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread"), bus)
        store.start()
        # since SQLite 0021 a delivery's INSERT fires no trigger, and an INSERT of one row
        # with none keeps no statement journal: a trigger of its own makes it keep one again
        # (any trigger added later would), so the journal's place is what is measured here
        with sqlite3.connect(str(tmp_path / "s.db")) as conn:
            conn.execute("CREATE TRIGGER journaled AFTER INSERT ON message BEGIN SELECT 1; END")
        try:

            async def burst(first: int, n: int) -> None:
                await asyncio.gather(
                    *(store.deliver(Envelope("shop@example.com", (f"alice{i % 7}@example.org",)), message(i))
                      for i in range(first, first + n))
                )  # fmt: skip
                assert store.list_messages(limit=1).total == first + n  # waits until applied

            await burst(0, 400)  # indexes past their first pages
            before = write_syscalls(store)
            await burst(400, 400)
            return (write_syscalls(store) - before) / 400
        finally:
            store.close()

    per_message = asyncio.run(main())
    # the journal append and the WAL's frames (a header and a page each) take ~10
    assert per_message < 20, f"{per_message:.1f} write system calls per message"


def test_a_batch_with_other_changes_keeps_the_file_on_a_connection_taken_over(tmp_path: Path) -> None:
    """A throwaway store's writer may take over an earlier store's connection
    (sqlite_recycle.py): the setting follows what the connection has, not what the store
    last set on a connection of its own."""
    conn = sqlite3.connect(str(tmp_path / "s.db"), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=0")

    def temp_store() -> int:
        value = conn.execute("PRAGMA temp_store").fetchone()[0]
        conn.execute("COMMIT")
        return int(value)

    bulk = [_Call(lambda c: None, concurrent.futures.Future())]  # rows not said: taken as many
    first = Writes(None)  # type: ignore[arg-type]  # begin() uses only the connection
    first.begin(conn, [])
    assert temp_store() == 2  # MEMORY
    second = Writes(None)  # type: ignore[arg-type]
    second.begin(conn, bulk)
    assert temp_store() == 0  # SQLite's default: a file past 64 KiB
    second.begin(conn, [])
    assert temp_store() == 2
    conn.close()


def test_mail_queued_with_other_changes_keeps_its_statement_journals_in_memory(tmp_path: Path) -> None:
    """A batch of the writer that holds new mail and other changes (an API call, the thread
    indexer's results) commits the mail in a transaction of its own: in one with the other
    changes, every statement of the mail wrote its pages to the temporary file."""

    async def main() -> float:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread"), bus)
        store.start()
        try:
            env = Envelope("shop@example.com", ("alice@example.org",))
            await asyncio.gather(*(store.deliver(env, message(i)) for i in range(400)))
            assert store.list_messages(limit=1).total == 400
            held, release = threading.Event(), threading.Event()

            def hold(_conn: sqlite3.Connection) -> None:  # the writer's current batch
                held.set()
                release.wait(10)

            loop = asyncio.get_running_loop()
            holding = loop.run_in_executor(None, store.db.write, hold)
            await loop.run_in_executor(None, held.wait, 10)
            # queued meanwhile, so the next batch takes them together: a change, then mail
            change = asyncio.ensure_future(store.db.write_async(lambda c: c.execute("SELECT 1")))
            mail = [asyncio.ensure_future(store.deliver(env, message(i))) for i in range(400, 700)]
            await asyncio.sleep(0.2)  # the deliveries are queued (journaled, then handed over)
            before = write_syscalls(store)
            release.set()
            await holding
            await asyncio.gather(change, *mail)
            assert store.list_messages(limit=1).total == 700
            return (write_syscalls(store) - before) / 300
        finally:
            store.close()

    per_message = asyncio.run(main())
    assert per_message < 20, f"{per_message:.1f} write system calls per message"  # ~45 before
