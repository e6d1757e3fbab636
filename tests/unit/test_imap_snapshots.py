"""The IMAP tracker against shared folder listings (servers/imap/snapshots.py): a listing
read before a change the client has already seen never takes flags or MODSEQ back."""

from __future__ import annotations

from postroom.servers.imap.snapshots import Snapshot
from postroom.servers.imap.tracker import Tracker
from postroom.store.base import Entry


def entry(uid: int, flags: set[str], modseq: int) -> Entry:
    return Entry(uid, f"id{uid}", frozenset(flags), 100, 0.0, modseq)


def test_an_older_listing_does_not_take_flags_or_modseq_back() -> None:
    old = Snapshot.build(None, 0, 1, [entry(1, set(), 1), entry(2, set(), 1)])
    t = Tracker.from_snapshot(old)
    t.set_recent(set())
    # the session's own STORE: the client saw \Flagged at MODSEQ 7
    t.take(entry(1, {"\\Flagged"}, 7))
    assert t.sync(old, allow_expunge=True, with_uid=True, condstore=True) == []
    assert t.flags[1] == {"\\Flagged"} and t.entries[1].modseq == 7
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
    t.set_recent({4})
    assert t.flags[4] == {"\\Recent"} and snap.flags[4] == frozenset()  # the shared table is not changed


def test_select_shares_the_listing_until_the_session_changes_something() -> None:
    """SELECT costs the same at any folder size: a tracker uses the snapshot's tables (a
    copy of 100,000 entries' took ~30 ms), and copies them at its first change only, so
    neither the snapshot nor another session sees it."""
    snap = Snapshot.build(None, 0, 1, [entry(u, set(), 1) for u in range(1, 6)])
    a, b = Tracker.from_snapshot(snap), Tracker.from_snapshot(snap)
    for t in (a, b):
        t.set_recent(set())
        assert t.uids is snap.uids and t.flags is snap.flags and t.entries is snap.entries
    # a listing with nothing new leaves the tables shared
    assert a.sync(snap, allow_expunge=True, with_uid=False, condstore=False) == []
    assert a.flags is snap.flags
    a.take(entry(2, {"\\Seen"}, 4))
    assert a.remove([5]) == [b"* 5 EXPUNGE\r\n"]
    assert a.extend([entry(9, set(), 5)]) == [b"* 5 EXISTS\r\n", b"* 0 RECENT\r\n"]
    assert a.uids == [1, 2, 3, 4, 9] and a.flags[2] == {"\\Seen"} and a.modseq[2] == 4
    assert snap.uids == b.uids == [1, 2, 3, 4, 5] and snap.flags[2] == b.flags[2] == frozenset()
    assert 9 not in snap.entries and snap.modseq[2] == 1
    # a sync that changes flags copies too
    newer = Snapshot.build(
        None, 1, 2, [entry(u, {"$x"} if u == 3 else set(), 6 if u == 3 else 1) for u in range(1, 6)]
    )
    assert b.sync(newer, allow_expunge=True, with_uid=False, condstore=False) == [
        b"* 3 FETCH (FLAGS ($x))\r\n"
    ]
    assert snap.flags[3] == frozenset() and newer.flags[3] == {"$x"} and b.flags is not newer.flags


def test_changes_from_events_on_a_shared_listing() -> None:
    """Another session expunged message 2 and re-flagged it and message 3 before: the
    expunge copies the shared tables, and the flag change of the gone message is dropped
    (no ``* 0 FETCH``)."""
    snap = Snapshot.build(None, 0, 1, [entry(u, set(), 1) for u in range(1, 4)])
    t = Tracker.from_snapshot(snap)
    t.set_recent(set())
    out = t.apply(
        [entry(2, {"\\Seen"}, 3), entry(3, {"\\Seen"}, 4)],
        [2],
        allow_expunge=True,
        with_uid=False,
        condstore=False,
    )
    assert out == [b"* 2 EXPUNGE\r\n", b"* 2 FETCH (FLAGS (\\Seen))\r\n"]
    assert snap.uids == [1, 2, 3] and snap.flags[3] == frozenset()
