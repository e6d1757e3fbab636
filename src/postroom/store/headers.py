"""Fast header scan for the ingest path.

Full MIME parsing costs milliseconds per message (see BENCHMARKS.md), so at ingest we only
split the header block, unfold it and read the handful of fields the summary row needs.
Everything else (body text, attachments, full-text index) is the indexer's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..charsets import address_list, date_timestamp, decode_words

__all__ = [
    "HeaderSummary",
    "decode_header_bytes",
    "scan_headers",
    "scan_summary",
    "split_headers",
    "summary_fields",
    "summary_from_fields",
]

# Header fields the summary row needs (lower-case names).
_WANTED = frozenset(
    (
        b"subject",
        b"from",
        b"to",
        b"cc",
        b"reply-to",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"x-tags",
    )
)
_MSGID = re.compile(r"<([^<>\s]+)>")


@dataclass(slots=True)
class HeaderSummary:
    subject: str = ""
    from_: tuple[str, str] | None = None
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    date: float | None = None
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def split_headers(raw: bytes) -> tuple[bytes, int]:
    """Return (header block, offset of the body). Accepts CRLF or bare LF line ends."""
    i = raw.find(b"\r\n\r\n")
    j = raw.find(b"\n\n", 0, i if i >= 0 else len(raw))  # not past the first CRLF CRLF
    if i < 0 and j < 0:
        return raw, len(raw)
    if i >= 0 and (j < 0 or i <= j):
        return raw[:i], i + 4
    return raw[:j], j + 2


def _header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")  # RFC 6532 (SMTPUTF8) headers are UTF-8
    except UnicodeDecodeError:
        return value.decode("latin-1")


def decode_header_bytes(value: bytes) -> str:
    """A raw header value as text: UTF-8 (else Latin-1), RFC 2047 encoded words decoded."""
    return decode_words(_header_text(value))


# Date values seen lately: a burst of mail from one application mostly repeats a few.
_DATES: dict[bytes, float | None] = {}
_DATES_MAX = 256


def _date(value: bytes) -> float | None:
    """The Date field as epoch seconds (None when it does not parse)."""
    try:
        return _DATES[value]
    except KeyError:
        pass
    ts = date_timestamp(value.decode("latin-1"))
    if len(_DATES) >= _DATES_MAX:
        _DATES.clear()
    _DATES[value] = ts
    return ts


def _msgids(value: str) -> list[str]:
    ids = _MSGID.findall(value)
    if not ids and value.strip():
        ids = [value.strip().split()[0]]
    return ids


# Bytes of one summary field kept at ingest, and of a subject decoded (RFC 2047): this scan
# runs before the 250, on the SMTP path, so a hostile header (100,000 folded lines, 50,000
# encoded words: issue 14 item 6) must cost it linear time and little of it (a 50,000-word
# subject took 17 s to decode). Far above any real field (1,000 recipients fit); the whole
# header stays in the raw message for the full parse.
MAX_SUMMARY_FIELD = 64 * 1024
MAX_DECODED_SUBJECT = 16 * 1024


def scan_headers(raw: bytes) -> HeaderSummary:
    """Read the summary fields from a raw message's header block (never raises)."""
    return HeaderSummary(*scan_summary(raw))


def scan_summary(raw: bytes) -> tuple[Any, ...]:
    """What ``summary_fields(scan_headers(raw))`` returns, without the :class:`HeaderSummary`
    in between: an SMTP worker journals it (store/ingest.py), before the message's 250."""
    block, _ = split_headers(raw)
    # Each wanted field's pieces, joined once at the end: adding each continuation line to a
    # bytes value made 100,000 folded lines take seconds on the SMTP path (issue 14 item 6).
    parts: dict[bytes, list[bytes]] = {}
    sizes: dict[bytes, int] = {}
    name = b""  # the wanted field being continued, else b""
    for line in block.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if name and sizes[name] < MAX_SUMMARY_FIELD:
                piece = line.strip()
                parts[name].append(piece)
                sizes[name] += len(piece) + 1
            continue
        k, sep, v = line.partition(b":")
        name = k.strip().lower()
        if sep and name in _WANTED and name not in parts:  # first occurrence wins
            parts[name] = [v.strip()]
            sizes[name] = len(parts[name][0])
        else:
            name = b""
    fields = {k: b" ".join(v)[:MAX_SUMMARY_FIELD] for k, v in parts.items()}
    subject = ""
    if b"subject" in fields:
        subject = decode_header_bytes(fields[b"subject"][:MAX_DECODED_SUBJECT]).rstrip("\r")
    from_ = None
    if b"from" in fields and (f := address_list(_header_text(fields[b"from"]))):
        from_ = f[0]
    to = address_list(_header_text(fields[b"to"])) if b"to" in fields else []
    cc = address_list(_header_text(fields[b"cc"])) if b"cc" in fields else []
    reply_to = address_list(_header_text(fields[b"reply-to"])) if b"reply-to" in fields else []
    date = _date(fields[b"date"]) if b"date" in fields else None
    message_id = in_reply_to = ""
    if b"message-id" in fields and (ids := _msgids(fields[b"message-id"].decode("latin-1"))):
        message_id = ids[0]
    if b"in-reply-to" in fields and (ids := _msgids(fields[b"in-reply-to"].decode("latin-1"))):
        in_reply_to = ids[0]
    references = _msgids(fields[b"references"].decode("latin-1")) if b"references" in fields else []
    tags = []
    if b"x-tags" in fields:
        tags = [t.strip() for t in decode_header_bytes(fields[b"x-tags"]).split(",") if t.strip()]
    return (subject, from_, to, cc, reply_to, date, message_id, in_reply_to, references, tags)


def summary_fields(h: HeaderSummary) -> tuple[Any, ...]:
    """``h`` as plain JSON values: an SMTP worker ships it to the main process in its journal."""
    return (
        h.subject,
        h.from_,
        h.to,
        h.cc,
        h.reply_to,
        h.date,
        h.message_id,
        h.in_reply_to,
        h.references,
        h.tags,
    )


def summary_from_fields(t: Any) -> HeaderSummary:
    """The inverse of :func:`summary_fields`."""
    return HeaderSummary(
        subject=t[0],
        from_=tuple(t[1]) if t[1] else None,  # type: ignore[arg-type]
        to=[tuple(a) for a in t[2]],  # type: ignore[misc]
        cc=[tuple(a) for a in t[3]],  # type: ignore[misc]
        reply_to=[tuple(a) for a in t[4]],  # type: ignore[misc]
        date=t[5],
        message_id=t[6],
        in_reply_to=t[7],
        references=list(t[8]),
        tags=list(t[9]),
    )
