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
* header:Name=value: the ``header_field`` index (one row per header field, name and
  decoded value in lower case, clustered by name: :func:`header_rows`, written by the
  indexer), a substring match on the values of that one name. A message whose rows are not
  written yet (``message.hdr = 0``: not indexed yet, or stored before the index existed and
  not reached by the background pass) is checked by reading its header block through the
  SQL function ``postroom_header`` (see :func:`register_functions`), which decompresses only
  the start of the message. header: terms go after the cheaper terms of an AND group.

Errors: :class:`~postroom.store.base.InvalidQuery` (from :class:`postroom.search.SearchError`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import tzinfo
from typing import Any

from ..search import And, Header, Node, Not, Or, Text
from .header_scan import header_matches, header_rows, register_functions
from .search_sql import Dialect, compile_term, like_pattern, parse_query

__all__ = [
    "compile_node",
    "compile_query",
    "fts_expression",
    "fts_quote",
    "fulltext_listing",
    "has_header_term",
    "header_listing",
    "header_matches",
    "header_rows",
    "register_functions",
]

_WORD = re.compile(r"\w")

SQLITE = Dialect(
    mark="?",
    like="{col} LIKE ? ESCAPE '\\'",  # LIKE ignores ASCII case in SQLite
    read="m.read = 1",
    unread="m.read = 0",
    tag_name="t.name = ?",  # tag.name is COLLATE NOCASE
    address_columns={
        "to": ("m.to_json",),
        "cc": ("m.cc_json",),
        "bcc": ("m.bcc_json",),
        "reply-to": ("m.reply_to_json",),
        "from": ("m.from_addr", "m.from_name"),
        "addressed": (
            "m.from_addr",
            "m.from_name",
            "m.to_json",
            "m.cc_json",
            "m.bcc_json",
            "m.reply_to_json",
        ),
        "subject": ("m.subject",),
    },
)


def compile_query(text: str, *, tz: str | tzinfo | None = None) -> tuple[str, list[Any]]:
    """Compile a query to ``(sql, params)``; an empty query compiles to ``1``.

    Raises:
        InvalidQuery: the query does not parse; the message names the problem.
    """
    node = parse_query(text, tz=tz)
    if node is None:
        return "1", []
    params: list[Any] = []
    return compile_node(node, params), params


def has_header_term(text: str) -> bool:
    """Whether the query has a header: term anywhere (negated or in an OR too). Its condition
    (``m.id IN (...)``, :func:`compile_node`) reads every ``header_field`` row of that name
    once per statement that uses it, however few rows the statement returns."""
    stack = [parse_query(text)]
    while stack:
        node = stack.pop()
        if isinstance(node, Header):
            return True
        if isinstance(node, Not):
            stack.append(node.child)
        elif isinstance(node, And | Or):
            stack.extend(node.children)
    return False


def fts_quote(term: str, *, prefix: bool) -> str:
    """Quote user text as one FTS5 string (a phrase of its tokens), optionally a prefix."""
    return '"' + term.replace('"', '""') + '"' + ("*" if prefix else "")


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
    if isinstance(node, Header):
        name = node.name.lower()
        if node.value is None:
            params.append(name)
            indexed = "SELECT message FROM header_field WHERE name = ?"
        else:
            params.extend((name, node.value.lower()))
            indexed = "SELECT message FROM header_field WHERE name = ? AND instr(value, ?) > 0"
        params.extend((node.name, node.value))
        return (
            f"m.id IN ({indexed} UNION ALL SELECT p.id FROM message p WHERE p.hdr = 0 AND "
            "postroom_header((SELECT r.data FROM raw r WHERE r.id = p.id), ?, ?))"
        )
    return compile_term(node, params, SQLITE)


def _compile_group(children: tuple[Node, ...], params: list[Any], joiner: str) -> str:
    # The free text of one group shares a single FTS5 MATCH (in an AND group, negated
    # free text too: "a NOT b"); header: terms go last.
    if joiner == " AND ":
        expr, others = _split_fulltext(children)
        if expr is not None:
            params.append(expr)
            others.sort(key=lambda c: isinstance(c, Header))
            parts = ["m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"]
            parts.extend(compile_node(c, params) for c in others)
            return "(" + joiner.join(parts) + ")"
    texts = [c for c in children if isinstance(c, Text) and _WORD.search(c.value)]
    others = [c for c in children if not (isinstance(c, Text) and _WORD.search(c.value))]
    others.sort(key=lambda c: isinstance(c, Header))
    parts = []
    if texts:
        parts.append(_text(texts, params, joiner))
    parts.extend(compile_node(c, params) for c in others)
    return "(" + joiner.join(parts) + ")"


def fts_expression(node: Node) -> str | None:
    """``node`` as one FTS5 query expression, or None when it needs more than the index.

    Free text (with letters or digits), and AND/OR groups of it, convert; a negation only
    next to positive free text in an AND group (FTS5's binary ``a NOT b``).
    """
    if isinstance(node, Text):
        return fts_quote(node.value, prefix=not node.phrase) if _WORD.search(node.value) else None
    if isinstance(node, And):
        expr, others = _split_fulltext(node.children)
        return expr if not others else None
    if isinstance(node, Or):
        subs = [fts_expression(c) for c in node.children]
        if any(x is None for x in subs):
            return None
        return "(" + " OR ".join(x for x in subs if x is not None) + ")"
    return None


def _split_fulltext(children: tuple[Node, ...]) -> tuple[str | None, list[Node]]:
    """Of the children of an AND: (their free text as one FTS5 expression, the others)."""
    positive: list[str] = []
    negative: list[tuple[Node, str]] = []
    others: list[Node] = []
    for c in children:
        if isinstance(c, Not) and (expr := fts_expression(c.child)) is not None:
            negative.append((c, expr))
        elif (expr := fts_expression(c)) is not None:
            positive.append(expr)
        else:
            others.append(c)
    if not positive:  # FTS5 has no "NOT a" on its own
        return None, list(children)
    expr = "(" + " AND ".join(positive) + ")" + "".join(f" NOT {n}" for _, n in negative)
    return expr, others


def _text(texts: list[Text], params: list[Any], joiner: str) -> str:
    if len(texts) == 1 and not _WORD.search(texts[0].value):
        params.append(like_pattern(texts[0].value))
        return "m.subject LIKE ? ESCAPE '\\'"
    params.append(joiner.join(fts_quote(t.value, prefix=not t.phrase) for t in texts))
    return "m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"


# -- listings with free text -------------------------------------------------------------

# Counting the matches of free text when the index's own count is not exact (deleted
# messages left rows between the first and last id): above this many, merge two ascending
# id streams (FTS5 rowids and message ids: SQLite's MERGE INTERSECT) instead of looking
# each match up in the message table (~0.05 us instead of ~0.3 us a match: 85,000
# matches at 100,000 messages, 26 ms -> 4-13 ms); below it one join gives both counts.
JOIN_LIMIT = 20_000


def fulltext_listing(
    conn: sqlite3.Connection,
    query: str,
    *,
    columns: str,
    start: int,
    limit: int,
    within: tuple[str, list[Any]] | None = None,
    store_counts: tuple[int, int] | None = None,
    tz: str | tzinfo | None = None,
) -> tuple[int, int, list[Any]] | None:
    """One page of a listing whose query needs free text: (matches, unread matches, rows).

    For queries of free text only (words, phrases, AND/OR/NOT of them), else None (the
    caller then uses :func:`compile_query`). ``columns`` is what a row holds (over
    ``message m``); ``within`` an SQL query of the message ids the listing is limited to
    (a mailbox's), with its parameters;
    ``store_counts`` the store's (messages, unread) when the caller has them. The page is
    read from the full-text index newest first (no list of every match is built) and
    joined to ``message``, where the rows the contentless index keeps for deleted
    messages drop out. Counts: see :data:`JOIN_LIMIT`; with free text alone and
    contiguous message ids (no deletion except of the oldest, as retention does), the
    index's own count over [first id, last id] is exact.

    Raises:
        InvalidQuery: the query does not parse.
    """
    node = parse_query(query, tz=tz)
    if node is None:
        return None
    if isinstance(node, And):
        expr, others = _split_fulltext(node.children)
    else:
        expr, others = fts_expression(node), []
    if expr is None or others:
        # Other terms are checked per message; when they leave few of many text matches, a
        # newest-first walk of the index reads them all for one page (compile_query's plan
        # does better there).
        return None
    cond, params = (f"m.id IN ({within[0]})", within[1]) if within is not None else ("", [])
    extra = f" AND {cond}" if cond else ""
    rows = conn.execute(
        f"SELECT {columns} FROM fts CROSS JOIN message m ON m.id = fts.rowid WHERE fts MATCH ?{extra} "
        "ORDER BY fts.rowid DESC LIMIT ? OFFSET ?",
        [expr, *params, limit, start],
    ).fetchall()
    # Three quick lookups (count(*) alone is answered from the b-tree's page counts).
    live = conn.execute("SELECT count(*) FROM message").fetchone()[0]
    low, high = conn.execute("SELECT (SELECT min(id) FROM message), (SELECT max(id) FROM message)").fetchone()
    if not live:
        return 0, 0, rows
    if within is not None:  # merge with the mailbox's ids
        count = _merge_count(conn, expr, within[0], within[1])
    else:
        # Index rows of deleted messages lie outside [low, high] when ids are contiguous.
        n = conn.execute(
            "SELECT count(*) FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ?", (expr, low, high)
        ).fetchone()[0]
        if live == high - low + 1:
            count = n
        elif n <= JOIN_LIMIT:  # one pass for both counts
            count, unread = conn.execute(
                "SELECT count(*), coalesce(sum(m.read = 0), 0) FROM fts CROSS JOIN message m "
                "ON m.id = fts.rowid WHERE fts MATCH ?",
                [expr],
            ).fetchone()
            return int(count), int(unread), rows
        else:
            count = _merge_count(conn, expr, "SELECT id FROM message", [])
    if store_counts is None or store_counts[0] != live:
        store_counts = live, conn.execute("SELECT count(*) FROM message WHERE read = 0").fetchone()[0]
    if store_counts[1] == store_counts[0]:  # nothing read: every match is unread
        return count, count, rows
    unread = _merge_count(
        conn, expr, f"SELECT m.id FROM message m WHERE {cond + ' AND ' if cond else ''}m.read = 0", params
    )
    return count, unread, rows


def _merge_count(conn: sqlite3.Connection, expr: str, ids: str, params: list[Any]) -> int:
    """How many ids of the query ``ids`` match ``expr`` in the index, merging sorted ids."""
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT rowid FROM fts WHERE fts MATCH ? INTERSECT {ids} ORDER BY 1)",
        [expr, *params],
    ).fetchone()
    return int(row[0])


