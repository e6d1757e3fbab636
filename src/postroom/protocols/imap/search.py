"""SEARCH criteria (RFC 3501 section 6.4.4, RFC 5032 WITHIN, RFC 7162 MODSEQ, Gmail's
X-GM-MSGID, X-GM-THRID and X-GM-LABELS): parse and match.

:func:`parse_criteria` reads search keys from an :class:`~.args.Args` cursor into a tree
of :class:`Key` nodes; :func:`matches` evaluates a tree against one message through the
small :class:`Target` protocol, which the session implements over the store (so this
module stays sans-IO and unit-testable). String keys match as case-insensitive
substrings of decoded text (RFC 3501: "case-insensitive substring").

Errors::

    ParseError (from .decoder)   unknown key or bad argument (BAD)
    BadCharset (No)              CHARSET other than UTF-8 / US-ASCII (NO [BADCHARSET])
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from .args import Args, normalize_flag, parse_date
from .bodystructure import parse_addresses
from .decoder import MAX_DEPTH, Atom, Group, String
from .errors import LimitError, No, ParseError
from .labels import parse_label
from .numset import NumSet

__all__ = [
    "CHARSETS",
    "BadCharset",
    "Key",
    "Target",
    "matches",
    "needs_message",
    "parse_criteria",
    "uses_gm",
    "uses_headers",
    "uses_labels",
    "uses_text",
]

CHARSETS = ("UTF-8", "US-ASCII")


class BadCharset(No):
    """A CHARSET we do not support (RFC 3501 section 6.4.4: NO [BADCHARSET])."""

    def __init__(self, charset: str) -> None:
        super().__init__(f"unsupported charset {charset[:30]}", "BADCHARSET (" + " ".join(CHARSETS) + ")")


@dataclass(frozen=True, slots=True)
class Key:
    """A search key: ``op`` with an optional value and child keys (for AND/OR/NOT)."""

    op: str
    value: Any = None
    children: tuple[Key, ...] = field(default=())


class Target(Protocol):
    """What matching needs to know about one message."""

    seq: int
    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float
    modseq: int

    def header(self, name: str) -> list[str]:
        """Decoded values of every field ``name`` (lower-case)."""
        ...

    def sent_date(self) -> tuple[int, int, int] | None:
        """(y, m, d) of the Date: header, as written; None if absent or unparseable."""
        ...

    def body_text(self) -> str:
        """Decoded text of the body parts, case-folded."""
        ...

    def full_text(self) -> str:
        """Decoded header fields and body, case-folded."""
        ...

    def gm_ids(self) -> tuple[int, int]:
        """Gmail's (X-GM-MSGID, X-GM-THRID) of the message."""
        ...

    def gm_labels(self) -> frozenset[str]:
        """Gmail's X-GM-LABELS of the message, case-folded."""
        ...


@dataclass(slots=True)
class Context:
    """Per-search facts: ``*`` values and the saved result ($)."""

    largest_seq: int
    largest_uid: int
    saved: frozenset[int] = frozenset()  # UIDs
    now: float = field(default_factory=time.time)


_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "RECENT": ("\\Recent", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
    "OLD": ("\\Recent", False),
}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_GM_KEYS = ("X-GM-MSGID", "X-GM-THRID")  # X-GM-EXT-1: equal to the message's id / its thread's


def parse_criteria(args: Args, charset: str = "UTF-8") -> Key:
    """Read every remaining search key (an implicit AND).

    Raises:
        ParseError: unknown key or bad argument.
        LimitError: nesting deeper than MAX_DEPTH.
    """
    keys = []
    while args.more():
        keys.append(_key(args, charset, 0))
    if not keys:
        raise ParseError("missing search criteria")
    return keys[0] if len(keys) == 1 else Key("AND", children=tuple(keys))


def _string(args: Args, charset: str) -> str:
    raw = args.astring("search string")
    try:
        return raw.decode("utf-8" if charset == "UTF-8" else "ascii")
    except UnicodeDecodeError:
        raise ParseError(f"search string is not valid {charset}") from None


