"""Shared pieces of the HTTP layer: JSON shapes, errors, parameters, the app's keys.

Error style follows Mailpit: a failed API call answers ``400`` (or ``404`` for an
unknown message) with a short plain-text body naming the problem; only ``POST
/api/v1/send`` answers JSON errors (``{"Error": "..."}``), as Mailpit's spec says.

Errors::

    HTTPError (aiohttp.web.HTTPException subclasses, raised by handlers)
     +-- bad_request(msg)   400 text/plain
     +-- not_found(msg)     404 text/plain
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from ..store.base import Address, InvalidQuery, Summary, WebStore

if TYPE_CHECKING:
    from ..app import App

__all__ = [
    "APP_KEY",
    "AUTH_USER_KEY",
    "MAX_BODY",
    "MAX_LIMIT",
    "PREFIX_KEY",
    "address_json",
    "bad_request",
    "fields_of",
    "in_thread",
    "int_param",
    "json_body",
    "json_response",
    "not_found",
    "ok",
    "refuse_unknown",
    "resolve_id",
    "rfc3339",
    "search_query",
    "store_of",
    "summary_json",
    "text_response",
]

APP_KEY: web.AppKey[App] = web.AppKey("postroom_app")
AUTH_USER_KEY: web.RequestKey[str] = web.RequestKey("postroom_auth_user", str)  # basic-auth user
PREFIX_KEY: web.AppKey[str] = web.AppKey("postroom_prefix", str)  # the webroot, ending in "/"
# Largest JSON request body (POST /api/v1/send carries base64 attachments; SMTP's
# default size limit is 50 MiB, base64 adds a third).
MAX_BODY = 70 * 1024 * 1024
# Largest page the API asks the store for (the store clamps further if it wants).
MAX_LIMIT = 10_000
# JSON bodies up to this size are parsed on the event loop (well under a millisecond);
# larger ones in a thread, so that a 70 MB body never stalls other requests.
JSON_INLINE_MAX = 256 * 1024

T = TypeVar("T")


def store_of(request: web.Request) -> WebStore:
    return request.app[APP_KEY].store


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call off the event loop; InvalidQuery becomes a 400."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except InvalidQuery as e:
        raise bad_request(f"invalid search: {e}") from None


def text_response(text: str, status: int = 200, content_type: str = "text/plain") -> web.Response:
    return web.Response(text=text, status=status, content_type=content_type, charset="utf-8")


def ok() -> web.Response:
    """Mailpit's plain-text ``ok``."""
    return text_response("ok")


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message, content_type="text/plain")


def not_found(message: str = "not found") -> web.HTTPNotFound:
    return web.HTTPNotFound(text=message, content_type="text/plain")


def _default(o: Any) -> Any:
    if isinstance(o, Summary):
        return summary_json(o)
    if isinstance(o, Address):
        return o.to_json()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_response(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, default=_default, separators=(",", ":"))
    return web.Response(text=body, status=status, content_type="application/json", charset="utf-8")


def rfc3339(epoch: float) -> str:
    """RFC 3339 UTC with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano)."""
    dt = datetime.fromtimestamp(epoch, UTC)
    frac = f"{dt.microsecond:06d}000".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def address_json(a: Address | None) -> dict[str, str]:
    return a.to_json() if a is not None else {"Name": "", "Address": ""}


def summary_json(s: Summary, *, extended: bool = True) -> dict[str, Any]:
    """Mailpit's ``MessageSummary``, plus postroom's ``ThreadID`` and ``Mailboxes`` when
    ``extended`` (``/api/v2``, webhooks; ``/api/v1`` is exactly Mailpit's shape, which
    clients compare field for field)."""
    out = {
        "ID": s.id,
        "MessageID": s.message_id,
        "Read": s.read,
        "From": address_json(s.from_),
        "To": [a.to_json() for a in s.to],
        "Cc": [a.to_json() for a in s.cc],
        "Bcc": [a.to_json() for a in s.bcc],
        "ReplyTo": [a.to_json() for a in s.reply_to],
        "Subject": s.subject,
        "Created": rfc3339(s.created),
        "Username": s.username,
        "Tags": list(s.tags),
        "Size": s.size,
        "Attachments": s.attachments,
        "Snippet": s.snippet,
    }
    if extended:
        out["ThreadID"] = s.thread_id
        out["Mailboxes"] = list(s.mailboxes)
    return out


