"""The listing tables that change in proportion to the change (servers/imap/listing.py,
issue 19: SELECT after one new message or one flag change copied every table of a
100,000-message folder). Structural checks, not timings: which objects are shared."""

from __future__ import annotations

import random

import pytest

from postroom.servers.imap import snapshots
from postroom.servers.imap.listing import Recent, Uids
from postroom.servers.imap.snapshots import MIN_PATCH, Snapshot, patch_limit
from postroom.servers.imap.tracker import RecentClaims, Tracker
from postroom.store.base import Entry


def entry(uid: int, flags: set[str] | frozenset[str] = frozenset(), modseq: int = 1) -> Entry:
    return Entry(uid, f"id{uid}", frozenset(flags), 100, 0.0, modseq)


def big(n: int) -> Snapshot:
    return Snapshot.build((1, n + 1, n, 1), 0, 1, [entry(u, {"\\Seen"}) for u in range(1, n + 1)])


def test_new_mail_is_appended_to_the_shared_uid_array_not_copied() -> None:
    """A listing grown by one new message shares the array (appended in place) and the
    base entries; the older listing and a tracker of it still see only their own UIDs."""
    old = big(10_000)
    seen_by = Tracker.from_snapshot(old)
    grown = old.grown((1, 10_002, 10_001, 2), -1, 2, [entry(10_001, modseq=2)])
    assert grown.uids.arr is old.uids.arr and grown.base is old.base
    assert len(grown.uids) == 10_001 and grown.uids.top == 10_001 and grown.get(10_001) is not None
    assert len(old.uids) == 10_000 and old.uids.top == 10_000 and old.get(10_001) is None
    assert seen_by.exists == 10_000 and seen_by.get(10_001) is None and list(seen_by.uids)[-1] == 10_000
    assert grown.patch == {10_001: entry(10_001, modseq=2)} and old.patch == {}
    assert grown.first_unseen == 10_001 and grown.highest_modseq == 2
    # a flag change: a new patch of one entry, the array and base shared still
    again = grown.grown((1, 10_002, 10_001, 3), -1, 3, [], [entry(5, set(), 3)])
    assert again.uids.arr is old.uids.arr and again.base is old.base
    assert again.patch.keys() == {5, 10_001} and again.first_unseen == 5
    assert again.entry(5).flags == frozenset() and grown.entry(5).flags == {"\\Seen"}


def test_select_of_a_grown_listing_copies_nothing_even_with_every_message_recent() -> None:
    """SELECT after new mail: the tracker shares the grown listing's tables, and \\Recent
    for the whole folder (a SELECT after only EXAMINEs) is a range, not a table."""
    old = big(10_000)
    grown = old.grown((1, 10_002, 10_001, 2), -1, 2, [entry(10_001, modseq=2)])
    claims = RecentClaims()
    key = ("box", "INBOX", 1)
    t = Tracker.from_snapshot(grown)
    t.set_recent(claims.claim_above(key, grown.uids.top, readonly=False))
    assert t.uids.arr is old.uids.arr and t.base is old.base and t.over is grown.patch
    assert t.recent_count == 10_001 and t.flags_of(1) == {"\\Seen", "\\Recent"}
    assert grown.entry(1).flags == {"\\Seen"}  # the shared entry has no \Recent
    # \Recent is given to one session only: the next SELECT gets none, an EXAMINE none
    other = Tracker.from_snapshot(grown)
    other.set_recent(claims.claim_above(key, grown.uids.top, readonly=False))
    assert other.recent_count == 0 and other.flags_of(1) == {"\\Seen"}
    # an expunge of a recent message leaves the range, one claimed later the extra set
    assert t.remove([3]) == [b"* 3 EXPUNGE\r\n"] and t.recent_count == 10_000
    assert t.extend([entry(10_002, modseq=3)], lambda uids: set(uids)) == [
        b"* 10001 EXISTS\r\n",
        b"* 10001 RECENT\r\n",
    ]
    assert t.remove([10_002]) == [b"* 10001 EXPUNGE\r\n"] and t.recent_count == 10_000
    assert t.base is old.base


