"""Contract: concurrent ingest and changes keep UIDs unique and ascending, and lose nothing."""

from __future__ import annotations

import asyncio
import threading

from postroom.events import FolderChanged, MessageStored
from postroom.store.base import INBOX, Envelope, NotFound

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


def test_flag_changes_and_expunges_from_many_tasks_are_all_committed(backend: Backend) -> None:
    """Many sessions' STOREs and EXPUNGEs at once (the event loop's API, which SQLite groups
    into shared commits): each answer comes after its change is committed and is exactly its
    own change; every change is there when read back, and after a restart."""
    box = "alice@example.org"
    for i in range(40):
        backend.deliver(message(f"m{i}"))
    backend.clear_events()

    async def flag(uid: int) -> tuple[int, list[int], bool]:
        kw = frozenset({f"k{uid}", "\\Deleted" if uid % 4 == 0 else "\\Flagged"})
        (entry,) = await backend.store.update_flags_async(box, INBOX, [uid], kw, "add")
        # committed before the answer: a reader sees it at once
        seen = {e.uid: e for e in await asyncio.to_thread(backend.store.folder_entries, box, INBOX)}
        return entry.modseq, sorted(entry.flags), seen[uid].flags == entry.flags

    async def burst() -> tuple[list[tuple[int, list[int], bool]], list[list[int]]]:
        flagged = await asyncio.gather(*(flag(u) for u in range(1, 41)))
        gone = await asyncio.gather(*(backend.store.expunge_async(box, INBOX, [u]) for u in range(1, 41)))
        return flagged, gone

    flagged, gone = backend.run(burst())
    assert len({m for m, _, _ in flagged}) == 40  # RFC 7162: distinct changes, distinct MODSEQs
    for uid, (_, flags, committed) in enumerate(flagged, 1):
        assert f"k{uid}" in flags and ("\\Deleted" in flags) == (uid % 4 == 0) and committed
    assert sorted(u for g in gone for u in g) == [4 * i for i in range(1, 11)]
    assert all(g == ([u] if u % 4 == 0 else []) for u, g in enumerate(gone, 1))
    changed = backend.events(FolderChanged)
    assert sorted(u for e in changed if e.change == "flags" for u in e.uids) == list(range(1, 41))
    assert sorted(u for e in changed if e.change == "expunge" for u in e.uids) == [
        4 * i for i in range(1, 11)
    ]
    backend.reopen()
    entries = backend.store.folder_entries(box, INBOX)
    assert [e.uid for e in entries] == [u for u in range(1, 41) if u % 4]
    assert all(e.flags == {f"k{e.uid}", "\\Flagged"} for e in entries)


def test_async_flag_change_of_an_unknown_folder_fails_alone(backend: Backend) -> None:
    box = "alice@example.org"
    backend.deliver(message("m"))

    async def both() -> list[object]:
        return await asyncio.gather(
            backend.store.update_flags_async(box, "Nope", [1], frozenset({"\\Seen"}), "add"),
            backend.store.update_flags_async(box, INBOX, [1], frozenset({"\\Seen"}), "add"),
            return_exceptions=True,
        )

    bad, good = backend.run(both())
    assert isinstance(bad, NotFound)
    assert isinstance(good, list) and [e.flags for e in good] == [{"\\Seen"}]
