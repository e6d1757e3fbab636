"""A parsed view of a raw message: headers, addresses, text, HTML, attachments, snippet.

Parsing uses the stdlib ``email`` package (``policy.default``, ~ms per message), so it
is for reads (API, indexer), never the SMTP hot path (see ``store/headers.py``).

Parts are numbered like Mailpit's (and IMAP's) PartIDs: the children of a multipart are
``1``, ``2``...; nested parts join with dots (``1.2``); a single-part message is ``1``.
An attached message (``message/rfc822``) is one part: it is not descended into.

Which parts are what (as Mailpit/enmime do):

* the first ``text/plain`` and the first ``text/html`` that are not attachments are the
  bodies (``text``, ``html``); without a text part, ``text`` is the HTML's text;
* a non-body part is *inline* when its disposition is ``inline`` (or it has a Content-ID
  and no disposition, as in ``multipart/related``), else an *attachment*.

This module never raises on malformed input: what cannot be decoded is left out.
"""

from __future__ import annotations

import hashlib
import html as htmlmod
import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

__all__ = [
    "MAX_PARTS",
    "SNIPPET_LENGTH",
    "ParsedMessage",
    "Part",
    "canonical_header_name",
    "decode_header_value",
    "html_to_text",
    "make_snippet",
    "parse_message",
]

# Mailpit's snippet length ("up to 250 characters", MessageSummary.Snippet).
SNIPPET_LENGTH = 250
# MIME parts considered per message; protects the API from pathological nesting.
MAX_PARTS = 1000
# Depth of multipart nesting followed (RFC 2046 sets no limit; Mailpit/enmime stop too).
MAX_DEPTH = 50


@dataclass(slots=True)
class Part:
    """A leaf MIME part (an attachment, an inline part, or a body)."""

    part_id: str
    content_type: str
    filename: str
    content_id: str
    disposition: str  # "inline", "attachment" or ""
    payload: bytes  # decoded content

    def to_json(self) -> dict[str, Any]:
        """Mailpit's ``Attachment`` object."""
        return {
            "PartID": self.part_id,
            "FileName": self.filename,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": len(self.payload),
            "Checksums": {
                "MD5": hashlib.md5(self.payload).hexdigest(),
                "SHA1": hashlib.sha1(self.payload).hexdigest(),
                "SHA256": hashlib.sha256(self.payload).hexdigest(),
            },
        }


@dataclass(slots=True)
class ParsedMessage:
    raw_headers: list[tuple[str, str]]  # (name as written, unfolded raw value)
    subject: str = ""
    from_: tuple[str, str] | None = None
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    bcc: list[tuple[str, str]] = field(default_factory=list)
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    message_id: str = ""
    return_path: str = ""
    date: float | None = None
    text: str = ""
    html: str = ""
    inline: list[Part] = field(default_factory=list)
    attachments: list[Part] = field(default_factory=list)
    parts: dict[str, Part] = field(default_factory=dict)  # every leaf part by PartID

    def header(self, name: str) -> str:
        """The first header ``name`` (case-insensitive), decoded; "" when absent."""
        low = name.lower()
        for k, v in self.raw_headers:
            if k.lower() == low:
                return decode_header_value(v)
        return ""

    def headers_json(self) -> dict[str, list[str]]:
        """Headers as Mailpit returns them: Go-canonical names -> list of values."""
        out: dict[str, list[str]] = {}
        for k, v in self.raw_headers:
            out.setdefault(canonical_header_name(k), []).append(v)
        return out

    @property
    def snippet(self) -> str:
        return make_snippet(self.text or html_to_text(self.html))

    def list_unsubscribe(self) -> dict[str, Any]:
        """Mailpit's ``ListUnsubscribe`` object (RFC 2369, RFC 8058)."""
        header = self.header("List-Unsubscribe")
        post = self.header("List-Unsubscribe-Post")
        links: list[str] = []
        errors = ""
        if header:
            found = re.findall(r"<([^<>]*)>", header)
            if not found:
                errors = "No valid links found"
            for link in found:
                link = link.strip()
                if re.match(r"(?i)^(https?|mailto):", link):
                    links.append(link)
                else:
                    errors = f"Unsupported link: {link}"
        return {"Header": header, "Links": links, "Errors": errors, "HeaderPost": post}


def canonical_header_name(name: str) -> str:
    """Go's textproto canonical form (``message-id`` -> ``Message-Id``), as Mailpit uses."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def decode_header_value(value: str) -> str:
    """Decode RFC 2047 encoded-words; return the input when it does not decode."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, TypeError):
        return value