def int_param(request: web.Request, name: str, default: int, *, maximum: int | None = None) -> int:
    """A non-negative integer query parameter; 400 when it is not one. Clamped to ``maximum``."""
    raw = request.query.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise bad_request(f"{name} must be 0 or more")
    return min(value, maximum) if maximum is not None else value


async def json_body(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object; {} for an empty optional body; 400 naming the problem."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_request("request body is empty: expected a JSON object")
        return {}
    try:
        # a large body (POST /api/v1/send with attachments) is parsed off the event loop
        data = json.loads(raw) if len(raw) <= JSON_INLINE_MAX else await asyncio.to_thread(json.loads, raw)
    except UnicodeDecodeError:
        raise bad_request("request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise bad_request(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        # CPython's C decoder counts each nesting level against the recursion limit
        # (about 1,000) and raises here, in linear time and bounded memory: a body of
        # 100,000 "[" is a 400, not a 500.
        raise bad_request("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise bad_request(f"expected a JSON object, got {type(data).__name__}")
    return data


def fields_of(body: dict[str, Any], *names: str, strict: bool = True) -> dict[str, Any]:
    """``body`` with its keys matched case-insensitively to ``names`` (Mailpit's decoder does).

    With ``strict``, an unknown key is a 400; otherwise unknown keys are kept under
    their own spelling (check them with :func:`refuse_unknown` where they matter). A
    key given twice in different cases is always a 400.
    """
    canonical = {n.lower(): n for n in names}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = canonical.get(key.lower())
        if name is None:
            if strict:
                refuse_unknown([key], names)
            name = key
        if name in out:
            raise bad_request(f"field {name} given twice (keys are case-insensitive)")
        out[name] = value
    return out


def refuse_unknown(keys: list[str], names: tuple[str, ...]) -> None:
    """400 naming the first of ``keys`` (fields other than ``names``), if there is one.

    Used where ignoring a misspelt key would widen an operation: ``{"Id": [X]}`` must
    not read as "no IDs given", which means every message.
    """
    if keys:
        raise bad_request(f"unknown field {keys[0][:50]!r} (expected {', '.join(names)})")


def search_query(request: web.Request, text: str) -> str:
    """A search that selects messages for a bulk change; 400 when it would select all of them.

    An empty query, one of only ``tz:`` terms, or one with control characters (a NUL
    made ``DELETE /api/v1/search?query=%00`` delete every message) is refused: deleting
    or marking everything has its own call without a query.
    """
    from ..search import SearchError, parse

    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in text) or "\x7f" in text:
        raise bad_request("query contains control characters")
    tz = request.query.get("tz")
    try:
        node = parse(text, tz=tz or None)
    except SearchError as e:
        raise bad_request(f"invalid search: {e}") from None
    if node is None:
        raise bad_request("query is required and must select something (e.g. subject:hello)")
    return f"tz:{tz} {text}" if tz else text


def str_list(body: dict[str, Any], key: str) -> list[str] | None:
    """``body[key]`` as a list of strings (None when absent or null); 400 when mistyped."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{key} must be an array of strings")
    return value


async def resolve_id(request: web.Request) -> str:
    """The ``{ID}`` of the URL; ``latest`` is the newest message (matching ``?query=``/``?mailbox=``)."""
    mid = request.match_info["ID"]
    if mid != "latest":
        return mid
    store = store_of(request)
    query = request.query.get("query") or None
    if query and (tz := request.query.get("tz")):
        query = f"tz:{tz} {query}"
    mailbox = request.query.get("mailbox") or None
    latest = await in_thread(store.latest_id, mailbox=mailbox, query=query)
    if latest is None:
        raise not_found("no messages" if not query else "no message matches the search")
    return latest


async def summary_or_404(request: web.Request, mid: str) -> Summary:
    s = await in_thread(store_of(request).get_summary, mid)
    if s is None:
        raise not_found(f"message {mid} not found")
    return s


async def raw_or_404(request: web.Request, mid: str) -> bytes:
    raw = await in_thread(store_of(request).get_raw, mid)
    if raw is None:
        raise not_found(f"message {mid} not found")
    return raw
