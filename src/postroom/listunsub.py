"""Checking a ``List-Unsubscribe`` header (RFC 2369, with RFC 8058's one-click rules) the way
Mailpit reports it: the usable links, and the problems as one comma-separated text.

The rules: comments ``(...)`` are dropped; the value must be ``<link>`` items and nothing
else, at most two (one ``mailto:`` and one HTTP(S) link), separated by a comma and optional
spaces; a link has no spaces, starts with ``mailto:`` or ``http(s)://`` and parses as a
URI. A problem with the whole value ends the check (no links); a problem with one link
leaves the others usable. Problems quote the text they are about, as Mailpit's do.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["check_list_unsubscribe"]

_COMMENT = re.compile(r"\([^()]*\)")
_ITEM = re.compile(r"<([^<>]*)>")
_MAILTO = re.compile(r"^mailto:[A-Za-z0-9]")
_HTTP = re.compile(r"^https?://[A-Za-z0-9]", re.IGNORECASE)


def check_list_unsubscribe(header: str) -> tuple[list[str], str]:
    """``(links, errors)`` of a header value; ``errors`` is "" when it is well-formed."""
    value = _COMMENT.sub("", header).strip()
    items = _ITEM.findall(value)
    if not items:
        return [], f'"{value}" no valid unsubscribe links found'
    if not (value.startswith("<") and value.endswith(">")):
        return [], f'"{value}" should be enclosed in <>'
    if len(items) > 2:
        return [], f'"{value}" should include a maximum of one email and one HTTP link'
    between = _ITEM.split(value)[2:-1:2]  # the text between two items
    if any(part.strip() != "," for part in between):
        return [], f'"{value}" <> should be split with a comma and optional spaces'
    links: list[str] = []
    problems: list[str] = []
    kinds: set[str] = set()
    for link in items:
        if any(c.isspace() for c in link):
            problems.append(f'"{link}" should not contain spaces')
            continue
        kind = "mailto" if _MAILTO.match(link) else "http" if _HTTP.match(link) else ""
        if not kind:
            problems.append(f'"{link}" should start with either http(s):// or mailto:')
            continue
        if kind in kinds:
            problems.append(
                f'"{link}" should only contain one {"mailto:" if kind == "mailto" else "HTTP link"}'
            )
            continue
        kinds.add(kind)
        try:
            urlsplit(link)
        except ValueError as e:
            problems.append(f'"{link}" {e}')
            continue
        links.append(link)
    return links, ", ".join(problems)
