"""The IMAP tracker against shared folder listings (servers/imap/snapshots.py): a listing
read before a change the client has already seen never takes flags or MODSEQ back."""

from __future__ import annotations

from postroom.servers.imap.listing import Recent
from postroom.servers.imap.snapshots import Snapshot
from postroom.servers.imap.tracker import Tracker
from postroom.store.base import Entry


def entry(uid: int, flags: set[str], modseq: int) -> Entry:
    return Entry(uid, f"id{uid}", frozenset(flags), 100, 0.0, modseq)


def test_an_older_listing_does_not_take_flags_or_modseq_back() -> None:
    old = Snapshot.build(None, 0, 1, [entry(1, set(), 1), entry(2, set(), 1)])
    t = Tracker.from_snapshot(old)
    t.set_recent(Recent())
    # the session's own STORE: the client saw \Flagged at MODSEQ 7
    t.take(entry(1, {"\\Flagged"}, 7))
    assert t.sync(old, allow_expunge=True, with_uid=True, condstore=True) == []
    assert t.flags_of(1) == {"\\Flagged"} and t.entry(1).modseq == 7 and t.highest == 7
    newer = Snapshot.build(None, 1, 2, [entry(1, {"\\Flagged", "\\Seen"}, 9), entry(2, {"$x"}, 8)])
    assert t.sync(newer, allow_expunge=True, with_uid=True, condstore=True) == [
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen) MODSEQ (9))\r\n",
        b"* 2 FETCH (UID 2 FLAGS ($x) MODSEQ (8))\r\n",
    ]


def test_a_snapshot_lists_what_select_reports() -> None:
    snap = Snapshot.build(
        (1, 5, 3, 9), 0, 1, [entry(1, {"\\Seen"}, 2), entry(3, {"$a"}, 9), entry(4, set(), 1)]
    )
    assert snap.uids == [1, 3, 4]
    assert snap.first_unseen == 2
    assert snap.keywords == {"$a"}
    assert snap.highest_modseq == 9
    t = Tracker.from_snapshot(snap)
    t.set_recent(Recent(3, 4))
    assert t.recent_count == 1 and t.flags_of(4) == {"\\Recent"} and t.flags_of(3) == {"$a"}
    assert snap.entry(4).flags == frozenset()  # the shared table is not changed


def test_select_shares_the_listing_and_a_change_copies_only_what_it_changes() -> None:
    """SELECT costs the same at any folder size: a tracker uses the snapshot's tables, and
    a change later copies the overlay (the snapshot's patch, small) or the compact UID
    array, never the base entries, so neither the snapshot nor another session sees it."""
    snap = Snapshot.build(None, 0, 1, [entry(u, set(), 1) for u in range(1, 6)])
    a, b = Tracker.from_snapshot(snap), Tracker.from_snapshot(snap)
    for t in (a, b):
        t.set_recent(Recent())
        assert t.uids.arr is snap.uids.arr and t.base is snap.base and t.over is snap.patch
    # a listing with nothing new leaves the tables shared
    assert a.sync(snap, allow_expunge=True, with_uid=False, condstore=False) == []
    assert a.over is snap.patch
    a.take(entry(2, {"\\Seen"}, 4))
    assert a.over is not snap.patch and a.base is snap.base
    assert a.remove([5]) == [b"* 5 EXPUNGE\r\n"]
    assert a.extend([entry(9, set(), 5)]) == [b"* 5 EXISTS\r\n", b"* 0 RECENT\r\n"]
    assert a.uids == [1, 2, 3, 4, 9] and a.flags_of(2) == {"\\Seen"} and a.highest == 5
    assert a.base is snap.base  # the expunged message's entry stays in the shared base
    assert snap.uids == b.uids == [1, 2, 3, 4, 5] and snap.entry(2).flags == b.flags_of(2) == frozenset()
    assert snap.get(9) is None and b.get(9) is None and snap.entry(2).modseq == 1
    # a sync that changes flags copies the overlay only
    newer = Snapshot.build(
        None, 1, 2, [entry(u, {"$x"} if u == 3 else set(), 6 if u == 3 else 1) for u in range(1, 6)]
    )
    assert b.sync(newer, allow_expunge=True, with_uid=False, condstore=False) == [
        b"* 3 FETCH (FLAGS ($x))\r\n"
    ]
    assert snap.entry(3).flags == frozenset() and newer.entry(3).flags == {"$x"} and b.flags_of(3) == {"$x"}
    assert b.uids.arr is snap.uids.arr and b.base is snap.base


def test_changes_from_events_on_a_shared_listing() -> None:
    """Another session expunged message 2 and re-flagged it and message 3 before: the
    expunge is reported, and the flag change of the gone message is dropped (no
    ``* 0 FETCH``); a change of a UID the session does not know is left out too."""
    snap = Snapshot.build(None, 0, 1, [entry(u, set(), 1) for u in range(1, 4)])
    t = Tracker.from_snapshot(snap)
    t.set_recent(Recent())
    out = t.apply(
        [entry(2, {"\\Seen"}, 3), entry(3, {"\\Seen"}, 4), entry(7, {"\\Seen"}, 5)],
        [2, 8],
        allow_expunge=True,
        with_uid=False,
        condstore=False,
    )
    assert out == [b"* 2 EXPUNGE\r\n", b"* 2 FETCH (FLAGS (\\Seen))\r\n"]
    assert snap.uids == [1, 2, 3] and snap.entry(3).flags == frozenset()
    assert t.uids == [1, 3] and t.flags_of(3) == {"\\Seen"}