def _key(args: Args, charset: str, depth: int) -> Key:
    if depth > MAX_DEPTH:
        raise LimitError(f"search keys nested deeper than {MAX_DEPTH}")
    tok = args.next("search key")
    if isinstance(tok, Group):
        sub = Args(tok.items)
        keys = []
        while sub.more():
            keys.append(_key(sub, charset, depth + 1))
        if not keys:
            raise ParseError("empty search key list")
        return Key("AND", children=tuple(keys))
    if not isinstance(tok, Atom):
        raise ParseError("expected a search key")
    name = tok.value.upper()
    if name in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[name]
        return Key("FLAG", (flag, present))
    if name in _HEADER_KEYS:
        return Key("HEADER", (_HEADER_KEYS[name], fold(_string(args, charset))))
    if name in _DATE_KEYS:
        return Key(name, parse_date(args.atom("date")))
    if name == "ALL":
        return Key("ALL")
    if name == "NEW":
        return Key("AND", children=(Key("FLAG", ("\\Recent", True)), Key("FLAG", ("\\Seen", False))))
    if name in ("KEYWORD", "UNKEYWORD"):
        return Key("FLAG", (normalize_flag(args.atom("keyword")), name == "KEYWORD"))
    if name in ("BODY", "TEXT"):
        return Key(name, fold(_string(args, charset)))
    if name == "HEADER":
        fname = args.text("header field name").lower()
        return Key("HEADER", (fname, fold(_string(args, charset))))
    if name in ("LARGER", "SMALLER", "OLDER", "YOUNGER"):
        return Key(name, args.number())
    if name == "MODSEQ":
        # RFC 7162 section 3.1.5: optional entry name and type before the number
        # (entry-name is a quoted string such as "/flags/\\seen"; every entry has the
        # message's mod-sequence here, as flags are not tracked one by one)
        nxt = args.peek()
        if isinstance(nxt, String) or (isinstance(nxt, Atom) and not nxt.value.isdigit()):
            args.next()
            args.atom("entry type")  # priv, shared or all
        return Key("MODSEQ", args.number("mod-sequence"))
    if name in _GM_KEYS:
        n = args.number(name)
        if n >= 1 << 64:
            raise ParseError(f"{name} is an unsigned 64-bit number")
        return Key(name, n)
    if name == "X-GM-LABELS":
        return Key(name, parse_label(args.next("label")).casefold())
    if name == "NOT":
        return Key("NOT", children=(_key(args, charset, depth + 1),))
    if name == "OR":
        a = _key(args, charset, depth + 1)
        b = _key(args, charset, depth + 1)
        return Key("OR", children=(a, b))
    if name == "UID":
        return Key("UID", args.numset())
    if name[:1].isdigit() or name[:1] in ("*", "$"):
        return Key("SEQ", NumSet.parse(tok.value))
    raise ParseError(f"unknown search key {tok.value[:30]!r}")


def _ymd(ts: float) -> tuple[int, int, int]:
    t = time.localtime(ts)
    return t.tm_year, t.tm_mon, t.tm_mday


_ADDRESS_FIELDS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})


