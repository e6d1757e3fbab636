"""Pages that are not JSON: message HTML/text views, the static UI, health checks, API docs.

``/view/{ID}.html`` renders a message's HTML with a CSP ``sandbox`` (no scripts, an
opaque origin, no forms) and no remote content unless ``?remote=1``; inline ``cid:``
images are rewritten to their part URLs. The UI frames it; it is never same-origin with
the UI, so a hostile message cannot reach the API.
"""

from __future__ import annotations

import html as htmlmod
import json
import mimetypes
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..parsepool import shared_pool
from .common import PREFIX_KEY, not_found, raw_or_404, resolve_id, text_response
from .view_image import view_svg

__all__ = ["HEAD_TAG", "UI_CSP", "add_routes", "openapi_document"]

# "<head" then its attributes up to the next "<" or ">". "<head[^>]*>" ran to the end of the
# document from every "<head" with no ">" after it: quadratic (issue 14, regex audit).
HEAD_TAG = re.compile(r"<head(?:\s[^<>]*)?>", re.IGNORECASE)
# The start of a link element ("<a" then space): the new-tab attributes go first, so they
# win over any the message sets later in the tag (HTML keeps the first of a repeated one).
LINK_TAG = re.compile(r"(<a)(?=\s)", re.IGNORECASE)

# The UI's policy: nothing but its own files (no inline script or style, no CDN).
UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; frame-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)

UI_DIR = Path(__file__).parent / "ui"

