"""A parsed view of a raw message: headers, addresses, text, HTML, attachments, snippet.

The MIME tree is ``email``'s ``compat32`` tree, built by :mod:`postroom.mimeparse` for
common shapes (~0.1 ms for a 21 KB HTML mail) and by ``email``'s parser otherwise (~1 ms);
HTML becomes text through libxml2's HTML parser (:func:`html_to_text`). Still for reads
(API, indexer), never the SMTP hot path (see ``store/headers.py``).

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
import re
import threading
from dataclasses import dataclass, field
from email._policybase import compat32  # not email.policy (see mimeparse.py)
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from .charsets import address_list, date_timestamp, decode_text, decode_words
from .mimeparse import parse_bytes

__all__ = [
    "BLOCK_TAGS",
    "MAX_HTML_TEXT_INPUT",
    "MAX_PARTS",
    "SKIPPED_TAGS",
    "SNIPPET_LENGTH",
    "ParsedMessage",
    "Part",
    "canonical_header_name",
    "html_to_text",
    "make_snippet",
    "parse_message",
    "raw_view",
    "tidy_text",
]

# Mailpit's snippet length ("up to 250 characters", MessageSummary.Snippet).
SNIPPET_LENGTH = 250
# MIME parts considered per message; protects the API from pathological nesting.
MAX_PARTS = 1000
# Depth of multipart nesting followed (RFC 2046 sets no limit; Mailpit/enmime stop too).
MAX_DEPTH = 50
# Characters of HTML read to make text (snippet, index, the Text of an HTML-only message);
# the text of a longer document is the text of its start. libxml2's tree takes ~20 bytes per
# input byte, so this bounds one conversion to tens of MB and well under a second (21 MB of
# HTML took 450 MB and 18 s); the full-text index keeps 1,000,000 characters of body anyway.
MAX_HTML_TEXT_INPUT = 1_000_000


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
    text_from_html: bool = False  # no text part: ``text`` is the HTML's text
    unparsed: str = ""  # why this is the raw view (:func:`raw_view`); "" when parsed

    def header(self, name: str) -> str:
        """The first header ``name`` (case-insensitive), decoded; "" when absent."""
        low = name.lower()
        for k, v in self.raw_headers:
            if k.lower() == low:
                return decode_words(v)
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
        from .listunsub import check_list_unsubscribe

        links, errors = check_list_unsubscribe(header) if header else ([], "")
        return {"Header": header, "Links": links, "Errors": errors, "HeaderPost": post}


def canonical_header_name(name: str) -> str:
    """Go's textproto canonical form (``message-id`` -> ``Message-Id``), as Mailpit uses."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


_HEADER_END = re.compile(rb"\r\n\r\n|\n\n")


def _raw_headers(raw: bytes) -> list[tuple[str, str]]:
    end = _HEADER_END.search(raw)  # the earlier of CRLF CRLF and LF LF
    block = raw[: end.start()] if end else raw
    # Each field as (name, [value pieces]); the pieces are joined once at the end: adding
    # each continuation to a string made 100,000 folded lines take seconds (issue 14 item 6).
    fields: list[tuple[bytes, list[bytes]]] = []
    for line in block.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if fields:
                piece = line.strip()
                if piece:
                    fields[-1][1].append(piece)
            continue
        kb, sep, vb = line.partition(b":")
        if sep and kb.strip():
            value = vb.strip()
            fields.append((kb.strip(), [value] if value else []))
    return [(_text(name), _text(b" ".join(pieces))) for name, pieces in fields]


def _text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message, payload: bytes) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:  # an RFC 2231 charset parameter that does not decode
        charset = None
    return decode_text(payload, charset)  # unusable charsets read as UTF-8 (issue 14 item 5)


def _filename(part: Message) -> str:
    # get_filename() parses two parameter lists; without a Content-Disposition and with
    # no "name" anywhere in the Content-Type it can only answer None.
    ctype_raw = part.get("Content-Type")
    if part.get("Content-Disposition") is None and (
        ctype_raw is None or "name" not in str(ctype_raw).lower()
    ):
        name = None
    else:
        try:
            name = part.get_filename()
        except Exception:
            name = None
    if name:
        return decode_words(str(name))
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        return "message.eml"
    return ""


