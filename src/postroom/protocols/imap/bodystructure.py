"""ENVELOPE and BODY/BODYSTRUCTURE builders (RFC 3501 section 7.4.2), sans-IO.

Both are computed from the raw header bytes of a :class:`~.mime.Part` so that what a
client sees is what the message says: header values are unfolded but not decoded
(RFC 2047 encoded words stay as they are), addresses are split by a small RFC 5322
address-list parser that never fails (unparseable input yields what it could read).
Results are :mod:`.encoder` values (``None`` is NIL, ``str``/``bytes`` are strings,
:class:`~.encoder.Raw` is verbatim).

Header bytes are carried as latin-1 text internally so that 8-bit octets survive
unchanged and come out as literals.

Errors: none; every input produces a structure.
"""

from __future__ import annotations

import re

from .encoder import Raw, Value, encode
from .mime import Part, parse_params

__all__ = ["Addr", "body_structure", "envelope", "parse_addresses"]

# nstring fields of an address: (name, adl, mailbox, host) -- RFC 3501 section 9 "address".
Addr = tuple[str | None, str | None, str | None, str | None]

# Dovecot writes these placeholders when an address lacks a local part or a domain
# (RFC 3501 says nothing; matching Dovecot keeps clients' behaviour identical).
MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"


def _l1(v: bytes) -> str:
    return v.decode("latin-1")


def _b(v: str | None) -> bytes | None:
    return None if v is None else v.encode("latin-1")


# -- addresses (RFC 5322 section 3.4) -----------------------------------------------------------


