"""Text out of untrusted bytes: declared charsets and RFC 2047 encoded words.

Every part of postroom that turns message bytes into text goes through here (the parsed
view, the ingest header scan, IMAP SEARCH and SORT, threading keys), so one message cannot
be read one way by the API and another by IMAP, and no reader can be made to fail or to
take super-linear time by what a message declares:

* :func:`decode_text` decodes with the part's declared charset when it is a real text
  encoding, else as UTF-8; always with replacement characters, never an exception.
  Python's codec registry also holds codecs no mail may name: ``idna`` and ``undefined``
  refuse the ``replace`` error handler (a 500 on every view and a ``NO [SERVERBUG]`` on
  IMAP SEARCH, issue 14 item 5), ``punycode`` decodes in quadratic time, the escape codecs
  read backslashes, and the bytes-to-bytes codecs (``base64``, ``zlib``...) are not text.
* :func:`decode_words` decodes RFC 2047 encoded words in one linear pass. The standard
  library's ``email.header.decode_header`` pops from the front of a list for each word,
  quadratic: a 1.4 MB Subject of 50,000 encoded words took 20 s, on the SMTP path too.

Neither function raises on any input.
"""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache

__all__ = ["decode_text", "decode_words", "text_charset"]

# Codecs that are text encodings to Python but must not decode mail (see above).
_REFUSED = frozenset(
    ("idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "utf-7-imap", "charmap")
)

# RFC 2047 section 2: encoded-word = "=?" charset ["*" language] "?" encoding "?" text "?=".
# Each field's class excludes "?", the delimiter after it, so a failed match costs the
# distance to the next "?" and the scan is linear; whitespace is allowed in the text as
# lenient readers (and the standard library) allow it.
_WORD = re.compile(r"=\?([^?*]*)(?:\*[^?]*)?\?([QqBb])\?([^?]*)\?=")
_SPACE_ONLY = frozenset(" \t\r\n")


@lru_cache(maxsize=256)
def text_charset(charset: str | None) -> str:
    """The codec to decode text declared as ``charset`` with: itself when Python has it as a
    text encoding that mail may use, else ``utf-8``."""
    if not charset:
        return "utf-8"
    name = charset.strip().strip('"').lower()
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return "utf-8"
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return "utf-8"
    return info.name


def decode_text(data: bytes, charset: str | None) -> str:
    """``data`` as text in its declared ``charset`` (see :func:`text_charset`), undecodable
    bytes replaced with U+FFFD. Never raises."""
    try:
        return data.decode(text_charset(charset), "replace")
    except Exception:  # a third-party codec registered in this process may misbehave
        return data.decode("utf-8", "replace")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    raw = text.encode("ascii", "replace")
    try:
        if encoding in "Qq":
            return binascii.a2b_qp(raw, header=True)  # "_" is a space in headers (RFC 2047 4.2)
        raw = raw.rstrip(b"=")
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str) -> str:
    """``value`` with its RFC 2047 encoded words decoded (linear time; never raises).

    Whitespace between two encoded words is dropped (RFC 2047 section 6.2); the bytes of
    adjacent words in one charset are decoded together, so that a character split between
    two words (as senders that cut base64 at a fixed length do) comes out whole. A word
    that does not decode is left as written.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []  # bytes of adjacent encoded words in pending_charset
    pending_charset = ""
    pos = 0
    last_was_word = False
    for m in _WORD.finditer(value):
        data = _word_bytes(m.group(2), m.group(3))
        if data is None:
            continue  # not decodable: stays in the text between words
        gap = value[pos : m.start()]
        joined = last_was_word and (not gap or _SPACE_ONLY.issuperset(gap))
        charset = m.group(1)
        if not joined or charset.lower() != pending_charset:
            if pending:
                out.append(decode_text(b"".join(pending), pending_charset))
                pending = []
            if not joined:
                out.append(gap)
            pending_charset = charset.lower()
        pending.append(data)
        pos = m.end()
        last_was_word = True
    if pending:
        out.append(decode_text(b"".join(pending), pending_charset))
    out.append(value[pos:])
    return "".join(out)
