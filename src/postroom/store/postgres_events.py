"""Events between nodes: the catalogue (:mod:`postroom.events`) as PostgreSQL notifications.

A node that commits a change publishes its events on its own bus and, in the same
transaction, sends them with ``pg_notify`` on :data:`CHANNEL`; PostgreSQL delivers a
notification only once its transaction commits, to every node listening (itself too: a
node drops what carries its own node ID). So the WebSocket, ``/api/v2/wait``, webhooks and
IMAP IDLE of node B hear of mail that node A accepted.

Payload: JSON ``{"n": node, "t": event class name, ...fields}``. PostgreSQL refuses a
payload of 8,000 bytes or more; a :class:`~postroom.events.MessageStored` that would be
larger (thousands of recipients) is sent without its summary (``"ref": true``) and the
receiving node reads the summary back (:func:`decode` returns it as a :class:`StoredRef`).

Errors: :func:`decode` raises ``ValueError`` for a payload it does not understand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..events import (
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
from .base import Address, Summary

__all__ = ["CHANNEL", "CROSS_NODE", "MAX_PAYLOAD", "StoredRef", "decode", "encode", "split_ids"]

CHANNEL = "postroom_events"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes (NOTIFY)

# The events other nodes hear (changes of the shared store); the others stay on their node.
CROSS_NODE = (
    MessageStored,
    ReadChanged,
    TagsChanged,
    TagRenamed,
    MessagesDeleted,
    MessagesPruned,
    StoreTruncated,
    MessagesIndexed,
    FolderChanged,
)


@dataclass(frozen=True, slots=True)
class StoredRef:
    """A :class:`MessageStored` whose summary was too large to send: read it back by ``id``."""

    id: str
    placed: tuple[Placement, ...]


def _addr(a: Address | None) -> list[str] | None:
    return None if a is None else [a.name, a.address]


def _addrs(items: list[Address]) -> list[list[str]]:
    return [[a.name, a.address] for a in items]


def _summary_json(s: Summary) -> dict[str, Any]:
    return {
        "id": s.id, "mid": s.message_id, "subject": s.subject, "from": _addr(s.from_),
        "to": _addrs(s.to), "cc": _addrs(s.cc), "bcc": _addrs(s.bcc), "reply_to": _addrs(s.reply_to),
        "created": s.created, "date": s.date, "size": s.size, "attachments": s.attachments,
        "snippet": s.snippet, "read": s.read, "tags": s.tags, "user": s.username,
        "thread": s.thread_id, "irt": s.in_reply_to, "refs": s.references, "boxes": s.mailboxes,
    }  # fmt: skip


def _summary(d: dict[str, Any]) -> Summary:
    def addrs(v: list[list[str]]) -> list[Address]:
        return [Address(n, a) for n, a in v]

    f = d.get("from")
    return Summary(
        id=d["id"], message_id=d["mid"], subject=d["subject"], from_=Address(*f) if f else None,
        to=addrs(d["to"]), cc=addrs(d["cc"]), bcc=addrs(d["bcc"]), reply_to=addrs(d["reply_to"]),
        created=d["created"], date=d["date"], size=d["size"], attachments=d["attachments"],
        snippet=d["snippet"], read=d["read"], tags=list(d["tags"]), username=d["user"],
        thread_id=d["thread"], in_reply_to=d["irt"], references=list(d["refs"]), mailboxes=list(d["boxes"]),
    )  # fmt: skip


def encode(event: Event, node: str) -> str:
    """The notification payload of ``event`` sent by ``node`` (at most :data:`MAX_PAYLOAD`)."""
    d: dict[str, Any] = {"n": node, "t": type(event).__name__}
    match event:
        case MessageStored(summary=s, placed=placed):
            d["placed"] = [[p.mailbox, p.folder, p.uid] for p in placed]
            d["s"] = _summary_json(s)
            text = json.dumps(d, separators=(",", ":"))
            if len(text.encode()) <= MAX_PAYLOAD:
                return text
            d["s"] = {"id": s.id}
            d["ref"] = True
            d["placed"] = d["placed"][:50]  # the summary read back lists every mailbox
        case ReadChanged(ids=ids, read=read):
            d.update(ids=list(ids), read=read)
        case TagsChanged(ids=ids, tags=tags):
            d.update(ids=list(ids), tags=list(tags))
        case TagRenamed(old=old, new=new):
            d.update(old=old, new=new)
        case MessagesDeleted(ids=ids) | MessagesPruned(ids=ids) | MessagesIndexed(ids=ids):
            d["ids"] = list(ids)
        case StoreTruncated(mailbox=mailbox):
            d["mailbox"] = mailbox
        case FolderChanged(mailbox=mailbox, folder=folder, change=change, uids=uids, uidvalidity=validity):
            d.update(mailbox=mailbox, folder=folder, change=change, uids=list(uids), v=validity)
    return json.dumps(d, separators=(",", ":"))


def split_ids(event: Event) -> list[Event]:
    """``event`` cut into pieces whose payloads fit (events that list many IDs)."""
    match event:
        case MessagesDeleted(ids=ids) | MessagesPruned(ids=ids) | MessagesIndexed(ids=ids) if len(ids) > 100:
            return [type(event)(ids[i : i + 100]) for i in range(0, len(ids), 100)]
        case ReadChanged(ids=ids, read=read) if len(ids) > 100:
            return [ReadChanged(ids[i : i + 100], read) for i in range(0, len(ids), 100)]
        case TagsChanged(ids=ids, tags=tags) if len(ids) > 100:
            return [TagsChanged(ids[i : i + 100], tags) for i in range(0, len(ids), 100)]
        case FolderChanged(uids=uids) if len(uids) > 500:
            return [FolderChanged(event.mailbox, event.folder, event.change, uidvalidity=event.uidvalidity)]
    return [event]


def decode(payload: str) -> tuple[str, Event | StoredRef]:
    """(sending node, event) of a notification payload.

    Raises:
        ValueError: not a payload of :func:`encode`.
    """
    try:
        d = json.loads(payload)
        node, kind = d["n"], d["t"]
        if kind == "MessageStored":
            placed = tuple(Placement(m, f, int(u)) for m, f, u in d["placed"])
            if d.get("ref"):
                return node, StoredRef(d["s"]["id"], placed)
            return node, MessageStored(_summary(d["s"]), placed)
        ev: Event
        if kind == "ReadChanged":
            ev = ReadChanged(tuple(d["ids"]), bool(d["read"]))
        elif kind == "TagsChanged":
            ev = TagsChanged(tuple(d["ids"]), tuple(d["tags"]))
        elif kind == "TagRenamed":
            ev = TagRenamed(d["old"], d["new"])
        elif kind in ("MessagesDeleted", "MessagesPruned", "MessagesIndexed"):
            ids = tuple(d["ids"])
            if kind == "MessagesDeleted":
                ev = MessagesDeleted(ids)
            elif kind == "MessagesPruned":
                ev = MessagesPruned(ids)
            else:
                ev = MessagesIndexed(ids)
        elif kind == "StoreTruncated":
            ev = StoreTruncated(d["mailbox"])
        elif kind == "FolderChanged":
            ev = FolderChanged(
                d["mailbox"], d["folder"], d["change"], tuple(d["uids"]), uidvalidity=int(d.get("v", 0))
            )
        else:
            raise ValueError(f"unknown event {kind!r}")
        return node, ev
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"bad event payload: {e}") from None
