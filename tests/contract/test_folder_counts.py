"""Contract: a folder's message and unseen counts (FolderInfo.exists and .unseen: what
SELECT, STATUS and LIST report) stay right through every change, now that the store keeps
them with the folder instead of counting its deliveries on each read (issue 19: SELECT of
100,000 messages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from postroom.servers.imap.snapshots import Snapshot, Snapshots
from postroom.store.base import INBOX, Envelope

from .conftest import Backend, message

T = TypeVar("T")

BOX = "alice@example.org"


def counts(backend: Backend, folder: str, mailbox: str = BOX) -> tuple[int, int]:
    """(exists, unseen) as folder_info and folders() report them, checked against the
    folder's listing."""
    info = backend.store.folder_info(mailbox, folder)
    assert info is not None
    listed = {f.name: f for f in backend.store.folders(mailbox)}[info.name]
    entries = backend.store.folder_entries(mailbox, folder)
    actual = (len(entries), sum(1 for e in entries if "\\Seen" not in e.flags))
    assert (info.exists, info.unseen) == (listed.exists, listed.unseen) == actual
    return actual


def test_counts_follow_deliveries_flags_and_expunges(backend: Backend) -> None:
    ids = [backend.deliver(message(f"m{i}")) for i in range(4)]
    assert counts(backend, INBOX) == (4, 4)
    backend.store.update_flags(BOX, INBOX, [1, 2], frozenset({"\\Seen"}), "add")
    assert counts(backend, INBOX) == (4, 2)
    backend.store.update_flags(BOX, INBOX, [1, 2], frozenset({"\\Seen"}), "add")  # no change
    assert counts(backend, INBOX) == (4, 2)
    backend.store.update_flags(BOX, INBOX, [2], frozenset({"\\Flagged"}), "set")  # \Seen goes
    assert counts(backend, INBOX) == (4, 3)
    backend.store.update_flags(BOX, INBOX, [1, 3], frozenset({"\\Deleted"}), "add")
    assert backend.store.expunge(BOX, INBOX) == [1, 3]
    assert counts(backend, INBOX) == (2, 2)
    backend.store.set_read([ids[1]], True)  # through the API
    assert counts(backend, INBOX) == (2, 1)
    backend.store.set_read(None, False, mailbox=BOX)
    assert counts(backend, INBOX) == (2, 2)
    backend.store.delete_messages([ids[3]])
    assert counts(backend, INBOX) == (1, 1)
    backend.reopen()
    assert counts(backend, INBOX) == (1, 1)


def test_counts_of_mail_stored_together(backend: Backend) -> None:
    """New mail that the store takes in one transaction (SQLite's writer counts a batch's
    deliveries once per folder, 0021): SMTP mail to several mailboxes and APPENDs with and
    without \\Seen, all queued at once."""
    backend.store.create_folder(BOX, "Sent")

    async def together() -> None:
        envelope = Envelope("sender@example.com", (BOX, "bob@example.org", "carol@example.org"))
        await asyncio.gather(
            *(backend.store.append(BOX, "Sent", message(f"a{i}"), frozenset({"\\Seen"}) if i % 3 else frozenset())
              for i in range(9)),
            *(backend.store.deliver(envelope, message(f"m{i}")) for i in range(6)),
        )  # fmt: skip

    backend.run(together())
    assert counts(backend, "Sent") == (9, 3)
    assert counts(backend, INBOX) == (6, 6)
    assert counts(backend, INBOX, "bob@example.org") == (6, 6)
    backend.store.update_flags(BOX, "Sent", list(range(1, 10)), frozenset(), "set")
    assert counts(backend, "Sent") == (9, 9)
    backend.reopen()
    assert counts(backend, "Sent") == (9, 9) and counts(backend, INBOX, "carol@example.org") == (6, 6)


