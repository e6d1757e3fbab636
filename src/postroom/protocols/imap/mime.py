"""A byte-exact MIME part tree for FETCH sections and BODYSTRUCTURE (sans-IO).

The stdlib ``email`` package re-serializes what it parses, but IMAP needs octet offsets
into the message as stored (RFC 3501 section 6.4.5: ``BODY[1.2]``, ``BODY[1.MIME]``,
sizes and line counts in BODYSTRUCTURE), so this module scans the raw bytes itself: a
header block, a blank line, a body, and for ``multipart/*`` the parts between boundary
delimiter lines (RFC 2046 section 5.1.1). ``message/rfc822`` bodies are parsed as
embedded messages (RFC 3501: their parts are numbered below the part's number).

Nothing here raises on malformed mail: a missing blank line means an empty body, a
missing close delimiter ends the last part at the end of the data. Recursion is bounded
by :data:`MAX_MIME_DEPTH`.

Errors::

    SectionError (ParseError)   a section specifier naming no part (FETCH answers "")
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from .errors import ParseError

__all__ = [
    "MAX_MIME_DEPTH",
    "MAX_PARTS",
    "Part",
    "SectionError",
    "field_blocks",
    "header_fields",
    "parse",
    "select_fields",
    "without_nul",
]

# Dovecot limits MIME nesting to 100 (mail_max_mime_parts/mime depth); deeper parts are
# treated as opaque bodies. Keeps recursion bounded for hostile input.
MAX_MIME_DEPTH = 50
# Parts per message; past this the rest of a multipart is one opaque part (Dovecot: 10000).
MAX_PARTS = 10000


class SectionError(ParseError):
    """A section specifier that names no part of this message."""


@dataclass(slots=True)
class Part:
    """One MIME entity: offsets into ``raw`` plus parsed Content-* fields."""

    raw: bytes
    start: int  # first octet of the header
    body_start: int  # first octet of the body (after the blank line)
    end: int  # one past the last octet of the body
    fields: list[tuple[str, bytes]]  # (lower-case name, raw value without the name and colon)
    type: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    explicit_type: bool = False
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the embedded message of message/rfc822
    closed_at: int | None = None  # multipart: where the close delimiter ends
    # field_blocks(self.header), kept with the part (each FETCH of HEADER.FIELDS reuses it)
    blocks: list[tuple[str, bytes]] | None = field(default=None, repr=False, compare=False)

    @property
    def header(self) -> bytes:
        return self.raw[self.start : self.body_start]

    def field_blocks(self) -> list[tuple[str, bytes]]:
        """:func:`field_blocks` of this part's header, computed once."""
        blocks = self.blocks
        if blocks is None:
            blocks = self.blocks = field_blocks(self.header)
        return blocks

    @property
    def body(self) -> bytes:
        return self.raw[self.body_start : self.end]

    def get(self, name: str) -> bytes | None:
        """The first value of header field ``name`` (unfolded, leading space stripped)."""
        lname = name.lower()
        for n, v in self.fields:
            if n == lname:
                return unfold(v)
        return None

    def param(self, name: str) -> str | None:
        for k, v in self.params:
            if k.lower() == name:
                return v
        return None

    @property
    def is_multipart(self) -> bool:
        return self.type.lower() == "multipart"

    @property
    def is_message(self) -> bool:
        return self.type.lower() == "message" and self.subtype.lower() in ("rfc822", "global")

    # -- sections (RFC 3501 section 6.4.5) -------------------------------------------------
    def find(self, path: list[int]) -> Part:
        """The part at ``path`` (``[1, 2]`` for section ``1.2``) of this message.

        A message's parts are its children when it is multipart, else itself (part 1).
        Below a ``message/rfc822`` part come the parts of the embedded message.

        Raises:
            SectionError: no such part.
        """
        part: Part | None = None
        leaf = False  # the last step chose a non-multipart body as its own part 1
        for n in path:
            if leaf:
                raise SectionError("no such part")
            if part is None:
                subs, single = (self.children, False) if self.is_multipart else ([self], True)
            elif part.is_multipart:
                subs, single = part.children, False
            elif part.is_message and part.message is not None:
                msg = part.message
                subs, single = (msg.children, False) if msg.is_multipart else ([msg], True)
            else:
                subs, single = [part], True  # a leaf part's part 1 is itself, as Dovecot answers
            if not 1 <= n <= len(subs):
                raise SectionError("no such part")
            part = subs[n - 1]
            # a message/rfc822 body chosen as part 1 still has the parts of its message below
            leaf = single and not (part.is_message and part.message is not None)
        return part if part is not None else self


def unfold(value: bytes) -> bytes:
    """Remove the CRLFs of a folded header value (RFC 5322 section 2.2.3) and the leading space."""
    return value.replace(b"\r\n", b"").replace(b"\n", b"").lstrip(b" \t")


