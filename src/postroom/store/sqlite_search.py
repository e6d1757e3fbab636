"""Compile postroom's search language (:mod:`postroom.search`) to SQLite.

:func:`compile_query` returns a boolean SQL expression over the ``message`` table aliased
``m``, and its parameters. User text only ever reaches SQLite as a bound parameter; free
text is quoted for FTS5 (``"..."`` with inner quotes doubled) so that no FTS5 syntax
(``NEAR``, ``*``, ``^``, column filters) can be injected.

How each term is answered:

* free text: the contentless FTS5 table ``fts`` (rowid = ``message.id``), filled by the
  indexer off the ingest path; positive words of one AND group share one ``MATCH``.
  Words are prefix matches (``invoi`` finds "invoice"); phrases match whole tokens.
  A term with no letters or digits (FTS5 has no token for it) searches the subject.
* from/to/cc/bcc/reply-to/addressed/subject: case-insensitive substring (``LIKE``) on the
  summary row, as Mailpit does.
* header:Name=value: reads the header block of the raw message through the SQL function
  ``postroom_header`` (see :func:`register_functions`), which decompresses only the
  start of each candidate message. It is the slowest term; SQLite evaluates it after
  the cheaper terms of the same AND group because it is placed last.

Errors: :class:`~postroom.store.base.InvalidQuery` (from :class:`postroom.search.SearchError`).
"""

from __future__ import annotations

import re
import sqlite3
from datetime import tzinfo
from email.header import decode_header, make_header
from typing import Any

from .. import search
from ..search import And, DateBound, Field, Flag, Header, Node, Not, Or, Size, Text
from .base import InvalidQuery

__all__ = ["compile_node", "compile_query", "fts_quote", "header_matches", "register_functions"]

# How much of a message is decompressed to find its header block. RFC 5322 sets no
# limit on the header section; 256 KiB covers long DKIM/ARC chains and Received: trails.
HEADER_SCAN_LIMIT = 256 * 1024

_WORD = re.compile(r"\w")

_ADDRESS_COLUMNS = {
    "to": ("m.to_json",),
    "cc": ("m.cc_json",),
    "bcc": ("m.bcc_json",),
    "reply-to": ("m.reply_to_json",),
    "from": ("m.from_addr", "m.from_name"),
    "addressed": ("m.from_addr", "m.from_name", "m.to_json", "m.cc_json", "m.bcc_json"),
    "subject": ("m.subject",),
}


def compile_query(text: str, *, tz: str | tzinfo | None = None) -> tuple[str, list[Any]]:
    """Compile a query to ``(sql, params)``; an empty query compiles to ``1``.

    Raises:
        InvalidQuery: the query does not parse; the message names the problem.
    """
    try:
        node = search.parse(text, tz=tz)
    except search.SearchError as e:
        raise InvalidQuery(str(e)) from None
    if node is None:
        return "1", []
    params: list[Any] = []
    return compile_node(node, params), params


def fts_quote(term: str, *, prefix: bool) -> str:
    """Quote user text as one FTS5 string (a phrase of its tokens), optionally a prefix."""
    return '"' + term.replace('"', '""') + '"' + ("*" if prefix else "")


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def compile_node(node: Node, params: list[Any]) -> str:
    """Append the parameters of ``node`` to ``params`` and return its SQL."""
    if isinstance(node, And):
        return _compile_group(node.children, params, " AND ")
    if isinstance(node, Or):
        return _compile_group(node.children, params, " OR ")
    if isinstance(node, Not):
        return f"NOT ({compile_node(node.child, params)})"
    if isinstance(node, Text):
        return _text([node], params, " AND ")
    if isinstance(node, Field):
        return _field(node, params)
    if isinstance(node, Flag):
        return {
            "read": "m.read = 1",
            "unread": "m.read = 0",
            "tagged": "EXISTS (SELECT 1 FROM message_tag mt WHERE mt.message = m.id)",
            "attachment": "m.attachments > 0",
        }[node.name]
    if isinstance(node, DateBound):
        params.append(node.epoch)
        return "m.created < ?" if node.op == "before" else "m.created >= ?"
    if isinstance(node, Size):
        params.append(node.bytes)
        return "m.size > ?" if node.op == "larger" else "m.size < ?"
    if isinstance(node, Header):
        params.extend((node.name, node.value))
        return "postroom_header((SELECT r.data FROM raw r WHERE r.id = m.id), ?, ?)"
    raise AssertionError(f"unknown node {node!r}")  # pragma: no cover


