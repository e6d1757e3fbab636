"""postroom's search language: text -> a typed syntax tree (AST).

The language is Mailpit's (https://mailpit.axllent.org/docs/usage/search-filters/) plus a
few things users asked Mailpit for. Terms are separated by spaces and all must match
(AND); ``OR`` (upper case) between terms means either; parentheses group::

    invoice                      free text: subject, addresses, text/HTML body, attachment names
    "exact phrase"               a phrase (free text)
    -word   !word                negation (any term, including groups: -(a OR b))
    from:  to:  cc:  bcc:  reply-to:  addressed:   (substring of name or address;
                                                   addressed: any of them, as Mailpit)
    subject:word  subject:"two words"             (substring of the subject)
    message-id:<id@host> (substring)  thread:ID  tag:name  mailbox:user@example.com
    is:read  is:unread  is:tagged  has:attachment  has:inline (an inline part: cid picture)
    before:2024-05-01  after:2024-05-01T10:00:00Z  after:yesterday  after:3d (3 days ago)
    larger:10k  smaller:2M       (bytes; k/M/G are powers of 1024)
    header:X-Mailer=postfix      any header whose value contains the text
    header:X-Flag                any message that has the header
    tz:Pacific/Auckland          time zone for the day boundaries of before:/after:

A ``key:value`` whose key is not one of the above is free text (so ``re:`` and URLs work).

Errors: :class:`SearchError` (a ``ValueError``) names the problem and its position; it is
the only exception :func:`parse` raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "And",
    "DateBound",
    "Field",
    "Flag",
    "Header",
    "Node",
    "Not",
    "Or",
    "SearchError",
    "Size",
    "Text",
    "parse",
]

# A query longer than this is refused rather than compiled into a huge SQL statement.
MAX_QUERY_LENGTH = 4096
# Terms per query (each becomes a SQL condition; SQLite's default limit on host
# parameters is 32766, well above what this allows).
MAX_TERMS = 100
# Nesting depth of parentheses (the parser is recursive).
MAX_DEPTH = 20

FieldName = Literal[
    "from", "to", "cc", "bcc", "reply-to", "addressed", "subject", "message-id", "tag", "mailbox", "thread"
]
FIELDS: frozenset[str] = frozenset(FieldName.__args__)  # type: ignore[attr-defined]
FlagName = Literal["read", "unread", "tagged", "attachment", "inline"]
KEYS = FIELDS | {"is", "has", "before", "after", "larger", "smaller", "header", "tz"}

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?)b?$", re.IGNORECASE)
_AGO = re.compile(r"^(\d+)([hdwm])$")
_AGO_UNITS = {
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "m": timedelta(days=30),
}
# Sizes beyond this (8 EiB, SQLite's largest INTEGER) are taken as this: larger:1000000000G
# matches nothing rather than failing (issue 14 item 8).
MAX_SIZE = 2**63 - 1
_KEY = re.compile(r"([A-Za-z][A-Za-z-]*):")
_HEADER_VALUE = re.compile(r'([^\s="]+)="')
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 section 3.6.8: printable ASCII except ':'


class SearchError(ValueError):
    """A query that does not parse. ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int | None = None) -> None:
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(message + where)
        self.position = position


