"""In-process publish/subscribe.

The store publishes what happened (a message arrived, was read, deleted...); the web
socket, IMAP IDLE sessions, webhooks and outbound rules subscribe. Publishers never know
who listens, and a slow subscriber can never slow a publisher: subscribers are plain
callables that must return at once (typically they put the event on their own bounded
queue and drop or coalesce when it is full).

Publishing is thread-safe: the store's writer thread calls :meth:`Bus.publish`, which
hands the event to the event loop; subscribers always run on the loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Bus", "Event", "EventType"]

log = logging.getLogger(__name__)


class EventType:
    """Event names. The first six are Mailpit's WebSocket ``Type`` values."""

    NEW = "new"  # data: {"summary": Summary, "mailboxes": [(mailbox, folder, uid), ...]}
    UPDATE = "update"  # data: {"ids": [...], "read": bool} or {"ids": [...], "tags": [...]}
    DELETE = "delete"  # data: {"ids": [...]}
    PRUNE = "prune"  # data: {"ids": [...]} (removed by retention)
    TRUNCATE = "truncate"  # data: {"mailbox": str | None}
    STATS = "stats"  # data: {"total": int, "unread": int, ...}
    # postroom's own, for IMAP/POP3 sessions (per mailbox folder)
    FOLDER = "folder"  # data: {"mailbox": str, "folder": str, "change": "exists"|"flags"|"expunge", ...}


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)


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
            loop.call_soon_threadsafe(self._dispatch, event)

    def publish_many(self, events: list[Event]) -> None:
        """Publish a batch with one hop to the loop (the writer thread's path)."""
        if not events:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            for e in events:
                self._dispatch(e)
            return
        loop.call_soon_threadsafe(self._dispatch_many, events)

    def _dispatch_many(self, events: list[Event]) -> None:
        for e in events:
            self._dispatch(e)

    def _dispatch(self, event: Event) -> None:
        for fn in self._subs:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break the others
                log.exception("event subscriber failed on %s", event.type)