def parse_message(raw: bytes, *, fast: bool = True, payloads: bool = True) -> ParsedMessage:
    """Parse ``raw`` into a :class:`ParsedMessage` (never raises).

    The MIME tree comes from :func:`postroom.mimeparse.parse_bytes` when it handles the
    message's shape, else from ``email``'s parser (the same tree, ~6x slower);
    ``fast=False`` uses only ``email``'s parser: the reference that tests compare the fast
    path with. ``payloads=False`` leaves the
    payloads of attachments and inline parts empty (the indexer needs only their names).
    """
    headers = _raw_headers(raw)
    msg: Message | None = parse_bytes(raw) if fast else None
    if msg is None:
        try:
            msg = BytesParser(policy=compat32).parsebytes(raw)
        except Exception:  # the email package is lenient; this is belt and braces
            msg = EmailMessage()
    pm = ParsedMessage(raw_headers=headers)
    first: dict[str, str] = {}  # the first of each header, as ParsedMessage.header() finds it
    for k, v in headers:
        first.setdefault(k.lower(), v)

    def header(name: str) -> str:
        return decode_words(first.get(name, ""))

    pm.subject = header("subject")
    froms = address_list(first.get("from", ""))  # (names decoded after parsing)
    pm.from_ = froms[0] if froms else None
    pm.to = address_list(first.get("to", ""))
    pm.cc = address_list(first.get("cc", ""))
    pm.bcc = address_list(first.get("bcc", ""))
    pm.reply_to = address_list(first.get("reply-to", ""))
    mid = header("message-id").strip()
    pm.message_id = mid[1:-1] if mid.startswith("<") and mid.endswith(">") else mid
    pm.return_path = header("return-path").strip().strip("<>")
    if date := header("date"):
        pm.date = date_timestamp(date)
    _walk(msg, "", 0, pm, payloads)
    if not pm.text and pm.html:
        pm.text = html_to_text(pm.html)
        pm.text_from_html = True
    return pm


# Parses an in-process test server's indexer made, for its reader (share_parse/take_parse):
# the test's thread would parse the same bytes again (about a tenth of a millisecond for a
# small message) while the test waits. Few and small: a reader takes each as it loads it.
SHARED_PARSES = 32
SHARED_PARSE_BYTES = 64 << 10
_shared_lock = threading.Lock()
_shared: dict[bytes, ParsedMessage] = {}  # (insertion order: the oldest first)


def share_parse(raw: bytes, pm: ParsedMessage) -> None:
    """Keep ``pm``, the parse of ``raw`` (with or without payloads), for :func:`take_parse`
    when it is what ``parse_message(raw)`` gives: a small message parsed whole, no part but
    its text and HTML bodies (whose payloads are there either way)."""
    if pm.parts or pm.unparsed or len(raw) > SHARED_PARSE_BYTES:
        return
    with _shared_lock:
        _shared.pop(raw, None)
        _shared[raw] = pm
        while len(_shared) > SHARED_PARSES:
            del _shared[next(iter(_shared))]


def take_parse(raw: bytes) -> ParsedMessage | None:
    """``parse_message(raw)`` when :func:`share_parse` kept it (taken: given out once)."""
    if not _shared:
        return None
    with _shared_lock:
        return _shared.pop(raw, None)


# Characters of a raw body shown as the text of a message that was not parsed.
MAX_RAW_TEXT = 1_000_000


def raw_view(raw: bytes, reason: str) -> ParsedMessage:
    """The view of a message that exceeded its parse budget: its header fields (split and
    unfolded only; linear), and the start of its body, undecoded, as the text.

    ``reason`` says why (it becomes ``unparsed``, the API's ``ParseError``).
    """
    headers = _raw_headers(raw)
    end = _HEADER_END.search(raw)
    body = raw[end.end() :] if end else b""
    pm = ParsedMessage(raw_headers=headers, unparsed=reason or "not parsed")
    first: dict[str, str] = {}
    for k, v in headers:
        first.setdefault(k.lower(), v)
    pm.subject = decode_words(first.get("subject", ""))
    pm.text = decode_text(body[:MAX_RAW_TEXT], "utf-8")
    return pm


def _walk(part: Message, prefix: str, depth: int, pm: ParsedMessage, payloads: bool = True) -> None:
    ctype = part.get_content_type()
    if part.is_multipart() and ctype != "message/rfc822" and depth < MAX_DEPTH:
        payload = part.get_payload()
        children = payload if isinstance(payload, list) else []
        for n, child in enumerate(children, 1):
            if len(pm.parts) >= MAX_PARTS:
                return
            if isinstance(child, Message):
                _walk(child, f"{prefix}.{n}" if prefix else str(n), depth + 1, pm, payloads)
        return
    part_id = prefix or "1"
    disposition = (part.get_content_disposition() or "").lower()
    filename = _filename(part)
    cid = str(part.get("Content-ID") or "").strip()  # a Header when it has 8-bit bytes
    cid = cid[1:-1] if cid.startswith("<") and cid.endswith(">") else cid
    is_body = disposition != "attachment" and not filename and ctype in ("text/plain", "text/html")
    if not (payloads or is_body):
        payload = b""
    elif ctype == "message/rfc822":
        inner = part.get_payload()
        sub = inner[0] if isinstance(inner, list) and inner else None
        payload = sub.as_bytes() if isinstance(sub, Message) else _payload(part)
    else:
        payload = _payload(part)
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

