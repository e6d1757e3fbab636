"""Gmail's IMAP extension (X-GM-EXT-1) in ``postroom fetch``: what it reads and keeps.

When the server lists ``X-GM-EXT-1`` (Gmail, and postroom's own IMAP server), every
message is fetched with ``X-GM-MSGID X-GM-THRID X-GM-LABELS`` (docs/fetch.md):

* **Labels** become postroom tags (stored locally with ``STORE X-GM-LABELS``, which
  postroom's IMAP server maps to tags). Gmail's system labels are not tags: ``\\Inbox``,
  ``\\Sent``, ``\\Draft``, ``\\Trash``, ``\\Spam`` and ``\\All`` are said by the folder the
  message is copied from, ``\\Starred`` by the ``\\Flagged`` flag (Gmail sets both; a
  ``\\Starred`` without ``\\Flagged`` still gives ``\\Flagged``), and ``\\Important`` becomes
  the tag ``Important``. Any other system label is dropped.
* **X-GM-MSGID**: Gmail shows one message in several folders (INBOX, ``[Gmail]/All Mail``,
  a folder per label). postroom keeps one stored message with a delivery per folder (as a
  ``COPY`` makes), so a message already copied from another folder of the account is
  ``COPY``-ed locally from there instead of stored again.
* **X-GM-THRID** makes conversations: each message is APPENDed with postroom's
  ``X-POSTROOM-THREAD`` key (:func:`thread_key`), so messages of one Gmail thread are one
  postroom conversation (``ThreadID``, X-GM-THRID on postroom's IMAP) even when their
  headers do not link them.

Pure: parsing and mapping only, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..protocols.imap import utf7
from ..protocols.imap.labels import format_labels

__all__ = [
    "CAPABILITY",
    "ITEMS",
    "GmMeta",
    "flags_from",
    "label_arg",
    "labels_by_uid",
    "parse_meta",
    "tags_from",
    "thread_key",
]

CAPABILITY = "X-GM-EXT-1"
ITEMS = "X-GM-MSGID X-GM-THRID X-GM-LABELS"
# Gmail's system labels that become a tag (the rest are folders or flags)
_SYSTEM_TAGS = {"\\important": "Important"}
_STARRED = "\\starred"

_MSGID = re.compile(rb"X-GM-MSGID (\d+)")
_THRID = re.compile(rb"X-GM-THRID (\d+)")
_UID = re.compile(rb"UID (\d+)")
_LABELS = re.compile(rb"X-GM-LABELS \(")
_TOKEN = re.compile(rb'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s()"]+)|(\)))')


@dataclass(frozen=True, slots=True)
class GmMeta:
    """What Gmail says about one message."""

    msgid: int
    thrid: int
    labels: tuple[str, ...]


def _label(raw: bytes, quoted: bool) -> str:
    if quoted:
        raw = re.sub(rb"\\(.)", rb"\1", raw)
    text = raw.decode("utf-8", "replace")
    if "&" not in text:
        return text
    try:
        return utf7.decode(text)
    except utf7.Utf7Error:
        return text


def _labels(meta: bytes) -> tuple[str, ...] | None:
    m = _LABELS.search(meta)
    if m is None:
        return None
    out: list[str] = []
    i = m.end()
    while True:
        t = _TOKEN.match(meta, i)
        if t is None or t.group(3):  # end of the list (or something we cannot read)
            return tuple(out)
        i = t.end()
        if t.group(1) is not None:
            out.append(_label(t.group(1), True))
        elif t.group(2).upper() != b"NIL":
            out.append(_label(t.group(2), False))


def parse_meta(meta: bytes) -> GmMeta | None:
    """The X-GM items of one FETCH response's data (before any literal); None without them."""
    msgid, thrid = _MSGID.search(meta), _THRID.search(meta)
    if msgid is None or thrid is None:
        return None
    return GmMeta(int(msgid.group(1)), int(thrid.group(1)), _labels(meta) or ())


def labels_by_uid(lines: Iterable[object]) -> dict[int, tuple[str, ...]]:
    """UID -> X-GM-LABELS of the lines of a ``UID FETCH ... (UID FLAGS X-GM-LABELS)``."""
    out: dict[int, tuple[str, ...]] = {}
    for line in lines:
        raw = line[0] if isinstance(line, tuple) else line
        if not isinstance(raw, bytes):
            continue
        uid, labels = _UID.search(raw), _labels(raw)
        if uid and labels is not None:
            out[int(uid.group(1))] = labels
    return out


def tags_from(labels: Iterable[str]) -> list[str]:
    """The postroom tags of Gmail labels (sorted, each once whatever its case)."""
    out: dict[str, str] = {}
    for label in labels:
        tag = _SYSTEM_TAGS.get(label.lower(), "") if label.startswith("\\") else label.strip()
        if tag and not any(ord(c) < 0x20 or c == "\x7f" for c in tag):  # (no tag can hold those)
            out.setdefault(tag.casefold(), tag)
    return sorted(out.values())


def flags_from(labels: Iterable[str]) -> set[str]:
    """Flags the labels imply: ``\\Starred`` is ``\\Flagged``."""
    return {"\\Flagged"} if any(label.lower() == _STARRED for label in labels) else set()


def thread_key(host: str, user: str, thrid: int) -> str:
    """The conversation key of Gmail thread ``thrid`` of one account (a thread id is the
    account's own, so two accounts' equal ids stay apart)."""
    return f"gmail {host.lower()} {user.lower()} {thrid}"


def label_arg(tags: list[str]) -> str:
    """The argument of a local ``STORE X-GM-LABELS`` setting exactly ``tags``."""
    return format_labels(tags).decode("ascii")
