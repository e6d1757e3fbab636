"""What the indexer stores for a message: full-text columns, snippet, attachment count, tags.

The store runs :func:`extract` off the ingest path (a background thread) for each newly
committed message, writes the FTS5 row (``subject, addresses, body, attachments``) and the
``snippet``/``attachments`` columns itself, then applies tagging rules
(:class:`TagRules`, from the ``[[tags]]`` sections of the config file).

Errors: :class:`RuleError` (a ``ValueError``) for a tagging rule that cannot be used.
:func:`extract` never raises on malformed mail.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..message import ParsedMessage, html_to_text, make_snippet, parse_message, raw_view, share_parse
from .base import InvalidQuery
from .rawcodec import unpack

__all__ = ["IndexData", "RuleError", "TagRules", "extract", "extract_raw", "extract_reference"]

# Text indexed per message (body + HTML text). Longer bodies are indexed up to this
# many characters: FTS5 rows are re-read on merge, and test mail rarely exceeds it.
MAX_BODY_CHARS = 1_000_000


class RuleError(ValueError):
    """A tagging rule that cannot be used; the message names the rule and the problem."""


@dataclass(frozen=True, slots=True)
class IndexData:
    snippet: str
    attachments: int
    subject: str
    addresses: str
    body: str  # text + text of the HTML
    attachment_names: str
    inline: int = 0  # inline parts (disposition inline, or a Content-ID and no disposition)


def extract(raw: bytes) -> IndexData:
    """Parse ``raw`` and return what the full-text index and summary row need.

    Uses the lean MIME splitter (~6x faster than ``email``'s parser); for a shape it does
    not handle, ``email``'s parser, with the same result.
    """
    return _index_data(parse_message(raw, payloads=False), _html_untidy)


def extract_shared(raw: bytes) -> IndexData:
    """:func:`extract`, keeping the parse for the reader of an in-process test server
    (:func:`postroom.message.share_parse`): its inline indexer's."""
    pm = parse_message(raw, payloads=False)
    share_parse(raw, pm)
    return _index_data(pm, _html_untidy)


def extract_raw(raw: bytes, reason: str) -> IndexData:
    """What the index gets for a message whose parse ran out of budget: its subject and
    addresses as written, and its raw body as the text (see :func:`~postroom.message.raw_view`)."""
    pm = raw_view(raw, reason)
    return IndexData(
        snippet=make_snippet(pm.text),
        attachments=0,
        subject=pm.subject,
        addresses="\n".join(v for k, v in pm.raw_headers if k.lower() in ("from", "to", "cc", "reply-to")),
        body=pm.text[:MAX_BODY_CHARS],
        attachment_names="",
    )


def count_inline(stored: bytes) -> int:
    """How many inline parts a stored message (as ``rawcodec`` stores it) has, as
    :attr:`IndexData.inline`; 0 when it does not parse. For the background pass that counts
    them in mail indexed before the count existed."""
    try:
        return len(parse_message(unpack(stored), payloads=False).inline)
    except Exception:
        return 0


def extract_reference(raw: bytes) -> IndexData:
    """:func:`extract` through ``email``'s MIME parser only (the reference of the tests)."""
    return _index_data(parse_message(raw, fast=False), _html_untidy)


def _html_untidy(html: str) -> str:
    return html_to_text(html, tidy=False)  # whitespace does not count in the index


def _index_data(pm: ParsedMessage, to_text: Callable[[str], str]) -> IndexData:
    people: list[str] = []
    for name, addr in [*([pm.from_] if pm.from_ else []), *pm.to, *pm.cc, *pm.bcc, *pm.reply_to]:
        people.append(f"{name} {addr}".strip())
    if pm.text_from_html:  # no text part: the text is the HTML's
        html_text = body = pm.text
    else:
        # Both alternatives are indexed (an HTML part often says more than its text part).
        html_text = to_text(pm.html)
        body = f"{pm.text}\n{html_text}" if pm.text and html_text else pm.text or html_text
    names = [p.filename for p in (*pm.attachments, *pm.inline) if p.filename]
    return IndexData(
        snippet=make_snippet(pm.text or html_text),
        attachments=len(pm.attachments),
        subject=pm.subject,
        addresses="\n".join(people),
        body=body[:MAX_BODY_CHARS],
        attachment_names="\n".join(names),
        inline=len(pm.inline),
    )


@dataclass(frozen=True, slots=True)
class _Rule:
    query: str
    tags: tuple[str, ...]
    sql: str
    params: tuple[Any, ...]


class TagRules:
    """Tagging rules: each is a search query and the tags a matching message gets.

    Config file (TOML)::

        [[tags]]
        query = "from:billing@ subject:invoice"
        tags = ["billing", "invoices"]     # or "billing, invoices"
    """

    def __init__(self, rules: Iterable[dict[str, Any]] | None) -> None:
        from .sqlite_search import compile_query

        self.rules: list[_Rule] = []
        for n, rule in enumerate(rules or (), 1):
            if not isinstance(rule, dict):
                raise RuleError(f"tagging rule {n}: expected a table with query and tags")
            query = rule.get("query", rule.get("match"))
            tags = rule.get("tags")
            if not isinstance(query, str) or not query.strip():
                raise RuleError(f"tagging rule {n}: 'query' must be a non-empty search")
            if isinstance(tags, str):
                tags = [t.strip() for t in tags.split(",")]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise RuleError(f"tagging rule {n}: 'tags' must be a list of names")
            clean = tuple(t.strip() for t in tags if t.strip())
            if not clean:
                raise RuleError(f"tagging rule {n}: no tags given")
            try:
                sql, params = compile_query(query)
            except InvalidQuery as e:
                raise RuleError(f"tagging rule {n} ({query!r}): {e}") from None
            self.rules.append(_Rule(query, clean, sql, tuple(params)))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def tags_for(self, conn: sqlite3.Connection, message_rowid: int) -> list[str]:
        """Tags of every rule that matches the message (after its FTS row is written).

        ``conn`` must have :func:`~postroom.store.sqlite_search.register_functions` applied.
        """
        out: list[str] = []
        for r in self.rules:
            row = conn.execute(
                f"SELECT 1 FROM message m WHERE m.id = ? AND ({r.sql})", (message_rowid, *r.params)
            ).fetchone()
            if row is not None:
                out.extend(t for t in r.tags if t not in out)
        return out
