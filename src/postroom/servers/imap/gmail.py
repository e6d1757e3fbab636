"""Gmail's IMAP extension (X-GM-EXT-1): the X-GM-MSGID and X-GM-THRID of messages.

* X-GM-MSGID is the message's internal row id in the store (``message.id``): unique,
  never reused, and the same in every folder holding the message (a COPY or MOVE within a
  mailbox adds a delivery of the same message, as Gmail keeps the id across labels).
* X-GM-THRID is the conversation's ``ThreadID`` as the store holds it at the time of the
  command, the number the API shows: the row id of the conversation's first message, so
  the first message's X-GM-THRID equals its X-GM-MSGID, as in Gmail. When a message joins
  two conversations they merge and the younger one takes the older one's id (Gmail never
  merges; docs/imap.md).

The indexer threads a message a few milliseconds after delivery. A command that asks for
the thread of a message it has not reached yet waits for it, up to :data:`THREAD_WAIT`
seconds per command; after that (the indexer far behind a burst) the message's own
X-GM-MSGID stands in, which is what it gets if it starts a conversation. With threading
switched off every message is a conversation of its own.

A postroom extension goes the other way: APPEND's ``X-POSTROOM-THREAD key`` (an RFC 4466
append-ext before the message literal) stores the message with a conversation key, and
messages stored with the same key are one conversation whatever their headers say. postroom
fetch gives Gmail's X-GM-THRID so (docs/fetch.md); :func:`thread_key_arg` reads it.

Blocking (reads the store, may sleep): call from a worker thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ...protocols.imap.errors import ParseError
from ...store.base import ImapStore

if TYPE_CHECKING:
    from .messages import MessageView

__all__ = [
    "MAX_THREAD_KEY",
    "THREAD_EXT",
    "THREAD_WAIT",
    "GmIds",
    "conversation_ids",
    "deadline",
    "message_ids",
    "prefetch_gm",
    "prefetch_labels",
    "thread_key_arg",
]

THREAD_EXT = "X-POSTROOM-THREAD"
# Longest conversation key APPEND takes (our choice: a Gmail key is ~60 bytes; the bound keeps
# the key column and the indexer's key table small whatever a client sends).
MAX_THREAD_KEY = 256

# How long one command waits for the indexer to thread the messages it asks about (our
# choice: the indexer takes milliseconds per message; a burst of thousands takes seconds).
THREAD_WAIT = 5.0
_POLL = 0.02

GmIds = tuple[int, int]  # (X-GM-MSGID, X-GM-THRID)


def thread_key_arg(raw: bytes) -> str:
    """The stored form of APPEND's ``X-POSTROOM-THREAD`` argument: ``"ext "`` and the key.
    The space keeps it apart from every Message-ID (no parsed id holds white space).

    Raises:
        ParseError: an empty key, one over :data:`MAX_THREAD_KEY` bytes, not UTF-8, or with
            control characters.
    """
    if not raw or len(raw) > MAX_THREAD_KEY:
        raise ParseError(f"{THREAD_EXT} needs a key of 1 to {MAX_THREAD_KEY} bytes")
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"{THREAD_EXT} key is not UTF-8") from None
    if any(ord(c) < 0x20 or c == "\x7f" for c in key):
        raise ParseError(f"{THREAD_EXT} key has control characters")
    return "ext " + key


def deadline() -> float:
    """The monotonic time until which one command waits for threading."""
    return time.monotonic() + THREAD_WAIT


def conversation_ids(store: ImapStore, ids: list[str], until: float) -> dict[str, GmIds]:
    """(X-GM-MSGID, X-GM-THRID) of those of ``ids`` that still exist, waiting until
    ``until`` (monotonic) for messages the indexer has not threaded yet."""
    got = store.conversation_ids(ids)
    pending = [pid for pid, (_, _, done) in got.items() if not done]
    if pending:
        while pending and time.monotonic() < until:
            time.sleep(_POLL)
            again = store.conversation_ids(pending)
            pending = [pid for pid, (_, _, done) in again.items() if not done]
        # read them all again, in one snapshot: threading what was pending may have merged
        # the conversations of the others meanwhile
        got = store.conversation_ids(ids)
    return {pid: (row, int(thread) if thread.isdigit() else row) for pid, (row, thread, _) in got.items()}


def message_ids(store: ImapStore, ids: list[str]) -> dict[str, GmIds]:
    """(X-GM-MSGID, 0) of those of ``ids`` that still exist: no waiting (the id is there from
    the delivery on)."""
    return {pid: (row, 0) for pid, (row, _, _) in store.conversation_ids(ids).items()}


def prefetch_labels(store: ImapStore, views: list[MessageView]) -> None:
    """Load the X-GM-LABELS (the tags, case-folded) of ``views`` in one read; a message
    deleted meanwhile has none."""
    got = store.message_tags([v.entry.id for v in views])
    for v in views:
        v._labels = frozenset(t.casefold() for t in got.get(v.entry.id, ()))


def prefetch_gm(store: ImapStore, views: list[MessageView], until: float) -> None:
    """Load X-GM-MSGID and X-GM-THRID of ``views`` in one read (:mod:`.gmail`); a message
    deleted meanwhile gets (0, 0), which no SEARCH value matches."""
    got = conversation_ids(store, [v.entry.id for v in views], until)
    for v in views:
        v._gm = got.get(v.entry.id, (0, 0))
