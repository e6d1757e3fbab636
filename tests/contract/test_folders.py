"""Contract: the IMAP/POP3 view (folders, UIDs, UIDVALIDITY, flags, MODSEQ, copy, append).

RFC 3501 2.3.1.1: UIDs strictly ascend within a folder and are never reused; a folder
whose name is used again gets a greater UIDVALIDITY. RFC 7162 3.1: every change of a
message's flags gives it a MODSEQ above every MODSEQ the folder had.
"""

from __future__ import annotations

import pytest

from postroom.events import FolderChanged, MessagesDeleted
from postroom.store.base import INBOX, AlreadyExists, NotFound

from .conftest import Backend, message

BOX = "alice@example.org"


def test_inbox_always_exists(backend: Backend) -> None:
    info = backend.store.folder_info("Nobody@Example.org", "inbox")
    assert info is not None and info.name == INBOX and info.exists == 0 and info.uidnext == 1
    assert [f.name for f in backend.store.folders("nobody@example.org")] == [INBOX]


def test_create_rename_delete_subscribe(backend: Backend) -> None:
    made = backend.store.create_folder(BOX, "Work", special_use="\\Archive")
    assert (made.name, made.exists, made.special_use) == ("Work", 0, "\\Archive")
    with pytest.raises(AlreadyExists):
        backend.store.create_folder(BOX, "Work")
    backend.store.create_folder(BOX, "Work/2026")
    backend.store.rename_folder(BOX, "Work", "Job")
    assert sorted(f.name for f in backend.store.folders(BOX)) == [INBOX, "Job", "Job/2026"]
    backend.store.set_subscribed(BOX, "Job", False)
    job = backend.store.folder_info(BOX, "Job")
    assert job is not None and not job.subscribed
    backend.store.delete_folder(BOX, "Job/2026")
    assert backend.store.folder_info(BOX, "Job/2026") is None
    with pytest.raises(NotFound):
        backend.store.delete_folder(BOX, "Job/2026")
    with pytest.raises(NotFound):
        backend.store.rename_folder(BOX, "Missing", "Other")


def test_uids_ascend_and_are_never_reused(backend: Backend) -> None:
    ids = [backend.deliver(message(f"m{i}")) for i in range(3)]
    entries = backend.store.folder_entries(BOX, INBOX)
    assert [(e.uid, e.id) for e in entries] == list(zip([1, 2, 3], ids, strict=True))
    backend.store.update_flags(BOX, INBOX, [3], frozenset({"\\Deleted"}), "add")
    assert backend.store.expunge(BOX, INBOX) == [3]
    backend.deliver(message("after"))
    assert [e.uid for e in backend.store.folder_entries(BOX, INBOX)] == [1, 2, 4]
    backend.reopen()
    backend.deliver(message("after restart"))
    assert [e.uid for e in backend.store.folder_entries(BOX, INBOX)] == [1, 2, 4, 5]
    info = backend.store.folder_info(BOX, INBOX)
    assert info is not None and info.uidnext == 6 and info.exists == 4


def test_a_reused_name_gets_a_greater_uidvalidity(backend: Backend) -> None:
    first = backend.store.create_folder(BOX, "Temp").uidvalidity
    backend.store.delete_folder(BOX, "Temp")
    second = backend.store.create_folder(BOX, "Temp").uidvalidity
    assert second > first
    backend.store.create_folder(BOX, "Last")  # the highest UIDVALIDITY so far, then gone
    last = backend.store.create_folder(BOX, "Again").uidvalidity
    backend.store.delete_folder(BOX, "Again")
    assert backend.store.create_folder(BOX, "Again").uidvalidity > last
    backend.store.rename_folder(BOX, "Temp", "Kept")
    renamed = backend.store.folder_info(BOX, "Kept")
    assert renamed is not None and renamed.uidvalidity > second


