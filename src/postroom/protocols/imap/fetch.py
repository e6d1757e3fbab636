"""FETCH data items (RFC 3501 section 6.4.5, RFC 3516 BINARY, Gmail's X-GM-MSGID and
X-GM-THRID): parsing and section content.

:func:`parse_items` turns the FETCH argument into :class:`Item` objects; :func:`section_content`
returns the octets a ``BODY[section]<partial>`` / ``BINARY[section]`` item refers to, from a
:class:`~.mime.Part` tree. Rendering flags, dates and envelopes is the session's job.

Errors::

    ParseError (from .errors)
     +-- SectionError (from .mime)   section names no part
    No (from .errors)
     +-- UnknownCTE                  BINARY of a part whose transfer encoding is unknown
                                     (RFC 3516: NO [UNKNOWN-CTE])
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from .decoder import Atom, Group, String, Token, tokenize
from .errors import No, ParseError
from .mime import Part, SectionError, select_fields

__all__ = ["Item", "Section", "UnknownCTE", "parse_items", "section_content"]

MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
SIMPLE = frozenset(
    {
        "FLAGS",
        "UID",
        "INTERNALDATE",
        "RFC822.SIZE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "ENVELOPE",
        "BODY",
        "BODYSTRUCTURE",
        "MODSEQ",
        "X-POSTROOM-ID",
        "X-GM-MSGID",  # Gmail's X-GM-EXT-1 (servers/imap/gmail.py)
        "X-GM-THRID",
        "X-GM-LABELS",  # its labels: postroom's tags (servers/imap/labels.py)
    }
)
_SECTIONED = re.compile(
    r"(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)\[(.*)\](?:<(\d+)\.(\d+)>)?\Z", re.I | re.S
)
_PATH = re.compile(r"(\d+(?:\.\d+)*)(?:\.|\Z)")


class UnknownCTE(No):
    """BINARY asked for a part whose Content-Transfer-Encoding we cannot decode."""

    def __init__(self, text: str) -> None:
        super().__init__(text, "UNKNOWN-CTE")


@dataclass(frozen=True, slots=True)
class Section:
    """``[1.2.HEADER.FIELDS (A B)]``: part path, text spec, header names."""

    path: tuple[int, ...] = ()
    spec: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()

    def render(self) -> str:
        """The section as it appears in the response name."""
        parts = [".".join(map(str, self.path))] if self.path else []
        if self.spec:
            parts.append(self.spec)
        out = ".".join(parts)
        if self.fields:
            out += " (" + " ".join(self.fields) + ")"
        return out


@dataclass(frozen=True, slots=True)
class Item:
    """One FETCH data item. ``name`` is BODY, BINARY, BINARY.SIZE for sectioned items."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def response_name(self) -> str:
        """The item's name in the FETCH response (partial shows only the origin)."""
        if self.section is None:
            return self.name
        out = f"{self.name}[{self.section.render()}]"
        if self.partial is not None:
            out += f"<{self.partial[0]}>"
        return out

    @property
    def sets_seen(self) -> bool:
        """Fetching this marks the message \\Seen (RFC 3501 section 6.4.5)."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.section is not None and not self.peek and self.name in ("BODY", "BINARY")


def parse_items(token: Token) -> list[Item]:
    """The FETCH argument: a macro, one item, or a parenthesized list.

    Raises:
        ParseError: unknown item or malformed section.
    """
    if isinstance(token, Atom) and token.value.upper() in MACROS:
        return [Item(n) for n in MACROS[token.value.upper()]]
    tokens = token.items if isinstance(token, Group) else (token,)
    if not tokens:
        raise ParseError("empty fetch item list")
    return [_item(t) for t in tokens]


# Parsed FETCH items by their text: imaptest names random lists of up to four items, a
# quarter of them HEADER.FIELDS of up to four random names (~2,800 distinct atoms, lists
# too many for a memo of lists), and one such item took ~12 us to parse, a hit ~0.2 us.
# Items are immutable; the memo is emptied when full (against invented field lists).
_ITEMS: dict[str, Item] = {}
_ITEMS_MAX = 4096


def _item(t: Token) -> Item:
    if not isinstance(t, Atom):
        raise ParseError("invalid fetch item")
    v = t.value
    item = _ITEMS.get(v)
    if item is None:
        item = _parse_item(v)
        if len(_ITEMS) >= _ITEMS_MAX:
            _ITEMS.clear()
        _ITEMS[v] = item
    return item


def _parse_item(v: str) -> Item:
    u = v.upper()
    if u in SIMPLE:
        return Item(u)
    m = _SECTIONED.match(v)
    if m is None:
        raise ParseError(f"unknown fetch item {v[:40]!r}")
    kind = m.group(1).upper()
    section = parse_section(m.group(2), binary=kind.startswith("BINARY"))
    partial = None
    if m.group(3) is not None:
        if kind == "BINARY.SIZE":
            raise ParseError("BINARY.SIZE takes no partial")
        length = int(m.group(4))
        if length == 0:
            raise ParseError("partial length must be positive")
        partial = (int(m.group(3)), length)
    return Item(kind.removesuffix(".PEEK"), section, partial, peek=kind.endswith(".PEEK"))


def parse_section(text: str, *, binary: bool = False) -> Section:
    """``1.2.HEADER.FIELDS (FROM TO)`` -> Section.

    Raises:
        ParseError: malformed section.
    """
    path: tuple[int, ...] = ()
    rest = text
    m = _PATH.match(rest)
    if m is not None:
        path = tuple(int(x) for x in m.group(1).split("."))
        if any(n == 0 for n in path):
            raise ParseError("section part numbers start at 1")
        rest = rest[m.end() :]
    if binary:
        if rest:
            raise ParseError("BINARY takes only a part number")
        return Section(path)
    head, sp, tail = rest.partition(" ")
    spec = head.upper()
    if spec in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        if not sp:
            raise ParseError("HEADER.FIELDS needs a list of field names")
        toks = tokenize([tail.encode("utf-8")])
        if len(toks) != 1 or not isinstance(toks[0], Group) or not toks[0].items:
            raise ParseError("invalid header field list")
        names = []
        for f in toks[0].items:
            if isinstance(f, Atom):
                names.append(f.value)
            elif isinstance(f, String):
                names.append(f.value.decode("utf-8", "replace"))
            else:
                raise ParseError("invalid header field name")
        return Section(path, spec, tuple(n.upper() for n in names))
    if sp:
        raise ParseError("invalid section")
    if spec not in ("", "HEADER", "TEXT", "MIME"):
        raise ParseError(f"invalid section {text[:40]!r}")
    if spec == "MIME" and not path:
        raise ParseError("MIME needs a part number")
    return Section(path, spec)


def section_content(top: Part, section: Section) -> bytes:
    """The octets that ``BODY[section]`` refers to.

    Raises:
        SectionError: the path names no part (callers answer with an empty string, as Dovecot does).
    """
    part = top.find(list(section.path)) if section.path else top
    spec = section.spec
    if not spec:
        return part.raw[part.start : part.end] if not section.path else part.body
    if spec == "MIME":
        return part.header
    # HEADER / TEXT / HEADER.FIELDS of a nested part refer to its embedded message
    msg = part
    if section.path:
        if not (part.is_message and part.message is not None):
            raise SectionError("not a message/rfc822 part")
        msg = part.message
    if spec == "HEADER":
        return msg.header
    if spec == "TEXT":
        return msg.body
    return select_fields(msg.field_blocks(), section.fields, exclude=spec == "HEADER.FIELDS.NOT")


def decode_part(top: Part, section: Section) -> bytes:
    """BINARY[section]: the part body with its Content-Transfer-Encoding removed (RFC 3516).

    Raises:
        SectionError, UnknownCTE.
    """
    part = top.find(list(section.path)) if section.path else top
    if not section.path:
        return top.raw[top.start : top.end]
    if part.is_multipart or (part.is_message and part.message is not None):
        return part.body
    enc_raw = part.get("content-transfer-encoding")
    enc = enc_raw.decode("latin-1").strip().lower() if enc_raw else "7bit"
    body = part.body
    if enc in ("7bit", "8bit", "binary", ""):
        return body
    if enc == "base64":
        clean = re.sub(rb"[^A-Za-z0-9+/]", b"", body.split(b"=", 1)[0])
        if len(clean) % 4 == 1:
            clean = clean[:-1]  # a dangling sextet carries no complete octet
        try:
            return base64.b64decode(clean + b"=" * (-len(clean) % 4))
        except (binascii.Error, ValueError):
            raise UnknownCTE("invalid base64 content") from None
    if enc == "quoted-printable":
        return decode_qp(body)
    raise UnknownCTE(f"unknown transfer encoding {enc[:30]}")


_QP_OCTET = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_qp(body: bytes) -> bytes:
    """Quoted-printable to octets (RFC 2045 section 6.7).

    Trailing white space on a line is removed (rule 3: transports add it), so ``=`` followed
    by white space at the end of a line is still a soft line break; ``=XX`` becomes the
    octet, and an ``=`` that starts no valid sequence stays as it is (rule 1's robustness
    advice). Each line's own break (CRLF or LF) is kept.
    """
    out: list[bytes] = []
    for line in body.splitlines(keepends=True):
        text = line.rstrip(b"\r\n")
        brk = line[len(text) :]
        text = text.rstrip(b" \t")
        if text.endswith(b"="):
            text, brk = text[:-1], b""  # soft line break
        out.append(_QP_OCTET.sub(lambda m: bytes((int(m.group(1), 16),)), text) + brk)
    return b"".join(out)


def was_decoded(top: Part, section: Section) -> bool:
    """Whether BINARY[section] removes a transfer encoding (answered as literal8, like Dovecot)."""
    if not section.path:
        return False
    try:
        part = top.find(list(section.path))
    except SectionError:
        return False
    if part.is_multipart:
        return True
    enc = part.get("content-transfer-encoding")
    return enc is not None and enc.decode("latin-1").strip().lower() in ("base64", "quoted-printable")


def apply_partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    """``<start.length>`` slicing (RFC 3501: past the end gives an empty string)."""
    if partial is None:
        return data
    start, length = partial
    return data[start : start + length]
