"""Events between PostgreSQL nodes: every event of the catalogue survives the payload codec."""

from __future__ import annotations

import pytest

from postroom.events import (
    Event,
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
from postroom.store.base import Address, Summary
from postroom.store.postgres_events import MAX_PAYLOAD, StoredRef, decode, encode, split_ids

SUMMARY = Summary(
    id="abc", message_id="m@x", subject="Café", from_=Address("A", "a@x"), to=[Address("", "b@x")],
    created=1.5, date=None, size=10, tags=["t"], references=["r@x"], mailboxes=["b@x"],
)  # fmt: skip

EVENTS: list[Event] = [
    MessageStored(SUMMARY, (Placement("b@x", "INBOX", 7),)),
    ReadChanged(("a", "b"), True),
    TagsChanged(("a",), ("x", "y")),
    TagRenamed("old", "new"),
    MessagesDeleted(("a",)),
    MessagesPruned(("b",)),
    StoreTruncated(None),
    StoreTruncated("b@x"),
    MessagesIndexed(("c",)),
    FolderChanged("b@x", "INBOX", "expunge", (1, 2)),
    FolderChanged("b@x", "Work", "expunge", (1,), uidvalidity=1796469805),  # the folder incarnation
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: Event) -> None:
    node, back = decode(encode(event, "node1"))
    assert node == "node1" and back == event


def test_a_summary_too_large_is_sent_as_a_reference() -> None:
    boxes = [f"user{i}@example.org" for i in range(400)]
    big = MessageStored(
        Summary(id="big", to=[Address("", b) for b in boxes], mailboxes=boxes),
        tuple(Placement(b, "INBOX", 1) for b in boxes),
    )
    payload = encode(big, "n")
    assert len(payload.encode()) <= MAX_PAYLOAD
    _, back = decode(payload)
    assert isinstance(back, StoredRef) and back.id == "big"


def test_many_ids_are_split_and_bad_payloads_refused() -> None:
    pieces = split_ids(MessagesDeleted(tuple(str(i) for i in range(250))))
    assert [len(p.ids) for p in pieces if isinstance(p, MessagesDeleted)] == [100, 100, 50]
    assert all(len(encode(p, "n").encode()) <= MAX_PAYLOAD for p in pieces)
    for bad in ("nope", "{}", '{"n": "x", "t": "Unknown"}'):
        with pytest.raises(ValueError):
            decode(bad)