def test_flags_modes_and_modseq(backend: Backend) -> None:
    for i in range(2):
        backend.deliver(message(f"m{i}"))
    before = backend.store.folder_info(BOX, INBOX)
    assert before is not None
    backend.clear_events()
    out = backend.store.update_flags(BOX, INBOX, [1], frozenset({"\\Flagged", "work"}), "add")
    assert [(e.uid, e.flags) for e in out] == [(1, frozenset({"\\Flagged", "work"}))]
    assert out[0].modseq > before.highestmodseq
    after = backend.store.folder_info(BOX, INBOX)
    assert after is not None and after.highestmodseq >= out[0].modseq
    out = backend.store.update_flags(BOX, INBOX, [1], frozenset({"work"}), "remove")
    assert out[0].flags == frozenset({"\\Flagged"}) and out[0].modseq > after.highestmodseq
    out = backend.store.update_flags(BOX, INBOX, [1, 2], frozenset({"\\Seen"}), "set")
    assert all(e.flags == frozenset({"\\Seen"}) for e in out)
    assert backend.store.list_messages().unread == 0  # \Seen everywhere reads as Read
    changes = backend.events(FolderChanged)
    assert changes and all((c.mailbox, c.folder, c.change) == (BOX, INBOX, "flags") for c in changes)


def test_expunge_only_deleted_and_drops_orphans(backend: Backend) -> None:
    shared = backend.deliver(message("shared"), BOX, "bob@example.org")
    own = backend.deliver(message("own"), BOX)
    backend.store.update_flags(BOX, INBOX, [1, 2], frozenset({"\\Deleted"}), "add")
    backend.clear_events()
    assert backend.store.expunge(BOX, INBOX, uids=[2]) == [2]  # restricted (UID EXPUNGE)
    assert backend.store.get_summary(own) is None  # no delivery left: the message goes
    assert backend.events(MessagesDeleted) == [MessagesDeleted((own,))]
    changed = [(e.mailbox, e.folder, e.change, e.uids) for e in backend.events(FolderChanged)]
    assert (BOX, INBOX, "expunge", (2,)) in changed
    assert backend.store.expunge(BOX, INBOX) == [1]
    assert backend.store.get_summary(shared) is not None  # still in bob's INBOX
    assert backend.store.folder_entries(BOX, INBOX) == []


def test_copy_and_move(backend: Backend) -> None:
    ids = [backend.deliver(message(f"m{i}")) for i in range(3)]
    dest = backend.store.create_folder(BOX, "Archive")
    validity, pairs = backend.store.copy(BOX, INBOX, [1, 3], "Archive")
    assert validity == dest.uidvalidity and pairs == [(1, 1), (3, 2)]
    validity, pairs = backend.store.copy(BOX, INBOX, [2], "Archive", move=True)
    assert pairs == [(2, 3)]
    assert [e.id for e in backend.store.folder_entries(BOX, "Archive")] == [ids[0], ids[2], ids[1]]
    assert [e.uid for e in backend.store.folder_entries(BOX, INBOX)] == [1, 3]
    with pytest.raises(NotFound):
        backend.store.copy(BOX, INBOX, [1], "Missing")


def test_append_places_in_the_folder_with_flags(backend: Backend) -> None:
    backend.store.create_folder(BOX, "Sent", special_use="\\Sent")
    raw = message("drafted")
    validity, uid = backend.run(
        backend.store.append(BOX, "Sent", raw, frozenset({"\\Seen"}), internaldate=1_700_000_000.0)
    )
    info = backend.store.folder_info(BOX, "Sent")
    assert info is not None and validity == info.uidvalidity and uid == 1
    (entry,) = backend.store.folder_entries(BOX, "Sent")
    assert entry.flags == frozenset({"\\Seen"}) and entry.internaldate == 1_700_000_000.0
    assert backend.store.get_raw(entry.id) == raw
    assert backend.store.folder_entries(BOX, INBOX) == []


def test_imap_cache_lives_and_dies_with_its_message(backend: Backend) -> None:
    a = backend.deliver(message("a"))
    assert backend.store.wait_indexed(30)
    backend.store.imap_cache_put("meta", {a: b"blob"})
    # the indexer derives IMAP data of new mail too, and may write its own "meta" for the
    # message after ours: the entry is there, for that message only
    assert set(backend.store.imap_cache_get("meta", [a, "missing"])) == {a}
    assert backend.store.imap_cache_get("head", [a]).get(a) != b"blob"  # kinds are apart
    backend.store.imap_cache_put("text", {a: b"0123456789"})
    assert backend.store.imap_cache_get("text", [a, "missing"], prefix=4) == {a: b"0123"}
    assert backend.store.imap_cache_get("text", [a], prefix=40) == {a: b"0123456789"}
    backend.store.delete_messages([a])
    assert backend.store.imap_cache_get("meta", [a]) == {}
    assert backend.store.imap_cache_get("head", [a]) == {}


