"""Ruling a message out of SEARCH TEXT/BODY from its bytes, without parsing or decoding it.

SEARCH TEXT and BODY match a case-insensitive substring of the decoded text (RFC 3501
6.4.4; :mod:`.search`). Deriving that text (MIME parsing, transfer and charset decoding,
RFC 2047 words, folding) is what a first SEARCH TEXT over a folder spends its time on. For
a message whose bytes decode to themselves it need not be derived to know the needle is
absent: :func:`raw_excludes` gives a test that says so from the bytes alone.

Exact, never a false "absent": a message qualifies only when

* every byte is ASCII (so each charset below decodes it to the same characters, case
  folding is ASCII lower-casing and NFC changes nothing);
* no ``=?`` (no RFC 2047 encoded word to decode in a header field);
* neither ``base64`` nor ``quoted-printable`` anywhere (no part's body is transfer-decoded);
* every ``charset`` is written ``charset=NAME`` with NAME an ASCII-compatible charset
  (utf-8, us-ascii, iso-8859-N, windows-125N), so no part decodes through, say, UTF-7.

Then the search text is made of pieces of the lower-cased bytes: header values with their
folding CRLFs removed, body text as written, joined with ``\\n``. A needle without CR or LF
found in such a piece is found in the lower-cased bytes with every CRLF and LF removed;
when it is not there, the message does not match. Any other message (or needle) is not
ruled out, and the caller derives its text as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .search import Key

__all__ = ["raw_excludes"]

_SAFE_CHARSET = re.compile(
    rb'charset[ \t]*=[ \t]*"?(?:us-ascii|ascii|utf-?8|iso-8859-[0-9]{1,2}|windows-125[0-9])(?=[";\s]|$)'
)


def required_needles(key: Key) -> list[str]:
    """The TEXT/BODY strings a message must contain to match ``key`` (the key itself or
    the children of a top-level AND; empty strings, which every message contains, left out)."""
    keys = key.children if key.op == "AND" else (key,)
    return [str(k.value) for k in keys if k.op in ("TEXT", "BODY") and k.value]


def raw_excludes(key: Key) -> Callable[[bytes], bool] | None:
    """A test of a message's bytes that is True only if the message cannot match ``key``
    (module docstring); None when ``key`` requires no needle it can look for."""
    needles = [n.encode() for n in required_needles(key) if n.isascii() and "\r" not in n and "\n" not in n]
    if not needles:
        return None

    def excludes(raw: bytes) -> bool:
        if not raw.isascii() or b"=?" in raw:
            return False
        low = raw.lower()
        if b"base64" in low or b"quoted-printable" in low:
            return False
        if low.count(b"charset") != len(_SAFE_CHARSET.findall(low)):
            return False
        flat = low.replace(b"\r\n", b"").replace(b"\n", b"")
        return any(n not in flat for n in needles)

    return excludes