def _tokens(s: str) -> list[tuple[str, str]]:
    """(kind, text): kinds are 'q' quoted, 'c' comment, 's' special, 'a' atom, 'd' domain literal."""
    out: list[tuple[str, str]] = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c == '"':
            buf: list[str] = []
            i += 1
            while i < n and s[i] != '"':
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                if s[i] not in "\r\n":
                    buf.append(s[i])
                i += 1
            i += 1
            out.append(("q", "".join(buf)))
        elif c == "(":
            depth = 1
            i += 1
            buf = []
            while i < n and depth:
                ch = s[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(s[i + 1])
                    i += 2
                    continue
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if not depth:
                        break
                buf.append(ch)
                i += 1
            i += 1
            out.append(("c", "".join(buf)))
        elif c == "[":
            j = s.find("]", i)
            j = n - 1 if j < 0 else j
            out.append(("d", s[i : j + 1]))
            i = j + 1
        elif c in "<>@,;:.":
            out.append(("s", c))
            i += 1
        else:
            j = i + 1  # at least one character (a stray ")" or "]" is a word of its own)
            while j < n and s[j] not in ' \t\r\n"()[]<>@,;:.':
                j += 1
            out.append(("a", s[i:j]))
            i = j
    return out


def _phrase(toks: list[tuple[str, str]]) -> str | None:
    words: list[str] = []
    for kind, text in toks:
        if kind in ("a", "q"):
            words.append(text)
        elif kind == "s" and text == ".":
            if words:
                words[-1] += "."
            else:
                words.append(".")
    return " ".join(words) if words else None


def _addr_spec(toks: list[tuple[str, str]]) -> tuple[str | None, str | None, str | None]:
    """(adl, mailbox, host) from addr-spec tokens (maybe with a route)."""
    adl = None
    if any(k == "s" and t == ":" for k, t in toks) and toks and toks[0] == ("s", "@"):
        idx = next(i for i, (k, t) in enumerate(toks) if k == "s" and t == ":")
        adl = "".join(t for k, t in toks[:idx] if k != "c")
        toks = toks[idx + 1 :]
    local: list[str] = []
    domain: list[str] = []
    seen_at = False
    for kind, text in toks:
        if kind == "c":
            continue
        if kind == "s" and text == "@" and not seen_at:
            seen_at = True
            continue
        if kind == "q":
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if _needs_quote(text) else text
        (domain if seen_at else local).append(text)
    mailbox = "".join(local) or None
    host = "".join(domain) or None
    return adl, mailbox, host


def _needs_quote(text: str) -> bool:
    return any(c in ' \t"()<>@,;:\\[]' for c in text) or text == ""


def _comment_name(toks: list[tuple[str, str]]) -> str | None:
    comments = [t for k, t in toks if k == "c"]
    return comments[-1].strip() or None if comments else None


def _mailbox(toks: list[tuple[str, str]]) -> Addr | None:
    if not [t for t in toks if t[0] != "c"]:
        return None
    lt = next((i for i, t in enumerate(toks) if t == ("s", "<")), None)
    if lt is not None:
        gt = next((i for i in range(lt + 1, len(toks)) if toks[i] == ("s", ">")), len(toks))
        name = _phrase(toks[:lt])
        adl, mailbox, host = _addr_spec(toks[lt + 1 : gt])
    else:
        adl, mailbox, host = _addr_spec(toks)
        name = _comment_name(toks)
    if mailbox is None and host is None and name is None:
        return None
    return (name, adl, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN)


# The shapes nearly all mail uses, parsed by one regular expression instead of the
# tokenizer: "local@domain", "Some Name <local@domain>", '"Any, Name" <local@domain>'.
# What this accepts, the tokenizer reads the same way (tests/unit/test_imap_addresses.py).
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
_DOMAIN = r"[A-Za-z0-9.-]+"
_WORD = r'[^ \t\r\n"(),.:;<>@\[\]\\]+'
_SIMPLE = re.compile(
    rf"[ \t]*(?:(?P<l1>{_LOCAL})@(?P<d1>{_DOMAIN})|"
    rf'(?:(?P<name>(?:{_WORD}[ \t]+)*{_WORD})|"(?P<quoted>[^"\\\r\n]*)")[ \t]*'
    rf"<(?P<l2>{_LOCAL})@(?P<d2>{_DOMAIN})>)[ \t]*\Z"
)
_NOT_SIMPLE = re.compile(r'["():;\\]')
_BLANKS = re.compile(r"[ \t]+")  # white space in mail (not str.split's: NEL, NBSP...)


def _simple(value: str) -> list[Addr] | None:
    """:func:`parse_addresses` for the common shapes; None when the value needs the tokenizer."""
    m = _SIMPLE.match(value)
    if m is not None:
        return [_simple_addr(m)]
    if "," not in value or _NOT_SIMPLE.search(value):
        return None
    out: list[Addr] = []
    for piece in value.split(","):
        if not piece.strip(" \t"):
            continue
        m = _SIMPLE.match(piece)
        if m is None:
            return None
        out.append(_simple_addr(m))
    return out


def _simple_addr(m: re.Match[str]) -> Addr:
    if m.group("l1") is not None:
        return (None, None, m.group("l1"), m.group("d1"))
    name = m.group("name")
    return (
        _BLANKS.sub(" ", name) if name is not None else m.group("quoted"),
        None,
        m.group("l2"),
        m.group("d2"),
    )


def parse_addresses(value: str) -> list[Addr]:
    """Split an address-list header value into IMAP address tuples, groups included."""
    fast = _simple(value)
    return fast if fast is not None else _parse_tokens(value)


def _parse_tokens(value: str) -> list[Addr]:
    """:func:`parse_addresses` by the RFC 5322 tokenizer (any input)."""
    toks = _tokens(value)
    out: list[Addr] = []
    cur: list[tuple[str, str]] = []
    in_group = False
    depth_angle = 0
    for tok in toks:
        if tok == ("s", "<"):
            depth_angle += 1
        elif tok == ("s", ">"):
            depth_angle = max(0, depth_angle - 1)
        if depth_angle == 0 and tok == ("s", ":") and not in_group and not _has_route_start(cur):
            # group start (RFC 5322 section 3.4): (NIL NIL "name" NIL)
            out.append((None, None, _phrase(cur) or "", None))
            cur = []
            in_group = True
            continue
        if depth_angle == 0 and tok == ("s", ";") and in_group:
            a = _mailbox(cur)
            if a is not None:
                out.append(a)
            out.append((None, None, None, None))
            cur = []
            in_group = False
            continue
        if depth_angle == 0 and tok == ("s", ","):
            a = _mailbox(cur)
            if a is not None:
                out.append(a)
            cur = []
            continue
        cur.append(tok)
    a = _mailbox(cur)
    if a is not None:
        out.append(a)
    if in_group:
        out.append((None, None, None, None))
    return out


def _has_route_start(cur: list[tuple[str, str]]) -> bool:
    return bool(cur) and cur[0] == ("s", "@")


# -- ENVELOPE -------------------------------------------------------------------------------


def _addr_value(part: Part, name: str) -> Value:
    v = part.get(name)
    if v is None:
        return None
    addrs = parse_addresses(_l1(v))
    if not addrs:
        return None
    # RFC 3501 section 9: "(" 1*address ")" -- addresses follow each other without spaces
    return Raw(b"(" + b"".join(encode([_b(a[0]), _b(a[1]), _b(a[2]), _b(a[3])]) for a in addrs) + b")")


def _nstring(part: Part, name: str) -> bytes | None:
    v = part.get(name)
    return None if v is None else v.rstrip(b" \t")


def envelope(part: Part) -> list[Value]:
    """ENVELOPE of a message (RFC 3501 section 7.4.2): date, subject, from, sender,
    reply-to, to, cc, bcc, in-reply-to, message-id."""
    from_ = _addr_value(part, "from")
    sender = _addr_value(part, "sender") or from_
    reply_to = _addr_value(part, "reply-to") or from_
    return [
        _nstring(part, "date"),
        _nstring(part, "subject"),
        from_,
        sender,
        reply_to,
        _addr_value(part, "to"),
        _addr_value(part, "cc"),
        _addr_value(part, "bcc"),
        _nstring(part, "in-reply-to"),
        _nstring(part, "message-id"),
    ]


# -- BODYSTRUCTURE ---------------------------------------------------------------------------


def count_lines(body: bytes) -> int:
    """Text lines of a body: its line breaks (a final line without one is not counted, as in Dovecot)."""
    return body.count(b"\n")


def _params(params: list[tuple[str, str]]) -> Value:
    if not params:
        return None
    flat: list[Value] = []
    for k, v in params:
        flat.append(k.encode("latin-1", "replace"))
        flat.append(v.encode("latin-1", "replace"))
    return flat


def _disposition(part: Part) -> Value:
    v = part.get("content-disposition")
    if v is None:
        return None
    text = _l1(v)
    head, _, rest = text.partition(";")
    head = head.strip()
    if not head:
        return None
    return [head.encode("latin-1"), _params(parse_params(rest))]


def _language(part: Part) -> Value:
    v = part.get("content-language")
    if v is None:
        return None
    langs = [x.strip() for x in _l1(v).split(",") if x.strip()]
    if not langs:
        return None
    return [x.encode("latin-1") for x in langs]


def _str(s: str) -> bytes:
    return s.encode("latin-1", "replace")


def body_structure(part: Part, extended: bool = True) -> list[Value]:
    """BODYSTRUCTURE (``extended``) or BODY of a part (RFC 3501 section 7.4.2)."""
    if part.is_multipart:
        kids: list[Value] = [body_structure(c, extended) for c in part.children]
        if not kids:
            # an empty multipart: Dovecot shows one empty text/plain part
            kids = [_empty_text(extended)]
        # RFC 3501 section 9: body-type-mpart = 1*body SP media-subtype (no space between bodies)
        out: list[Value] = [Raw(b"".join(encode(k) for k in kids)), _str(part.subtype)]
        if extended:
            out += [
                _params(part.params),
                _disposition(part),
                _language(part),
                _nstring(part, "content-location"),
            ]
        return out
    body = part.body
    enc = part.get("content-transfer-encoding")
    params = part.params
    if part.type.lower() == "text" and part.param("charset") is None:
        params = [*params, ("charset", "us-ascii")]  # RFC 2045 section 5.2 default, as Dovecot shows it
    out = [
        _str(part.type),
        _str(part.subtype),
        _params(params),
        _nstring(part, "content-id"),
        _nstring(part, "content-description"),
        enc.strip() if enc is not None and enc.strip() else b"7bit",
        len(body),
    ]
    if part.is_message and part.message is not None:
        out += [envelope(part.message), body_structure(part.message, extended), count_lines(body)]
    elif part.type.lower() == "text":
        out.append(count_lines(body))
    if extended:
        out += [
            _nstring(part, "content-md5"),
            _disposition(part),
            _language(part),
            _nstring(part, "content-location"),
        ]
    return out


def _empty_text(extended: bool) -> list[Value]:
    out: list[Value] = [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 0, 0]
    if extended:
        out += [None, None, None, None]
    return out