def test_imap_cache_by_uid_range_reads_the_folder_it_names(backend: Backend) -> None:
    # SORT reads the start of each message's "head" row by UID range (servers/imap/messages.py)
    ids = [backend.deliver(message(f"r{i}")) for i in range(3)]
    assert backend.store.wait_indexed(30)
    backend.store.imap_cache_put("text", {pid: b"text of %d" % i for i, pid in enumerate(ids)})
    info = backend.store.folder_info(BOX, INBOX)
    assert info is not None
    by_uid = {e.id: e.uid for e in backend.store.folder_entries(BOX, INBOX)}
    got = backend.store.imap_cache_range("text", BOX, "inbox", info.uidvalidity, (1, 2), 6)
    assert got == {by_uid[ids[0]]: b"text o", by_uid[ids[1]]: b"text o"}
    assert backend.store.imap_cache_range("text", BOX, INBOX, info.uidvalidity, (3, 9), 100) == {
        by_uid[ids[2]]: b"text of 2"
    }
    # another UIDVALIDITY (the folder deleted and created again) or no such folder: None
    assert backend.store.imap_cache_range("text", BOX, INBOX, info.uidvalidity + 1, (1, 3), 6) is None
    assert backend.store.imap_cache_range("text", BOX, "Missing", info.uidvalidity, (1, 3), 6) is None
    with pytest.raises((ValueError, KeyError)):
        backend.store.imap_cache_range("nope", BOX, INBOX, info.uidvalidity, (1, 3), 6)


def test_conversation_ids_give_row_ids_and_the_stored_thread(backend: Backend) -> None:
    # IMAP's X-GM-MSGID / X-GM-THRID (servers/imap/gmail.py): a row id per message, the
    # same for every delivery of it, and the ThreadID the summaries show once indexed
    root = backend.deliver(message("plans", message_id="root@x"))
    other = backend.deliver(message("lunch", message_id="other@x"))
    reply = backend.deliver(message("Re: plans", message_id="reply@x", in_reply_to="root@x"))
    assert backend.store.wait_indexed(30)
    got = backend.store.conversation_ids([root, other, reply, "no-such-id"])
    assert set(got) == {root, other, reply}
    assert all(done for _, _, done in got.values())
    rows = {pid: row for pid, (row, _, _) in got.items()}
    assert len(set(rows.values())) == 3 and rows[root] < rows[other] < rows[reply]
    for pid, (_, thread, _) in got.items():
        s = backend.store.get_summary(pid)
        assert s is not None and s.thread_id == thread
    assert got[root][1] == got[reply][1] == str(rows[root]) and got[other][1] == str(rows[other])
    backend.store.create_folder(BOX, "Kept")
    backend.store.copy(BOX, INBOX, [3], "Kept")
    [kept] = backend.store.folder_entries(BOX, "Kept")
    assert backend.store.conversation_ids([kept.id]) == {reply: got[reply]}
    assert backend.store.conversation_ids([]) == {}


def test_get_raws_reads_the_small_stored_ones(backend: Backend) -> None:
    small = [backend.deliver(message(f"s{i}")) for i in range(3)]
    big = backend.deliver(message("big", body="x" * 5000))
    gone = backend.deliver(message("gone"))
    backend.store.delete_messages([gone])
    got = backend.store.get_raws([*small, big, gone, "nope"], 2000)
    assert got == {i: backend.store.get_raw(i) for i in small}  # not the large one, nor the deleted
    assert backend.store.get_raws([big], 10_000) == {big: backend.store.get_raw(big)}