_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def _split_header(raw: bytes, start: int, end: int) -> tuple[int, list[tuple[str, bytes]]]:
    """Find the blank line after ``start``; returns (body start, fields)."""
    fields: list[tuple[str, bytes]] = []
    pos = start
    body_start = end
    cur_name: str | None = None
    cur_val: list[bytes] = []
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        line = raw[pos:line_end]
        if line in (b"\r\n", b"\n"):
            body_start = line_end
            pos = line_end
            break
        if line[:1] in (b" ", b"\t") and cur_name is not None:
            cur_val.append(line)
        else:
            if cur_name is not None:
                fields.append((cur_name, b"".join(cur_val).rstrip(b"\r\n")))
            m = _FIELD_NAME.match(line)
            if m is not None:
                cur_name = m.group(1).decode("ascii").lower()
                cur_val = [line[m.end() :]]
            else:
                cur_name = None  # not a header field: ignore the line, as Dovecot does
        pos = line_end
    else:
        body_start = end
    if cur_name is not None:
        fields.append((cur_name, b"".join(cur_val).rstrip(b"\r\n")))
    return body_start, fields


_BARE_VALUE = re.compile(r"[^;\s]*")
_TOKEN = re.compile(r"[^\s()<>@,;:\\\"/\[\]?=]+")


