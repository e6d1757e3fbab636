"""Fetch accounts running inside the server (``--fetch-config``; docs/fetch.md).

* ``GET /api/v2/fetch/accounts``: ``{"Enabled": bool, "Accounts": [...]}``, each account with
  its server, user, folders and local mailbox (never its password or token) and its status:
  ``Syncing``, ``Idle`` (a folder is held in IMAP IDLE), ``LastSync``, ``LastFetched``,
  ``FetchedTotal``, ``LastError``.
* ``POST /api/v2/fetch/accounts/{Name}/sync``: sync that account now (202; the result shows in
  the listing). Like every state change it needs ``Content-Type: application/json`` or
  ``X-Postroom-Request: 1`` (the cross-site contract, :mod:`.security`).

Archives over HTTP (docs/archives.md):

* ``GET /api/v2/export/mbox?mailbox=&query=``: the messages (all, one mailbox, a search) as
  one mboxrd download, oldest first, streamed message by message.
* ``POST /api/v2/import?to=ADDRESS``: the body is an mbox or one message (``.eml``); each
  message is stored as received, for ``to`` (repeatable) or the recipients its headers name.
  The body is not JSON, so the request needs ``X-Postroom-Request: 1``.
"""

from __future__ import annotations

import io
from email.utils import getaddresses
from typing import TYPE_CHECKING

from aiohttp import web

from ..fetch.archive import ArchiveError, iter_mbox, mbox_entry
from ..store.base import Envelope

if TYPE_CHECKING:
    from ..fetch.service import FetchService
from .common import APP_KEY, MAX_LIMIT, bad_request, in_thread, json_response, not_found, store_of

__all__ = ["add_routes"]


def _service(request: web.Request) -> FetchService | None:
    service = request.app[APP_KEY].extras.get("fetch")
    if service is None:
        return None
    # a server with fetch accounts has imported the service (App._start_fetch); one without
    # does not load its IMAP client modules for this route
    from ..fetch.service import FetchService

    return service if isinstance(service, FetchService) else None


async def accounts(request: web.Request) -> web.Response:
    service = _service(request)
    return json_response(
        {"Enabled": service is not None, "Accounts": service.describe() if service is not None else []}
    )


async def sync(request: web.Request) -> web.Response:
    service = _service(request)
    name = request.match_info["Name"]
    if service is None:
        raise not_found("no fetch accounts (start postroom with --fetch-config FILE)")
    if not service.sync_now(name):
        raise not_found(f"no fetch account {name!r}")
    return json_response({"Queued": name}, status=202)


async def export_mbox(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    mailbox = request.query.get("mailbox") or None
    query = request.query.get("query", "").strip() or None
    found: list[tuple[float, str]] = []  # the IDs first: a page shifting under new mail loses none
    start = 0
    while True:
        page = await in_thread(
            store.list_messages, mailbox=mailbox, query=query, start=start, limit=MAX_LIMIT
        )
        found += [(m.created, m.id) for m in page.messages]
        start += len(page.messages)
        if not page.messages or start >= page.total:
            break
    name = (mailbox or "postroom").replace('"', "").replace("\\", "") + ".mbox"
    resp = web.StreamResponse(
        headers={"Content-Type": "application/mbox", "Content-Disposition": f'attachment; filename="{name}"'}
    )
    await resp.prepare(request)
    for created, mid in sorted(found):
        raw = await in_thread(store.get_raw, mid)
        if raw is not None:  # deleted meanwhile
            await resp.write(mbox_entry(raw, created))
    await resp.write_eof()
    return resp


def _recipients(data: bytes) -> tuple[str, list[str]]:
    from ..fetch.cli import envelope_of

    return envelope_of(data)


async def import_archive(request: web.Request) -> web.Response:
    body = await request.read()
    if not body.strip():
        raise bad_request("the body is empty: send an mbox or one message")
    fixed = [a for _, a in getaddresses(request.query.getall("to", [])) if a]
    store = store_of(request)
    max_size = request.app[APP_KEY].settings.smtp_max_size
    if body.startswith(b"From "):
        try:
            datas = [item.data for item in iter_mbox(io.BytesIO(body), "upload", "")]
        except ArchiveError as e:
            raise bad_request(str(e)) from None
    else:
        datas = [body]
    ids: list[str] = []
    skipped: list[dict[str, object]] = []
    for n, data in enumerate(datas):
        raw = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        sender, rcpts = _recipients(raw)
        rcpts = fixed or rcpts
        if not rcpts:
            skipped.append({"Index": n, "Error": "no recipient in its headers (give ?to=ADDRESS)"})
        elif max_size and len(raw) > max_size:
            skipped.append({"Index": n, "Error": f"larger than the limit of {max_size} bytes"})
        else:
            env = Envelope(mail_from=sender, rcpt_to=tuple(rcpts), helo="HTTP import")
            ids.append(await store.deliver(env, raw))
    return json_response({"Imported": len(ids), "IDs": ids, "Skipped": skipped})


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    r.add_get(prefix + "api/v2/fetch/accounts", accounts)
    r.add_post(prefix + "api/v2/fetch/accounts/{Name}/sync", sync)
    r.add_get(prefix + "api/v2/export/mbox", export_mbox)
    r.add_post(prefix + "api/v2/import", import_archive)
