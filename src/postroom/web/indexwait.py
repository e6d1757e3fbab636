"""Waiting for the background indexer, where Mailpit's API shows a message complete at once.

Mailpit parses a message while storing it, so a summary read right after ``POST
/api/v1/send`` (or after an SMTP 250) already has its ``Snippet`` and ``Attachments``
count. postroom's ingest commits first and indexes moments later (10-150 ms, longer under
load). The Mailpit-compatible routes close that gap by waiting for the few messages
concerned, on the bus (no polling), for at most :data:`INDEX_WAIT` seconds; after that
they answer what the store has, which is never wrong for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..events import Event, MessagesIndexed
from ..store.base import IndexProgress
from .common import in_thread

if TYPE_CHECKING:
    from ..app import App

__all__ = ["INDEX_WAIT", "LISTING_WAIT", "await_indexed"]

# Longest a Mailpit-style read waits for indexing (seconds). The indexer takes 10-150 ms
# per batch on a quiet machine; a burst of thousands can queue a message for seconds, and
# then an answer without the snippet beats a stalled client.
INDEX_WAIT = 2.0
# A listing waits less: under sustained ingest the newest page is always just behind the
# indexer, and a list request (a UI poll, a test's wait loop) must not take 2 s every time
# (benchmarks/soak.py: 6 of 1,155 listings at 2.0-2.2 s with a 2 s wait, 10 minutes at
# ~65 msg/s).
LISTING_WAIT = 1.0


async def await_indexed(app: App, ids: Iterable[str], timeout: float = INDEX_WAIT) -> bool:
    """Wait until none of ``ids`` is waiting for the indexer; False if ``timeout`` passed.

    A store without background indexing (:class:`IndexProgress` not implemented) is
    always ready.
    """
    store, bus = app.store, app.bus
    wanted = list(dict.fromkeys(ids))
    if not wanted or not app.store_open or not isinstance(store, IndexProgress):
        return True
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def on_event(ev: Event) -> None:
        if isinstance(ev, MessagesIndexed) and not pending.isdisjoint(ev.ids):
            changed.set()

    pending: set[str] = set(wanted)
    unsubscribe = bus.subscribe(on_event)  # before the first look: no indexing goes unseen
    deadline = loop.time() + timeout
    try:
        while True:
            changed.clear()
            pending = set(await in_thread(store.unindexed, list(pending)))
            if not pending:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass
    finally:
        unsubscribe()
