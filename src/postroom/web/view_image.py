"""``GET /view/{ID}.svg``: a message's HTML as an SVG image, for the UI's PNG screenshot.

The web UI draws this image on a canvas and saves the canvas as PNG (the HTML tab's
*Screenshot* button, as Mailpit offers). A browser renders an SVG image's
``<foreignObject>`` as HTML, but an image loads nothing (no URL, not even this server's)
and runs no script, so the message is made self-contained here: its HTML read by libxml2
(lxml) and written back as XHTML, its ``cid:`` pictures inlined as ``data:`` URLs, and what
cannot show in an image (scripts, frames, objects, remote and server URLs) left out.

Opened directly, the answer is a document of this origin; its Content-Security-Policy makes
it a sandbox with an opaque origin that runs nothing and loads nothing but ``data:``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from aiohttp import web

from .common import raw_or_404, resolve_id

__all__ = ["view_svg"]

XHTML = "http://www.w3.org/1999/xhtml"
MAX_WIDTH = 4096
MAX_HEIGHT = 16384
DEFAULT_HEIGHT = 4000
# what never renders in an image, or must not be in a document of this origin
DROP_TAGS = (
    "script",
    "noscript",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "base",
    "meta",
    "link",
)
URL_ATTRS = ("src", "background", "poster", "srcset", "href", "action", "formaction")
CSS_URL = re.compile(r"url\(\s*(['\"]?)\s*cid:([^'\")\s]+)\1\s*\)", re.IGNORECASE)
XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")  # no prefix: nothing declares one
CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"


def _size(request: web.Request, name: str, default: int, top: int) -> int:
    value = request.query.get(name, "")
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= top:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number of pixels from 1 to {top}\n")
    return int(value)


def _data_url(part: Any) -> str:
    kind = (part.content_type or "application/octet-stream").split(";")[0].strip()
    return f"data:{kind};base64,{base64.b64encode(part.payload).decode('ascii')}"


def to_xhtml(html: str, parts_by_cid: dict[str, Any]) -> str:
    """The message's HTML as one self-contained XHTML ``<html>`` element (see the module)."""
    import lxml.etree
    import lxml.html

    from ..message import _CONTROLS

    def cid(m: re.Match[str]) -> str:
        part = parts_by_cid.get(m.group(2))
        return f"url({_data_url(part)})" if part is not None else "none"

    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True)
    try:
        data = html.encode("utf-8", "surrogatepass").translate(_CONTROLS)
        root = lxml.html.document_fromstring(data, parser=parser)
    except (lxml.etree.LxmlError, ValueError):  # "Document is empty" and the like
        root = lxml.html.document_fromstring("<p></p>")
    for el in list(root.iter(*DROP_TAGS)):
        el.drop_tree()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if not XML_NAME.match(el.tag):  # Outlook's <o:p> and the like: no prefix is declared
            el.tag = "span"
        for attr in list(el.attrib):
            low = attr.lower()
            if low.startswith("on") or not XML_NAME.match(attr):
                del el.attrib[attr]
            elif low in URL_ATTRS:
                value = el.attrib[attr].strip()
                part = parts_by_cid.get(value[4:]) if value[:4].lower() == "cid:" else None
                if part is not None and low in ("src", "background", "poster"):
                    el.attrib[attr] = _data_url(part)
                elif not value.lower().startswith("data:") or low != "src":
                    del el.attrib[attr]  # a link, a remote or server URL: nothing an image can load
            elif low == "style":
                el.attrib[attr] = CSS_URL.sub(cid, el.attrib[attr])
        if el.tag == "style" and el.text:
            el.text = CSS_URL.sub(cid, el.text)
    text = lxml.etree.tostring(root, method="xml", encoding="unicode")
    return re.sub(r"^<html\b", f'<html xmlns="{XHTML}"', text, count=1)


async def view_svg(request: web.Request) -> web.Response:
    """The HTML part of a message as an SVG image ``width`` x ``height`` pixels (query)."""
    from ..parsepool import shared_pool

    width = _size(request, "width", 1024, MAX_WIDTH)
    height = _size(request, "height", DEFAULT_HEIGHT, MAX_HEIGHT)
    mid = await resolve_id(request)
    raw = await raw_or_404(request, mid)
    pm = await shared_pool().parse(raw)
    if not pm.html:
        raise web.HTTPNotFound(text="message has no HTML part\n")
    by_cid = {p.content_id: p for p in (*pm.inline, *pm.attachments) if p.content_id}
    xhtml = to_xhtml(pm.html, by_cid)
    body = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<foreignObject x="0" y="0" width="{width}" height="{height}">{xhtml}</foreignObject></svg>'
    )
    headers = {
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return web.Response(text=body, content_type="image/svg+xml", charset="utf-8", headers=headers)