_PLACEHOLDER = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>postroom</title></head>
<body><h1>postroom</h1><p>The web UI is not part of this build. The API is at
<a href="api/v1/messages">api/v1/messages</a>; its documentation at <a href="api/docs">api/docs</a>.</p>
</body></html>"""


def _view_csp(request: web.Request, remote: bool) -> str:
    origin = f"{request.scheme}://{request.host}"
    if remote:
        return (
            "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
            f"img-src 'self' {origin} https: http: data: cid:; style-src 'unsafe-inline' https: http:; "
            "font-src https: http: data:; frame-ancestors 'self'"
        )
    return (
        "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
        f"img-src 'self' {origin} data: cid:; style-src 'unsafe-inline'; font-src data:; frame-ancestors 'self'"
    )


async def view_html(request: web.Request) -> web.Response:
    mid = await resolve_id(request)
    raw = await raw_or_404(request, mid)
    pm = await shared_pool().parse(raw)
    if not pm.html:
        raise not_found("message has no HTML part")
    prefix = request.app[PREFIX_KEY]
    by_cid = {p.content_id: p.part_id for p in (*pm.inline, *pm.attachments) if p.content_id}

    def cid_url(m: re.Match[str]) -> str:
        part = by_cid.get(m.group(2))
        if part is None:
            return m.group(0)
        return f"{m.group(1)}{prefix}api/v1/message/{mid}/part/{part}"

    body = re.sub(r"""(["'(\s=])cid:([^"'\s)>]+)""", cid_url, pm.html)
    if request.query.get("embed") in ("1", "true"):
        # Mailpit's embed mode: every link opens in a new tab without a referrer (its
        # swagger says so, and clients check for the attributes); the base element covers
        # what is not a link (an area, a form).
        body = LINK_TAG.sub(r'\1 target="_blank" rel="noreferrer noopener"', body)
        base = '<base target="_blank">'
        head = HEAD_TAG.search(body)
        body = body[: head.end()] + base + body[head.end() :] if head else base + body
    headers = {
        "Content-Security-Policy": _view_csp(request, request.query.get("remote") in ("1", "true")),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=headers)


async def view_text(request: web.Request) -> web.Response:
    mid = await resolve_id(request)
    raw = await raw_or_404(request, mid)
    pm = await shared_pool().parse(raw)
    return text_response(pm.text)


async def livez(request: web.Request) -> web.Response:
    return text_response("ok")


async def readyz(request: web.Request) -> web.Response:
    from .common import APP_KEY

    if not request.app[APP_KEY].store_open:
        return text_response("store not open", status=503)
    return text_response("ok")


def _ui_file(name: str) -> Path | None:
    if not UI_DIR.is_dir() or any(ord(c) < 0x20 for c in name):
        return None  # a NUL or other control character never names a UI file
    try:
        target = (UI_DIR / name).resolve()
        root = UI_DIR.resolve()
        if root not in target.parents or not target.is_file():
            return None
    except (OSError, ValueError):  # a name too long for the file system, and the like
        return None
    return target


async def ui_index(request: web.Request) -> web.Response:
    index = _ui_file("index.html")
    body = index.read_text(encoding="utf-8") if index else _PLACEHOLDER
    return web.Response(
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": UI_CSP, "Cache-Control": "no-cache"},
    )


async def ui_static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["path"]
    if ".." in name.split("/"):
        raise not_found()
    path = _ui_file(name)
    if path is None:
        raise not_found(f"{name} not found")
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js":
        ctype = "text/javascript"
    return web.FileResponse(
        path,
        headers={"Content-Type": ctype, "Content-Security-Policy": UI_CSP, "Cache-Control": "no-cache"},
    )


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document shipped as ``web/openapi.json``."""
    text = resources.files("postroom.web").joinpath("openapi.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def docs(request: web.Request) -> web.Response:
    doc = openapi_document()
    esc = htmlmod.escape
    rows: list[str] = []
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            params = ", ".join(
                f"<code>{esc(p.get('name', ''))}</code> ({esc(p.get('in', ''))})"
                for p in op.get("parameters", [])
            )
            codes = ", ".join(esc(c) for c in op.get("responses", {}))
            rows.append(
                f"<section><h3><span class='m'>{esc(method.upper())}</span> <code>{esc(path)}</code></h3>"
                f"<p><b>{esc(op.get('summary', ''))}</b></p><p>{esc(op.get('description', ''))}</p>"
                + (f"<p>Parameters: {params}</p>" if params else "")
                + f"<p>Responses: {codes}</p></section>"
            )
    info = doc.get("info", {})
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(info.get('title', 'API'))}</title>"
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "section{border-top:1px solid #ddd}.m{font-weight:bold;color:#06c}code{background:#f4f4f4}</style>"
        f"</head><body><h1>{esc(info.get('title', 'API'))} {esc(info.get('version', ''))}</h1>"
        f"<p>{esc(info.get('description', ''))}</p><p>Machine-readable: <a href='openapi.json'>openapi.json</a></p>"
        + "".join(rows)
        + "</body></html>"
    )
    csp = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    return web.Response(
        text=page, content_type="text/html", charset="utf-8", headers={"Content-Security-Policy": csp}
    )


async def view_in_ui(request: web.Request) -> web.Response:
    """Mailpit's UI address of a message (``/view/{ID}``; ``/view/latest[?query=]`` for the
    newest match): redirect to the UI showing it, or to the UI when nothing matches."""
    prefix = request.app[PREFIX_KEY]
    try:
        mid = await resolve_id(request)
    except web.HTTPNotFound:
        raise web.HTTPFound(prefix) from None
    raise web.HTTPFound(f"{prefix}#id={quote(mid, safe='')}")


async def to_api_docs(request: web.Request) -> web.Response:
    """Mailpit's API documentation page is ``/api/v1/``; postroom's is ``/api/docs``."""
    raise web.HTTPFound(request.app[PREFIX_KEY] + "api/docs")


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    """Register the views; call last (the UI's file route matches any remaining path)."""
    r.add_get(prefix + "view/{ID}.html", view_html)
    r.add_get(prefix + "view/{ID}.txt", view_text)
    r.add_get(prefix + "view/{ID}.svg", view_svg)
    r.add_get(prefix + "view/{ID:[A-Za-z0-9]+}", view_in_ui)
    r.add_get(prefix + "livez", livez)
    r.add_get(prefix + "readyz", readyz)
    r.add_get(prefix + "api/openapi.json", openapi_json)
    r.add_get(prefix + "api/v1/swagger.json", openapi_json)  # where Mailpit serves its API description
    r.add_get(prefix + "api/v1/", to_api_docs)
    r.add_get(prefix + "api/docs", docs)
    r.add_get(prefix, ui_index)
    r.add_get(prefix + "{path:(?!api/).+}", ui_static)