# -- the tree --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """Free text: a word (prefix match) or a quoted phrase (exact token sequence)."""

    value: str
    phrase: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """``name:value`` on a summary field (substring, except thread/tag/mailbox)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Flag:
    name: str  # one of FlagName


@dataclass(frozen=True, slots=True)
class DateBound:
    """Received ``before`` (exclusive) or ``after`` (inclusive) an instant (epoch seconds)."""

    op: Literal["before", "after"]
    epoch: float


@dataclass(frozen=True, slots=True)
class Size:
    """Message size strictly ``larger`` or ``smaller`` than a number of bytes."""

    op: Literal["larger", "smaller"]
    bytes: int


@dataclass(frozen=True, slots=True)
class Header:
    """A header named ``name`` (case-insensitive) whose value contains ``value`` (or any, if None)."""

    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Text | Field | Flag | DateBound | Size | Header | Not | And | Or


# -- tokens ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: Literal["(", ")", "OR", "term"]
    pos: int
    negated: bool = False
    key: str | None = None  # a known key, lower-case
    value: str = ""
    quoted: bool = False


def _read_value(text: str, i: int, depth: int) -> tuple[str, bool, int]:
    """Read a bare or quoted value at ``i``; returns (value, quoted, next index)."""
    n = len(text)
    if i < n and text[i] == '"':
        start = i
        i += 1
        out: list[str] = []
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and text[i + 1] in '"\\':
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                return "".join(out), True, i + 1
            out.append(c)
            i += 1
        raise SearchError("unterminated quote", start)
    start = i
    while i < n and not text[i].isspace() and not (text[i] == ")" and depth > 0):
        i += 1
    return text[start:i], False, i


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        start = i
        negated = False
        if c in "-!" and i + 1 < n and not text[i + 1].isspace():
            negated, i = True, i + 1
            c = text[i]
        if c == "(":
            if negated:
                toks.append(_Tok("term", start, negated=True, key="__not_group__"))
            toks.append(_Tok("(", i))
            depth += 1
            i += 1
            continue
        if c == ")" and depth > 0 and not negated:
            toks.append(_Tok(")", i))
            depth -= 1
            i += 1
            continue
        key: str | None = None
        m = _KEY.match(text, i)
        if m and m.group(1).lower() in KEYS:
            key = m.group(1).lower()
            i = m.end()
        hm = _HEADER_VALUE.match(text, i) if key == "header" else None
        if hm:  # header:Name="quoted value"
            value, quoted, i = _read_value(text, hm.end() - 1, depth)
            value = hm.group(1) + "=" + value
        else:
            value, quoted, i = _read_value(text, i, depth)
        if key is None and not quoted and not negated and value == "OR":
            toks.append(_Tok("OR", start))
            continue
        toks.append(_Tok("term", start, negated=negated, key=key, value=value, quoted=quoted))
    return toks


# -- parser ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, toks: list[_Tok], zone: tzinfo, now: datetime) -> None:
        self.text = text
        self.toks = toks
        self.i = 0
        self.zone = zone
        self.now = now
        self.terms = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse_or(self, depth: int) -> Node:
        parts = [self.parse_and(depth)]
        while (t := self.peek()) is not None and t.kind == "OR":
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in ("OR", ")"):
                raise SearchError("OR needs a term on both sides", t.pos)
            parts.append(self.parse_and(depth))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self, depth: int) -> Node:
        parts: list[Node] = []
        while (t := self.peek()) is not None and t.kind not in ("OR", ")"):
            parts.append(self.parse_unary(depth))
        if not parts:
            t = self.peek()
            pos = t.pos if t is not None else len(self.text)
            if t is not None and t.kind == "OR":
                raise SearchError("OR needs a term on both sides", pos)
            raise SearchError("unbalanced '(': missing ')'" if t is None else "empty group", pos)
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_unary(self, depth: int) -> Node:
        t = self.toks[self.i]
        self.i += 1
        if t.kind == "term" and t.key == "__not_group__":
            return Not(self.parse_group(depth))
        if t.kind == "(":
            self.i -= 1
            return self.parse_group(depth)
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise SearchError(f"too many terms (at most {MAX_TERMS})", t.pos)
        node = self.term(t)
        return Not(node) if t.negated else node

    def parse_group(self, depth: int) -> Node:
        t = self.toks[self.i]
        if depth >= MAX_DEPTH:
            raise SearchError(f"parentheses nested too deep (at most {MAX_DEPTH})", t.pos)
        self.i += 1
        node = self.parse_or(depth + 1)
        close = self.peek()
        if close is None or close.kind != ")":
            raise SearchError("unbalanced '(': missing ')'", t.pos)
        self.i += 1
        return node

    def term(self, t: _Tok) -> Node:
        key, value = t.key, t.value
        if key is None:
            if not value:
                raise SearchError("empty phrase", t.pos)
            return Text(value, phrase=t.quoted)
        if not value and key != "tz":
            raise SearchError(f"{key}: needs a value", t.pos)
        if key in FIELDS:
            if key == "message-id":
                value = value.strip().strip("<>")
            return Field(key, value)
        if key == "is":
            v = value.lower()
            if v not in ("read", "unread", "tagged"):
                raise SearchError(f"is:{value} is not known (use is:read, is:unread or is:tagged)", t.pos)
            return Flag(v)
        if key == "has":
            v = value.lower()
            if v in ("attachment", "attachments"):
                return Flag("attachment")
            if v in ("inline", "inlines"):
                return Flag("inline")
            raise SearchError(f"has:{value} is not known (use has:attachment or has:inline)", t.pos)
        if key in ("before", "after"):
            return DateBound(key, self.instant(value, t.pos))  # type: ignore[arg-type]
        if key in ("larger", "smaller"):
            return Size(key, _parse_size(value, t.pos))  # type: ignore[arg-type]
        if key == "header":
            name, eq, hval = value.partition("=")
            name = name.strip()
            if not name or not _HEADER_NAME.match(name):
                raise SearchError(f"header:{value} needs a header name (header:Name=value)", t.pos)
            return Header(name, hval if eq else None)
        raise SearchError(f"unexpected {key}:", t.pos)  # pragma: no cover (tz: is removed earlier)

    def instant(self, value: str, pos: int) -> float:
        v = value.strip().lower()
        today = datetime.combine(self.now.astimezone(self.zone).date(), datetime.min.time(), self.zone)
        if v == "today":
            return today.timestamp()
        if v == "yesterday":
            return (today - timedelta(days=1)).timestamp()
        m = _AGO.match(v)
        try:
            if m:
                return (self.now - int(m.group(1)) * _AGO_UNITS[m.group(2)]).timestamp()
        except (OverflowError, ValueError):  # before the year 1
            raise SearchError(f"the date {value!r} is out of range", pos) from None
        iso = value.strip().replace("/", "-")
        try:
            if len(iso) <= 10:
                d = date.fromisoformat(iso)
                return datetime.combine(d, datetime.min.time(), self.zone).timestamp()
            dt = datetime.fromisoformat(iso.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise SearchError(
                f"cannot read the date {value!r} (use YYYY-MM-DD, an ISO date-time, today, yesterday or 3d)",
                pos,
            ) from None
        except OverflowError:  # the first or last day of the calendar in a zone off UTC
            raise SearchError(f"the date {value!r} is out of range", pos) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.zone)
        try:
            return dt.timestamp()
        except (OverflowError, ValueError):
            raise SearchError(f"the date {value!r} is out of range", pos) from None


def _parse_size(value: str, pos: int) -> int:
    m = _SIZE.match(value.strip())
    if not m:
        raise SearchError(f"cannot read the size {value!r} (use e.g. 500, 10k, 2M)", pos)
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    number = m.group(1)
    if len(number) > 30:  # far beyond MAX_SIZE whatever the unit; float() would say inf
        return MAX_SIZE
    return min(int(float(number) * mult), MAX_SIZE)


def parse(text: str, *, tz: str | tzinfo | None = None, now: datetime | None = None) -> Node | None:
    """Parse a query; returns None for an empty query (which matches everything).

    Args:
        text: the query.
        tz: time zone for day boundaries of ``before:``/``after:`` (name or tzinfo; default UTC).
            A ``tz:`` term in the query overrides it.
        now: the current time (for ``today``, ``3d``...); default the real clock.

    Raises:
        SearchError: the query does not parse; the message names the problem and position.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise SearchError(f"query too long ({len(text)} characters, at most {MAX_QUERY_LENGTH})")
    if "\x00" in text:  # no stored text holds one; SQLite would cut strings there
        raise SearchError("the query holds a NUL character", text.index("\x00"))
    toks = _tokenize(text)
    zone = _zone(tz, None)
    kept: list[_Tok] = []
    for t in toks:
        if t.kind == "term" and t.key == "tz":
            if t.negated:
                raise SearchError("tz: cannot be negated", t.pos)
            zone = _zone(t.value, t.pos)
        else:
            kept.append(t)
    if not kept:
        return None
    p = _Parser(text, kept, zone, now or datetime.now(UTC))
    node = p.parse_or(0)
    if p.i < len(kept):
        t = kept[p.i]
        raise SearchError("unbalanced ')'" if t.kind == ")" else "unexpected term", t.pos)
    return node


def _zone(tz: str | tzinfo | None, pos: int | None) -> tzinfo:
    if tz is None or tz == "":
        return UTC
    if isinstance(tz, tzinfo):
        return tz
    if tz.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SearchError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)", pos) from None
