"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3).

Printable US-ASCII stands for itself except ``&``, which is written ``&-``; other
characters are UTF-16BE, base64 with ``,`` for ``/`` and no padding, between ``&`` and
``-``. Decoding is strict, because a name must round-trip to the same bytes.

Errors::

    Utf7Error (ParseError)   not valid modified UTF-7
"""

from __future__ import annotations

import base64
import binascii

from .errors import ParseError

__all__ = ["Utf7Error", "decode", "encode"]


class Utf7Error(ParseError):
    """A mailbox name that is not valid modified UTF-7."""


def _flush(chunk: list[str], out: list[str]) -> None:
    if chunk:
        data = "".join(chunk).encode("utf-16-be")
        out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-")
        chunk.clear()


def encode(name: str) -> str:
    """Encode a Unicode mailbox name as modified UTF-7."""
    out: list[str] = []
    chunk: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            _flush(chunk, out)
            out.append("&-" if ch == "&" else ch)
        else:
            chunk.append(ch)
    _flush(chunk, out)
    return "".join(out)


def decode(text: str) -> str:
    """Decode modified UTF-7 to Unicode.

    Raises:
        Utf7Error: bad base64, an unterminated shift, a non-printable character, or a
            name that does not re-encode to the same text (non-canonical form).
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise Utf7Error("mailbox name must be 7-bit printable (modified UTF-7)")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated '&' in mailbox name")
        b64 = text[i + 1 : end]
        if not b64:
            out.append("&")
        else:
            padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(padded, validate=True)
                if len(raw) % 2:
                    raise ValueError
                out.append(raw.decode("utf-16-be"))
            except (binascii.Error, ValueError):
                raise Utf7Error("invalid modified UTF-7 in mailbox name") from None
        i = end + 1
    result = "".join(out)
    if encode(result) != text:
        raise Utf7Error("mailbox name is not in canonical modified UTF-7")
    return result