def test_a_tracker_that_appended_first_makes_the_listing_copy_its_array() -> None:
    """Two holders of one array both add the same next UID: the first appends in place,
    the second copies its prefix (it must not see the first's entries or UIDs)."""
    old = big(100)
    t = Tracker.from_snapshot(old)
    t.set_recent(Recent())
    t.extend([entry(101, {"$mine"}, 5)])
    assert t.uids.arr is old.uids.arr and t.uids == list(range(1, 102))
    grown = old.grown((1, 103, 102, 6), -1, 2, [entry(101, set(), 6), entry(102, set(), 6)])
    assert grown.uids.arr is not old.uids.arr and grown.uids == list(range(1, 103))
    assert t.uids == list(range(1, 102)) and t.flags_of(101) == {"$mine"}
    assert grown.entry(101).flags == frozenset() and len(old.uids) == 100
    # a growth by the very UIDs the tracker appended takes them as they are (no copy);
    # the entries are each holder's own
    same = old.grown((1, 102, 101, 7), -1, 3, [entry(101, {"$b"}, 7)])
    assert same.uids.arr is old.uids.arr and same.uids == list(range(1, 102))
    assert same.entry(101).flags == {"$b"} and t.flags_of(101) == {"$mine"}
    assert grown.entry(101).flags == frozenset() and len(old.uids) == 100


def test_uids_extend_in_place_only_at_the_arrays_end() -> None:
    a = Uids([1, 2, 3])
    b = a.share()
    a.extend([4])
    assert a.arr is b.arr and a == [1, 2, 3, 4] and b == [1, 2, 3] and len(b) == 3
    b.extend([7])
    assert b.arr is not a.arr and b == [1, 2, 3, 7] and a == [1, 2, 3, 4]
    d = Uids([1, 2, 3])
    d.arr = a.arr  # a holder of a's first three whose next UID is the one a appended
    d.extend([4])
    assert d.arr is a.arr and d == [1, 2, 3, 4]
    d.n = 3
    d.extend([5])  # not the one appended there: a copy
    assert d.arr is not a.arr and d == [1, 2, 3, 5] and a == [1, 2, 3, 4]
    c = a.share()
    c.without([0, 2])
    assert c == [2, 4] and a == [1, 2, 3, 4] and c.arr is not a.arr
    assert list(b) == [1, 2, 3, 7] and b.seq_of(7) == 4 and b.seq_of(4) == 0 and b.slice(1, 99) == [2, 3, 7]


def test_a_long_patch_is_merged_into_a_new_base_once() -> None:
    """Flag changes accumulate in the patch; past patch_limit it is merged into a new base
    (a copy once per that many changes), and the older listings keep theirs."""
    snap = first = big(2000)
    limit = patch_limit(2000)
    for i in range(limit + 1):
        snap = snap.grown((1, 2001, 2000, i + 2), -1, i + 2, [], [entry(1 + i, {"$k"}, i + 2)])
        if i < limit:
            assert snap.base is first.base and len(snap.patch) == i + 1
    assert snap.base is not first.base and snap.patch == {} and first.entry(1).flags == {"\\Seen"}
    assert snap.entry(1).flags == {"$k"} and snap.entry(limit + 2).flags == {"\\Seen"}
    assert snap.uids.arr is first.uids.arr and snap.keywords == {"$k"} and snap.first_unseen == 1


