"""Mailpit-compatible API under ``/api/v1`` (see ``../shared/reference/mailpit-swagger.json``).

Every route, parameter, JSON field and status code of Mailpit's API v1 is here, so
Mailpit clients work unchanged: the JSON has exactly Mailpit's fields (clients compare
whole objects), and a summary is read once indexed, as Mailpit's is complete when stored
(:mod:`postroom.web.indexwait`). postroom adds a ``mailbox`` query parameter to the
listings; the same listings and message under ``/api/v2`` (``messages``, ``search``,
``message/{ID}``, ``webui``) add ``ThreadID``/``Mailboxes`` to each summary, ``ParseError``
to a message and ``Listeners`` to the UI settings. Errors are plain text (see
:mod:`postroom.web.common`). The checks' routes (HTML, link,
SpamAssassin) live in :mod:`postroom.web.api_checks`, release in
:mod:`postroom.web.api_outbound`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from .. import __version__
from ..message import ParsedMessage, Part
from ..parsepool import shared_pool
from ..store.base import IndexProgress, StoreError, Summary
from .common import (
    APP_KEY,
    AUTH_USER_KEY,
    MAX_LIMIT,
    address_json,
    bad_request,
    fields_of,
    in_thread,
    int_param,
    json_body,
    json_response,
    not_found,
    ok,
    raw_or_404,
    refuse_unknown,
    resolve_id,
    rfc3339,
    search_query,
    store_of,
    str_list,
    summary_json,
)
from .indexwait import LISTING_WAIT, await_indexed, fill_unindexed
from .send import SendError, build_message

__all__ = ["add_routes", "memory_bytes", "message_json", "tag_counts"]

log = logging.getLogger(__name__)

# Mailpit's thumbnail size ("a cropped 180x120 JPEG thumbnail").
THUMB_SIZE = (180, 120)
# Images larger than this (pixels, after a JPEG's DCT scaling) are not decoded for a
# thumbnail (blank instead): decoding one costs 4 bytes a pixel, and a 6,300 x 6,300 PNG
# took ~450 MB a request with 40,000,000 (issue 14 item 6). 4096 x 4096 is ~64 MB.
THUMB_MAX_PIXELS = 4096 * 4096
# Thumbnails made at once; further requests wait (each may hold THUMB_MAX_PIXELS decoded).
THUMB_CONCURRENCY = 2
# Their own threads: requests waiting for a turn must not hold the loop's default executor,
# which every other request's store reads go through.
_THUMB_THREADS = ThreadPoolExecutor(THUMB_CONCURRENCY, thread_name_prefix="postroom-thumb")


def _query_with_tz(request: web.Request, query: str | None) -> str | None:
    tz = request.query.get("tz")
    if query and tz:
        return f"tz:{tz} {query}"
    return query


async def _page(request: web.Request, query: str | None, *, extended: bool) -> web.Response:
    store = store_of(request)
    start = int_param(request, "start", 0)
    limit = int_param(request, "limit", 50, maximum=MAX_LIMIT)
    mailbox = request.query.get("mailbox") or None
    page = await in_thread(store.list_messages, mailbox=mailbox, query=query, start=start, limit=limit)
    if not extended and page.messages:
        # Mailpit's summaries are complete when listed: fill in the snippet and attachment
        # count of just-arrived mail (usually none on the page) or wait for the indexer's.
        app = request.app[APP_KEY]
        fresh = await in_thread(_unindexed, store, [s.id for s in page.messages])
        if fresh and (filled := await fill_unindexed(app, page.messages, fresh)) is not None:
            page = dataclasses.replace(page, messages=filled)
        elif fresh and await await_indexed(app, fresh, LISTING_WAIT):
            page = await in_thread(
                store.list_messages, mailbox=mailbox, query=query, start=start, limit=limit
            )
    tags = await in_thread(store.tags)
    return json_response(
        {
            "total": page.total,
            "unread": page.unread,
            "count": len(page.messages),
            "messages_count": page.messages_count,
            "messages_unread": page.messages_unread,
            "start": page.start,
            "tags": tags,
            "messages": [summary_json(s, extended=extended) for s in page.messages],
        }
    )


def _unindexed(store: Any, ids: list[str]) -> list[str]:
    return list(store.unindexed(ids)) if isinstance(store, IndexProgress) else []


async def list_messages(request: web.Request) -> web.Response:
    return await _page(request, None, extended=False)


async def list_messages_v2(request: web.Request) -> web.Response:
    return await _page(request, None, extended=True)


def _search_text(request: web.Request) -> str | None:
    query = request.query.get("query", "").strip()
    if not query:
        raise bad_request("query is required (e.g. ?query=subject:hello)")
    return _query_with_tz(request, query)


async def search(request: web.Request) -> web.Response:
    return await _page(request, _search_text(request), extended=False)


async def search_v2(request: web.Request) -> web.Response:
    return await _page(request, _search_text(request), extended=True)


async def delete_search(request: web.Request) -> web.Response:
    query = request.query.get("query", "").strip()
    if not query:
        raise bad_request("query is required (e.g. ?query=subject:hello)")
    mailbox = request.query.get("mailbox") or None
    await in_thread(
        store_of(request).delete_messages, None, mailbox=mailbox, query=search_query(request, query)
    )
    return ok()


async def set_read(request: web.Request) -> web.Response:
    names = ("IDs", "Read", "Search")
    body = fields_of(await json_body(request), *names, strict=False)
    ids = str_list(body, "IDs")
    if not ids:  # a misspelt IDs key must not turn into "every message"
        refuse_unknown([k for k in body if k not in names], names)
    read = body.get("Read", False)
    if not isinstance(read, bool):
        raise bad_request("Read must be true or false")
    search_text = body.get("Search")
    if search_text is not None and not isinstance(search_text, str):
        raise bad_request("Search must be a string")
    mailbox = request.query.get("mailbox") or None
    store = store_of(request)
    if ids:
        await in_thread(store.set_read, ids, read)
    elif search_text and search_text.strip():
        query = search_query(request, search_text.strip())
        await in_thread(store.set_read, None, read, mailbox=mailbox, query=query)
    else:
        await in_thread(store.set_read, None, read, mailbox=mailbox)
    return ok()


async def _form_ids(request: web.Request) -> list[str]:
    """The IDs of a form body (``ids=A&ids=B`` or ``ids=A,B``, any letter case), sent by
    older Mailpit clients; a form naming none, or naming other fields, is a 400 (it must
    not read as "no IDs", which is everything)."""
    form = await request.post()
    unknown = [k for k in form if k.lower() != "ids"]
    refuse_unknown(unknown, ("ids",))
    ids = [i.strip() for v in form.values() if isinstance(v, str) for i in v.split(",") if i.strip()]
    if not ids:
        raise bad_request("the form names no ids (to delete every message, send no body)")
    return ids


async def delete_messages(request: web.Request) -> web.Response:
    # Mailpit: no IDs (or none given) deletes every message. Any other key, in any
    # letter case other than IDs', is refused rather than ignored (issue 22).
    if request.content_type == "application/x-www-form-urlencoded":
        body: dict[str, Any] = {"IDs": await _form_ids(request)}
    else:
        body = fields_of(await json_body(request), "IDs", strict=False)
    ids = str_list(body, "IDs")
    if not ids:
        refuse_unknown([k for k in body if k != "IDs"], ("IDs",))
    mailbox = request.query.get("mailbox") or None
    if mailbox and not ids:
        # Everything "in a mailbox" is that mailbox's deliveries: messages shared with
        # other mailboxes stay there (as DELETE /api/v2/mailbox/{name}).
        await in_thread(store_of(request).delete_mailbox, mailbox)
    else:
        await in_thread(store_of(request).delete_messages, ids or None, mailbox=mailbox)
    return ok()


async def _parsed(request: web.Request) -> tuple[str, ParsedMessage]:
    mid = await resolve_id(request)
    raw = await raw_or_404(request, mid)
    return mid, await shared_pool().parse(raw)


def message_json(
    s: Summary, pm: ParsedMessage, *, return_path: str = "", extended: bool = False
) -> dict[str, Any]:
    """Mailpit's ``Message`` (with ``extended``: plus ``ThreadID``/``Mailboxes``/``ParseError``).

    ``ReturnPath`` is the Return-Path header, else ``return_path`` (the envelope sender).
    """
    out = {
        "ID": s.id,
        "MessageID": s.message_id,
        "From": address_json(s.from_),
        "To": [a.to_json() for a in s.to],
        "Cc": [a.to_json() for a in s.cc],
        "Bcc": [a.to_json() for a in s.bcc],
        "ReplyTo": [a.to_json() for a in s.reply_to],
        "ReturnPath": pm.return_path or return_path,
        "Subject": s.subject,
        "ListUnsubscribe": pm.list_unsubscribe(),
        "Date": rfc3339(s.date if s.date is not None else s.created),
        "Tags": list(s.tags),
        "Username": s.username,
        "Text": pm.text,
        "HTML": pm.html,
        "Size": s.size,
        "Inline": [p.to_json() for p in pm.inline],
        "Attachments": [p.to_json() for p in pm.attachments],
    }
    if extended:
        out["ThreadID"] = s.thread_id
        out["Mailboxes"] = list(s.mailboxes)
        # why this is the raw message (a parse over its time or memory budget,
        # docs/security.md); "" when it was parsed
        out["ParseError"] = pm.unparsed
    return out


async def _get_message(request: web.Request, *, extended: bool) -> web.Response:
    mid = await resolve_id(request)
    store = store_of(request)
    s = await in_thread(store.get_summary, mid)
    raw = await in_thread(store.get_raw, mid)
    if s is None or raw is None:
        raise not_found(f"message {mid} not found")
    pm = await shared_pool().parse(raw)
    return_path = ""
    if not pm.return_path:  # Mailpit's ReturnPath is the envelope sender when no header says
        envelope = await in_thread(store.get_envelope, mid)
        return_path = envelope.mail_from if envelope is not None else ""
    if not s.read:  # Mailpit: reading a message marks it read
        s.read = await _mark_read(store, mid)
    return json_response(message_json(s, pm, return_path=return_path, extended=extended))


async def get_message(request: web.Request) -> web.Response:
    return await _get_message(request, extended=False)


async def get_message_v2(request: web.Request) -> web.Response:
    return await _get_message(request, extended=True)


# Seconds a message view waits for its mark-read write (issue 14 item 2): a writer that is
# stuck or failing (a full disk) must not hold up, or fail, reading the message.
MARK_READ_WAIT = 2.0


async def _mark_read(store: Any, mid: str) -> bool:
    """Mark ``mid`` read as a side effect of viewing it; True once that is committed. A
    failed write is logged and the message shown unread; a slow one finishes on its own."""
    task = asyncio.ensure_future(in_thread(store.set_read, [mid], True))
    try:
        await asyncio.wait_for(asyncio.shield(task), MARK_READ_WAIT)
    except TimeoutError:
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return False
    except StoreError as e:
        log.warning("could not mark message %s read: %s", mid, e)
        return False
    return True


async def get_headers(request: web.Request) -> web.Response:
    _, pm = await _parsed(request)
    return json_response(dict(sorted(pm.headers_json().items())))


async def get_raw(request: web.Request) -> web.Response:
    mid = await resolve_id(request)
    raw = await raw_or_404(request, mid)
    headers = {}
    if request.query.get("dl") in ("1", "true"):
        headers["Content-Disposition"] = f'attachment; filename="{mid}.eml"'
    return web.Response(body=raw, content_type="text/plain", charset="utf-8", headers=headers)


def _part(pm: ParsedMessage, part_id: str, mid: str) -> Part:
    part = pm.parts.get(part_id)
    if part is None:
        raise not_found(f"part {part_id} of message {mid} not found")
    return part


def _safe_filename(name: str) -> str:
    return "".join(c for c in name if c.isprintable() and c not in '"\\/') or "part"


async def get_part(request: web.Request) -> web.Response:
    mid, pm = await _parsed(request)
    part = _part(pm, request.match_info["PartID"], mid)
    disposition = f'filename="{_safe_filename(part.filename)}"' if part.filename else "inline"
    return web.Response(
        body=part.payload,
        content_type=part.content_type,
        headers={
            "Content-Disposition": disposition,
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


def make_thumbnail(data: bytes, content_type: str) -> bytes:
    """A 180x120 JPEG: the image cropped to fill, or padded when smaller; blank for non-images."""
    from PIL import Image, ImageOps

    canvas = Image.new("RGB", THUMB_SIZE, (255, 255, 255))
    if content_type.startswith("image/"):
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.format == "JPEG":  # decode at 1/2..1/8 scale, as large as needed
                    img.draft("RGB", (THUMB_SIZE[0] * 2, THUMB_SIZE[1] * 2))
                if img.width * img.height <= THUMB_MAX_PIXELS:
                    img.load()
                    # shrink by a whole factor first (cheap box filter), keeping at least
                    # twice the thumbnail in both directions, then convert the small image
                    factor = min(img.width // (THUMB_SIZE[0] * 2), img.height // (THUMB_SIZE[1] * 2))
                    small = img.reduce(factor) if factor >= 2 else img
                    rgb = small.convert("RGBA")
                    if rgb.width >= THUMB_SIZE[0] and rgb.height >= THUMB_SIZE[1]:
                        fitted = ImageOps.fit(rgb, THUMB_SIZE)
                        canvas.paste(fitted, (0, 0), fitted)
                    else:
                        rgb.thumbnail(THUMB_SIZE)
                        x, y = (THUMB_SIZE[0] - rgb.width) // 2, (THUMB_SIZE[1] - rgb.height) // 2
                        canvas.paste(rgb, (x, y), rgb)
        except Exception:  # not decodable: blank thumbnail, as Mailpit does
            pass
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=85)
    return out.getvalue()


async def get_thumb(request: web.Request) -> web.Response:
    mid, pm = await _parsed(request)
    part = _part(pm, request.match_info["PartID"], mid)
    loop = asyncio.get_running_loop()
    jpeg = await loop.run_in_executor(_THUMB_THREADS, make_thumbnail, part.payload, part.content_type)
    return web.Response(body=jpeg, content_type="image/jpeg")


async def send(request: web.Request) -> web.Response:
    try:
        body = await json_body(request, required=True)
    except web.HTTPBadRequest as e:
        return json_response({"Error": e.text}, status=400)
    try:
        raw, rcpts, tags, mail_from = build_message(body)
    except SendError as e:
        return json_response({"Error": str(e)}, status=400)
    from ..servers.smtp_trace import message_date
    from ..store.base import Envelope

    max_size = request.app[APP_KEY].settings.smtp_max_size
    if max_size and len(raw) > max_size:  # the SMTP size limit holds for this way in too
        return json_response(
            {"Error": f"message size {len(raw)} exceeds the limit of {max_size} bytes"}, status=400
        )
    peer = request.transport.get_extra_info("peername") if request.transport else None
    env = Envelope(
        mail_from=mail_from,
        rcpt_to=tuple(rcpts),
        peer=f"{peer[0]}:{peer[1]}" if peer else "",
        helo="HTTP API",
        tls=request.secure,
        auth_user=request.get(AUTH_USER_KEY),
        # --use-message-dates: Created is the Date header's time (0: the store's "now")
        received_at=(request.app[APP_KEY].settings.use_message_dates and message_date(raw)) or 0.0,
    )
    app = request.app[APP_KEY]
    mid = await store_of(request).deliver(env, raw, tags=tuple(tags))
    # Mailpit answers once the message is stored and parsed: a client reading it next
    # sees its snippet and attachment count (bounded wait, see indexwait).
    await await_indexed(app, [mid])
    return json_response({"ID": mid})


async def get_tags(request: web.Request) -> web.Response:
    return json_response(await in_thread(store_of(request).tags))


async def set_tags(request: web.Request) -> web.Response:
    body = fields_of(await json_body(request, required=True), "IDs", "Tags", strict=False)
    ids = str_list(body, "IDs")
    tags = str_list(body, "Tags")
    if ids is None:
        raise bad_request("IDs is required (an array of message IDs)")
    if tags is None:
        raise bad_request("Tags is required (an array of tag names; [] removes all)")
    await in_thread(store_of(request).set_tags, ids, tags)
    return ok()


async def rename_tag(request: web.Request) -> web.Response:
    body = fields_of(await json_body(request, required=True), "Name", strict=False)
    name = body.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("Name is required (the new tag name)")
    await in_thread(store_of(request).rename_tag, request.match_info["Tag"], name.strip())
    return ok()


async def delete_tag(request: web.Request) -> web.Response:
    await in_thread(store_of(request).delete_tag, request.match_info["Tag"])
    return ok()


def memory_bytes() -> int:
    """Resident memory of this process (Mailpit's ``RuntimeStats.Memory``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


async def tag_counts(store: Any) -> dict[str, int]:
    """Messages per tag (Mailpit's ``Tags`` of ``/api/v1/info``)."""
    counts: dict[str, int] = {}
    for t in await in_thread(store.tags):
        quoted = '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'
        page = await in_thread(store.list_messages, query=f"tag:{quoted}", limit=0)
        counts[t] = page.messages_count
    return counts


async def info(request: web.Request) -> web.Response:
    store = store_of(request)
    stats = await in_thread(store.stats)
    counts = await tag_counts(store)
    app = request.app[APP_KEY]
    runtime: dict[str, int] = app.extras.setdefault("runtime_stats", {})
    started = app.extras.get("started_at", time.time())
    return json_response(
        {
            "Version": f"v{__version__}",  # Mailpit's versions read "v1.29.7"
            "LatestVersion": "",
            "Database": stats.database,
            "DatabaseSize": stats.database_size,
            "Messages": stats.messages,
            "Unread": stats.unread,
            "Tags": counts,
            "RuntimeStats": {
                "Memory": memory_bytes(),
                "Uptime": int(time.time() - started),
                "MessagesDeleted": runtime.get("MessagesDeleted", 0),
                "SMTPAccepted": runtime.get("SMTPAccepted", 0),
                "SMTPAcceptedSize": runtime.get("SMTPAcceptedSize", 0),
                "SMTPRejected": runtime.get("SMTPRejected", 0),
                "SMTPIgnored": runtime.get("SMTPIgnored", 0),
            },
        }
    )


def _relay_json(request: web.Request) -> dict[str, Any]:
    service = request.app[APP_KEY].outbound
    relay = service.relay if service is not None else None
    allowed = relay.allowed.pattern if relay and relay.allowed else ""
    return {
        "Enabled": relay is not None,
        "SMTPServer": relay.target.where if relay else "",
        "ReturnPath": relay.return_path if relay else "",
        "AllowedRecipients": allowed,
        "RecipientAllowlist": allowed,  # Mailpit's deprecated name, still sent
        "BlockedRecipients": relay.blocked.pattern if relay and relay.blocked else "",
        "OverrideFrom": relay.override_from if relay else "",
        "PreserveMessageIDs": bool(relay and relay.preserve_message_ids),
    }


def _webui_json(request: web.Request) -> dict[str, Any]:
    return {
        "Label": request.app[APP_KEY].settings.label,
        "MessageRelay": _relay_json(request),
        "SpamAssassin": bool(request.app[APP_KEY].settings.enable_spamassassin),
        "ChaosEnabled": request.app[APP_KEY].chaos.enabled,
        "DuplicatesIgnored": False,
        "HideDeleteAllButton": request.app[APP_KEY].settings.hide_delete_all_button,
    }


async def webui(request: web.Request) -> web.Response:
    return json_response(_webui_json(request))


async def webui_v2(request: web.Request) -> web.Response:
    """Mailpit's UI settings plus ``Listeners``: where to send mail, for the UI's empty screen."""
    listeners = {
        name: f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        for name, (host, port) in request.app[APP_KEY].addresses.items()
    }
    return json_response({**_webui_json(request), "Listeners": listeners})


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    """Register every Mailpit v1 route under ``prefix`` (the webroot, ending in '/')."""
    p = prefix + "api/v1"
    r.add_get(p + "/messages", list_messages)
    r.add_put(p + "/messages", set_read)
    r.add_delete(p + "/messages", delete_messages)
    r.add_get(p + "/search", search)
    r.add_delete(p + "/search", delete_search)
    r.add_get(p + "/message/{ID}", get_message)
    r.add_get(p + "/message/{ID}/headers", get_headers)
    r.add_get(p + "/message/{ID}/raw", get_raw)
    r.add_get(p + "/message/{ID}/part/{PartID}", get_part)
    r.add_get(p + "/message/{ID}/part/{PartID}/thumb", get_thumb)
    r.add_post(p + "/send", send)
    r.add_get(p + "/tags", get_tags)
    r.add_put(p + "/tags", set_tags)
    r.add_put(p + "/tags/{Tag}", rename_tag)
    r.add_delete(p + "/tags/{Tag}", delete_tag)
    r.add_get(p + "/info", info)
    r.add_get(p + "/webui", webui)
    from .api_testing import chaos_get, chaos_put  # postroom.runtime's chaos state

    r.add_get(p + "/chaos", chaos_get)
    r.add_put(p + "/chaos", chaos_put)
    # The same with postroom's fields added (see the module docstring): the UI's and
    # postroom.testing's, since /api/v1 keeps Mailpit's exact shape.
    v2 = prefix + "api/v2"
    r.add_get(v2 + "/messages", list_messages_v2)
    r.add_get(v2 + "/search", search_v2)
    r.add_get(v2 + "/message/{ID}", get_message_v2)
    r.add_get(v2 + "/webui", webui_v2)
