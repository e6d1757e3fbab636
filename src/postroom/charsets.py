"""Decoding what a message says: declared charsets, RFC 2047 encoded words, Date: values
and address lists.

Every part of postroom that turns message bytes into text, dates or addresses goes through
here (the ingest header scan, the parsed view of the API, the indexer, IMAP FETCH, SEARCH and
SORT, threading), so one message cannot be read one way by the API and another by IMAP, and
no reader can be made to fail or to take super-linear time by what a message declares:

* :func:`decode_text` decodes with the part's declared charset when it is a real text
  encoding, else as UTF-8; always with replacement characters, never an exception.
  Python's codec registry also holds codecs no mail may name: ``idna`` and ``undefined``
  refuse the ``replace`` error handler (a 500 on every view and a ``NO [SERVERBUG]`` on
  IMAP SEARCH, issue 14 item 5), ``punycode`` decodes in quadratic time, the escape codecs
  read backslashes, and the bytes-to-bytes codecs (``base64``, ``zlib``...) are not text.
* :func:`decode_words` decodes RFC 2047 encoded words in one linear pass. The standard
  library's ``email.header.decode_header`` pops from the front of a list for each word,
  quadratic: a 1.4 MB Subject of 50,000 encoded words took 20 s, on the SMTP path too.

* :func:`date_fields` and :func:`date_timestamp` read a Date: value (RFC 5322 section
  3.3, with the obsolete forms the standard library accepts); a value without a zone, or
  with ``-0000``, is taken as local time, as ``email.utils`` does.
* :func:`address_list` reads an address-list value into (display name, address) pairs:
  parsed first, then the encoded words of each name decoded (RFC 2047 section 5: an encoded
  word is a whole word of the phrase, so a comma inside one never splits an address). The
  shapes nearly every sender writes take a linear fast path; the rest the standard
  library's parser.

None of these functions raises on any input.
"""

from __future__ import annotations

import binascii
import codecs
import re
from email.utils import getaddresses, mktime_tz, parsedate_tz
from functools import lru_cache

__all__ = ["address_list", "date_fields", "date_timestamp", "decode_text", "decode_words", "text_charset"]

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


# -- Date: values ---------------------------------------------------------------------------------
DateFields = tuple[int, int, int, int, int, int, int, int, int, int | None]


def date_fields(value: str) -> DateFields | None:
    """A Date: value as (year, month, day, hour, minute, second, 0, 1, -1, zone offset in
    seconds or None), as written (no zone conversion), or None when it does not parse."""
    try:
        t = parsedate_tz(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return t  # type: ignore[return-value]  # (typeshed's tuple type is looser)


def date_timestamp(value: str) -> float | None:
    """A Date: value as epoch seconds, or None when it does not parse or is out of range."""
    t = date_fields(value)
    if t is None:
        return None
    try:
        return float(mktime_tz(t))
    except (OverflowError, ValueError, OSError):
        return None


# -- address lists --------------------------------------------------------------------------------
# The shapes nearly every sender uses: "addr", "Name <addr>" and '"Name" <addr>', comma
# separated. Anything else (quoted commas, comments, groups, routes) goes to the stdlib parser.
# An address: the local part holds no "@", so where it ends is never in doubt and a match is
# linear. (A regular expression that read "spaces, a name, spaces, <" with three overlapping
# quantifiers took 37 s on 2,000 spaces in a To: header, on the SMTP path.)
_ADDR = re.compile(r'[^<>\s"(),;:\\@]+@[^<>\s"(),;:\\]+')
_HARD = re.compile(r"[()\\;:]")
# One piece of the list in one match: ``addr`` alone (group 1), ``Name <addr>`` (group 2 the
# name, spaces and all, group 3 the address) or ``"Name" <addr>`` (groups 4 and 5), with
# spaces around. None of the parts matches a character of _HARD (nor a quote outside the
# quoted name's two), so a match needs no other check. Linear: no two adjacent parts can
# match the same character, except the leading spaces of the three alternatives (each tried
# once), and the name, the local part and the domain end at the one character that may
# follow each ("<", "@", '"', ">"), so a failed match costs each part one retreat, not a
# product of them.
_PIECE = re.compile(
    r'\s*([^<>\s"(),;:\\@]+@[^<>\s"(),;:\\]+)\s*'
    r'|([^"<>,;:()\\@]*)<([^<>\s"(),;:\\@]+@[^<>\s"(),;:\\]+)>\s*'
    r'|\s*"([^"\\();:]*)"\s*<([^<>\s"(),;:\\@]+@[^<>\s"(),;:\\]+)>\s*'
)


def _simple_address(piece: str) -> tuple[str, str] | None:
    """``addr``, ``Name <addr>`` or ``"Name" <addr>``, else None."""
    m = _PIECE.fullmatch(piece)
    if m is None:
        return None
    bare, name, addr, quoted, q_addr = m.groups()
    if bare is not None:
        return "", bare
    if name is not None:
        return name.strip(), addr
    return quoted.strip(), q_addr


def _fast_addresses(value: str) -> list[tuple[str, str]] | None:
    if "," not in value:  # one address, the usual From and To: the pattern checks it all
        found = _simple_address(value)
        return [found] if found is not None else None if value.strip() else []
    if _HARD.search(value) or '"' in value:
        return None  # a quoted name may hold a comma
    out = []
    for piece in value.split(","):
        if not piece.strip():
            continue
        found = _simple_address(piece)
        if found is None:
            return None
        out.append(found)
    return out


def address_list(value: str) -> list[tuple[str, str]]:
    """(display name, address) of each address in an address-list value (empty ones left
    out), names with their encoded words decoded."""
    if not value:
        return []
    if "," not in value and "=?" not in value:  # one address, the usual From and To
        m = _PIECE.fullmatch(value)
        if m is not None:
            bare, name, addr, quoted, q_addr = m.groups()
            if bare is not None:
                return [("", bare)]
            return [(name.strip(), addr) if name is not None else (quoted.strip(), q_addr)]
    pairs = _fast_addresses(value)
    if pairs is None:
        try:
            pairs = getaddresses([value])
        except Exception:  # the stdlib parser on input it does not expect
            return []
    return [(decode_words(name) if "=?" in name else name, addr) for name, addr in pairs if name or addr]
