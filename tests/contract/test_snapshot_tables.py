"""What IMAP's shared listings (servers/imap/snapshots.py) keep beside the listings stays
bounded by them: a folder's heard flag changes go once it has no listing to grow (they
used to outlive both tables and collect up to 1,000 entries per such folder), and its
generation once nothing holds it (one int per folder ever changed, before). A read under
way while its folder changes is still not kept (a generation is never given twice)."""

from __future__ import annotations

import pytest

from postroom.events import FolderChanged
from postroom.servers.imap.snapshots import Snapshot, Snapshots
from postroom.store.base import INBOX, Entry, FolderInfo

from .conftest import Backend, message

F, G, H = "f@example.org", "g@example.org", "h@example.org"


def info_of(backend: Backend, mailbox: str) -> FolderInfo:
    info = backend.store.folder_info(mailbox, INBOX)
    assert info is not None
    return info


def test_heard_changes_and_generations_go_with_the_folders_listings(backend: Backend) -> None:
    for box in (F, G, H):
        backend.deliver(message(f"to {box}"), box)
    snaps = Snapshots(backend.store, max_folders=2)
    snaps.get(info_of(backend, F))  # F's keyed listing: its growth base
    snaps.changed(F, INBOX)  # retired: F grows from it
    snaps.current(F, INBOX)  # a sync's listing (no key) kept beside it
    for box in (G, H):
        snaps.get(info_of(backend, box))
        snaps.changed(box, INBOX)  # the third retired pushes F's growth base out
    assert (F, INBOX) not in snaps._stale and (F, INBOX) in snaps._kept
    assert (F, INBOX) not in snaps._heard  # nothing to grow: nothing to hear for
    snaps.changed(F, INBOX)  # F's sync listing goes too: nothing of F is kept
    for _ in range(3):
        snaps.on_event(FolderChanged(F, INBOX, "expunge", (1,)))
    assert (F, INBOX) not in snaps._heard and (F, INBOX) not in snaps._gens
    # folders changed but never read leave nothing behind
    for i in range(50):
        snaps.changed(f"u{i}@example.org", INBOX)
    assert len(snaps._gens) <= 2 * snaps.max_folders and len(snaps._heard) <= 2 * snaps.max_folders
    assert set(snaps._heard) <= set(snaps._stale) | set(snaps._kept)


def test_a_read_during_a_change_is_not_kept_though_the_generation_was_dropped(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.deliver(message("one"), F)
    snaps = Snapshots(backend.store, max_folders=1)
    real = backend.store.folder_entries
    read: list[Snapshot] = []

    def during(mailbox: str, folder: str, *rest: int) -> list[Entry]:
        out = real(mailbox, folder, *rest)
        if not read:
            read.append(Snapshot.build(None, 0, 0, []))
            snaps.changed(F, INBOX)  # a change while F's listing is read
            snaps.changed(G, INBOX)  # and changes elsewhere
        return out

    with monkeypatch.context() as m:
        m.setattr(backend.store, "folder_entries", during)
        snaps.current(F, INBOX)
    assert snaps.peek_current(F, INBOX) is None  # read before the change: not kept as current
    assert (F, INBOX) not in snaps._gens  # and nothing left behind once the read ended
    fresh = snaps.current(F, INBOX)
    assert snaps.peek_current(F, INBOX) is fresh
