"""Contract: ingest, the API's reads and changes, and the event each change publishes.

Every backend in ``conftest.BACKENDS`` runs these (the seam is ``postroom.store.base``;
the event catalogue is ``postroom.events``).
"""

from __future__ import annotations

import pytest

from postroom.events import (
    FolderChanged,
    MessagesDeleted,
    MessagesIndexed,
    MessagesPruned,
    MessageStored,
    Placement,
    ReadChanged,
    StoreTruncated,
    TagRenamed,
    TagsChanged,
)
from postroom.store.base import INBOX, InvalidQuery

from .conftest import Backend, message


def test_deliver_stores_once_and_places_one_delivery_per_recipient(backend: Backend) -> None:
    raw = message("Order", to="Alice <alice@example.org>, bob@example.org")
    mid = backend.deliver(raw, "Alice@Example.org", "bob@example.org", "hidden@example.org", tags=("urgent",))
    s = backend.store.get_summary(mid)
    assert s is not None
    assert s.subject == "Order"
    assert s.from_ is not None and s.from_.address == "shop@example.com"
    assert [a.address for a in s.bcc] == ["hidden@example.org"]  # envelope-only recipient
    assert s.mailboxes == ["alice@example.org", "bob@example.org", "hidden@example.org"]
    assert s.tags == ["urgent"] and not s.read and s.size == len(raw)
    assert backend.store.get_raw(mid) == raw
    assert backend.store.get_raw_stored(mid) == raw
    envelope = backend.store.get_envelope(mid)
    assert envelope is not None and envelope.mail_from == "sender@example.com"
    assert envelope.rcpt_to == ("Alice@Example.org", "bob@example.org", "hidden@example.org")
    assert backend.store.list_messages().total == 1  # stored once
    for box in ("alice@example.org", "bob@example.org", "hidden@example.org"):
        assert [e.id for e in backend.store.folder_entries(box, INBOX)] == [mid]

    stored = backend.events(MessageStored)
    assert len(stored) == 1 and stored[0].id == mid and stored[0].summary.subject == "Order"
    assert stored[0].placed == (
        Placement("alice@example.org", INBOX, 1),
        Placement("bob@example.org", INBOX, 1),
        Placement("hidden@example.org", INBOX, 1),
    )
    assert stored[0].mailboxes == ("alice@example.org", "bob@example.org", "hidden@example.org")
    exists = {(e.mailbox, e.folder) for e in backend.events(FolderChanged) if e.change == "exists"}
    assert exists == {("alice@example.org", INBOX), ("bob@example.org", INBOX), ("hidden@example.org", INBOX)}


def test_unknown_ids_read_as_none(backend: Backend) -> None:
    assert backend.store.get_summary("nope") is None
    assert backend.store.get_raw("nope") is None
    assert backend.store.get_envelope("nope") is None
    assert backend.store.latest_id() is None
    assert backend.store.thread_messages("nope") == []


def test_listing_pages_counts_and_mailbox_filter(backend: Backend) -> None:
    ids = [backend.deliver(message(f"m{i}"), "a@example.org" if i % 2 else "b@example.org") for i in range(5)]
    page = backend.store.list_messages(limit=2)
    assert (page.total, page.unread, page.messages_count, page.start) == (5, 5, 5, 0)
    assert [m.id for m in page.messages] == ids[:2:-1]  # newest first
    assert [m.id for m in backend.store.list_messages(start=4, limit=2).messages] == ids[:1]
    boxed = backend.store.list_messages(mailbox="a@example.org")
    assert boxed.total == 2 and [m.id for m in boxed.messages] == [ids[3], ids[1]]
    assert backend.store.latest_id() == ids[4]
    assert backend.store.latest_id(mailbox="a@example.org") == ids[3]
    boxes = {b.name: (b.total, b.unread) for b in backend.store.mailboxes()}
    assert boxes == {"a@example.org": (2, 2), "b@example.org": (3, 3)}
    stats = backend.store.stats()
    assert (stats.messages, stats.unread) == (5, 5) and stats.size > 0 and stats.engine


def test_search_language(backend: Backend) -> None:
    a = backend.deliver(
        message(
            "Invoice 42",
            sender="Billing <billing@shop.example>",
            body="pay now",
            message_id="inv-42@shop.example",
        )
    )
    b = backend.deliver(
        message(
            "Lunch?",
            sender="Carol <carol@example.net>",
            body="pizza or sushi",
            extra="Reply-To: team@lunch.example\r\n",
        ),
        tags=("food",),
    )
    backend.store.set_read([b], True)
    assert backend.store.wait_indexed(30)

    def ids(query: str) -> set[str]:
        return {m.id for m in backend.store.list_messages(query=query).messages}

    assert ids("subject:invoice") == {a}
    assert ids("from:carol") == {b}
    assert ids("is:unread") == {a}
    assert ids("is:read") == {b}
    assert ids("tag:food") == {b}
    # as Mailpit: message-id: is a substring, addressed: includes Reply-To
    assert ids("message-id:inv-42") == ids("message-id:<inv-42@shop.example>") == {a}
    assert ids("addressed:team@lunch") == {b} and ids("addressed:billing@") == {a}
    assert ids("pizza") == {b}  # full text of the body
    assert ids("-pizza") == {a}
    assert ids("pizza OR subject:invoice") == {a, b}
    page = backend.store.list_messages(query="is:unread")
    assert (page.total, page.messages_count, page.messages_unread) == (2, 1, 1)
    assert backend.store.latest_id(query="from:billing") == a
    with pytest.raises(InvalidQuery):
        backend.store.list_messages(query='subject:"unclosed')