def header_listing(
    conn: sqlite3.Connection,
    query: str,
    *,
    columns: str,
    start: int,
    limit: int,
    within: tuple[str, list[Any]] | None = None,
    store_counts: tuple[int, int] | None = None,
    tz: str | tzinfo | None = None,
) -> tuple[int, int, list[Any]] | None:
    """One page of a listing whose query is one header: term: (matches, unread matches, rows);
    for any other query None (the caller then uses :func:`compile_query`).

    The matching ids come from ``header_field`` alone, whose rows exist only for stored
    messages (written by the indexer for messages still there, deleted with them), plus the
    messages whose rows are not written yet (``hdr = 0``, read through ``postroom_header``).
    The message table is then read only for the page and, when some messages are read and
    some not, for the unread count through the small ``message_unread`` index: a lookup of
    every match in the message table (~2 us each once the table outgrows the page cache:
    14,286 matches at 100,000 messages, most of a 52 ms request) is not made. ``within`` is
    an SQL query of the message ids the listing is limited to (a mailbox's), with its
    parameters; ``store_counts`` the store's (messages, unread) when the caller has them.

    Raises:
        InvalidQuery: the query does not parse.
    """
    node = parse_query(query, tz=tz)
    if not isinstance(node, Header):
        return None
    cond, params = "name = ?", [node.name.lower()]
    if node.value is not None:
        cond += " AND instr(value, ?) > 0"
        params.append(node.value.lower())
    fields, pending, inside = "", "", []
    if within is not None:
        fields, pending, inside = f" AND message IN ({within[0]})", f" AND p.id IN ({within[0]})", within[1]
    found = conn.execute(
        f"SELECT message FROM header_field WHERE {cond}{fields} UNION ALL SELECT p.id FROM message p "
        f"WHERE p.hdr = 0{pending} AND postroom_header((SELECT r.data FROM raw r WHERE r.id = p.id), ?, ?)",
        [*params, *inside, *inside, node.name, node.value],
    )
    ids = sorted({r[0] for r in found}, reverse=True)  # a message may have the header twice
    page = ids[start : start + limit]
    rows = (
        conn.execute(
            f"SELECT {columns} FROM message m WHERE m.id IN ({','.join('?' * len(page))}) ORDER BY m.id DESC",
            page,
        ).fetchall()
        if page
        else []
    )
    if not ids:
        return 0, 0, rows
    if store_counts is None:
        store_counts = (
            conn.execute("SELECT count(*) FROM message").fetchone()[0],
            conn.execute("SELECT count(*) FROM message WHERE read = 0").fetchone()[0],
        )
    live, unread = store_counts
    if unread == 0 or unread == live:  # nothing unread, or nothing read
        return len(ids), len(ids) if unread else 0, rows
    row = conn.execute(
        "SELECT count(*) FROM message m WHERE m.read = 0 AND m.id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),),
    ).fetchone()
    return len(ids), int(row[0]), rows
