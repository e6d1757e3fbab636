"""Mailpit's automatic tagging configuration, read as postroom tagging rules.

Mailpit tags new messages that match a search filter, configured two ways:

* ``--tag`` / ``MP_TAG``: space-separated ``TAGS=FILTER`` words, where TAGS is a
  comma-separated list and FILTER a search; double quotes group words with spaces
  (``--tag 'urgent,alert=subject:urgent "billing=from:billing@example.com is:unread"'``).
* ``--tags-config`` / ``MP_TAGS_CONFIG``: a YAML file with a ``filters`` list of
  ``{match: FILTER, tags: "TAG1,TAG2"}``.

Both become the rules of the config file's ``[[tags]]`` sections (``{"query", "tags"}``,
see :class:`postroom.store.indexer.TagRules`), applied when a message is indexed. The
filters are postroom's search language, which reads Mailpit's.

Errors: ``ValueError`` naming the word or the file entry that cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["rules", "rules_from_arg", "rules_from_yaml", "split_words"]


def split_words(text: str) -> list[str]:
    """Words separated by spaces; a double-quoted stretch keeps its spaces (quotes dropped)."""
    words: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch.isspace() and not quoted:
            if word := "".join(current).strip():
                words.append(word)
            current = []
        else:
            current.append(ch)
    if word := "".join(current).strip():
        words.append(word)
    return words


def _tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def rules_from_arg(text: str) -> list[dict[str, Any]]:
    """The rules of a ``--tag`` value (``TAGS=FILTER`` words)."""
    out: list[dict[str, Any]] = []
    for word in split_words(text):
        tags, sep, match = word.partition("=")
        if not sep or not match.strip() or not _tags(tags):
            raise ValueError(f"--tag: {word!r} is not TAGS=FILTER (e.g. urgent=subject:urgent)")
        out.append({"query": match.strip(), "tags": _tags(tags)})
    return out


def rules_from_yaml(path: str) -> list[dict[str, Any]]:
    """The rules of a ``--tags-config`` file."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"--tags-config: cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"--tags-config {path}: not YAML: {e}") from None
    filters = data.get("filters") if isinstance(data, dict) else None
    if not isinstance(filters, list):
        raise ValueError(f"--tags-config {path}: expected a 'filters' list of {{match, tags}}")
    out: list[dict[str, Any]] = []
    for n, entry in enumerate(filters, 1):
        match = entry.get("match") if isinstance(entry, dict) else None
        tags = entry.get("tags") if isinstance(entry, dict) else None
        if not isinstance(match, str) or not match.strip() or not isinstance(tags, str) or not _tags(tags):
            raise ValueError(
                f"--tags-config {path}: filter {n} needs 'match' (a search) and 'tags' (comma-separated)"
            )
        out.append({"query": match.strip(), "tags": _tags(tags)})
    return out


def rules(tag_arg: str, tags_config: str) -> list[dict[str, Any]]:
    """The rules of both settings, ``--tags-config``'s first (as Mailpit loads them)."""
    return (rules_from_yaml(tags_config) if tags_config else []) + (
        rules_from_arg(tag_arg) if tag_arg else []
    )