def test_set_read_publishes_changed_ids_only(backend: Backend) -> None:
    a = backend.deliver(message("a"), "x@example.org", "y@example.org")
    b = backend.deliver(message("b"))
    backend.clear_events()
    assert backend.store.set_read([a], True) == [a]
    assert backend.store.set_read([a, b], True) == [b]  # a was read already
    assert [(e.ids, e.read) for e in backend.events(ReadChanged)] == [((a,), True), ((b,), True)]
    summary = backend.store.get_summary(a)
    assert summary is not None and summary.read
    for box in ("x@example.org", "y@example.org"):  # API Read is \Seen on every delivery
        assert all("\\Seen" in e.flags for e in backend.store.folder_entries(box, INBOX))
    assert any(e.change == "flags" for e in backend.events(FolderChanged))
    assert sorted(backend.store.set_read(None, False)) == sorted([a, b])
    assert backend.store.list_messages().unread == 2


def test_tags_set_rename_delete(backend: Backend) -> None:
    a = backend.deliver(message("a"))
    backend.clear_events()
    backend.store.set_tags([a], ["one", "two", " ", "one"])
    assert backend.events(TagsChanged) == [TagsChanged((a,), ("one", "two"))]
    assert backend.store.tags() == ["one", "two"]
    backend.store.rename_tag("one", "uno")
    assert backend.events(TagRenamed) == [TagRenamed("one", "uno")]
    summary = backend.store.get_summary(a)
    assert summary is not None and sorted(summary.tags) == ["two", "uno"]
    backend.store.delete_tag("two")
    assert backend.store.tags() == ["uno"]


def test_delete_by_id_and_everything(backend: Backend) -> None:
    a = backend.deliver(message("a"))
    b = backend.deliver(message("b"))
    c = backend.deliver(message("c"))
    backend.clear_events()
    assert backend.store.delete_messages([a]) == [a]
    assert backend.events(MessagesDeleted) == [MessagesDeleted((a,))]
    assert backend.store.get_summary(a) is None and backend.store.get_raw(a) is None
    assert backend.store.folder_entries("alice@example.org", INBOX)[0].id == b
    assert sorted(backend.store.delete_messages(None)) == sorted([b, c])
    assert backend.events(StoreTruncated) == [StoreTruncated(None)]
    assert backend.store.list_messages().total == 0


def test_delete_mailbox_keeps_shared_messages(backend: Backend) -> None:
    shared = backend.deliver(message("shared"), "a@example.org", "b@example.org")
    own = backend.deliver(message("own"), "a@example.org")
    backend.clear_events()
    assert backend.store.delete_mailbox("a@example.org") == [own]
    assert backend.store.get_summary(shared) is not None and backend.store.get_summary(own) is None
    assert StoreTruncated("a@example.org") in backend.events(StoreTruncated)
    assert [b.name for b in backend.store.mailboxes()] == ["b@example.org"]


@pytest.mark.store_options(max=3)
def test_retention_prunes_oldest_and_says_so(backend: Backend) -> None:
    ids = [backend.deliver(message(f"m{i}")) for i in range(5)]
    assert [m.id for m in backend.store.list_messages().messages] == ids[:1:-1]
    pruned = [i for e in backend.events(MessagesPruned) for i in e.ids]
    assert sorted(pruned) == sorted(ids[:2])


def test_indexing_threads_and_its_event(backend: Backend) -> None:
    root = backend.deliver(message("Plans", message_id="root@example.com"))
    reply = backend.deliver(message("Re: Plans", message_id="r1@example.com", in_reply_to="root@example.com"))
    other = backend.deliver(message("Elsewhere", message_id="o@example.com"))
    assert backend.store.wait_indexed(30)
    indexed = {i for e in backend.events(MessagesIndexed) for i in e.ids}
    assert {root, reply, other} <= indexed
    s_root, s_reply = backend.store.get_summary(root), backend.store.get_summary(reply)
    assert s_root is not None and s_reply is not None
    assert s_root.thread_id and s_root.thread_id == s_reply.thread_id
    assert s_root.snippet == "Hello there"
    assert [m.id for m in backend.store.thread_messages(s_root.thread_id)] == [root, reply]
    page = backend.store.list_threads()
    assert page.total == 2
    first = page.threads[1] if page.threads[0].messages == 1 else page.threads[0]
    assert (first.thread_id, first.messages, first.unread) == (s_root.thread_id, 2, 2)


def test_read_your_writes_from_another_thread(backend: Backend) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        for i in range(20):
            mid = backend.deliver(message(f"m{i}"))
            assert pool.submit(backend.store.get_summary, mid).result() is not None
            assert pool.submit(backend.store.latest_id).result() == mid


def test_survives_a_restart(backend: Backend) -> None:
    a = backend.deliver(message("kept"))
    backend.store.set_read([a], True)
    backend.reopen()
    summary = backend.store.get_summary(a)
    assert summary is not None and summary.subject == "kept" and summary.read
    b = backend.deliver(message("after"))
    assert [e.uid for e in backend.store.folder_entries("alice@example.org", INBOX)] == [1, 2]
    assert backend.store.latest_id() == b