def _compile_group(children: tuple[Node, ...], params: list[Any], joiner: str) -> str:
    # Positive free-text terms of one group share a single FTS5 MATCH; header: terms go last.
    texts = [c for c in children if isinstance(c, Text) and _WORD.search(c.value)]
    others = [c for c in children if not (isinstance(c, Text) and _WORD.search(c.value))]
    others.sort(key=lambda c: isinstance(c, Header))
    parts: list[str] = []
    if texts:
        parts.append(_text(texts, params, joiner))
    parts.extend(compile_node(c, params) for c in others)
    return "(" + joiner.join(parts) + ")"


def _text(texts: list[Text], params: list[Any], joiner: str) -> str:
    if len(texts) == 1 and not _WORD.search(texts[0].value):
        params.append(_like(texts[0].value))
        return "m.subject LIKE ? ESCAPE '\\'"
    params.append(joiner.join(fts_quote(t.value, prefix=not t.phrase) for t in texts))
    return "m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"


def _field(node: Field, params: list[Any]) -> str:
    name, value = node.name, node.value
    if name in _ADDRESS_COLUMNS:
        cols = _ADDRESS_COLUMNS[name]
        params.extend([_like(value)] * len(cols))
        return "(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in cols) + ")"
    if name == "message-id":
        params.append(value)
        return "m.message_id = ?"
    if name == "thread":
        params.append(value)
        return "m.thread_id = ?"
    if name == "tag":
        params.append(value)
        return (
            "EXISTS (SELECT 1 FROM message_tag mt JOIN tag t ON t.id = mt.tag "
            "WHERE mt.message = m.id AND t.name = ?)"
        )
    if name == "mailbox":
        params.append(value.lower())
        return (
            "EXISTS (SELECT 1 FROM delivery d JOIN folder f ON f.id = d.folder_id "
            "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message = m.id AND mb.name = ?)"
        )
    raise AssertionError(f"unknown field {name}")  # pragma: no cover


# -- header: support ---------------------------------------------------------------------


def _header_block(compressed: bytes) -> bytes:
    import io

    import zstandard

    out = bytearray()
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(compressed)) as reader:
        while len(out) < HEADER_SCAN_LIMIT:
            chunk = reader.read(16384)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out or b"\n\n" in out:
                break
    end = min((i for i in (out.find(b"\r\n\r\n"), out.find(b"\n\n")) if i >= 0), default=len(out))
    return bytes(out[:end])


def header_matches(block: bytes, name: str, value: str | None) -> bool:
    """True when ``block`` (a raw header section) has header ``name`` containing ``value``.

    Names compare case-insensitively; values are unfolded, RFC 2047-decoded and compared
    case-insensitively as substrings. ``value`` None matches any occurrence of the header.
    """
    want = name.lower().encode("ascii", "replace")
    needle = value.lower() if value is not None else None
    current: bytes | None = None
    pieces: list[bytes] = []

    def check() -> bool:
        if current is None:
            return False
        if needle is None:
            return True
        return needle in _decode(b" ".join(pieces)).lower()

    for line in block.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                pieces.append(line.strip())
            continue
        if check():
            return True
        k, sep, v = line.partition(b":")
        if sep and k.strip().lower() == want:
            current, pieces = k, [v.strip()]
        else:
            current, pieces = None, []
    return check()


def _decode(value: bytes) -> str:
    try:
        text = value.decode("utf-8")  # RFC 6532 headers are UTF-8
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    if "=?" in text:
        try:
            return str(make_header(decode_header(text)))
        except (ValueError, LookupError, UnicodeError):
            return text
    return text


def _sql_header(data: bytes | None, name: str, value: str | None) -> int:
    if data is None:
        return 0
    try:
        return int(header_matches(_header_block(data), name, value))
    except Exception:  # a corrupt frame must not abort the whole query
        return 0


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the SQL functions compiled queries may call (on every reader connection)."""
    conn.create_function("postroom_header", 3, _sql_header, deterministic=True)
