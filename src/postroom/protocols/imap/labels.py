"""Gmail's X-GM-LABELS (X-GM-EXT-1) on the wire: label lists in FETCH, STORE and SEARCH.

A label is an astring (an atom, a quoted string or a literal). Gmail sends labels outside
printable ASCII in modified UTF-7, as mailbox names (RFC 3501 5.1.3); a label that is not
valid modified UTF-7 is taken as written (clients that do not encode ``&``); labels starting with
a backslash (``\\Inbox``, ``\\Starred``, ...) are Gmail's system labels, written as atoms.
This module reads and writes that form; what a label means is the server's business
(``servers/imap/labels.py``: postroom's tags).

Pure: no I/O. Errors: :class:`~.errors.ParseError` for a label argument that is not one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import utf7
from .decoder import Atom, Group, Token
from .encoder import quote
from .errors import ParseError

__all__ = ["MAX_LABELS", "format_labels", "parse_label", "parse_labels"]

# Labels one STORE may name (our choice: Gmail has no documented limit per message; a bound
# keeps a hostile list from turning into thousands of tag rows per message).
MAX_LABELS = 100
# An atom that needs no quoting (RFC 3501 section 9 ATOM-CHAR, plus a leading backslash for
# the system labels, which Gmail sends unquoted).
_ATOM = re.compile(r"\\?[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|~]+\Z")


def parse_label(token: Token) -> str:
    """One label argument as Unicode (UTF-8 when 8-bit, else modified UTF-7).

    Raises:
        ParseError: a list where a label belongs, an empty label, 8-bit text that is not
            UTF-8.
    """
    if isinstance(token, Group):
        raise ParseError("expected a label, not a list")
    raw = token.value.encode("ascii", "replace") if isinstance(token, Atom) else token.value
    if not raw.strip():
        raise ParseError("empty label")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("label is not valid UTF-8") from None
    if "&" not in text:
        return text
    try:
        return utf7.decode(text)
    except utf7.Utf7Error:
        return text  # a client that does not encode (``"AT&T"``): taken as written


def parse_labels(token: Token) -> list[str]:
    """STORE's label argument: a parenthesized list, or one label alone (as STORE allows
    for flags); duplicates dropped, the first spelling kept.

    Raises:
        ParseError: see :func:`parse_label`; more than :data:`MAX_LABELS` labels.
    """
    items = token.items if isinstance(token, Group) else (token,)
    if len(items) > MAX_LABELS:
        raise ParseError(f"at most {MAX_LABELS} labels in one STORE")
    out: dict[str, str] = {}
    for item in items:
        label = parse_label(item)
        out.setdefault(label.casefold(), label)
    return list(out.values())


def _one(label: str) -> bytes:
    wire = utf7.encode(label)
    if _ATOM.match(wire) and wire.upper() != "NIL":
        return wire.encode("ascii")
    return quote(wire.encode("ascii"))


def format_labels(labels: Iterable[str]) -> bytes:
    """``(label label ...)`` as FETCH X-GM-LABELS answers it (``()`` for none)."""
    return b"(" + b" ".join(_one(label) for label in labels) + b")"
