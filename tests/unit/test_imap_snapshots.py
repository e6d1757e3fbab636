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
    stored = entry(1, {"\\Flagged"}, 7)
    t.flags[1], t.entries[1] = stored.flags, stored
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
