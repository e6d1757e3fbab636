"""Contract: concurrent ingest and changes keep UIDs unique and ascending, and lose nothing."""

from __future__ import annotations

import asyncio
import threading

from postroom.events import MessageStored
from postroom.store.base import INBOX, Envelope

from .conftest import Backend, message

N = 120


def test_concurrent_deliveries_get_unique_ascending_uids(backend: Backend) -> None:
    async def burst() -> list[str]:
        envs = [Envelope("s@example.com", ("alice@example.org", f"u{i % 3}@example.org")) for i in range(N)]
        return await asyncio.gather(*(backend.store.deliver(e, message(f"m{i}")) for i, e in enumerate(envs)))

    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:  # readers and API changes run while the writer is busy
        try:
            while not stop.is_set():
                backend.store.list_messages(limit=5)
                backend.store.set_read(None, True, mailbox="u0@example.org")
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    try:
        ids = backend.run(burst())
    finally:
        stop.set()
        t.join()
    assert not errors
    assert len(set(ids)) == N
    entries = backend.store.folder_entries("alice@example.org", INBOX)
    assert [e.uid for e in entries] == list(range(1, N + 1))
    assert sorted(e.id for e in entries) == sorted(ids)
    for box in range(3):
        uids = [e.uid for e in backend.store.folder_entries(f"u{box}@example.org", INBOX)]
        assert uids == list(range(1, len(uids) + 1)) and len(uids) == N // 3
    assert backend.store.list_messages(limit=0).total == N
    placed = [p for e in backend.events(MessageStored) for p in e.placed if p.mailbox == "alice@example.org"]
    assert sorted(p.uid for p in placed) == list(range(1, N + 1))


def test_flag_changes_from_threads_each_get_their_own_modseq(backend: Backend) -> None:
    for i in range(8):
        backend.deliver(message(f"m{i}"))

    def flag(uid: int) -> int:
        (entry,) = backend.store.update_flags(
            "alice@example.org", INBOX, [uid], frozenset({"\\Flagged"}), "add"
        )
        return entry.modseq

    results: list[int] = []
    threads = [threading.Thread(target=lambda u=u: results.append(flag(u))) for u in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 8  # RFC 7162: distinct changes, distinct MODSEQs
    info = backend.store.folder_info("alice@example.org", INBOX)
    assert info is not None and info.highestmodseq >= max(results)
