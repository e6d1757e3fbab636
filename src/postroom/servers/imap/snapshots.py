"""Listings of recently selected folders, shared by every session (SELECT without a
store read per message).

A SELECT needs each message's UID, flags and MODSEQ. Reading and converting them costs
time in proportion to the folder (tens of milliseconds at 10,000 messages), so the last
listing of a folder is kept as a :class:`Snapshot` and a SELECT copies its tables (a
dict copy is a memory copy, a few milliseconds at 100,000 entries) instead of reading
the store again.

A snapshot is valid for the folder state it was read in: UIDVALIDITY, UIDNEXT, the
message count and the folder's highest MODSEQ (every flag change raises it; an APPEND
raises UIDNEXT; an EXPUNGE lowers the count). SELECT reads those four from the store
anyway and reuses the snapshot only if all four match, so a change whose event has not
reached this process yet cannot hide behind a snapshot. Change events drop the
folder's snapshot early, to free the memory. At most :data:`MAX_FOLDERS` are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ...events import Event, FolderChanged
from ...store.base import Entry, FolderInfo, ImapStore

__all__ = ["MAX_FOLDERS", "Snapshot", "Snapshots"]

# Folders whose listing is kept (our choice: a 100,000-message listing takes ~25 MB).
MAX_FOLDERS = 4

Key = tuple[int, int, int, int]  # UIDVALIDITY, UIDNEXT, message count, highest MODSEQ


def state_key(info: FolderInfo) -> Key:
    return (info.uidvalidity, info.uidnext, info.exists, info.highestmodseq)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A folder's listing in the tables a session's tracker keeps (treat as read-only:
    sessions copy them)."""

    key: Key
    uids: list[int]  # ascending
    entries: dict[int, Entry]
    flags: dict[int, frozenset[str]]
    modseq: dict[int, int]
    keywords: frozenset[str]  # every keyword (non-system flag) in use
    first_unseen: int  # sequence number of the first message without \Seen, or 0
    highest_modseq: int  # the highest MODSEQ of a message (0 for an empty folder)

    @classmethod
    def build(cls, key: Key, listing: list[Entry]) -> Snapshot:
        uids = [e.uid for e in listing]
        first_unseen = next((i for i, e in enumerate(listing, 1) if "\\Seen" not in e.flags), 0)
        distinct = {e.flags for e in listing}  # few distinct flag sets
        keywords = frozenset(f for fl in distinct for f in fl if not f.startswith("\\"))
        return cls(
            key,
            uids,
            dict(zip(uids, listing, strict=True)),
            {e.uid: e.flags for e in listing},
            {e.uid: e.modseq for e in listing},
            keywords,
            first_unseen,
            max((e.modseq for e in listing), default=0),
        )


class Snapshots:
    """The shared snapshots of one store (thread-safe; :meth:`get` may block)."""

    def __init__(self, store: ImapStore, max_folders: int = MAX_FOLDERS) -> None:
        self.store = store
        self.max_folders = max_folders
        self._kept: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, info: FolderInfo) -> Snapshot | None:
        """The kept snapshot matching ``info``, or None (no I/O: safe on the event loop)."""
        with self._lock:
            snap = self._kept.get((info.mailbox, info.name))
            if snap is None or snap.key != state_key(info):
                return None
            self._kept.move_to_end((info.mailbox, info.name))
            return snap

    def get(self, info: FolderInfo) -> Snapshot:
        """The listing of ``info``'s folder in the state ``info`` describes (or newer):
        the kept one if it matches, else read from the store (and kept)."""
        where = (info.mailbox, info.name)
        key = state_key(info)
        with self._lock:
            snap = self._kept.get(where)
            if snap is not None and snap.key == key:
                self._kept.move_to_end(where)
                return snap
        snap = Snapshot.build(key, self.store.folder_entries(info.mailbox, info.name))
        with self._lock:
            self._kept[where] = snap
            self._kept.move_to_end(where)
            while len(self._kept) > self.max_folders:
                self._kept.popitem(last=False)
        return snap

    def on_event(self, event: Event) -> None:
        """Bus subscriber: a changed folder's snapshot is stale, drop it now."""
        if isinstance(event, FolderChanged):
            with self._lock:
                self._kept.pop((event.mailbox, event.folder), None)