def test_counts_follow_append_copy_move_and_folder_changes(backend: Backend) -> None:
    backend.store.create_folder(BOX, "Sent")
    backend.run(backend.store.append(BOX, "Sent", message("a"), frozenset({"\\Seen"})))
    backend.run(backend.store.append(BOX, "Sent", message("b"), frozenset()))
    assert counts(backend, "Sent") == (2, 1)
    backend.store.create_folder(BOX, "Archive")
    backend.store.copy(BOX, "Sent", [1, 2], "Archive")
    assert counts(backend, "Archive") == (2, 1) and counts(backend, "Sent") == (2, 1)
    backend.store.copy(BOX, "Sent", [1], "Archive", move=True)
    assert counts(backend, "Archive") == (3, 1) and counts(backend, "Sent") == (1, 1)
    backend.store.rename_folder(BOX, "Archive", "Old")
    assert counts(backend, "Old") == (3, 1)
    backend.deliver(message("new"))
    backend.store.rename_folder(BOX, INBOX, "Moved")  # RFC 3501: INBOX's messages move
    assert counts(backend, "Moved") == (1, 1) and counts(backend, INBOX) == (0, 0)
    backend.store.delete_folder(BOX, "Old")
    backend.store.create_folder(BOX, "Old")
    assert counts(backend, "Old") == (0, 0)
    assert counts(backend, "Sent") == (1, 1)
    backend.reopen()
    assert counts(backend, "Sent") == (1, 1) and counts(backend, "Moved") == (1, 1)


def test_counts_after_deleting_a_mailbox_or_everything(backend: Backend) -> None:
    backend.deliver(message("both"), BOX, "bob@example.org")
    backend.deliver(message("bob only"), "bob@example.org")
    assert counts(backend, INBOX, "bob@example.org") == (2, 2)
    backend.store.delete_mailbox(BOX)
    assert counts(backend, INBOX, "bob@example.org") == (2, 2)
    backend.deliver(message("again"))
    assert counts(backend, INBOX) == (1, 1)
    backend.store.delete_messages(None)
    assert counts(backend, INBOX) == (0, 0) and counts(backend, INBOX, "bob@example.org") == (0, 0)
    backend.deliver(message("after"))
    assert counts(backend, INBOX) == (1, 1)


def test_folder_count_up_to_a_uid(backend: Backend) -> None:
    for i in range(5):
        backend.deliver(message(f"m{i}"))
    backend.store.update_flags(BOX, INBOX, [2], frozenset({"\\Deleted"}), "add")
    backend.store.expunge(BOX, INBOX)
    counts = [backend.store.folder_count(BOX, "inbox", u, 0)[0] for u in (0, 1, 2, 3, 5, 99)]
    assert counts == [0, 1, 1, 2, 4, 4]
    backend.store.update_flags(BOX, INBOX, [4], frozenset({"\\Seen"}), "add")
    (modseq,) = [e.modseq for e in backend.store.folder_entries(BOX, INBOX) if e.uid == 4]
    assert backend.store.folder_count(BOX, INBOX, 5, modseq - 1) == (4, 1)
    assert backend.store.folder_count(BOX, INBOX, 3, modseq - 1) == (2, 0)
    assert backend.store.folder_count(BOX, INBOX, 5, modseq) == (4, 0)
    assert backend.store.folder_count(BOX, "Missing", 9, 0) == (0, 0)


def _tables(snap: Snapshot) -> tuple[object, ...]:
    return (list(snap.uids), snap.as_dict(), snap.keywords, snap.first_unseen, snap.highest_modseq)


