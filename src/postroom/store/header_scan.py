"""Reading the header block of a stored message without the search language: the rows of
the ``header_field`` index (:func:`header_rows`, written by the indexer), and the SQL function
``postroom_header`` that checks a message whose rows are not written yet
(:func:`register_functions`, on every connection). Compiling ``header:`` terms
(``sqlite_search.py``) and parsing the language (:mod:`postroom.search`) load with the first
search: an in-process test server that stores and reads mail does not load them (issue 20).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from .headers import decode_header_bytes
from .rawcodec import header_prefix

__all__ = [
    "HEADER_SCAN_LIMIT",
    "decoded_value",
    "header_fields",
    "header_matches",
    "header_rows",
    "register_functions",
]

# How much of a message is decompressed to find its header block. RFC 5322 sets no
# limit on the header section; 256 KiB covers long DKIM/ARC chains and Received: trails.
HEADER_SCAN_LIMIT = 256 * 1024


def header_fields(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(name, unfolded raw value)`` of each field of a raw header block, in order.

    Continuation lines join their field with one space; a line that is neither a field
    nor a continuation of one ends the field before it and is skipped.
    """
    name: bytes | None = None
    pieces: list[bytes] = []
    for line in block.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                pieces.append(line.strip())
            continue
        if name is not None:
            yield name, b" ".join(pieces)
        k, sep, v = line.partition(b":")
        name, pieces = (k.strip(), [v.strip()]) if sep and k.strip() else (None, [])
    if name is not None:
        yield name, b" ".join(pieces)


def decoded_value(raw: bytes) -> str:
    """A header value from :func:`header_fields` as lower-case text (RFC 2047 decoded)."""
    return decode_header_bytes(raw).lower()


def _header_block(data: bytes) -> bytes:
    return _cut_header(header_prefix(data, HEADER_SCAN_LIMIT, _SCAN_CHUNK))


# header_prefix() reads whole chunks: of a message without a separator in its first
# HEADER_SCAN_LIMIT bytes it returns this many (header_rows(packed=False) cuts the same).
_SCAN_CHUNK = 16384
_SCAN_SPAN = -(-HEADER_SCAN_LIMIT // _SCAN_CHUNK) * _SCAN_CHUNK


def _cut_header(out: bytes) -> bytes:
    end = min((i for i in (out.find(b"\r\n\r\n"), out.find(b"\n\n")) if i >= 0), default=len(out))
    return out[:end]


def header_matches(block: bytes, name: str, value: str | None) -> bool:
    """True when ``block`` (a raw header section) has header ``name`` containing ``value``.

    Names compare case-insensitively; values are unfolded, RFC 2047-decoded and compared
    case-insensitively as substrings. ``value`` None matches any occurrence of the header.
    """
    want = name.lower().encode("ascii", "replace")
    needle = value.lower() if value is not None else None
    return any(
        k.lower() == want and (needle is None or needle in decoded_value(v)) for k, v in header_fields(block)
    )


def header_rows(data: bytes, *, packed: bool = True) -> list[tuple[str, int, str]]:
    """``(name, position, value)`` of each header field of a stored message (compressed as
    ``rawcodec`` stores it; ``packed=False``: the message itself, already decompressed), for
    the ``header_field`` index: lower case, unfolded, decoded."""
    try:
        block = _header_block(data) if packed else _cut_header(data[:_SCAN_SPAN])
    except Exception:  # a corrupt frame: no rows (a search then finds nothing in it, as before)
        return []
    return [
        (k.decode("latin-1").lower(), seq, decoded_value(v).replace("\x00", ""))
        for seq, (k, v) in enumerate(header_fields(block))
    ]


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
