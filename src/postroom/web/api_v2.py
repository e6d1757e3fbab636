"""postroom's own API under ``/api/v2`` (documented in ``openapi.json`` and ``docs/api.md``).

* ``GET /api/v2/mailboxes`` -> ``{"mailboxes": [{"Name", "Total", "Unread"}]}``
* ``DELETE /api/v2/mailbox/{name}`` removes a mailbox (messages shared with other mailboxes stay there)
* ``PUT /api/v2/mailbox/{name}/read`` ``{"Read": bool}`` marks a mailbox (un)read
* ``GET /api/v2/message/{ID}/envelope`` -> the SMTP envelope (``Envelope.to_json()``)
* ``GET /api/v2/wait?query=&mailbox=&timeout=&new=`` long-polls for a matching message
* ``GET /api/v2/unindexed?ids=A,B`` -> ``{"IDs": [...]}``: those not indexed yet

Errors are plain text with 400/404 (and 408 for a wait that timed out).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiohttp import web

from ..events import Event, MessagesIndexed, MessageStored, ReadChanged, TagsChanged
from ..store.base import IndexProgress
from .common import (
    APP_KEY,
    bad_request,
    fields_of,
    in_thread,
    json_body,
    json_response,
    not_found,
    ok,
    resolve_id,
    store_of,
    summary_json,
)

__all__ = ["MAX_WAIT", "add_routes"]

# Longest a wait call may last (seconds); proxies commonly cut idle requests at 60-300 s.
MAX_WAIT = 300.0
DEFAULT_WAIT = 30.0


async def mailboxes(request: web.Request) -> web.Response:
    boxes = await in_thread(store_of(request).mailboxes)
    # A mailbox is listed while it holds mail: emptied by Delete all (or reached by an IMAP
    # login only) it drops out, as a recipient with no mail does. One where an IMAP client
    # made a folder is kept: that folder is the user's, and stays until the mailbox is deleted.
    return json_response(
        {
            "mailboxes": [
                {"Name": b.name, "Total": b.total, "Unread": b.unread}
                for b in boxes
                if b.total or b.made_folders
            ]
        }
    )


async def _known_mailbox(request: web.Request) -> str:
    name = request.match_info["name"].strip().lower()
    boxes = await in_thread(store_of(request).mailboxes)
    if not any(b.name == name for b in boxes):
        raise not_found(f"mailbox {name} not found")
    return name


async def clear_mailbox(request: web.Request) -> web.Response:
    name = await _known_mailbox(request)
    # The mailbox goes; a message also delivered elsewhere stays in its other mailboxes.
    await in_thread(store_of(request).delete_mailbox, name)
    return ok()


async def mailbox_read(request: web.Request) -> web.Response:
    body = fields_of(await json_body(request, required=True), "Read", strict=False)
    read = body.get("Read")
    if not isinstance(read, bool):
        raise bad_request("Read is required: true or false")
    name = await _known_mailbox(request)
    await in_thread(store_of(request).set_read, None, read, mailbox=name)
    return ok()


async def envelope(request: web.Request) -> web.Response:
    mid = await resolve_id(request)
    env = await in_thread(store_of(request).get_envelope, mid)
    if env is None:
        raise not_found(f"message {mid} not found")
    return json_response(env.to_json())


def _timeout(request: web.Request) -> float:
    raw = request.query.get("timeout", "").strip()
    if not raw:
        return DEFAULT_WAIT
    try:
        value = float(raw.rstrip("s"))
    except ValueError:
        raise bad_request(f"timeout must be a number of seconds, not {raw!r}") from None
    if not 0 <= value <= MAX_WAIT:
        raise bad_request(f"timeout must be between 0 and {MAX_WAIT:g} seconds")
    return value


async def wait(request: web.Request) -> web.Response:
    """Answer the newest message matching ``query``/``mailbox`` as soon as there is one.

    With ``new=1`` only messages received after the call began count. Wakes on the
    bus (a new message, or one finishing indexing, which full-text terms need); no polling.
    """
    app = request.app[APP_KEY]
    store = app.store
    timeout = _timeout(request)
    mailbox = (request.query.get("mailbox") or "").strip().lower() or None
    query = (request.query.get("query") or "").strip()
    parts = []
    if tz := request.query.get("tz"):
        parts.append(f"tz:{tz}")
    if request.query.get("new") in ("1", "true", "yes"):
        parts.append("after:" + datetime.fromtimestamp(time.time(), UTC).isoformat())
    if query:
        parts.append(f"({query})" if parts else query)
    full_query = " ".join(parts) or None

    woke = asyncio.Event()

    def on_event(ev: Event) -> None:
        if isinstance(ev, MessageStored):
            if mailbox is None or mailbox in ev.mailboxes:
                woke.set()
        elif isinstance(ev, MessagesIndexed | ReadChanged | TagsChanged):  # a query may match now
            woke.set()

    unsubscribe = app.bus.subscribe(on_event)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            woke.clear()
            mid = await in_thread(store.latest_id, mailbox=mailbox, query=full_query)
            if mid is not None:
                summary = await in_thread(store.get_summary, mid)
                if summary is not None:
                    return json_response(summary_json(summary))
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(woke.wait(), remaining)
            except TimeoutError:
                continue  # one last look, then 408
    finally:
        unsubscribe()
    raise web.HTTPRequestTimeout(text="timed out waiting for a matching message", content_type="text/plain")


# IDs one ``/api/v2/unindexed`` call may ask about.
MAX_UNINDEXED_IDS = 500


async def unindexed(request: web.Request) -> web.Response:
    """``GET /api/v2/unindexed?ids=A,B``: which of these messages the background indexer has
    not read yet (full-text and ``has:`` queries do not see them until it has), so that
    postroom.testing's Client waits for them as the in-process helpers do."""
    ids = [i for i in (request.query.get("ids") or "").split(",") if i]
    if len(ids) > MAX_UNINDEXED_IDS:
        raise bad_request(f"at most {MAX_UNINDEXED_IDS} ids per call")
    store = store_of(request)
    pending = await in_thread(store.unindexed, ids) if isinstance(store, IndexProgress) else []
    return json_response({"IDs": pending})


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    """Register the v2 routes under ``prefix`` (the webroot, ending in '/')."""
    p = prefix + "api/v2"
    r.add_get(p + "/mailboxes", mailboxes)
    r.add_delete(p + "/mailbox/{name}", clear_mailbox)
    r.add_put(p + "/mailbox/{name}/read", mailbox_read)
    r.add_get(p + "/message/{ID}/envelope", envelope)
    r.add_get(p + "/wait", wait)
    r.add_get(p + "/unindexed", unindexed)