@pytest.mark.parametrize("min_patch", [MIN_PATCH, 8])
def test_a_grown_listing_is_what_a_new_read_would_be(min_patch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random new messages, flag changes and expunges: each grown listing equals one built
    from the folder as it is then (UIDs, entries, first unseen, keywords in use, highest
    MODSEQ; a keyword of an expunged message may stay); with a small patch limit, merged
    into new bases many times."""
    monkeypatch.setattr(snapshots, "MIN_PATCH", min_patch)
    rng = random.Random(19)
    flags_pool = [set(), {"\\Seen"}, {"\\Seen", "$a"}, {"\\Flagged"}, {"$b"}]
    folder = {u: entry(u, rng.choice(flags_pool), 1) for u in range(1, 41)}
    snap = Snapshot.build(None, 0, 1, list(folder.values()))
    modseq, top = 1, 40
    for step in range(300):
        added: list[Entry] = []
        reflagged: list[Entry] = []
        for _ in range(rng.randrange(3)):
            top += 1
            modseq += 1
            added.append(folder.setdefault(top, entry(top, rng.choice(flags_pool), modseq)))
        for u in rng.sample(sorted(folder), rng.randrange(4)):
            if u in {e.uid for e in added}:
                continue
            modseq += 1
            folder[u] = entry(u, rng.choice(flags_pool), modseq)
            reflagged.append(folder[u])
        expunged = rng.sample(sorted(u for u in folder if u <= snap.uids.top), rng.randrange(3) // 2)
        for u in expunged:
            del folder[u]
        reflagged = [e for e in reflagged if e.uid not in expunged]
        snap = snap.grown((1, top + 1, len(folder), modseq), -1, step + 2, added, reflagged, expunged)
        fresh = Snapshot.build(None, 0, 0, [folder[u] for u in sorted(folder)])
        assert snap.uids == fresh.uids and snap.as_dict() == fresh.as_dict(), step
        assert snap.first_unseen == fresh.first_unseen, step
        assert snap.keywords >= fresh.keywords and snap.highest_modseq >= fresh.highest_modseq
        assert [snap.get(u) for u in range(1, top + 2)] == [folder.get(u) for u in range(1, top + 2)]


def test_shared_arrays_never_show_one_holder_anothers_changes() -> None:
    """Random new mail, expunges and flag changes over a lineage of listings and several
    sessions' trackers, all sharing one UID array where they can: each holder's UIDs,
    entries and EXPUNGE numbers are those of a plain model of its own history."""
    rng = random.Random(1919)
    folder = {u: entry(u, {"\\Seen"} if u % 3 else set(), 1) for u in range(1, 31)}
    snap = Snapshot.build((1, 31, 30, 1), 0, 1, list(folder.values()))
    holders: list[tuple[Tracker, dict[int, Entry]]] = []  # a tracker and its model
    kept: list[tuple[Snapshot, list[int], dict[int, Entry]]] = [(snap, sorted(folder), dict(folder))]
    top, modseq = 30, 1
    for step in range(400):
        op = rng.randrange(5)
        if op == 0 or not holders:  # a session selects the newest listing
            t = Tracker.from_snapshot(snap)
            holders.append((t, snap.as_dict()))
        elif op == 1:  # new mail: the listing grows; some sessions hear of it first
            top += 1
            modseq += 1
            new = entry(top, rng.choice([set(), {"$n"}]), modseq)
            folder[top] = new
            for t, model in rng.sample(holders, rng.randrange(len(holders) + 1)):
                if t.largest_uid == top - 1 or rng.random() < 0.5:
                    t.extend([new])
                    model[top] = new
            snap = snap.grown((1, top + 1, len(folder), modseq), -1, step + 2, [new])
            kept.append((snap, sorted(folder), dict(folder)))
        elif op == 2:  # a session expunges some of what it knows
            t, model = rng.choice(holders)
            gone = rng.sample(sorted(model), min(len(model), rng.randrange(3)))
            expected = [
                b"* %d EXPUNGE\r\n" % (sorted(model).index(u) + 1) for u in sorted(gone, reverse=True)
            ]
            assert t.remove(gone) == expected, step
            for u in gone:
                del model[u]
        else:  # a session changes a flag
            t, model = rng.choice(holders)
            if model:
                modseq += 1
                u = rng.choice(sorted(model))
                e = entry(u, {"$k"}, modseq)
                t.take(e)
                model[u] = e
        for t, model in holders:
            assert list(t.uids) == sorted(model), step
            assert t.entries_of(t.uids) == [model[u] for u in sorted(model)], step
        for s, uids, entries in kept:
            assert list(s.uids) == uids and s.as_dict() == entries, step