def fold(text: str) -> str:
    """Comparison form of a SEARCH string and of what it is matched against: NFC, so a
    decomposed "é" finds a composed one (issue 19 cause 14), then case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


# Header values whose comparison forms are remembered (our choice): a folder's From, To and
# Cc values repeat (the same correspondents), and a SEARCH FROM over 100,000 messages spent
# most of its matching time folding them and parsing their addresses again. Only values of
# at most MEMO_VALUE characters, so the memo holds at most a few MB.
MEMO_VALUES = 4096
MEMO_VALUE = 512


def _folded(value: str) -> str:
    return _folded_memo(value) if len(value) <= MEMO_VALUE else fold(value)


def _folded_addresses(value: str) -> tuple[str, ...]:
    if len(value) <= MEMO_VALUE:
        return _folded_addresses_memo(value)
    return tuple(fold(a) for a in _address_forms(value))


@lru_cache(maxsize=MEMO_VALUES)
def _folded_memo(value: str) -> str:
    return fold(value)


@lru_cache(maxsize=MEMO_VALUES)
def _folded_addresses_memo(value: str) -> tuple[str, ...]:
    return tuple(fold(a) for a in _address_forms(value))


def _address_forms(value: str) -> list[str]:
    """``name <mailbox@host>`` for each address of a header value, so that
    ``FROM user@domain`` finds ``<user (comment)@ (comment) domain>`` (RFC 5322 3.4)."""
    out = []
    for name, _adl, mailbox, host in parse_addresses(value):
        if mailbox is None:
            continue
        addr = f"{mailbox}@{host}" if host else mailbox
        out.append(f"{name} <{addr}>" if name else addr)
    return out


def matches(key: Key, msg: Target, ctx: Context) -> bool:
    """Whether ``msg`` satisfies ``key``."""
    op = key.op
    if op == "AND":
        return all(matches(k, msg, ctx) for k in key.children)
    if op == "FLAG":
        flag, present = key.value
        return bool((flag.lower() in {f.lower() for f in msg.flags}) == present)
    if op == "ALL":
        return True
    if op == "NOT":
        return not matches(key.children[0], msg, ctx)
    if op == "OR":
        return matches(key.children[0], msg, ctx) or matches(key.children[1], msg, ctx)
    if op == "SEQ":
        ns: NumSet = key.value
        if ns.saved:
            return msg.uid in ctx.saved
        return ns.contains(msg.seq, ctx.largest_seq)
    if op == "UID":
        us: NumSet = key.value
        if us.saved:
            return msg.uid in ctx.saved
        return us.contains(msg.uid, ctx.largest_uid)
    if op == "LARGER":
        return msg.size > int(key.value)
    if op == "SMALLER":
        return msg.size < int(key.value)
    if op == "OLDER":
        return msg.internaldate <= ctx.now - int(key.value)
    if op == "YOUNGER":
        return msg.internaldate >= ctx.now - int(key.value)
    if op == "MODSEQ":
        return msg.modseq >= int(key.value)
    if op in ("BEFORE", "ON", "SINCE"):
        return _cmp_date(op, _ymd(msg.internaldate), key.value)
    if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        d = msg.sent_date()
        if d is None:
            d = _ymd(msg.internaldate)  # RFC 5256-style fallback, as Dovecot does
        return _cmp_date(op[4:], d, key.value)
    if op == "HEADER":
        name, needle = key.value
        values = msg.header(name)
        if not needle:
            return bool(values)  # HEADER field "" matches every message with the field
        if any(needle in _folded(v) for v in values):
            return True
        if name in _ADDRESS_FIELDS:  # the addresses without comments, quoting or folding
            return any(needle in a for v in values for a in _folded_addresses(v))
        return False
    if op in _GM_KEYS:
        return bool(msg.gm_ids()[_GM_KEYS.index(op)] == int(key.value))
    if op == "X-GM-LABELS":
        return key.value in msg.gm_labels()
    if op == "BODY":
        return str(key.value) in msg.body_text()
    if op == "TEXT":
        return str(key.value) in msg.full_text()
    raise ParseError(f"unknown search operation {op}")  # unreachable for parsed keys


def _cmp_date(op: str, have: tuple[int, int, int], want: tuple[int, int, int]) -> bool:
    if op == "BEFORE":
        return have < want
    if op == "ON":
        return have == want
    return have >= want


def uses_text(key: Key) -> bool:
    """Whether evaluating ``key`` needs message bodies (so callers can prefetch)."""
    if key.op in ("BODY", "TEXT"):
        return True
    return any(uses_text(k) for k in key.children)


def uses_headers(key: Key) -> bool:
    """Whether evaluating ``key`` reads header fields (FROM, HEADER, SENTON...)."""
    if key.op in ("HEADER", "SENTBEFORE", "SENTON", "SENTSINCE"):
        return True
    return any(uses_headers(k) for k in key.children)


def uses_gm(key: Key) -> bool:
    """Whether evaluating ``key`` reads X-GM-MSGID or X-GM-THRID (from the store)."""
    if key.op in _GM_KEYS:
        return True
    return any(uses_gm(k) for k in key.children)


def uses_labels(key: Key) -> bool:
    """Whether evaluating ``key`` reads X-GM-LABELS (the message's tags, from the store)."""
    if key.op == "X-GM-LABELS":
        return True
    return any(uses_labels(k) for k in key.children)


def needs_message(key: Key) -> bool:
    """Whether evaluating ``key`` reads the message at all (headers or body)."""
    if key.op in ("BODY", "TEXT", "HEADER", "SENTBEFORE", "SENTON", "SENTSINCE"):
        return True
    return any(needs_message(k) for k in key.children)