def parse_content_type(value: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """``type/subtype; a=b`` -> (type, subtype, params), or None if it does not parse."""
    s = _strip_comments(value)
    m = re.match(r"\s*([^\s/;]+)\s*/\s*([^\s;]+)\s*", s)
    if m is None:
        return None
    return m.group(1), m.group(2), parse_params(s[m.end() :])


def parse_params(s: str) -> list[tuple[str, str]]:
    """``; a=b; c="d e"`` -> [("a", "b"), ("c", "d e")] (RFC 2045 section 5.1)."""
    params: list[tuple[str, str]] = []
    i = 0
    n = len(s)
    while i < n:
        while i < n and s[i] in " \t;\r\n":
            i += 1
        m = _TOKEN.match(s, i)
        if m is None:
            break
        name = m.group()
        i = m.end()
        while i < n and s[i] in " \t":
            i += 1
        if i >= n or s[i] != "=":
            # no value: skip to the next ';'
            j = s.find(";", i)
            i = n if j < 0 else j
            continue
        i += 1
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == '"':
            i += 1
            buf: list[str] = []
            while i < n and s[i] != '"':
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(s[i])
                i += 1
            i += 1
            params.append((name, "".join(buf)))
        else:
            m2 = _BARE_VALUE.match(s, i)
            val = m2.group() if m2 else ""
            i += len(val)
            params.append((name, val))
    return params


def _strip_comments(s: str) -> str:
    if "(" not in s:
        return s
    out: list[str] = []
    depth = 0
    quoted = False
    i = 0
    while i < len(s):
        c = s[i]
        if quoted:
            out.append(c)
            if c == "\\" and i + 1 < len(s):
                out.append(s[i + 1])
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"' and depth == 0:
            quoted = True
            out.append(c)
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(c)
        i += 1
    return "".join(out)


def _text(v: bytes) -> str:
    return v.decode("utf-8", "replace")


def parse(raw: bytes) -> Part:
    """Parse a whole message into its part tree."""
    counter = [0]
    return _parse_entity(raw, 0, len(raw), ("text", "plain"), 0, counter)


def _parse_entity(
    raw: bytes, start: int, end: int, default: tuple[str, str], depth: int, counter: list[int]
) -> Part:
    body_start, fields = _split_header(raw, start, end)
    part = Part(raw, start, body_start, end, fields, default[0], default[1])
    counter[0] += 1
    ct = part.get("content-type")
    parsed = parse_content_type(_text(ct)) if ct is not None else None
    if parsed is not None:
        part.type, part.subtype, part.params = parsed
        part.explicit_type = True
    if depth >= MAX_MIME_DEPTH or counter[0] >= MAX_PARTS:
        return part
    if part.is_multipart:
        boundary = part.param("boundary")
        if boundary:
            child_default = ("message", "rfc822") if part.subtype.lower() == "digest" else ("text", "plain")
            ranges, part.closed_at = _split_multipart(
                raw, body_start, end, boundary.encode("utf-8", "replace")
            )
            for s, e in ranges:
                child = _parse_entity(raw, s, e, child_default, depth + 1, counter)
                if child.is_multipart and child.closed_at == child.end:
                    # the line break after a nested close delimiter belongs to the nested
                    # part, not to our next delimiter (Dovecot counts it so)
                    for nl in (b"\r\n", b"\n"):
                        if raw.startswith(nl, child.end):
                            child.end += len(nl)
                            break
                part.children.append(child)
                if counter[0] >= MAX_PARTS:
                    break
    elif part.is_message:
        part.message = _parse_entity(raw, body_start, end, ("text", "plain"), depth + 1, counter)
    return part


def _split_multipart(
    raw: bytes, start: int, end: int, boundary: bytes
) -> tuple[list[tuple[int, int]], int | None]:
    """Body ranges between ``--boundary`` lines (RFC 2046 section 5.1.1), and where the
    close delimiter ends (None without one)."""
    delim = b"--" + boundary
    parts: list[tuple[int, int]] = []
    pos = start
    part_start: int | None = None
    while pos <= end:
        idx = raw.find(delim, pos, end)
        if idx < 0:
            break
        at_line_start = idx == start or raw[idx - 1 : idx] == b"\n"
        after = idx + len(delim)
        if not at_line_start:
            pos = after
            continue
        closing = raw[after : after + 2] == b"--"
        # the CRLF before the delimiter belongs to the delimiter
        stop = idx
        if stop > start and raw[stop - 1 : stop] == b"\n":
            stop -= 1
            if stop > start and raw[stop - 1 : stop] == b"\r":
                stop -= 1
        if part_start is not None:
            parts.append((part_start, max(stop, part_start)))
        nl = raw.find(b"\n", after, end)
        line_rest = raw[after + 2 if closing else after : end if nl < 0 else nl]
        if line_rest.strip(b" \t\r") and not closing:
            pos = after  # "--boundaryX" is not our delimiter
            if part_start is not None:
                parts.pop()
            continue
        if closing:
            return parts, after + 2
        part_start = end if nl < 0 else nl + 1
        pos = part_start
    if part_start is not None:
        parts.append((part_start, end))
    return parts, None


def header_fields(header: bytes, names: list[str], exclude: bool) -> bytes:
    """HEADER.FIELDS / HEADER.FIELDS.NOT: matching fields in message order, then CRLF."""
    return select_fields(field_blocks(header), names, exclude)


def select_fields(
    blocks: list[tuple[str, bytes]], names: list[str] | tuple[str, ...], exclude: bool
) -> bytes:
    """:func:`header_fields` from the header's :func:`field_blocks`."""
    if type(names) is tuple:  # a parsed section's: the lower-case set kept (once per list)
        wanted = _WANTED.get(names)
        if wanted is None:
            if len(_WANTED) >= _WANTED_MAX:
                _WANTED.clear()
            wanted = _WANTED[names] = frozenset(n.lower() for n in names)
    else:
        wanted = frozenset(n.lower() for n in names)
    if exclude:
        out = [octets for name, octets in blocks if name not in wanted]
    else:
        out = [octets for name, octets in blocks if name in wanted]
    out.append(b"\r\n")
    return b"".join(out)


# HEADER.FIELDS name lists as lower-case sets: a FETCH of 100 messages selects each one's
# fields with the same list (emptied when full: invented lists)
_WANTED: dict[tuple[str, ...], frozenset[str]] = {}
_WANTED_MAX = 4096


def field_blocks(header: bytes) -> list[tuple[str, bytes]]:
    """The header's fields up to its blank line, in order: (lower-case name, the field's
    octets with its continuation lines). A line that starts no field (no name and colon),
    and the continuation lines after it, are left out, as are continuation lines before
    the first field."""
    blocks: list[tuple[str, bytes]] = []
    name: str | None = None
    lines: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                lines.append(line)
            continue
        if name is not None:
            blocks.append((name, b"".join(lines)))
        m = _FIELD_NAME.match(line)
        name = None if m is None else m.group(1).decode("ascii").lower()
        lines = [line]
    if name is not None:
        blocks.append((name, b"".join(lines)))
    return blocks


def without_nul(raw: bytes) -> bytes:
    """``raw`` with every leaf part whose body holds NUL octets re-encoded as base64.

    A message APPENDed as a literal8 (RFC 3516 section 4.4) may carry NULs, which no plain
    literal may (RFC 3501 section 4.3: CHAR8 excludes NUL), yet BODY[] must be sent as one.
    Like Dovecot, the server stores such a part base64-encoded; BINARY[] still returns the
    original octets. Parts are replaced from the last to the first so offsets stay valid.
    """
    if b"\0" not in raw:
        return raw
    top = parse(raw)
    leaves: list[Part] = []
    stack = [top]
    while stack:
        p = stack.pop()
        if p.children:
            stack.extend(p.children)
        elif p.message is not None:
            stack.append(p.message)
        elif b"\0" in p.body:
            leaves.append(p)
    out = raw
    for p in sorted(leaves, key=lambda p: p.start, reverse=True):
        header = b"".join(
            line
            for line in p.header.splitlines(keepends=True)
            if not line.lower().startswith(b"content-transfer-encoding:")
        )
        # drop the blank line, add the encoding field, put the blank line back
        header = header.rstrip(b"\r\n") + b"\r\n" if header.strip() else b""
        encoded = base64.encodebytes(p.body).replace(b"\n", b"\r\n")
        part = header + b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded
        out = out[: p.start] + part + out[p.end :]
    return out