def _raw_headers(raw: bytes) -> list[tuple[str, str]]:
    i, j = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    ends = [x for x in (i, j) if x >= 0]
    block = raw[: min(ends)] if ends else raw
    out: list[tuple[str, str]] = []
    for line in block.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if out:
                name, value = out[-1]
                out[-1] = (name, (value + " " + _text(line.strip())).strip())
            continue
        kb, sep, vb = line.partition(b":")
        if sep and kb.strip():
            out.append((_text(kb.strip()), _text(vb.strip())))
    return out


def _text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _addresses(value: str) -> list[tuple[str, str]]:
    if not value:
        return []
    out = []
    for name, addr in getaddresses([value]):
        if name or addr:
            out.append((decode_header_value(name), addr))
    return out


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message, payload: bytes) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        return decode_header_value(str(name))
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        return "message.eml"
    return ""


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` into a :class:`ParsedMessage` (never raises)."""
    headers = _raw_headers(raw)
    try:
        msg: Message = BytesParser(policy=policy.compat32).parsebytes(raw)
    except Exception:  # the email package is lenient; this is belt and braces
        msg = EmailMessage()
    pm = ParsedMessage(raw_headers=headers)
    pm.subject = pm.header("Subject")
    froms = _addresses(pm.header("From"))
    pm.from_ = froms[0] if froms else None
    pm.to = _addresses(pm.header("To"))
    pm.cc = _addresses(pm.header("Cc"))
    pm.bcc = _addresses(pm.header("Bcc"))
    pm.reply_to = _addresses(pm.header("Reply-To"))
    mid = pm.header("Message-ID").strip()
    pm.message_id = mid[1:-1] if mid.startswith("<") and mid.endswith(">") else mid
    pm.return_path = pm.header("Return-Path").strip().strip("<>")
    if date := pm.header("Date"):
        try:
            pm.date = parsedate_to_datetime(date).timestamp()
        except (ValueError, TypeError, IndexError, OverflowError):
            pm.date = None
    _walk(msg, "", 0, pm)
    if not pm.text and pm.html:
        pm.text = html_to_text(pm.html)
    return pm


def _walk(part: Message, prefix: str, depth: int, pm: ParsedMessage) -> None:
    ctype = part.get_content_type()
    if part.is_multipart() and ctype != "message/rfc822" and depth < MAX_DEPTH:
        payload = part.get_payload()
        children = payload if isinstance(payload, list) else []
        for n, child in enumerate(children, 1):
            if len(pm.parts) >= MAX_PARTS:
                return
            if isinstance(child, Message):
                _walk(child, f"{prefix}.{n}" if prefix else str(n), depth + 1, pm)
        return
    part_id = prefix or "1"
    disposition = (part.get_content_disposition() or "").lower()
    filename = _filename(part)
    cid = (part.get("Content-ID") or "").strip()
    cid = cid[1:-1] if cid.startswith("<") and cid.endswith(">") else cid
    if ctype == "message/rfc822":
        inner = part.get_payload()
        sub = inner[0] if isinstance(inner, list) and inner else None
        payload = sub.as_bytes() if isinstance(sub, Message) else _payload(part)
    else:
        payload = _payload(part)
    is_body = disposition != "attachment" and not filename and ctype in ("text/plain", "text/html")
    if is_body and ctype == "text/plain" and not pm.text:
        pm.text = _part_text(part, payload)
        return
    if is_body and ctype == "text/html" and not pm.html:
        pm.html = _part_text(part, payload)
        return
    if is_body and ctype == "text/plain":  # more text bodies (e.g. mixed text/attachment/text)
        pm.text += "\n" + _part_text(part, payload)
        return
    p = Part(part_id, ctype, filename, cid, disposition, payload)
    pm.parts[part_id] = p
    if disposition == "inline" or (not disposition and cid):
        pm.inline.append(p)
    else:
        pm.attachments.append(p)


# -- HTML to text ----------------------------------------------------------------------

_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    ]
)
_SKIP = frozenset(("script", "style", "head", "title", "noscript", "template"))


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """Readable text of an HTML document (scripts, styles and head dropped)."""
    if not html:
        return ""
    p = _TextExtractor()
    try:
        p.feed(html)
        p.close()
    except Exception:  # HTMLParser is lenient; never fail a read on bad markup
        return htmlmod.unescape(re.sub(r"<[^>]*>", " ", html))
    text = "".join(p.out)
    lines = (re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def make_snippet(text: str) -> str:
    """Whitespace-collapsed start of ``text``, at most :data:`SNIPPET_LENGTH` characters."""
    s = " ".join(text.split())
    if len(s) <= SNIPPET_LENGTH:
        return s
    return s[: SNIPPET_LENGTH - 3].rstrip() + "..."
