"""WebSocket ``/api/events``: the bus's events as Mailpit's ``{Type, Data}`` envelopes.

* ``new``      Data: the MessageSummary, once indexed (see below)
* ``update``   Data: ``{"ID", "Read"}`` or ``{"ID", "Tags"}``, one per message; a change
  to more than BULK_IDS messages at once is one ``{"IDs": [...], "Read"}`` (or ``"Tags"``)
* ``delete``   Data: ``{"ID"}``, one per message; ``{"IDs": [...]}`` past BULK_IDS
* ``prune``    Data: ``{"IDs": [...]}`` (Mailpit sends null; the IDs are our addition)
* ``truncate`` Data: null (every message deleted)
* ``delivery`` Data: ``{"MessageID", "To", "Outcome", "Reply", "Attempts", "NextAttempt"}``, one
  per attempt of the outbound queue (postroom's; only with a relay, docs/relay.md)
* ``stats``    Data: ``{"Total", "Unread", "Version"}``, at most every STATS_INTERVAL after changes

``/api/events`` sends Mailpit's summary exactly (clients compare whole objects);
``/api/v2/events`` (the UI's) adds ``ThreadID`` and ``Mailboxes`` to it.

Mailpit parses a message as it stores it, so its ``new`` event carries the snippet and
attachment count, then ``stats`` follows. postroom's indexer fills those moments after the
commit, so a ``new`` event waits for the message's indexing (at most NEW_EVENT_WAIT
seconds) and is sent with the summary read back then; ``stats`` follows it.

``?mailbox=NAME`` limits ``new`` events to messages delivered to that mailbox (other
events carry IDs only and are sent to everyone; unknown IDs are simply ignored).

Bulk changes (mark all read, delete a selection) are one frame, not one per message: ten
thousand frames at once would overflow every client's queue and cut it off. Mailpit itself
sends nothing per message for "mark all read", only the stats that follow, so Mailpit
clients lose nothing by not knowing ``IDs``.

A slow client can never slow ingest: each client has a bounded queue filled by the bus
callback with ``put_nowait``; a client whose queue overflows is disconnected (close
code 1013, "try again later") and can reconnect and reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .. import __version__
from ..events import (
    DeliveryAttempted,
    Event,
    MessagesDeleted,
    MessagesIndexed,
    MessagesPruned,
    MessageStored,
    ReadChanged,
    StoreTruncated,
    TagsChanged,
)
from .common import APP_KEY, rfc3339, summary_json

__all__ = ["BULK_IDS", "NEW_EVENT_WAIT", "QUEUE_SIZE", "STATS_INTERVAL", "Hub", "add_routes"]

log = logging.getLogger(__name__)

# Messages buffered per client before it is considered too slow and disconnected.
QUEUE_SIZE = 2000
# Reads of the counts for one stats event when changes keep arriving during the read.
STATS_REREADS = 3
# Seconds between two stats events (they are coalesced after bursts of changes).
STATS_INTERVAL = 0.25
# Seconds a disconnecting client gets to accept the close frame before the socket is cut.
CLOSE_TIMEOUT = 1.0

HUB_KEY: web.AppKey[Hub] = web.AppKey("postroom_ws_hub")


# Seconds a "new" event waits for the message's indexing before it is sent as stored.
NEW_EVENT_WAIT = 2.0
# "new" events held back for indexing at most; past this (a burst) they go out as stored.
PENDING_MAX = 5000
# A change to more messages than this is sent as one frame with "IDs" (well under QUEUE_SIZE).
BULK_IDS = 100


class _Client:
    def __init__(
        self, hub: Hub, ws: web.WebSocketResponse, request: web.Request, mailbox: str | None, extended: bool
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.extended = extended
        self.request = request
        self.mailbox = mailbox
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    def offer(self, text: str) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped = True
            log.info("events client too slow (%d queued); disconnecting it", QUEUE_SIZE)
            self.hub.spawn(self._drop())

    async def _drop(self) -> None:
        try:
            await asyncio.wait_for(
                self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow"), CLOSE_TIMEOUT
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            if self.request.transport is not None:  # it will not even take the close frame: cut it
                self.request.transport.abort()


def _envelope(type_: str, data: Any) -> str:
    return json.dumps({"Type": type_, "Data": data}, ensure_ascii=False, separators=(",", ":"))


def _per_id(type_: str, ids: list[str], change: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    """One envelope per ID (Mailpit's shape), or one with all ``IDs`` for a bulk change."""
    if len(ids) > BULK_IDS:
        return [(_envelope(type_, {"IDs": ids, **change}), None)]
    return [(_envelope(type_, {"ID": i, **change}), None) for i in ids]


class Hub:
    """Fans bus events out to the connected WebSocket clients."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.clients: set[_Client] = set()
        self._unsubscribe: Any = None
        self._stats_due = False
        self._changes = 0  # changes offered to clients so far (a stats read must not predate one)
        # its own tasks (new events read back, stats, slow clients dropped): kept referenced
        # while they run, cancelled and awaited by stop
        self._tasks: set[asyncio.Task[None]] = set()
        self._stats_timer: asyncio.TimerHandle | None = None
        self._stopped = False
        # message ID -> timer of a "new" event held back until the message is indexed
        self._pending: dict[str, asyncio.TimerHandle] = {}

    async def _send_new(self, ids: list[str]) -> None:
        """Read back the summaries of ``ids`` (indexed by now, or waited for long enough) and
        send them as ``new``; ``stats`` follows."""
        store = self.app[APP_KEY].store
        try:
            summaries = await asyncio.to_thread(lambda: [store.get_summary(i) for i in ids])
        except Exception:  # the store closed meanwhile
            log.debug("could not read new summaries", exc_info=True)
            return
        for s in summaries:
            if s is None:  # deleted meanwhile: its delete event says so
                continue
            plain = _envelope("new", summary_json(s, extended=False))
            full = _envelope("new", summary_json(s))
            for c in list(self.clients):
                if c.mailbox is None or c.mailbox in s.mailboxes:
                    c.offer(full if c.extended else plain)
        self._schedule_stats()

    def _release(self, ids: list[str]) -> None:
        """Send the held-back ``new`` events of those ``ids`` that are pending."""
        ready = [i for i in ids if i in self._pending]
        for i in ready:
            self._pending.pop(i).cancel()
        if ready and self.clients:
            self.spawn(self._send_new(ready))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of the hub (none once it has stopped)."""
        if self._stopped:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        self._unsubscribe = self.app[APP_KEY].bus.subscribe(self.on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for held in self._pending.values():
            held.cancel()
        self._pending.clear()
        if self._stats_timer is not None:
            self._stats_timer.cancel()
        self._stopped = True
        for c in list(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown"), CLOSE_TIMEOUT
                )
        # what is still running (a slow client being dropped, a read-back) is cut short: none
        # is left pending on a loop that closes ('Task was destroyed but it is pending')
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def on_event(self, ev: Event) -> None:
        """Bus callback (on the loop's thread): translate once, enqueue per client, never block."""
        if not self.clients:
            return
        out: list[tuple[str, list[str] | None]] = []  # (text, mailboxes it concerns or None for all)
        match ev:
            case MessageStored(summary=s):
                if len(self._pending) >= PENDING_MAX:
                    self._release(list(self._pending))
                loop = asyncio.get_running_loop()
                self._pending[s.id] = loop.call_later(NEW_EVENT_WAIT, self._release, [s.id])
                return
            case MessagesIndexed(ids=indexed):
                self._release(list(indexed))
                return
            case ReadChanged(ids=ids, read=read):
                out += _per_id("update", list(ids), {"Read": read})
            case TagsChanged(ids=ids, tags=tags):
                out += _per_id("update", list(ids), {"Tags": list(tags)})
            case MessagesDeleted(ids=ids):
                for i in ids:
                    if (held := self._pending.pop(i, None)) is not None:
                        held.cancel()
                out += _per_id("delete", list(ids), {})
            case MessagesPruned(ids=ids):
                out.append((_envelope("prune", {"IDs": list(ids)}), None))
            case StoreTruncated(mailbox=box):
                out.append((_envelope("truncate", None), [box] if box else None))
            case DeliveryAttempted():
                data = {"MessageID": ev.message_id, "To": ev.rcpt, "Outcome": ev.outcome, "Reply": ev.reply,
                        "Attempts": ev.attempts, "NextAttempt": rfc3339(ev.next_at) if ev.next_at else None}  # fmt: skip
                out.append((_envelope("delivery", data), None))
            case _:
                return
        for c in list(self.clients):
            for text, boxes in out:
                if c.mailbox is None or boxes is None or c.mailbox in boxes:
                    c.offer(text)
        self._schedule_stats()

    def _schedule_stats(self) -> None:
        self._changes += 1
        if not self._stats_due:
            self._stats_due = True
            self._stats_timer = asyncio.get_running_loop().call_later(STATS_INTERVAL, self._send_stats)

    def _send_stats(self) -> None:
        self._stats_due = False
        self._stats_timer = None
        if self.clients:
            self.spawn(self._stats())

    async def _stats(self) -> None:
        # A change offered to the clients while the counts were read (a delete-all committed
        # meanwhile) could make these counts older than an event the client already has:
        # read again then, a few times at most (a burst keeps changing them; its own stats
        # follow anyway).
        for _ in range(STATS_REREADS):
            seen = self._changes
            try:
                st = await asyncio.to_thread(self.app[APP_KEY].store.stats)
            except Exception:  # store closing: no stats
                return
            if self._changes == seen:
                break
        text = _envelope(
            "stats",
            {"Total": st.messages, "Unread": st.unread, "Version": f"v{__version__}"},
        )
        for c in list(self.clients):
            c.offer(text)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``/api/events``: Mailpit's event shapes."""
        return await self._handle(request, extended=False)

    async def handle_v2(self, request: web.Request) -> web.StreamResponse:
        """``/api/v2/events``: summaries with postroom's ``ThreadID`` and ``Mailboxes``."""
        return await self._handle(request, extended=True)

    async def _handle(self, request: web.Request, *, extended: bool) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
        await ws.prepare(request)
        mailbox = (request.query.get("mailbox") or "").strip().lower() or None
        client = _Client(self, ws, request, mailbox, extended)
        self.clients.add(client)
        sender = asyncio.get_running_loop().create_task(self._pump(client))
        try:
            async for msg in ws:  # clients have nothing to say; read to see pings and close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _pump(self, client: _Client) -> None:
        try:
            while True:
                text = await client.queue.get()
                await client.ws.send_str(text)
        except (ConnectionError, RuntimeError):  # closed under us
            pass


def add_routes(app: web.Application, prefix: str) -> None:
    """Register ``/api/events`` and the hub's start/stop hooks."""
    hub = Hub(app)
    app[HUB_KEY] = hub

    async def on_startup(_: web.Application) -> None:
        hub.start()

    async def on_shutdown(_: web.Application) -> None:
        await hub.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get(prefix + "api/events", hub.handle)
    app.router.add_get(prefix + "api/v2/events", hub.handle_v2)
