"""A small writer transaction of the SQLite store keeps its statement journals in memory.

An IMAP STORE or EXPUNGE of a few messages runs in a savepoint of the writer's transaction,
whose journal holds each page the call changes; past 64 KiB SQLite wrote it to a temporary
file, created and unlinked per transaction (issue 19). The transaction's ``temp_store``
(read by a probe queued in the same writer batch, so inside that transaction) is MEMORY
when its calls change few rows, and stays SQLite's default (a file) for a bulk change.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from postroom.config import Settings
from postroom.events import Bus
from postroom.store.base import INBOX, Envelope
from postroom.store.sqlite import SQLiteStore
from postroom.store.sqlite_jobs import SMALL_WRITE_ROWS

MEMORY, DEFAULT = 2, 0
BOX = "alice@example.org"


def message(i: int) -> bytes:
    return (
        f"From: Shop {i} <shop{i}@example.com>\r\nTo: Alice <{BOX}>\r\nSubject: order {i}\r\n"
        f"Message-ID: <order-{i}@example.com>\r\n\r\n" + "lorem ipsum dolor sit amet\r\n" * 40
    ).encode()


async def temp_store_of(store: SQLiteStore, change: Callable[[], Awaitable[Any]]) -> int:
    """``temp_store`` inside the writer transaction that runs ``change``: the writer is held
    while the change and a probe (which says it changes no rows) are queued, so its next
    batch, one transaction, takes both."""
    held, release = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection) -> None:
        held.set()
        release.wait(10)

    loop = asyncio.get_running_loop()
    holding = loop.run_in_executor(None, store.db.write, hold)
    await loop.run_in_executor(None, held.wait, 10)
    changed = asyncio.ensure_future(change())
    probe = asyncio.ensure_future(
        store.db.write_async(lambda c: int(c.execute("PRAGMA temp_store").fetchone()[0]), rows=0)
    )
    await asyncio.sleep(0.1)  # both queued
    release.set()
    await holding
    await changed
    return int(await probe)


def run(tmp_path: Path, messages: int, body: Callable[[SQLiteStore], Awaitable[None]]) -> None:
    async def main() -> None:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(
            str(tmp_path / "s.db"), Settings(indexer="thread", imap="off", imaps="off"), bus
        )  # no IMAP data jobs
        store.start()
        try:
            env = Envelope("shop@example.com", (BOX,))
            await asyncio.gather(*(store.deliver(env, message(i)) for i in range(messages)))
            assert store.list_messages(limit=1).total == messages  # waits until applied
            # the indexer's results go through the writer too (a call not saying its rows)
            assert await asyncio.to_thread(store.wait_indexed)
            await body(store)
        finally:
            store.close()

    asyncio.run(main())


def test_a_small_store_and_expunge_keep_their_statement_journals_in_memory(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        deleted = frozenset({"\\Deleted"})
        assert await temp_store_of(
            store, lambda: store.update_flags_async(BOX, INBOX, [1, 2, 3], deleted, "add")
        ) == MEMORY  # fmt: skip
        assert await temp_store_of(store, lambda: store.expunge_async(BOX, INBOX, None)) == MEMORY
        assert [e.uid for e in store.folder_view.folder_entries(BOX, INBOX)][:2] == [4, 5]
        await store.update_flags_async(BOX, INBOX, [4, 5], deleted, "add")
        assert await temp_store_of(store, lambda: store.expunge_async(BOX, INBOX, [4])) == MEMORY
        assert await temp_store_of(store, lambda: store.expunge_async(BOX, INBOX, None)) == MEMORY
        assert [e.uid for e in store.folder_view.folder_entries(BOX, INBOX)][:1] == [6]

    run(tmp_path, 40, body)


def test_a_bulk_flag_change_and_expunge_keep_the_file(tmp_path: Path) -> None:
    n = SMALL_WRITE_ROWS + 50

    async def body(store: SQLiteStore) -> None:
        uids = list(range(1, n + 1))
        deleted = frozenset({"\\Deleted"})
        assert await temp_store_of(
            store, lambda: store.update_flags_async(BOX, INBOX, uids, deleted, "add")
        ) == DEFAULT  # fmt: skip
        # an EXPUNGE of the folder's \Deleted: counted before the transaction
        assert await temp_store_of(store, lambda: store.expunge_async(BOX, INBOX, None)) == DEFAULT
        assert store.folder_view.folder_entries(BOX, INBOX) == []
        # a change that does not say how many rows it changes (a folder's deletion, ...)
        assert await temp_store_of(store, lambda: store.db.write_async(lambda c: None)) == DEFAULT
        # and a small one after them is in memory again
        assert await temp_store_of(
            store, lambda: store.db.write_async(lambda c: None, rows=1)
        ) == MEMORY  # fmt: skip

    run(tmp_path, n, body)
