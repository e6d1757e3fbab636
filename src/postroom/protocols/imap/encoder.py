"""IMAP response encoding (sans-IO): Python values to the wire syntax of RFC 3501 section 9.

Values map to IMAP data as follows:

========================  =====================================================
``None``                  ``NIL``
``int``                   number
``str`` / ``bytes``       quoted string when safe, else a literal ``{n}\\r\\n...``
:class:`Raw`              emitted verbatim (atoms, flags, pre-encoded data)
:class:`Literal`          always a literal (message bodies)
:class:`Binary`           ``~{n}`` literal8 when it holds NUL, else a literal (RFC 3516)
``list`` / ``tuple``      parenthesized list
========================  =====================================================

Errors::

    EncodeError (ValueError)   a value of an unsupported type
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Binary",
    "EncodeError",
    "Literal",
    "Raw",
    "Value",
    "continuation",
    "encode",
    "quote",
    "tagged",
    "untagged",
]

# Quoted strings are kept short so that responses stay readable; longer strings become
# literals (RFC 3501 section 4.3 allows either for any string).
_MAX_QUOTED = 1000


class EncodeError(ValueError):
    """A value that has no IMAP representation."""


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes written as they are (atoms, flags, already-encoded data)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Literal:
    """Bytes always sent as a literal."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Binary:
    """Decoded content for BINARY[...] (RFC 3516): literal8 if it holds NUL or ``eight``."""

    data: bytes
    eight: bool = False  # content was decoded from a transfer encoding (Dovecot then says ~{n})


Value = None | int | str | bytes | Raw | Literal | Binary | list["Value"] | tuple["Value", ...]


# A quoted string carries printable ASCII only (RFC 3501 section 9 forbids CR, LF and NUL;
# 8-bit text and other controls go as literals too, as before).
_UNQUOTABLE = re.compile(rb"[^\x20-\x7e]")


def _quotable(data: bytes) -> bool:
    return len(data) <= _MAX_QUOTED and _UNQUOTABLE.search(data) is None


def quote(data: bytes) -> bytes:
    """A string as a quoted string if possible, else as a literal."""
    if _quotable(data):
        if b"\\" in data or b'"' in data:
            data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + data + b'"'
    return b"{%d}\r\n" % len(data) + data


def encode(value: Value) -> bytes:
    """Encode one value (see the module docstring for the mapping).

    Raises:
        EncodeError: for a value of another type.
    """
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Value, out: list[bytes]) -> None:
    # the common types first, by exact type (ENVELOPE and BODYSTRUCTURE are many small
    # strings in nested tuples)
    t = type(value)
    if t is str:
        out.append(quote(value.encode("utf-8")))  # type: ignore[union-attr]
    elif t is bytes:
        out.append(quote(value))  # type: ignore[arg-type]
    elif t is tuple or t is list:
        out.append(b"(")
        first = True
        for v in value:  # type: ignore[union-attr]
            if first:
                first = False
            else:
                out.append(b" ")
            # leaves inline (a BODYSTRUCTURE is mostly NIL, numbers and short strings)
            if v is None:
                out.append(b"NIL")
            elif type(v) is bytes:
                out.append(quote(v))
            else:
                _encode(v, out)
        out.append(b")")
    elif value is None:
        out.append(b"NIL")
    elif isinstance(value, bool):
        raise EncodeError("booleans have no IMAP form")
    elif isinstance(value, int):
        out.append(b"%d" % value)
    elif isinstance(value, bytes):
        out.append(quote(value))
    elif isinstance(value, str):
        out.append(quote(value.encode("utf-8")))
    elif isinstance(value, Raw):
        out.append(value.data)
    elif isinstance(value, Literal):
        out.append(b"{%d}\r\n" % len(value.data))
        out.append(value.data)
    elif isinstance(value, Binary):
        # RFC 3516 section 4.2: literal8 only where it is needed (NUL octets), as Dovecot does
        eight = value.eight or b"\0" in value.data
        out.append((b"~{%d}\r\n" if eight else b"{%d}\r\n") % len(value.data))
        out.append(value.data)
    elif isinstance(value, list | tuple):
        out.append(b"(")
        for i, v in enumerate(value):
            if i:
                out.append(b" ")
            _encode(v, out)
        out.append(b")")
    else:
        raise EncodeError(f"cannot encode {type(value).__name__}")


def _text(text: str) -> bytes:
    # Response text is one line (RFC 3501 section 9, resp-text); never let CR/LF through.
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``tag OK|NO|BAD [code] text``."""
    c = f"[{code}] " if code else ""
    return tag.encode("ascii") + b" " + status.encode("ascii") + b" " + _text(c + text) + b"\r\n"


def untagged(*parts: Value | Iterable[Value]) -> bytes:
    """``* part part ...`` where str parts are written as they are (they are keywords).

    Use :class:`Raw` or :func:`encode` for anything that must be quoted.
    """
    chunks: list[bytes] = [b"*"]
    for p in parts:
        if isinstance(p, str):
            chunks.append(_text(p))
        else:
            chunks.append(encode(p))  # type: ignore[arg-type]
    return b" ".join(chunks) + b"\r\n"


def continuation(text: str = "Ready") -> bytes:
    """``+ text`` (a continuation request)."""
    return b"+ " + _text(text) + b"\r\n"