def test_select_after_new_mail_or_flag_changes_grows_the_last_listing(backend: Backend) -> None:
    """IMAP's shared listings (servers/imap/snapshots.py) on each backend: after new mail
    and flag changes, SELECT's listing is the last one grown by the new messages and the
    re-flagged ones (the other entries are the very objects read before), and equal to
    reading the folder again; after an expunge it is read again."""
    for i in range(4):
        backend.deliver(message(f"m{i}"))
    backend.store.update_flags(BOX, INBOX, [1, 2], frozenset({"\\Seen"}), "add")
    snaps = Snapshots(backend.store)

    def select() -> Snapshot:
        info = backend.store.folder_info(BOX, INBOX)
        assert info is not None
        grown = snaps.get(info)
        assert _tables(grown) == _tables(Snapshots(backend.store).get(info))  # as read afresh
        return grown

    first = select()
    assert first.first_unseen == 3
    backend.deliver(message("new"))
    backend.run(backend.store.append(BOX, INBOX, message("kw"), frozenset({"$Work"})))
    snaps.changed(BOX, INBOX)
    grown = select()
    assert grown.entry(1) is first.entry(1) and grown.uids == [1, 2, 3, 4, 5, 6]
    assert grown.uids.arr is first.uids.arr  # appended to, not copied
    assert grown.keywords == {"$Work"} and snaps.peek_current(BOX, INBOX) is None  # not for a sync
    # flag changes: \Seen on the first unseen, a keyword, \Seen taken off the first
    backend.store.update_flags(BOX, INBOX, [3], frozenset({"\\Seen", "$Late"}), "add")
    backend.store.update_flags(BOX, INBOX, [1], frozenset({"\\Seen"}), "remove")
    snaps.changed(BOX, INBOX)
    reflagged = select()
    assert reflagged.entry(2) is first.entry(2) and reflagged.entry(3) is not first.entry(3)
    assert reflagged.first_unseen == 1 and reflagged.keywords == {"$Work", "$Late"}
    assert reflagged.highest_modseq == max(e.modseq for e in reflagged.as_dict().values())
    assert reflagged.base is first.base and reflagged.uids.arr is first.uids.arr
    # an expunge and a new message: the count is the same, the listing is not
    backend.store.update_flags(BOX, INBOX, [2], frozenset({"\\Deleted"}), "add")
    backend.store.expunge(BOX, INBOX)
    backend.deliver(message("after"))
    snaps.changed(BOX, INBOX)
    again = select()
    assert again.uids == [1, 3, 4, 5, 6, 7] and again.entry(4) is not reflagged.entry(4)


def test_folder_changed_lists_the_re_flagged(backend: Backend) -> None:
    for i in range(4):
        backend.deliver(message(f"m{i}"))
    before = max(e.modseq for e in backend.store.folder_entries(BOX, INBOX))
    backend.store.update_flags(BOX, INBOX, [2, 4], frozenset({"\\Flagged"}), "add")
    assert [e.uid for e in backend.store.folder_changed(BOX, "inbox", 4, before)] == [2, 4]
    assert [e.uid for e in backend.store.folder_changed(BOX, INBOX, 3, before)] == [2]
    assert backend.store.folder_changed(BOX, INBOX, 4, before + 1) == []


def vm_steps(backend: Backend, fn: Callable[[], T]) -> tuple[int | None, T]:
    """``fn()`` and the SQLite virtual machine steps its reads in this thread took (None on
    PostgreSQL): a measure of rows visited that a busy machine does not change."""
    db = getattr(backend.store, "db", None)
    if db is None or not hasattr(db, "reader"):
        return None, fn()
    n = [0]

    def tick() -> int:
        n[0] += 1
        return 0

    conn = db.reader()
    conn.set_progress_handler(tick, 1)
    try:
        got = fn()
    finally:
        conn.set_progress_handler(None, 1)
    return n[0], got


