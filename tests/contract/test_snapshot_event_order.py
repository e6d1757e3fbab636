"""A SELECT's grown listing (servers/imap/snapshots.py) is the folder's listing whatever
order the change events reach the shared listings in, and however late: it is grown from
the heard flag changes only when they are every one between the listing's state and the
folder's (each took the folder's next MODSEQ, which its event carries), else the changed
messages are read from the database. Before, the heard changes counted as complete when
their highest MODSEQ was the folder's: sound only if events come in commit order, so a
later change heard before an earlier one hid it."""

from __future__ import annotations

import asyncio
import random

import pytest

from postroom.events import Event, FolderChanged
from postroom.servers.imap.snapshots import Snapshot, Snapshots
from postroom.store.base import INBOX, FolderInfo

from .conftest import Backend, message
from .test_folder_counts import _tables

BOX = "alice@example.org"


def queued(backend: Backend) -> list[Event]:
    """The folder change events from now on, held for the test to hand over."""
    queue: list[Event] = []
    backend.bus.subscribe(lambda e: queue.append(e) if isinstance(e, FolderChanged) else None)
    return queue


def info_now(backend: Backend) -> FolderInfo:
    backend.run(asyncio.sleep(0.01))  # let the events reach the queue
    info = backend.store.folder_info(BOX, INBOX)
    assert info is not None
    return info


def hand_over(rng: random.Random, queue: list[Event], snaps: Snapshots) -> None:
    """Some of the held events, in any order."""
    rng.shuffle(queue)
    k = rng.randint(0, len(queue))
    for ev in queue[:k]:
        snaps.on_event(ev)
    del queue[:k]


def same(got: Snapshot, backend: Backend, info: FolderInfo) -> None:
    fresh = Snapshots(backend.store).get(info)
    assert _tables(got)[:4] == _tables(fresh)[:4]
    assert got.first_unseen == fresh.first_unseen and got.highest_modseq >= fresh.highest_modseq


def test_a_later_flag_change_heard_before_an_earlier_one_does_not_hide_it(backend: Backend) -> None:
    for i in range(4):
        backend.deliver(message(f"m{i}"))
    snaps = Snapshots(backend.store)
    snaps.get(info_now(backend))  # the growth base
    queue = queued(backend)
    backend.store.update_flags(BOX, INBOX, [1], frozenset({"\\Seen"}), "add")
    backend.store.update_flags(BOX, INBOX, [2], frozenset({"\\Flagged"}), "add")
    info = info_now(backend)
    flag_events = [e for e in queue if isinstance(e, FolderChanged) and e.change == "flags"]
    assert len(flag_events) == 2
    snaps.on_event(flag_events[1])  # the second change's event only, so far
    got = snaps.get(info)
    same(got, backend, info)
    assert "\\Seen" in got.entry(1).flags and "\\Flagged" in got.entry(2).flags
    snaps.on_event(flag_events[0])  # the first, late: harmless
    backend.store.update_flags(BOX, INBOX, [3], frozenset({"$k"}), "add")
    info = info_now(backend)
    for e in reversed(queue[2:]):
        snaps.on_event(e)
    same(snaps.get(info), backend, info)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grown_listings_equal_a_fresh_read_with_events_shuffled_and_late(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(12):
        backend.deliver(message(f"m{i}"))
    snaps = Snapshots(backend.store)
    queue = queued(backend)
    grown = 0
    for step in range(120):
        entries = backend.store.folder_entries(BOX, INBOX)
        uids = [e.uid for e in entries]
        op = rng.random()
        if op < 0.4 and uids:
            flag = frozenset({rng.choice(["\\Seen", "\\Flagged", "$k", "\\Deleted"])})
            some = rng.sample(uids, min(len(uids), rng.randint(1, 3)))
            backend.store.update_flags(BOX, INBOX, some, flag, rng.choice(["add", "remove"]))
        elif op < 0.5 and uids:
            backend.store.set_read([rng.choice(entries).id], rng.random() < 0.5)
        elif op < 0.6:
            backend.store.expunge(BOX, INBOX)
        else:
            backend.deliver(message(f"n{step}"))
        if rng.random() < 0.5:
            continue
        # some events (any of them) before info is read, some after, the rest later
        hand_over(rng, queue, snaps)
        info = info_now(backend)
        hand_over(rng, queue, snaps)
        before = snaps._stale.get((BOX, INBOX))
        got = snaps.get(info)
        grown += before is not None and got.base is before.base
        same(got, backend, info)
    assert grown  # the growth path was taken, not only fresh reads
