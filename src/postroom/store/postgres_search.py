"""Compile postroom's search language (:mod:`postroom.search`) to PostgreSQL.

The same language and the same answers as the SQLite backend (``sqlite_search.py``):

* free text: ``message_text.tsv``, a ``tsvector`` with the language-neutral ``simple``
  configuration, written by the indexer from the subject, addresses, text and attachment
  names, in a narrow table of its own with the message's read flag (migration 0020: a
  count of a common word's matches reads those rows, not the wide message rows). Text is cut into words the way SQLite's FTS5 ``unicode61`` tokenizer does (runs
  of letters and digits, diacritics removed: :func:`words`), on both sides, so a word is a
  prefix match (``invoi`` finds "invoice") and a phrase matches whole words in a row. The
  ``tsquery`` is built from those words only (no user text reaches ``to_tsquery``'s own
  syntax). A term with no letters or digits searches the subject. A query of free text
  only (words, phrases, AND/OR of them, negations next to a word) becomes one ``tsquery``
  (:func:`fulltext_query`), answered by the GIN index alone without looking at the text.
* from/to/cc/bcc/reply-to/addressed/subject: case-insensitive substring (``ILIKE``), with
  trigram indexes (``pg_trgm``) on subject and sender.
* header:Name=value: the ``header_field`` table (migration 0016: one row per header field,
  name and decoded value in lower case, the rows SQLite's index holds:
  ``sqlite_search.header_rows``), written by the indexer in the transaction that marks the
  message indexed; a substring ``LIKE`` on the values of that name, helped by a trigram
  index on the values. A message not indexed yet is checked against ``message.headers``,
  one ``name: decoded value`` line per header field written at ingest, with a regular
  expression anchored at a line start (the user's text escaped).

Errors: :class:`~postroom.store.base.InvalidQuery` (from :class:`postroom.search.SearchError`).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import tzinfo
from typing import Any

from ..search import And, Flag, Header, Node, Not, Or, Text
from .headers import split_headers
from .search_sql import Dialect, compile_term, decoded_value, header_fields, like_pattern, parse_query

__all__ = [
    "attachment_only",
    "compile_query",
    "fulltext_query",
    "header_ids",
    "header_lines",
    "tsquery",
    "words",
]

_WORDS = re.compile(r"[^\W_]+")
# Header block read at ingest for header: search (RFC 5322 sets no limit; the same bound as
# SQLite's scan, 256 KiB, covers long DKIM/ARC chains and Received: trails).
HEADER_SCAN_LIMIT = 256 * 1024

POSTGRES = Dialect(
    mark="%s",
    like="{col} ILIKE %s",  # backslash is ILIKE's default escape
    read="m.read",
    unread="NOT m.read",
    tag_name="lower(t.name) = lower(%s)",
    address_columns={
        "to": ("m.to_json",),
        "cc": ("m.cc_json",),
        "bcc": ("m.bcc_json",),
        "reply-to": ("m.reply_to_json",),
        # one expression, as the trigram index over sender is built
        "from": ("(m.from_name || ' ' || m.from_addr)",),
        "addressed": (
            "(m.from_name || ' ' || m.from_addr)",
            "m.to_json",
            "m.cc_json",
            "m.bcc_json",
            "m.reply_to_json",
        ),
        "subject": ("m.subject",),
    },
)


def words(text: str) -> list[str]:
    """The words of ``text`` as the index keeps them: lower case, without diacritics."""
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return _WORDS.findall(plain)


def tsquery(value: str, *, phrase: bool) -> str | None:
    """A ``to_tsquery('simple', ...)`` text for one search term, or None without words.

    Words in a row must follow each other (``<->``); the last is a prefix unless the term
    is a quoted phrase (as FTS5's ``"a b"*``).
    """
    ws = words(value)
    if not ws:
        return None
    parts = [f"'{w}'" for w in ws]
    if not phrase:
        parts[-1] += ":*"
    return " <-> ".join(parts)


def header_lines(raw: bytes) -> str:
    """``name: value`` per header field of ``raw`` (unfolded, decoded, lower case)."""
    block = split_headers(raw[:HEADER_SCAN_LIMIT])[0]
    lines = (f"{k.decode('latin-1').lower()}: {decoded_value(v)}" for k, v in header_fields(block))
    return "\n".join(lines).replace("\x00", "")


def compile_query(text: str, *, tz: str | tzinfo | None = None) -> tuple[str, list[Any]]:
    """Compile a query to ``(sql, params)`` over ``message m``; an empty query is ``true``.

    Raises:
        InvalidQuery: the query does not parse; the message names the problem.
    """
    node = parse_query(text, tz=tz)
    if node is None:
        return "true", []
    params: list[Any] = []
    return _node(node, params), params


def header_ids(text: str, *, tz: str | tzinfo | None = None) -> tuple[str, list[Any]] | None:
    """For a query that is one header: term, SQL of the ids of the messages it matches (a
    message may come twice) and its parameters; for any other query None.

    Raises:
        InvalidQuery: the query does not parse.
    """
    node = parse_query(text, tz=tz)
    if not isinstance(node, Header):
        return None
    params: list[Any] = []
    return _header_ids(node, params), params


def fulltext_query(text: str, *, tz: str | tzinfo | None = None) -> str | None:
    """For a query of free text only, one ``to_tsquery('simple', ...)`` text matching the
    same messages as :func:`compile_query`; for any other query None.

    Free text (with letters or digits) and AND/OR groups of it convert; a negation only
    inside an AND group with a positive term (as SQLite's FTS5 expression,
    ``sqlite_search.fts_expression``). A message the indexer has not read yet matches
    neither way (its text is not known).

    Raises:
        InvalidQuery: the query does not parse.
    """
    node = parse_query(text, tz=tz)
    return _text_query(node) if node is not None else None


def attachment_only(text: str, *, tz: str | tzinfo | None = None) -> bool:
    """Whether the query is ``has:attachment`` alone (its counts are kept: 0020_message_text.sql).

    Raises:
        InvalidQuery: the query does not parse.
    """
    return parse_query(text, tz=tz) == Flag("attachment")


def _text_query(node: Node) -> str | None:
    if isinstance(node, Text):
        return tsquery(node.value, phrase=node.phrase)
    if isinstance(node, And):
        positive: list[str] = []
        negative: list[str] = []
        for c in node.children:
            q = _text_query(c.child if isinstance(c, Not) else c)
            if q is None:
                return None
            (negative if isinstance(c, Not) else positive).append(q)
        if not positive:
            return None
        return " & ".join([f"({q})" for q in positive] + [f"!({q})" for q in negative])
    if isinstance(node, Or):
        subs = [_text_query(c) for c in node.children]
        if any(q is None for q in subs):
            return None
        return " | ".join(f"({q})" for q in subs)
    return None


def _regex_literal(value: str) -> str:
    # Every character that is not a letter or digit is escaped: it then stands for itself
    # in PostgreSQL's regular expressions (whose engine does not backtrack exponentially).
    return "".join(c if c.isalnum() else "\\" + c for c in value)


def _node(node: Node, params: list[Any]) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_node(c, params) for c in node.children) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_node(c, params) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"NOT coalesce({_node(node.child, params)}, false)"
    if isinstance(node, Text):
        q = tsquery(node.value, phrase=node.phrase)
        if q is None:
            params.append(like_pattern(node.value))
            return "m.subject ILIKE %s"
        params.append(q)
        return "m.id IN (SELECT t.id FROM message_text t WHERE t.tsv @@ to_tsquery('simple', %s))"
    if isinstance(node, Header):
        return f"m.id IN ({_header_ids(node, params)})"
    return compile_term(node, params, POSTGRES)


def _header_ids(node: Header, params: list[Any]) -> str:
    """SQL of the ids of the messages with header ``node``: from ``header_field``, and of the
    messages not indexed yet from their header lines."""
    name = node.name.lower()
    pattern = "(^|\n)" + _regex_literal(name) + ":"
    if node.value is None:
        params.append(name)
        indexed = "SELECT h.message FROM header_field h WHERE h.name = %s"
    else:
        pattern += "[^\n]*" + _regex_literal(node.value.lower())
        params.extend((name, like_pattern(node.value.lower())))
        indexed = "SELECT h.message FROM header_field h WHERE h.name = %s AND h.value LIKE %s"
    params.append(pattern)
    return f"{indexed} UNION ALL SELECT p.id FROM message p WHERE p.indexed = 0 AND p.headers ~ %s"