def test_message_tags_read_back_what_set_tags_stored(backend: Backend) -> None:
    # IMAP's X-GM-LABELS (servers/imap/labels.py): the tags of each message, sorted; a
    # message without tags has [], an unknown ID is left out; one message in two folders
    # has one set of tags
    a = backend.deliver(message("one", message_id="a@x"))
    b = backend.deliver(message("two", message_id="b@x"))
    backend.store.set_tags([a], ["work", "Älter", "2026 plans"])
    assert backend.store.message_tags([a, b, "no-such-id"]) == {
        a: sorted(["work", "Älter", "2026 plans"]),
        b: [],
    }
    backend.store.create_folder(BOX, "Kept")
    backend.store.copy(BOX, INBOX, [1], "Kept")
    [kept] = backend.store.folder_entries(BOX, "Kept")
    assert backend.store.message_tags([kept.id])[kept.id] == sorted(["work", "Älter", "2026 plans"])
    backend.store.set_tags([a], [])
    assert backend.store.message_tags([a]) == {a: []}
    assert backend.store.message_tags([]) == {}


def test_appended_messages_with_one_thread_key_are_one_conversation(backend: Backend) -> None:
    # IMAP APPEND's X-POSTROOM-THREAD (postroom fetch: Gmail's X-GM-THRID): the key joins
    # messages whose headers do not, it is kept with the message (a restart rebuilds the
    # conversations from the rows), and a later message with the key joins them then too
    def put(mid: str, subject: str, key: str = "") -> str:
        raw = message(subject, message_id=mid)
        _, uid = backend.run(backend.store.append(BOX, INBOX, raw, frozenset(), None, key))
        return next(e.id for e in backend.store.folder_entries(BOX, INBOX) if e.uid == uid)

    def thread(pid: str) -> str:
        s = backend.store.get_summary(pid)
        assert s is not None
        return s.thread_id

    a = put("a@x", "plans", "ext gmail 1")
    b = put("b@x", "lunch")
    c = put("c@x", "something else", "ext gmail 1")
    assert backend.store.wait_indexed(30)
    assert thread(a) == thread(c) != thread(b)
    backend.reopen()
    d = put("d@x", "yet another", "ext gmail 1")
    e = put("e@x", "plans again", "ext gmail 2")
    assert backend.store.wait_indexed(30)
    assert thread(a) == thread(c) == thread(d) and len({thread(a), thread(b), thread(e)}) == 3


def test_rename_inbox_announces_the_expunge_of_its_messages(backend: Backend) -> None:
    """RFC 3501 6.3.5: RENAME INBOX moves its messages; sessions with INBOX selected learn
    it from an ``expunge`` event with the moved UIDs (as after a MOVE), not only at a NOOP."""
    for i in range(2):
        backend.deliver(message(f"m{i}"), BOX)
    inbox = backend.store.folder_info(BOX, INBOX)
    assert inbox is not None
    backend.clear_events()
    backend.store.rename_folder(BOX, INBOX, "Old")
    changed = [(e.mailbox, e.folder, e.change, e.uids) for e in backend.events(FolderChanged)]
    assert (BOX, INBOX, "expunge", (1, 2)) in changed
    moved = backend.store.folder_info(BOX, "Old")
    assert moved is not None and moved.exists == 2
    # which folder of that name it was (a session drops the events of one deleted before)
    assert [e.uidvalidity for e in backend.events(FolderChanged) if e.folder == INBOX] == [inbox.uidvalidity]


def test_expunge_events_say_which_folder_of_the_name(backend: Backend) -> None:
    """An expunge's event carries the folder's UIDVALIDITY: the old folder's expunge of UID 1
    is not taken for one of a folder made again under the name (IMAP SELECT's held events)."""
    backend.store.create_folder(BOX, "Work")
    backend.run(backend.store.append(BOX, "Work", message("w1"), frozenset({"\\Deleted"})))
    old = backend.store.folder_info(BOX, "Work")
    assert old is not None
    backend.clear_events()
    assert backend.store.expunge(BOX, "Work") == [1]
    backend.store.delete_folder(BOX, "Work")
    backend.store.create_folder(BOX, "Work")
    backend.run(backend.store.append(BOX, "Work", message("w2"), frozenset({"\\Deleted"})))
    new = backend.store.folder_info(BOX, "Work")
    assert new is not None and new.uidvalidity > old.uidvalidity
    assert backend.store.expunge(BOX, "Work") == [1]
    expunges = [(e.uids, e.uidvalidity) for e in backend.events(FolderChanged) if e.change == "expunge"]
    assert expunges == [((1,), old.uidvalidity), ((1,), new.uidvalidity)]
