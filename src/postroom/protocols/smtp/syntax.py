"""Parsing helpers of the SMTP core: paths with ESMTP parameters, SASL base64."""

from __future__ import annotations

import binascii
import re

__all__ = ["CTL", "decode_b64", "parse_path"]

#: Control characters: never allowed in a HELO name or an address.
CTL = re.compile(rb"[\x00-\x1f\x7f]")


def decode_b64(data: bytes) -> str | None:
    """Decode a SASL response; "=" is the empty response (RFC 4954 4)."""
    if data == b"=":
        return ""
    try:
        return binascii.a2b_base64(data, strict_mode=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def parse_path(text: bytes) -> tuple[str, list[tuple[str, str | None]]] | None:
    """``<addr> PARAM=x ...`` -> (address, [(PARAM, value)]), or None when malformed.

    Tolerates a space after the colon and a missing pair of angle brackets; strips a
    source route (RFC 5321 4.1.1.3 says to accept and ignore it).
    """
    text = text.lstrip(b" ")
    if text.startswith(b"<"):
        end = _closing_bracket(text)
        if end < 0:
            return None
        raw, rest = text[1:end], text[end + 1 :]
        if rest and rest[:1] != b" ":
            return None
    else:
        raw, _, rest = text.partition(b" ")
        if not raw:
            return None
    if raw.startswith(b"@"):
        _, colon, raw = raw.partition(b":")
        if not colon:
            return None
    if CTL.search(raw):
        return None
    try:
        address = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    params: list[tuple[str, str | None]] = []
    if rest:
        for item in rest.split():
            key, eq, value = item.partition(b"=")
            try:
                params.append((key.decode("ascii").upper(), value.decode("utf-8") if eq else None))
            except UnicodeDecodeError:
                return None
    return address, params


def _closing_bracket(text: bytes) -> int:
    if b'"' not in text:
        return text.find(b">")
    quoted = False
    escaped = False
    for i in range(1, len(text)):
        c = text[i]
        if escaped:
            escaped = False
        elif c == 0x5C and quoted:  # backslash
            escaped = True
        elif c == 0x22:
            quoted = not quoted
        elif c == 0x3E and not quoted:
            return i
    return -1
