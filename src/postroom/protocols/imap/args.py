"""A cursor over a command's tokens with the RFC 3501 section 9 argument grammar.

Errors::

    ParseError (from .decoder)   a missing, extra or malformed argument
"""

from __future__ import annotations

import re
import time
from calendar import timegm

from . import utf7
from .decoder import Atom, Group, String, Token
from .errors import No, ParseError
from .numset import NumSet

__all__ = ["Args", "mailbox_name", "parse_date", "parse_datetime"]

_NUMBER = re.compile(r"\d{1,20}\Z")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")
_DATETIME = re.compile(r"\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z")
# RFC 3501 section 9: flag-keyword is an atom; system flags start with a backslash.
_FLAG = re.compile(r"\\?[^\x00-\x20(){%*\"\\\]\x7f]+\Z")


class Args:
    """Sequential access to command arguments; every method raises ParseError on mismatch."""

    def __init__(self, tokens: tuple[Token, ...] | list[Token]) -> None:
        self.tokens = list(tokens)
        self.i = 0

    def more(self) -> bool:
        return self.i < len(self.tokens)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def peek_atom(self) -> str | None:
        t = self.peek()
        return t.value.upper() if isinstance(t, Atom) else None

    def next(self, what: str = "argument") -> Token:
        if self.i >= len(self.tokens):
            raise ParseError(f"missing {what}")
        t = self.tokens[self.i]
        self.i += 1
        return t

    def end(self) -> None:
        if self.i < len(self.tokens):
            raise ParseError("unexpected extra arguments")

    def atom(self, what: str = "atom") -> str:
        t = self.next(what)
        if not isinstance(t, Atom):
            raise ParseError(f"expected {what}")
        return t.value

    def astring(self, what: str = "string") -> bytes:
        t = self.next(what)
        if isinstance(t, String):
            return t.value
        if isinstance(t, Atom):
            return t.value.encode("utf-8")
        raise ParseError(f"expected {what}")

    def string(self, what: str = "string") -> bytes:
        t = self.next(what)
        if not isinstance(t, String):
            raise ParseError(f"expected {what} as a quoted string or literal")
        return t.value

    def text(self, what: str = "string") -> str:
        """An astring decoded as UTF-8."""
        try:
            return self.astring(what).decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{what} is not valid UTF-8") from None

    def number(self, what: str = "number") -> int:
        v = self.atom(what)
        if not _NUMBER.match(v):
            raise ParseError(f"expected {what}")
        return int(v)

    def group(self, what: str = "list") -> tuple[Token, ...]:
        t = self.next(what)
        if not isinstance(t, Group):
            raise ParseError(f"expected parenthesized {what}")
        return t.items

    def numset(self, what: str = "sequence set") -> NumSet:
        return NumSet.parse(self.atom(what))

    def mailbox(self) -> str:
        return mailbox_name(self.astring("mailbox name"))

    def flags(self) -> list[str]:
        """A parenthesized flag list (or a single flag, as STORE allows)."""
        t = self.next("flag list")
        items: tuple[Token, ...] = t.items if isinstance(t, Group) else (t,)
        out = []
        for item in items:
            if not isinstance(item, Atom) or not _FLAG.match(item.value):
                raise ParseError("invalid flag")
            out.append(normalize_flag(item.value))
        return out


_SYSTEM = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")}


def normalize_flag(flag: str) -> str:
    """System flags in their canonical case (flags compare case-insensitively)."""
    return _SYSTEM.get(flag.lower(), flag)


def mailbox_name(raw: bytes) -> str:
    """A mailbox argument as Unicode: UTF-8 when 8-bit (RFC 9051), else modified UTF-7.

    ``INBOX`` is case-insensitive (RFC 3501 section 5.1) and comes back upper-cased.

    Raises:
        ParseError: invalid UTF-8, or an empty name.
        No: invalid modified UTF-7 (RFC 3501 5.1.3).
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("mailbox name is not valid UTF-8") from None
    else:
        try:
            text = utf7.decode(text)
        except utf7.Utf7Error as e:
            # a name no mailbox can have: NO, as Dovecot answers (not BAD: the syntax is fine)
            raise No(str(e)) from None
    if text.upper() == "INBOX":
        return "INBOX"
    if text[:6].upper() == "INBOX/":
        return "INBOX/" + text[6:]
    return text


def parse_date(text: str) -> tuple[int, int, int]:
    """``1-Feb-1994`` -> (1994, 2, 1).

    Raises:
        ParseError: not an IMAP date.
    """
    m = _DATE.match(text)
    if m is None or m.group(2).lower() not in _MONTHS:
        raise ParseError(f"invalid date {text[:30]!r}")
    day, year = int(m.group(1)), int(m.group(3))
    month = _MONTHS.index(m.group(2).lower()) + 1
    try:
        time.strptime(f"{year}-{month}-{day}", "%Y-%m-%d")
    except ValueError:
        raise ParseError(f"invalid date {text[:30]!r}") from None
    return year, month, day


def parse_datetime(text: str) -> float:
    """``17-Jul-1996 02:44:25 -0700`` (APPEND date-time) -> epoch seconds.

    Raises:
        ParseError: not an IMAP date-time.
    """
    m = _DATETIME.match(text)
    if m is None or m.group(2).lower() not in _MONTHS:
        raise ParseError("invalid date-time")
    day, year = int(m.group(1)), int(m.group(3))
    month = _MONTHS.index(m.group(2).lower()) + 1
    hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
    if not (1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
        raise ParseError("invalid date-time")
    offset = (int(m.group(8)) * 60 + int(m.group(9))) * 60
    if m.group(7) == "-":
        offset = -offset
    return float(timegm((year, month, day, hh, mm, ss, 0, 0, 0)) - offset)


def internaldate_item(ts: float) -> bytes:
    """``INTERNALDATE "..."`` of a FETCH response, kept by timestamp: every session FETCHes
    each new message's (gmtime and the formatting ~2 us, a hit ~0.1 us); the memo is
    emptied when full (a folder of many distinct dates)."""
    item = _DATES.get(ts)
    if item is None:
        if len(_DATES) >= _DATES_MAX:
            _DATES.clear()
        item = _DATES[ts] = b'INTERNALDATE "' + format_datetime(ts).encode() + b'"'
    return item


_DATES: dict[float, bytes] = {}
_DATES_MAX = 4096


def format_datetime(ts: float) -> str:
    """Epoch seconds -> ``07-Jul-1996 02:44:25 +0000`` (RFC 3501 date-time in UTC; the day
    zero-padded, which date-day-fixed allows and Dovecot writes)."""
    t = time.gmtime(ts)
    return f"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1].capitalize()}-{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
