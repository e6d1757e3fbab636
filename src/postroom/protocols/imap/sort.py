"""SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO): criteria, base subject, sort keys.

:func:`base_subject` implements RFC 5256 section 2.1 (strip ``Re:``/``Fwd:``/``[blob]``
leaders and ``(fwd)`` trailers); :func:`sort_key` builds the comparable value for one
criterion from a message's header fields. Ties fall back to the sequence number
(RFC 5256 section 3: "ordered by sequence number").

Errors::

    ParseError (from .decoder)   unknown or empty sort criteria
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ...charsets import date_timestamp, decode_words
from .args import Args
from .bodystructure import parse_addresses
from .errors import ParseError

__all__ = ["CRITERIA", "base_subject", "parse_sort", "sort_key"]

CRITERIA = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})


def parse_sort(args: Args) -> list[tuple[str, bool]]:
    """``(REVERSE DATE SUBJECT)`` -> [("DATE", True), ("SUBJECT", False)].

    Raises:
        ParseError: empty list, unknown key, or REVERSE without a key.
    """
    items = args.group("sort criteria")
    out: list[tuple[str, bool]] = []
    reverse = False
    for t in Args(items).tokens:
        sub = Args([t])
        name = sub.atom("sort key").upper()
        if name == "REVERSE":
            if reverse:
                raise ParseError("REVERSE REVERSE is not a sort key")
            reverse = True
            continue
        if name not in CRITERIA:
            raise ParseError(f"unknown sort key {name[:20]}")
        out.append((name, reverse))
        reverse = False
    if reverse or not out:
        raise ParseError("invalid sort criteria")
    return out


_WSP = re.compile(r"[ \t\r\n]+")
# RFC 5256 section 3: strings compare with the i;ascii-casemap collation (RFC 4790 9.2):
# a-z as A-Z, every other character as itself (so "_" sorts after "Z", before "a").
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_casemap(s: str) -> str:
    """The i;ascii-casemap comparison key of ``s``."""
    return s.translate(_ASCII_UPPER)


_BLOB = r"\[[^\[\]]*\][ \t]*"
_REFWD = re.compile(r"(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:[ \t]*", re.I)
_BLOB_RE = re.compile(_BLOB)  # matched at a position (match(s, pos, end))


def base_subject(subject: str) -> str:
    """RFC 5256 section 2.1 base subject, as its i;ascii-casemap comparison key.

    Works on positions in the subject (each step moves ``pos`` or ``end``), never on
    copies of what is left, and without searching regular expressions: both made a long
    subject of many "(fwd)", "[blob]" or "[fwd: ...]" pieces take quadratic time.
    """
    s = _WSP.sub(" ", decode_words(subject))
    pos, end = 0, len(s)
    while pos < end and s[pos].isspace():
        pos += 1
    while True:
        # (2) remove subj-trailer: "(fwd)" and white space at the end
        while end > pos:
            if s[end - 1].isspace():
                end -= 1
            elif end - 5 >= pos and s[end - 5 : end].lower() == "(fwd)":
                end -= 5
            else:
                break
        # (3)+(4) remove subj-leader and subj-blob repeatedly
        while True:
            m = _REFWD.match(s, pos, end)
            if m is not None:
                pos = m.end()
                continue
            b = _BLOB_RE.match(s, pos, end)
            if b is not None and b.end() < end:
                pos = b.end()
                continue
            break
        # (6) [fwd: ...] wrapper
        if end - pos >= 6 and s[pos : pos + 5].lower() == "[fwd:" and s[end - 1] == "]":
            pos, end = pos + 5, end - 1
            while pos < end and s[pos].isspace():
                pos += 1
            continue
        break
    return ascii_casemap(s[pos:end])


def _first_address(value: str | None, display: bool) -> str:
    if not value:
        return ""
    addrs = parse_addresses(value)
    if not addrs:
        return ""
    name, _adl, mailbox, host = addrs[0]  # a group's first "address" is its name (RFC 3501 9)
    if display and name:
        return ascii_casemap(decode_words(name))
    if display and mailbox and host:
        return ascii_casemap(f"{mailbox}@{host}")
    return ascii_casemap(mailbox or "")


def sort_key(
    criterion: str,
    header: Callable[[str], str | None],
    size: int,
    internaldate: float,
) -> str | float | int:
    """The comparable value of ``criterion`` for one message.

    Args:
        criterion: one of :data:`CRITERIA`.
        header: returns the raw (unfolded) value of a header field, or None.
        size: RFC822.SIZE.
        internaldate: arrival time (epoch seconds).
    """
    if criterion == "ARRIVAL":
        return internaldate
    if criterion == "SIZE":
        return size
    if criterion == "DATE":
        date = header("date")
        ts = date_timestamp(date) if date else None
        return internaldate if ts is None else ts
    if criterion == "SUBJECT":
        return base_subject(header("subject") or "")
    if criterion in ("FROM", "TO", "CC"):
        return _first_address(header(criterion.lower()), False)
    if criterion == "DISPLAYFROM":
        return _first_address(header("from"), True)
    if criterion == "DISPLAYTO":
        return _first_address(header("to"), True)
    raise ParseError(f"unknown sort key {criterion}")
