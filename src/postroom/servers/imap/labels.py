"""Gmail's X-GM-LABELS on postroom's IMAP server: a message's labels are its tags.

postroom has tags (the API's ``Tags``, the UI's labels, ``tag:`` in search) where Gmail has
labels, so X-GM-LABELS reads and changes them (docs/imap.md):

* FETCH ``X-GM-LABELS``: the message's tags, sorted; ``()`` for none. Tags belong to the
  message, so every folder holding it shows the same labels (as Gmail's do).
* STORE ``X-GM-LABELS`` / ``+X-GM-LABELS`` / ``-X-GM-LABELS`` (``.SILENT``): set, add or
  remove tags; labels compare case-insensitively, as Gmail's do.
* SEARCH ``X-GM-LABELS label``: messages of the folder with that tag.

Gmail's system labels (``\\Inbox``, ``\\Starred``, ``\\Important``, ...) are not tags: the
folder says the first kind, flags say ``\\Starred`` (``\\Flagged``). STORE refuses them
(``BAD``) rather than keeping a tag that means something else here.

Blocking (reads and writes the store): call :func:`change_labels` from a worker thread.
"""

from __future__ import annotations

from typing import Literal

from ...protocols.imap.errors import ParseError
from ...store.base import ImapStore

__all__ = ["LABEL_MODES", "LabelMode", "change_labels", "check_labels"]

LabelMode = Literal["set", "add", "remove"]
LABEL_MODES: dict[str, LabelMode] = {"X-GM-LABELS": "set", "+X-GM-LABELS": "add", "-X-GM-LABELS": "remove"}


def check_labels(labels: list[str]) -> None:
    """Refuse what cannot be a tag.

    Raises:
        ParseError: a Gmail system label, or a label with a control character or with
            white space at either end (a tag is stored stripped).
    """
    for label in labels:
        if label.startswith("\\"):
            raise ParseError(
                f"system label {label[:40]} is not kept as a tag (folders and flags say it: \\Starred is \\Flagged)"
            )
        if label != label.strip() or any(ord(c) < 0x20 or c == "\x7f" for c in label):
            raise ParseError("a label cannot have control characters or white space at either end")


def change_labels(
    store: ImapStore, ids: list[str], labels: list[str], mode: LabelMode
) -> dict[str, list[str]]:
    """Set, add or remove ``labels`` on the messages ``ids``; returns the labels each
    existing message has afterwards (sorted), as the store spells them (a tag that exists
    keeps its spelling: ``+X-GM-LABELS (WORK)`` adds the tag ``work``). Messages whose labels
    end up the same are written in one call; a message whose labels do not change is not
    written."""
    wanted = {label.casefold() for label in labels}
    out: dict[str, list[str]] = {}
    writes: dict[tuple[str, ...], list[str]] = {}
    for pid, have in store.message_tags(ids).items():
        if mode == "set":
            new = list(labels)
        elif mode == "add":
            held = {t.casefold() for t in have}
            new = have + [label for label in labels if label.casefold() not in held]
        else:
            new = [t for t in have if t.casefold() not in wanted]
        new = sorted(new)
        out[pid] = new
        if new != have:
            writes.setdefault(tuple(new), []).append(pid)
    for tags, pids in writes.items():
        store.set_tags(pids, list(tags))
    return store.message_tags(ids) if writes else out