BLOCK_TAGS = frozenset(
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
SKIPPED_TAGS = frozenset(("script", "style", "head", "title", "noscript", "template"))
_BLANKS = re.compile(r"\n{3,}")  # one quantifier over one character: linear
# ASCII whitespace str.split() splits on, besides single spaces and newlines.
_ASCII_RUNS = ("  ", "\t", "\r", "\f", "\v", "\x1c", "\x1d", "\x1e", "\x1f")


def html_to_text(html: str, *, tidy: bool = True) -> str:
    """Readable text of an HTML document (scripts, styles and head dropped).

    The document is read by libxml2's HTML parser (through lxml), whose tokenizer follows
    WHATWG HTML5 tokenization since libxml2 2.14: C, linear in its input whatever the markup
    (it stops descending at 256 levels of nesting, where lexbor's HTML5 tree builder takes
    time quadratic in the depth), and lenient with broken markup. Block elements start new
    lines; entities are decoded. Only the first :data:`MAX_HTML_TEXT_INPUT` characters are
    read (the text of a larger document is the text of its start), which bounds the time
    and memory one message can take. ``tidy=False`` skips the whitespace clean-up (for the
    full-text index, where whitespace does not count).

    benchmarks/html_bench.py compares it with selectolax (lexbor), resiliparse and
    ``html.parser`` (docs/performance.md); it replaced a regular-expression tokenizer that a
    90-byte input made backtrack for ever (issue 14).
    """
    if not html:
        return ""
    text = html if "<" not in html and "&" not in html else _libxml2_text(html[:MAX_HTML_TEXT_INPUT])
    return tidy_text(text) if tidy else text


_PARSERS = threading.local()  # an lxml parser must not be shared between threads
# C0 controls other than tab, LF and CR (and DEL) become spaces (and so do the non-characters
# U+FFFE and U+FFFF): lxml refuses to set a text holding one (found by tests/fuzz: "<p>\x1f" raised ValueError), and they show nothing.
# (On the UTF-8 bytes: a byte table is ~50x quicker than str.translate, and these bytes
# never occur inside a multi-byte UTF-8 sequence.)
_CONTROLS = bytes(32 if b in (*range(0, 9), 11, 12, *range(14, 32), 127) else b for b in range(256))


def _libxml2_text(html: str) -> str:
    import lxml.etree

    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        # lxml.etree's HTML parser, not lxml.html's: its plain elements skip the per-element
        # class lookup lxml.html does (~10% of the time of a 21 KB newsletter)
        parser = _PARSERS.parser = lxml.etree.HTMLParser(
            encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, default_doctype=False
        )
    try:
        data = html.encode("utf-8", "surrogatepass").translate(_CONTROLS)
        if b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data:  # U+FFFE, U+FFFF: refused as well
            data = data.replace(b"\xef\xbf\xbe", b" ").replace(b"\xef\xbf\xbf", b" ")
        root = lxml.etree.fromstring(data, parser=parser)
    except (lxml.etree.LxmlError, ValueError):
        return ""
    if root is None:  # "Document is empty"
        return ""
    # Skipped elements go with their content (not their tail); block elements get line
    # breaks around them; then libxml2 hands the text over in document order.
    lxml.etree.strip_elements(root, *SKIPPED_TAGS, with_tail=False)
    for el in root.iter(*BLOCK_TAGS):
        if el.tag != "br":  # a line break is one, not two
            el.text = "\n" + (el.text or "")
        el.tail = "\n" + (el.tail or "")
    # libxml2 serialises the text (the same as joining itertext(), in C: ~40 us less for a
    # 21 KB newsletter, an eighth of what indexing it costs)
    return lxml.etree.tostring(root, method="text", encoding="unicode")  # type: ignore[no-any-return]


def tidy_text(text: str) -> str:
    """Whitespace runs in a line made one space, lines stripped, no two empty lines in a row."""
    lines = text.split("\n")
    if text.isascii() and not any(c in text for c in _ASCII_RUNS):
        text = "\n".join(line.strip() for line in lines)  # the same, when only single spaces
    else:
        text = "\n".join(" ".join(line.split()) for line in lines)
    if "\n\n\n" in text:
        text = _BLANKS.sub("\n\n", text)
    return text.strip()


def make_snippet(text: str) -> str:
    """Whitespace-collapsed start of ``text``, at most :data:`SNIPPET_LENGTH` characters."""
    # Collapsing a prefix gives the same start as collapsing everything, once it is long
    # enough to be cut; only short texts need collapsing whole.
    s = " ".join(text[: SNIPPET_LENGTH * 4].split())
    if len(s) <= SNIPPET_LENGTH:
        s = " ".join(text.split())
    if len(s) <= SNIPPET_LENGTH:
        return s
    return s[: SNIPPET_LENGTH - 3].rstrip() + "..."
