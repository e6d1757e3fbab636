"""Closing the gap to the background indexer, where Mailpit's API shows a message complete at once.

Mailpit parses a message while storing it, so a summary read right after ``POST
/api/v1/send`` (or after an SMTP 250) already has its ``Snippet`` and ``Attachments``
count. postroom's ingest commits first and indexes moments later (10-150 ms, longer under
load). The Mailpit-compatible routes close that gap by waiting for the few messages
concerned, on the bus (no polling), for at most :data:`INDEX_WAIT` seconds; after that
they answer what the store has, which is never wrong for long.

A listing does not wait when it can fill the gap itself (:func:`fill_unindexed`): the
summaries of just-arrived small messages get the snippet and attachment count the indexer
will write, from the same derivation (``store.indexer.extract``), parsed on a thread. During
a burst the newest page is always just behind the indexer, and waiting made every listing
then take up to :data:`LISTING_WAIT` (and SMTP ingest "visible through the API" a second
later than stored: benchmarks/ingest.py, 5,000 messages). With tagging rules (config
``[[tags]]``, which the indexer applies) a listing still waits, since only the indexer
knows the tags.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..events import Event, MessagesIndexed
from ..parsepool import PARSE_INLINE_BYTES
from ..store.base import IndexProgress, MessageReader, Summary
from .common import in_thread

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

__all__ = ["FILL_BYTES", "FILL_MAX", "INDEX_WAIT", "LISTING_WAIT", "await_indexed", "fill_unindexed"]

# Longest a Mailpit-style read waits for indexing (seconds). The indexer takes 10-150 ms
# per batch on a quiet machine; a burst of thousands can queue a message for seconds, and
# then an answer without the snippet beats a stalled client.
INDEX_WAIT = 2.0
# A listing waits less: under sustained ingest the newest page is always just behind the
# indexer, and a list request (a UI poll, a test's wait loop) must not take 2 s every time
# (benchmarks/soak.py: 6 of 1,155 listings at 2.0-2.2 s with a 2 s wait, 10 minutes at
# ~65 msg/s).
LISTING_WAIT = 1.0
# A listing fills in the summaries of at most FILL_MAX unindexed messages itself, of at most
# FILL_BYTES together (parsed on a thread, as parsepool parses a message below that size:
# ~0.3 ms for the 21 KB HTML fixture), so that a client polling a page of a burst costs the
# main process a few ms a request at most; otherwise it waits for the indexer.
FILL_MAX = 10
FILL_BYTES = PARSE_INLINE_BYTES


async def fill_unindexed(app: App, summaries: list[Summary], unindexed: list[str]) -> list[Summary] | None:
    """``summaries`` with the ``snippet`` and ``attachments`` of those in ``unindexed`` filled
    in as the indexer will store them; None when this cannot be done here (tagging rules
    configured, too many or too large messages): then wait with :func:`await_indexed`."""
    if app.settings.extra.get("tags") or len(unindexed) > FILL_MAX:
        return None
    wanted = set(unindexed)
    fresh = [s for s in summaries if s.id in wanted]
    if sum(s.size for s in fresh) > FILL_BYTES:
        return None
    store = app.store
    filled = await in_thread(_derive, store, [s.id for s in fresh])
    return [
        dataclasses.replace(s, snippet=filled[s.id][0], attachments=filled[s.id][1]) if s.id in filled else s
        for s in summaries
    ]


def _derive(store: MessageReader, ids: list[str]) -> dict[str, tuple[str, int]]:
    from ..store.indexer import extract  # the indexer's own derivation of the two fields

    out: dict[str, tuple[str, int]] = {}
    for mid in ids:
        raw = store.get_raw(mid)
        if raw is None:  # deleted meanwhile: left as it is
            continue
        try:
            d = extract(raw)
        except Exception:  # a message the parser cannot take: left as the store has it,
            log.debug("listing: message %s not filled in", mid, exc_info=True)  # as the indexer does
            continue
        out[mid] = (d.snippet, d.attachments)
    return out


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
