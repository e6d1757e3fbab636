"""The header lines SMTP final delivery adds above a message, as Mailpit's store does.

* ``Return-Path: <envelope sender>`` unless the message has one (RFC 5321 4.4: the final
  delivery server records the reverse path);
* the ``Received:`` trace line the session made;
* a ``Message-ID`` when the message has none (so that every message can be found by one);
* a ``Bcc`` naming the envelope recipients no To/Cc header names (a Bcc that the sender's
  client stripped), unless the message has a ``Bcc`` header.

This runs for every message on the SMTP path, so it reads the header block with byte
searches, not an address parser (``email.utils.getaddresses`` cost ~150 us a message;
this ~7 us).
"""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["delivery_headers", "unnamed_recipients"]


def delivery_headers(
    data: bytes, mail_from: str, rcpt_to: tuple[str, ...], received: bytes, message_id: str
) -> bytes:
    """The lines to put above ``data`` (the message as received), ``received`` among them."""
    end = data.find(b"\r\n\r\n")
    head = b"\r\n" + (data[: end + 2] if end >= 0 else data).lower()
    out = (
        received
        if b"\r\nreturn-path:" in head
        else b"".join((b"Return-Path: <", mail_from.encode("utf-8", "replace"), b">\r\n", received))
    )
    if b"\r\nmessage-id:" not in head:
        out += b"Message-ID: <" + message_id.encode() + b">\r\n"
    if b"\r\nbcc:" not in head and (hidden := unnamed_recipients(head, rcpt_to)):
        out += b"Bcc: " + ", ".join(hidden).encode("utf-8", "replace") + b"\r\n"
    return out


# Where a header field starts: a line break not followed by folding whitespace.
_FIELD_START = re.compile(rb"\r\n(?![ \t])")


def unnamed_recipients(head: bytes, rcpt_to: tuple[str, ...]) -> list[str]:
    """Those of ``rcpt_to`` that no To, Cc or Bcc field of ``head`` (the lowercased header
    block, after a leading CRLF) names.

    An address counts as named when it appears in the value of one of those fields as a
    whole address (not the tail of a longer one, nor the start). Each recipient's address is
    looked for in the whole block and each place it is found checked (the field it is in,
    what stands around it): no per-field split (this runs before each 250).
    """
    unnamed = []
    find = head.find
    for rcpt in rcpt_to if len(rcpt_to) == 1 else dict.fromkeys(rcpt_to):
        addr = rcpt.lower().encode("utf-8", "replace")
        at = find(addr) if addr else -1
        while at >= 0 and not (_whole(head, at, at + len(addr)) and _in_address_field(head, at)):
            at = find(addr, at + 1)
        if at < 0:
            unnamed.append(rcpt)
    return unnamed


_ADDRESS_FIELDS = frozenset((b"to", b"cc", b"bcc"))


def _in_address_field(head: bytes, at: int) -> bool:
    """Whether offset ``at`` of ``head`` is in the value of a To, Cc or Bcc field."""
    start = head.rfind(b"\r\n", 0, at)
    while start > 0 and head[start + 2 : start + 3] in _FOLD:  # a folded line: its field's
        start = head.rfind(b"\r\n", 0, start)
    start = max(start, 0)
    colon = head.find(b":", start, at)
    return colon >= 0 and head[start:colon].strip() in _ADDRESS_FIELDS


_FOLD = frozenset((b" ", b"\t"))
# What may stand around an address in a To/Cc field (besides its start and end): angle
# brackets, spaces, commas, a group's colon and semicolon, quotes, line breaks, comments.
_ADDRESS_BEFORE = frozenset((b"<", b" ", b"\t", b",", b":", b'"', b"\n", b"\r", b"("))
_ADDRESS_AFTER = frozenset((b">", b" ", b"\t", b",", b";", b'"', b"\n", b"\r", b")"))


def _whole(text: bytes, start: int, end: int) -> bool:
    return (start == 0 or text[start - 1 : start] in _ADDRESS_BEFORE) and (
        end == len(text) or text[end : end + 1] in _ADDRESS_AFTER
    )


def message_date(data: bytes) -> float | None:
    """The time (epoch seconds) of the first Date field of ``data``'s header, or None when
    it has none that reads as a date (RFC 5322 3.3, with its obsolete forms)."""
    end = data.find(b"\r\n\r\n")
    head = b"\r\n" + (data[: end + 2] if end >= 0 else data)
    for line in _FIELD_START.split(head):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"date":
            try:
                when = parsedate_to_datetime(value.decode("ascii", "replace").replace("\r\n", "").strip())
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:  # "-0000": the zone is unknown (RFC 5322 3.3); read as UTC
                when = when.replace(tzinfo=UTC)
            return when.timestamp()
    return None
