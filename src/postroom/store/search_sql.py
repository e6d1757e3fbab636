"""The backend-neutral half of compiling postroom's search language to SQL.

Both backends answer the same language (:mod:`postroom.search`) over the same ``message``
columns. What is the same for both lives here: parsing (with
:class:`~postroom.store.base.InvalidQuery` for bad input), the substring pattern, the
terms that are plain column conditions (address and subject fields, message-id, thread,
tag, mailbox, flags, dates, sizes), and reading header fields out of a raw header block.
What differs is described by a :class:`Dialect` (placeholder, case-insensitive
``LIKE``, booleans); the free text and ``header:`` terms, which each backend indexes its
own way, stay in ``sqlite_search.py`` and ``postgres_search.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from .. import search
from ..search import DateBound, Field, Flag, Node, Size
from .base import InvalidQuery
from .header_scan import decoded_value, header_fields

__all__ = ["Dialect", "compile_term", "decoded_value", "header_fields", "like_pattern", "parse_query"]


@dataclass(frozen=True)
class Dialect:
    """How one backend writes the conditions :func:`compile_term` builds."""

    mark: str  # a bound parameter
    like: str  # case-insensitive substring test of ``{col}`` against a like_pattern parameter
    read: str  # the message is read
    unread: str
    tag_name: str  # ``t.name`` equals a tag parameter, ignoring case
    address_columns: dict[str, tuple[str, ...]]  # field name -> columns searched


def parse_query(text: str, *, tz: str | tzinfo | None = None) -> Node | None:
    """The parsed query; None when it is empty.

    Raises:
        InvalidQuery: the query does not parse; the message names the problem.
    """
    try:
        return search.parse(text, tz=tz)
    except search.SearchError as e:
        raise InvalidQuery(str(e)) from None


def like_pattern(value: str) -> str:
    """A ``LIKE`` pattern finding ``value`` anywhere (``\\`` escapes ``%``, ``_`` and itself)."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def compile_term(node: Node, params: list[Any], d: Dialect) -> str:
    """SQL for a term that is a plain condition on ``message m`` (a field, flag, date or
    size), appending its parameters to ``params``."""
    p = d.mark
    if isinstance(node, Field):
        return _field(node, params, d)
    if isinstance(node, Flag):
        return {
            "read": d.read,
            "unread": d.unread,
            "tagged": "EXISTS (SELECT 1 FROM message_tag mt WHERE mt.message = m.id)",
            "attachment": "m.attachments > 0",
            "inline": "m.inline_parts > 0",  # NULL (not counted yet) is no match
        }[node.name]
    if isinstance(node, DateBound):
        params.append(node.epoch)
        return f"m.created < {p}" if node.op == "before" else f"m.created >= {p}"
    if isinstance(node, Size):
        params.append(node.bytes)
        return f"m.size > {p}" if node.op == "larger" else f"m.size < {p}"
    raise AssertionError(f"unknown node {node!r}")  # pragma: no cover


def _field(node: Field, params: list[Any], d: Dialect) -> str:
    name, value, p = node.name, node.value, d.mark
    if name in d.address_columns:
        cols = d.address_columns[name]
        params.extend([like_pattern(value)] * len(cols))
        return "(" + " OR ".join(d.like.format(col=c) for c in cols) + ")"
    if name == "message-id":  # a substring, as in Mailpit (a client may leave off the domain)
        params.append(like_pattern(value))
        return d.like.format(col="m.message_id")
    if name == "thread":
        params.append(value)
        return f"m.thread_id = {p}"
    if name == "tag":
        params.append(value)
        return (
            "EXISTS (SELECT 1 FROM message_tag mt JOIN tag t ON t.id = mt.tag "
            f"WHERE mt.message = m.id AND {d.tag_name})"
        )
    if name == "mailbox":
        params.append(value.lower())
        return (
            "EXISTS (SELECT 1 FROM delivery d JOIN folder f ON f.id = d.folder_id "
            f"JOIN mailbox mb ON mb.id = f.mailbox_id WHERE d.message = m.id AND mb.name = {p})"
        )
    raise AssertionError(f"unknown field {name}")  # pragma: no cover
