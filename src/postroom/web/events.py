"""WebSocket ``/api/events``: the bus's events as Mailpit's ``{Type, Data}`` envelopes.

* ``new``      Data: the MessageSummary (with ``ThreadID``/``Mailboxes``)
* ``update``   Data: ``{"ID", "Read"}`` or ``{"ID", "Tags"}``, one per message; a change
  to more than BULK_IDS messages at once is one ``{"IDs": [...], "Read"}`` (or ``"Tags"``)
* ``delete``   Data: ``{"ID"}``, one per message; ``{"IDs": [...]}`` past BULK_IDS
* ``prune``    Data: ``{"IDs": [...]}`` (Mailpit sends null; the IDs are our addition)
* ``truncate`` Data: null (every message deleted)
* ``delivery`` Data: ``{"MessageID", "To", "Outcome", "Reply", "Attempts", "NextAttempt"}``, one
  per attempt of the outbound queue (postroom's; only with a relay, docs/relay.md)
* ``stats``    Data: ``{"Total", "Unread", "Version"}``, at most every STATS_INTERVAL after changes

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

__all__ = ["BULK_IDS", "QUEUE_SIZE", "STATS_INTERVAL", "Hub", "add_routes"]

log = logging.getLogger(__name__)

# Messages buffered per client before it is considered too slow and disconnected.
QUEUE_SIZE = 2000
# Seconds between two stats events (they are coalesced after bursts of changes).
STATS_INTERVAL = 0.25
# Seconds a disconnecting client gets to accept the close frame before the socket is cut.
CLOSE_TIMEOUT = 1.0

HUB_KEY: web.AppKey[Hub] = web.AppKey("postroom_ws_hub")


INDEXED_MAX = 500  # summaries re-sent per "indexed" batch (the indexer writes 32 at a time)
# A change to more messages than this is sent as one frame with "IDs" (well under QUEUE_SIZE).
BULK_IDS = 100


class _Client:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, mailbox: str | None) -> None:
        self.ws = ws
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
            asyncio.get_running_loop().create_task(self._drop())

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
        self._tasks: set[asyncio.Task[None]] = set()

    async def _send_summaries(self, ids: list[str]) -> None:
        store = self.app[APP_KEY].store
        try:
            summaries = await asyncio.to_thread(lambda: [store.get_summary(i) for i in ids])
        except Exception:  # the store closed, or the messages went meanwhile
            log.debug("could not read indexed summaries", exc_info=True)
            return
        for s in summaries:
            if s is None:
                continue
            text = _envelope("update", summary_json(s))
            for c in list(self.clients):
                if c.mailbox is None or c.mailbox in s.mailboxes:
                    c.offer(text)

    def start(self) -> None:
        self._unsubscribe = self.app[APP_KEY].bus.subscribe(self.on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for c in list(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown"), CLOSE_TIMEOUT
                )

    def on_event(self, ev: Event) -> None:
        """Bus callback (on the loop's thread): translate once, enqueue per client, never block."""
        if not self.clients:
            return
        out: list[tuple[str, list[str] | None]] = []  # (text, mailboxes it concerns or None for all)
        match ev:
            case MessageStored(summary=s):
                out.append((_envelope("new", summary_json(s)), list(ev.mailboxes)))
            case MessagesIndexed(ids=indexed):
                # The indexer filled snippet, attachment count and ThreadID: send the whole
                # summary (read off the loop), which the UI and Mailpit-style clients apply in place.
                if batch := list(indexed[:INDEXED_MAX]):
                    task = asyncio.get_running_loop().create_task(self._send_summaries(batch))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                return
            case ReadChanged(ids=ids, read=read):
                out += _per_id("update", list(ids), {"Read": read})
            case TagsChanged(ids=ids, tags=tags):
                out += _per_id("update", list(ids), {"Tags": list(tags)})
            case MessagesDeleted(ids=ids):
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
        if not self._stats_due:
            self._stats_due = True
            asyncio.get_running_loop().call_later(STATS_INTERVAL, self._send_stats)

    def _send_stats(self) -> None:
        self._stats_due = False
        if self.clients:
            asyncio.get_running_loop().create_task(self._stats())

    async def _stats(self) -> None:
        try:
            st = await asyncio.to_thread(self.app[APP_KEY].store.stats)
        except Exception:  # store closing: no stats
            return
        text = _envelope(
            "stats",
            {"Total": st.messages, "Unread": st.unread, "Version": __version__},
        )
        for c in list(self.clients):
            c.offer(text)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
        await ws.prepare(request)
        mailbox = (request.query.get("mailbox") or "").strip().lower() or None
        client = _Client(ws, request, mailbox)
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
