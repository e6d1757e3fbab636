"""A lean MIME splitter that builds the same tree as ``email``'s parser, for common shapes.

:func:`parse_bytes` returns exactly the :class:`email.message.Message` tree that
``BytesParser(policy=compat32).parsebytes(raw)`` builds — same headers (name, raw value),
same payload strings (ASCII with surrogate escapes), same multipart structure, preamble
and epilogue — or ``None`` when the message has a shape it does not handle, and the
caller then uses the stdlib parser. Because the tree is made of real ``Message``
objects, everything read from it afterwards (content types, parameters, RFC 2231
filenames, charsets, ``get_payload(decode=True)`` with quoted-printable/base64) is the
stdlib's own code; only the splitting is done here.

Why: the stdlib feed parser walks the message line by line in Python (~1 ms for a 21 KB
HTML mail); here boundaries are found with ``str.find`` and a payload is one slice.

Shapes handled: single-part messages and ``multipart/*`` (not ``digest``) nested up to
:data:`MAX_DEPTH` levels. Handed back (``None``): ``message/*`` parts (the stdlib parses
them as nested messages), a bare CR (which ends a line for the stdlib parser) in a header
block or next to a boundary, ``From `` envelope lines in a header block,
a multipart without boundary, a missing start or close boundary, a close boundary right
after another boundary line, and deeper nesting.

Errors: none; this module never raises on malformed input (it returns ``None``).
"""

from __future__ import annotations

import re
from email._policybase import compat32  # not email.policy: its header registry costs ~7 ms
from email.message import Message

__all__ = ["MAX_DEPTH", "parse_bytes"]

# Multipart levels split here; deeper messages go to the stdlib parser. RFC 2046 sets no
# limit; real mail rarely nests more than 4 (mixed > related > alternative).
MAX_DEPTH = 16

_COMPAT32 = compat32
# The stdlib feed parser's test for a header line (email/feedparser.py, headerRE).
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")
# What may follow "--boundary" on a boundary line (feedparser's boundaryendRE, read as one
# line: an optional "--", blanks, then the end of the line).
_BOUNDARY_TAIL = re.compile(r"(--)?[ \t]*(?:\r?\n|\Z)")
_BARE_CR_TAIL = re.compile(r"(?:--)?[ \t]*\r(?!\n)")


class _Unhandled(Exception):
    """Internal: the message has a shape this module leaves to the stdlib parser."""


def parse_bytes(raw: bytes) -> Message | None:
    """The ``compat32`` message tree of ``raw``, or ``None`` for shapes not handled here."""
    text = raw.decode("ascii", "surrogateescape")
    try:
        msg = _parse(text, 0, len(text), 0)
    except _Unhandled:
        return None
    return msg


def _parse(text: str, start: int, end: int, depth: int) -> Message:
    """Parse text[start:end] as one message (depth 0) or body part of a multipart."""
    msg = Message(policy=_COMPAT32)
    pos = _headers(msg, text, start, end)
    ctype = msg.get_content_type()
    maintype = ctype.partition("/")[0]
    if maintype == "message":  # the stdlib parses these as nested messages
        raise _Unhandled
    if maintype != "multipart":
        # In a multipart, the line end before the next boundary belongs to the boundary
        # (RFC 2046 5.1.1).
        msg.set_payload(_strip_eol(text[pos:end]) if depth else text[pos:end])
        return msg
    boundary = msg.get_boundary()
    if boundary is None or ctype == "multipart/digest" or depth >= MAX_DEPTH:
        raise _Unhandled
    _split(msg, text, "--" + boundary, pos, end, depth)
    return msg


def _headers(msg: Message, text: str, pos: int, end: int) -> int:
    """Add the header block at ``pos`` to ``msg`` (as feedparser does); return the body start."""
    lines: list[str] = []  # the lines of the header being collected
    while pos < end:
        nl = text.find("\n", pos, end)
        nxt = end if nl < 0 else nl + 1
        line = text[pos:nxt]
        cr = line.find("\r")
        if cr >= 0 and cr != len(line) - 2:  # a bare CR ends a line for the stdlib parser
            raise _Unhandled
        if not _HEADER_LINE.match(line):
            if line == "\n" or line == "\r\n":  # the blank line ending the header block
                pos = nxt
            break  # else the body starts without a blank line
        first = line[0]
        if first == " " or first == "\t":
            if lines:  # a continuation with no header to continue is dropped
                lines.append(line)
        else:
            if lines:
                _set_raw(msg, lines)
                lines = []
            if first == "F" and line.startswith("From "):
                raise _Unhandled  # mbox envelope line
            if first != ":":  # a line ":..." has no name and is dropped
                lines = [line]
        pos = nxt
    if lines:
        _set_raw(msg, lines)
    return pos


def _set_raw(msg: Message, lines: list[str]) -> None:
    # compat32's header_source_parse: value = rest of the first line, left-stripped, plus
    # the continuation lines as they are; trailing CR/LF removed.
    name, value = lines[0].split(":", 1)
    value = value.lstrip(" \t") + "".join(lines[1:])
    msg.set_raw(name, value.rstrip("\r\n"))


def _boundary_line(text: str, sep: str, pos: int, end: int) -> tuple[int, int, bool] | None:
    """The next line in text[pos:end] that is ``sep`` as a boundary: (start, end, closing)."""
    n = len(sep)
    while True:
        i = text.find(sep, pos, end)
        if i < 0:
            return None
        prev = text[i - 1] if i else "\n"
        if prev == "\n":
            m = _BOUNDARY_TAIL.match(text, i + n, end)
            if m:
                return i, m.end(), m.group(1) is not None
            if _BARE_CR_TAIL.match(text, i + n, end):
                raise _Unhandled  # "--boundary" + CR: a boundary line for the stdlib parser
        elif prev == "\r":
            raise _Unhandled  # after a bare CR: at a line start for the stdlib parser
        pos = i + 1


def _strip_eol(s: str) -> str:
    if s.endswith("\r\n"):
        return s[:-2]
    if s.endswith("\n"):
        return s[:-1]
    return s


def _split(msg: Message, text: str, sep: str, pos: int, end: int, depth: int) -> None:
    """Split the body text[pos:end] of multipart ``msg`` into its parts (feedparser's rules)."""
    found = _boundary_line(text, sep, pos, end)
    if found is None or found[2]:  # no start boundary: the stdlib keeps the body as text
        raise _Unhandled
    if found[0] > pos:
        msg.preamble = _strip_eol(text[pos : found[0]])
    line_end = found[1]
    while True:
        nxt = _boundary_line(text, sep, line_end, end)
        if nxt is None:  # no close boundary
            raise _Unhandled
        if nxt[0] == line_end:  # boundary lines in a row delimit no part (as in feedparser)
            if nxt[2]:
                raise _Unhandled
            line_end = nxt[1]
            continue
        msg.attach(_parse(text, line_end, nxt[0], depth + 1))
        line_end = nxt[1]
        if nxt[2]:
            epilogue = text[line_end:end]
            if depth:  # the line end before the enclosing boundary is not the epilogue's
                msg.epilogue = _strip_eol(epilogue) if epilogue else None
            else:
                msg.epilogue = epilogue
            return