def test_the_count_after_new_mail_does_not_read_the_folders_deliveries(backend: Backend) -> None:
    """folder_count for a listing up to its last UID, with no flag changed since, costs the
    same in a folder of 40 or of 400 deliveries (SQLite's virtual machine steps; a timing
    would not be a test): the kept count less a range above the UID, no scan for MODSEQ."""

    def steps(upto: int) -> tuple[int | None, tuple[int, int]]:
        info = backend.store.folder_info(BOX, INBOX)
        assert info is not None
        return vm_steps(backend, lambda: backend.store.folder_count(BOX, INBOX, upto, info.highestmodseq))

    for i in range(40):
        backend.deliver(message(f"s{i}"))
    backend.deliver(message("new"))
    small, got = steps(40)
    assert got == (40, 0)
    for i in range(360):
        backend.deliver(message(f"b{i}"))
    backend.deliver(message("new2"))
    large, got = steps(400)
    assert got == (400, 0)
    if small is not None and large is not None:
        assert large < small * 2, (small, large)
    backend.store.update_flags(BOX, INBOX, [7], frozenset({"\\Seen"}), "add")
    info = backend.store.folder_info(BOX, INBOX)
    assert info is not None
    assert backend.store.folder_count(BOX, INBOX, 400, info.highestmodseq - 1) == (400, 1)


def test_select_after_a_flag_change_grows_by_what_the_events_carried(backend: Backend) -> None:
    """A STORE's event carries the entries it left (SQLite), an EXPUNGE's the UIDs: the
    next SELECT's listing is the last one grown by those, without looking for re-flagged
    messages in the folder (VM steps the same at 40 and 400 deliveries); a change whose
    event has not come yet, or an event without entries (PostgreSQL, the API), makes it
    ask the database (or read the listing, for an expunge); each listing equals one read
    afresh."""
    snaps = Snapshots(backend.store)
    backend.bus.subscribe(snaps.on_event)

    def select() -> tuple[int | None, Snapshot]:
        info = backend.store.folder_info(BOX, INBOX)
        assert info is not None
        steps, snap = vm_steps(backend, lambda: snaps.get(info))
        assert _tables(snap) == _tables(Snapshots(backend.store).get(info))  # as read afresh
        return steps, snap

    def reflag(uid: int, flag: str) -> tuple[int | None, Snapshot]:
        backend.store.update_flags(BOX, INBOX, [uid], frozenset({flag}), "add")
        backend.events()  # (the loop delivers the event to the subscribers)
        return select()

    steps: list[int | None] = []
    for size in (40, 400):
        for i in range(size - len(backend.store.folder_entries(BOX, INBOX))):
            backend.deliver(message(f"m{size}.{i}"))
        _, first = select()
        got, grown = reflag(size - 3, "\\Flagged")
        assert grown.base is first.base and grown.entry(size - 3).flags == {"\\Flagged"}
        steps.append(got)
    if steps[0] is not None and steps[1] is not None:
        assert steps[1] < steps[0] * 2, steps
    # the event of a change not delivered yet: the database is asked (same listing)
    backend.store.update_flags(BOX, INBOX, [9], frozenset({"$late"}), "add")
    snaps.changed(BOX, INBOX)  # (as a session's own write does before its event comes)
    _, early = select()
    assert early.entry(9).flags == {"$late"}
    backend.events()
    # through the API (an event without entries), then an expunge: asked, then read
    backend.store.set_read([early.entry(2).id], True)
    backend.events()
    assert select()[1].entry(2).flags == {"\\Seen"}
    # an expunge heard (SQLite: the flag change's entries too): grown without the UID
    backend.store.update_flags(BOX, INBOX, [4], frozenset({"\\Deleted"}), "add")
    backend.store.expunge(BOX, INBOX)
    backend.events()
    got, after = select()
    assert after.get(4) is None and 4 not in list(after.uids)
    if got is not None:
        assert after.base is early.base and after.gone == {4}
    # an expunge not heard yet: the count of the old UIDs finds it, the listing is read
    backend.store.update_flags(BOX, INBOX, [5], frozenset({"\\Deleted"}), "add")
    backend.events()
    backend.store.expunge(BOX, INBOX)
    snaps.changed(BOX, INBOX)
    _, unheard = select()
    assert unheard.get(5) is None and unheard.base is not early.base
    backend.events()
