"""In-process publish/subscribe, and the catalogue of what the store announces.

The store publishes what happened (a message arrived, was read, deleted...); the WebSocket
hub, IMAP IDLE sessions, ``/api/v2/wait``, webhooks and the test helpers subscribe.
Publishers never know who listens, and a slow subscriber can never slow a publisher:
subscribers are plain callables that must return at once (typically they put the event on
their own bounded queue and drop or coalesce when it is full).

Publishing is thread-safe: the store's writer thread calls :meth:`Bus.publish_many` after
each commit, which hands the batch to the event loop in one hop; subscribers always run on
the loop's thread.

Event catalogue
---------------
Every event is a frozen dataclass below; a subscriber tells them apart with ``isinstance``
(or ``match``). Each carries what its consumers need, so none of them reads the store back
for it, except :class:`MessagesIndexed` (see there).

=======================  =====================================================  ==========
event                    when                                                   WebSocket
=======================  =====================================================  ==========
:class:`MessageStored`   a message was committed (SMTP, send API, import,       ``new``
                         IMAP APPEND): its summary and where it was placed
:class:`ReadChanged`     the API ``Read`` state of messages changed             ``update``
:class:`TagsChanged`     the tags of messages were replaced                     ``update``
:class:`TagRenamed`      a tag was renamed (merged into another)                --
:class:`MessagesDeleted` messages were deleted (API, IMAP EXPUNGE of the last   ``delete``
                         delivery)
:class:`MessagesPruned`  retention (``--max``, ``--max-age``) removed messages  ``prune``
:class:`StoreTruncated`  everything was deleted at once                         ``truncate``
:class:`MessagesIndexed` the indexer filled snippet, attachments, thread ID     ``update``
:class:`FolderChanged`   an IMAP/POP3 folder gained, lost or re-flagged         --
                         deliveries (IMAP sessions resynchronise on it)
=======================  =====================================================  ==========

The WebSocket's ``stats`` frames are not events: the hub reads the counts itself, at most
once per second, after any change.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .store.base import Entry, Summary

__all__ = [
    "Bus",
    "Event",
    "FolderChange",
    "FolderChanged",
    "MessageStored",
    "MessagesDeleted",
    "MessagesIndexed",
    "MessagesPruned",
    "Placement",
    "ReadChanged",
    "StoreTruncated",
    "Subscriber",
    "TagRenamed",
    "TagsChanged",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Placement:
    """One delivery made for a new message: the folder it went to and its IMAP UID there."""

    mailbox: str
    folder: str
    uid: int


@dataclass(frozen=True, slots=True)
class MessageStored:
    """A message was committed; the SMTP 250 (or the API's reply) may already have gone.

    ``summary`` is the summary row as stored at ingest (the indexer fills snippet,
    attachment count and thread ID later, announced by :class:`MessagesIndexed`).
    Subscribers share it and must not change it. ``placed`` lists every delivery made.
    """

    summary: Summary
    placed: tuple[Placement, ...] = ()

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def mailboxes(self) -> tuple[str, ...]:
        """The mailboxes the message went to, each once, in delivery order."""
        return tuple(dict.fromkeys(p.mailbox for p in self.placed)) or tuple(self.summary.mailboxes)


@dataclass(frozen=True, slots=True)
class ReadChanged:
    """The API ``Read`` state of ``ids`` is now ``read`` (every delivery \\Seen, or not)."""

    ids: tuple[str, ...]
    read: bool


@dataclass(frozen=True, slots=True)
class TagsChanged:
    """The tags of ``ids`` were replaced by ``tags``."""

    ids: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TagRenamed:
    """Tag ``old`` is now called ``new`` on every message that had it."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class MessagesDeleted:
    """``ids`` were deleted on request (API, or IMAP expunge of their last delivery)."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MessagesPruned:
    """Retention removed ``ids`` (the oldest beyond ``--max``, or older than ``--max-age``)."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoreTruncated:
    """Every message was deleted (``mailbox`` is None) or every message of ``mailbox``."""

    mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class MessagesIndexed:
    """The indexer wrote snippet, attachment count, full-text row and thread ID of ``ids``.

    It carries IDs only: the indexer may run in another process (or on another node), and
    a batch is up to hundreds of messages, most of which nobody is watching; a consumer
    that shows summaries (the WebSocket hub, only while it has clients) reads them back.
    """

    ids: tuple[str, ...]


FolderChange = Literal["exists", "flags", "expunge"]


@dataclass(frozen=True, slots=True)
class FolderChanged:
    """Deliveries of ``mailbox``/``folder`` were added (``exists``), re-flagged (``flags``)
    or removed (``expunge``); ``uids`` names them when the publisher knows them.

    ``entries`` (or None): for ``flags``, the re-flagged deliveries as the change left
    them (flags and MODSEQ), when the publisher read them in the same transaction (the
    SQLite store's IMAP STORE path); for ``exists``, every delivery the change added to
    the folder, ascending (the SQLite store's ingest: deliveries, IMAP APPEND). Never
    carried between PostgreSQL nodes.

    IMAP sessions with that folder selected resynchronise (RFC 3501 section 7: untagged
    EXISTS, EXPUNGE and FETCH responses; RFC 2177 IDLE): from the UIDs of an expunge and
    the entries of a flag change or of new messages when the event has them, else from
    the store (a listing, or the deliveries above the highest UID the session knows)."""

    mailbox: str
    folder: str
    change: FolderChange
    uids: tuple[int, ...] = ()
    entries: tuple[Entry, ...] | None = None
    # the folder's MODSEQ the change took (a flag change with entries: every flag change
    # raises it by one, whether or not a message changed), else 0
    modseq: int = 0
    # the UIDVALIDITY of the folder the change was made in (0: not said): a folder deleted
    # and made again under the name is another folder, whose UIDs the old ones' are not
    uidvalidity: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryAttempted:
    """The outbound worker tried to hand one queued copy to its relay (docs/relay.md).

    ``outcome`` is ``sent``, ``retry`` (queued again for ``next_at``), ``failed`` or
    ``suppressed``. Published on the node that made the attempt only (the WebSocket hub
    shows it as a ``delivery`` event)."""

    message_id: str
    rcpt: str
    outcome: str
    reply: str
    attempts: int
    next_at: float | None = None


Event: TypeAlias = (
    MessageStored
    | ReadChanged
    | TagsChanged
    | TagRenamed
    | MessagesDeleted
    | MessagesPruned
    | StoreTruncated
    | MessagesIndexed
    | FolderChanged
    | DeliveryAttempted
)
"""Any event of the catalogue."""

Subscriber = Callable[[Event], None]


class Bus:
    """A tiny thread-safe event bus bound to one asyncio loop."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver events on ``loop`` from now on."""
        self._loop = loop

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Register ``fn``; returns a function that unsubscribes it."""
        with self._lock:
            self._subs = [*self._subs, fn]

        def unsubscribe() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not fn]

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Publish from any thread; subscribers run on the bound loop's thread."""
        loop = self._loop
        if loop is None:
            self._dispatch(event)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._dispatch(event)
        elif not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._dispatch, event)
            except RuntimeError:  # it closed since the test above: as if it had been closed
                pass

    def publish_many(self, events: list[Event]) -> None:
        """Publish a batch with one hop to the loop (the writer thread's path); none when
        nobody subscribes (a subscriber reads what it watches after subscribing, and the
        writer publishes after its commit: it sees these changes).

        Order: a store publishes each commit's events in one call, from its one writer
        thread, in commit order, and subscribers get them in that order (one FIFO hop to
        the loop). IMAP's shared listings do not depend on it (a flag change's event says
        which folder MODSEQ it took: ``Snapshots._grow`` checks that every one was heard);
        an IMAP session's new messages from events do only for speed (a gap in the UIDs
        they carry is read from the store, ``SessionBase._from_events``)."""
        if not events or not self._subs:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._dispatch_many, events)
                return
            except RuntimeError:  # it closed since the test above (a thread racing the
                pass  # loop's end, such as a store's indexer at shutdown): as if it had been
        for e in events:
            self._dispatch(e)

    def _dispatch_many(self, events: list[Event]) -> None:
        for e in events:
            self._dispatch(e)

    def _dispatch(self, event: Event) -> None:
        for fn in self._subs:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break the others
                log.exception("event subscriber failed on %s", type(event).__name__)
