"""The protocol methods a backend serves from its parts, written once for every backend.

A backend (``sqlite.py``, ``postgres.py``) is built from parts that each receive what they
share explicitly: a reader, the changes to messages and the IMAP/POP3 view of folders.
:class:`Composed` takes those three at construction and hands each protocol method of
:class:`~postroom.store.base.Store` that belongs to one of them to it; the backend itself
adds ingest, lifecycle and what differs (the IMAP cache, deleting a mailbox, indexing
progress). The part protocols say what each part serves.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from .base import (
    Entry,
    Envelope,
    FlagMode,
    FolderInfo,
    MailboxInfo,
    MessagePage,
    StoreStats,
    Summary,
    ThreadPage,
)

__all__ = ["ChangePart", "Composed", "FolderPart", "ReadPart"]


class ReadPart(Protocol):
    """Listings, single messages, counts and conversations."""

    def list_messages(
        self, *, mailbox: str | None = None, query: str | None = None, start: int = 0, limit: int = 50
    ) -> MessagePage: ...
    def get_summary(self, id: str) -> Summary | None: ...
    def get_raw(self, id: str) -> bytes | None: ...
    def get_raw_stored(self, id: str) -> bytes | None: ...
    def get_raws(self, ids: list[str], max_size: int) -> dict[str, bytes]: ...
    def get_envelope(self, id: str) -> Envelope | None: ...
    def latest_id(self, *, mailbox: str | None = None, query: str | None = None) -> str | None: ...
    def mailboxes(self) -> list[MailboxInfo]: ...
    def stats(self) -> StoreStats: ...
    def tags(self) -> list[str]: ...
    def list_threads(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> ThreadPage: ...
    def thread_messages(self, thread_id: str, *, limit: int = 10_000) -> list[Summary]: ...


class ChangePart(Protocol):
    """Read state, deletion and tags of messages."""

    def set_read(
        self, ids: list[str] | None, read: bool, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]: ...
    def delete_messages(
        self, ids: list[str] | None, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]: ...
    def set_tags(self, ids: list[str], tags: list[str]) -> None: ...
    def rename_tag(self, old: str, new: str) -> None: ...
    def delete_tag(self, tag: str) -> None: ...


class FolderPart(Protocol):
    """The IMAP and POP3 view: folders, deliveries with UIDs and flags, copies."""

    def folders(self, mailbox: str) -> list[FolderInfo]: ...
    def folder_info(self, mailbox: str, folder: str) -> FolderInfo | None: ...
    def folders_now(self, mailbox: str) -> list[FolderInfo] | None: ...
    def folder_info_now(self, mailbox: str, folder: str) -> FolderInfo | None: ...
    def count_above_now(self, mailbox: str, folder: str, after_uid: int) -> int | None: ...
    def create_folder(self, mailbox: str, folder: str, special_use: str = "") -> FolderInfo: ...
    def delete_folder(self, mailbox: str, folder: str) -> None: ...
    def rename_folder(self, mailbox: str, old: str, new: str) -> None: ...
    def set_subscribed(self, mailbox: str, folder: str, subscribed: bool) -> None: ...
    def folder_entries(self, mailbox: str, folder: str, after_uid: int = 0) -> list[Entry]: ...
    def folder_count(
        self, mailbox: str, folder: str, upto_uid: int, above_modseq: int
    ) -> tuple[int, int]: ...
    def folder_changed(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> list[Entry]: ...
    def update_flags(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]: ...
    def expunge(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]: ...
    def imap_cache_range(
        self, kind: str, mailbox: str, folder: str, uidvalidity: int, uids: tuple[int, int], prefix: int
    ) -> dict[int, bytes] | None: ...
    def copy(
        self, mailbox: str, folder: str, uids: list[int], dest: str, *, move: bool = False
    ) -> tuple[int, list[tuple[int, int]]]: ...


class Composed:
    """The protocol methods served by a backend's reader, changes and folders."""

    def __init__(self, reading: ReadPart, changes: ChangePart, folders: FolderPart) -> None:
        self.reading = reading
        self.changes = changes
        self.folders_ = folders

    # -- reading ----------------------------------------------------------------------------
    def list_messages(
        self, *, mailbox: str | None = None, query: str | None = None, start: int = 0, limit: int = 50
    ) -> MessagePage:
        return self.reading.list_messages(mailbox=mailbox, query=query, start=start, limit=limit)

    def get_summary(self, id: str) -> Summary | None:
        return self.reading.get_summary(id)

    def get_raw(self, id: str) -> bytes | None:
        return self.reading.get_raw(id)

    def get_raw_stored(self, id: str) -> bytes | None:
        return self.reading.get_raw_stored(id)

    def get_raws(self, ids: list[str], max_size: int) -> dict[str, bytes]:
        return self.reading.get_raws(ids, max_size)

    def get_envelope(self, id: str) -> Envelope | None:
        return self.reading.get_envelope(id)

    def latest_id(self, *, mailbox: str | None = None, query: str | None = None) -> str | None:
        return self.reading.latest_id(mailbox=mailbox, query=query)

    def mailboxes(self) -> list[MailboxInfo]:
        return self.reading.mailboxes()

    def stats(self) -> StoreStats:
        return self.reading.stats()

    def tags(self) -> list[str]:
        return self.reading.tags()

    def list_threads(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> ThreadPage:
        return self.reading.list_threads(mailbox=mailbox, start=start, limit=limit)

    def thread_messages(self, thread_id: str, *, limit: int = 10_000) -> list[Summary]:
        return self.reading.thread_messages(thread_id, limit=limit)

    # -- changes ----------------------------------------------------------------------------
    def set_read(
        self, ids: list[str] | None, read: bool, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        return self.changes.set_read(ids, read, mailbox=mailbox, query=query)

    def delete_messages(
        self, ids: list[str] | None, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        return self.changes.delete_messages(ids, mailbox=mailbox, query=query)

    def set_tags(self, ids: list[str], tags: list[str]) -> None:
        self.changes.set_tags(ids, tags)

    def rename_tag(self, old: str, new: str) -> None:
        self.changes.rename_tag(old, new)

    def delete_tag(self, tag: str) -> None:
        self.changes.delete_tag(tag)

    # -- folders ----------------------------------------------------------------------------
    def folders(self, mailbox: str) -> list[FolderInfo]:
        return self.folders_.folders(mailbox)

    def folder_info(self, mailbox: str, folder: str) -> FolderInfo | None:
        return self.folders_.folder_info(mailbox, folder)

    def folders_now(self, mailbox: str) -> list[FolderInfo] | None:
        return self.folders_.folders_now(mailbox)

    def folder_info_now(self, mailbox: str, folder: str) -> FolderInfo | None:
        return self.folders_.folder_info_now(mailbox, folder)

    def count_above_now(self, mailbox: str, folder: str, after_uid: int) -> int | None:
        return self.folders_.count_above_now(mailbox, folder, after_uid)

    def create_folder(self, mailbox: str, folder: str, special_use: str = "") -> FolderInfo:
        return self.folders_.create_folder(mailbox, folder, special_use)

    def delete_folder(self, mailbox: str, folder: str) -> None:
        self.folders_.delete_folder(mailbox, folder)

    def rename_folder(self, mailbox: str, old: str, new: str) -> None:
        self.folders_.rename_folder(mailbox, old, new)

    def set_subscribed(self, mailbox: str, folder: str, subscribed: bool) -> None:
        self.folders_.set_subscribed(mailbox, folder, subscribed)

    def folder_entries(self, mailbox: str, folder: str, after_uid: int = 0) -> list[Entry]:
        return self.folders_.folder_entries(mailbox, folder, after_uid)

    def folder_count(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> tuple[int, int]:
        return self.folders_.folder_count(mailbox, folder, upto_uid, above_modseq)

    def imap_cache_range(
        self, kind: str, mailbox: str, folder: str, uidvalidity: int, uids: tuple[int, int], prefix: int
    ) -> dict[int, bytes] | None:
        return self.folders_.imap_cache_range(kind, mailbox, folder, uidvalidity, uids, prefix)

    def folder_changed(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> list[Entry]:
        return self.folders_.folder_changed(mailbox, folder, upto_uid, above_modseq)

    def update_flags(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        return self.folders_.update_flags(mailbox, folder, uids, flags, mode)

    def expunge(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        return self.folders_.expunge(mailbox, folder, uids)

    async def update_flags_async(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        """:meth:`update_flags` from an event loop (a backend without a writer queue of its
        own runs it on a worker thread)."""
        return await asyncio.to_thread(self.update_flags, mailbox, folder, uids, flags, mode)

    async def expunge_async(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        """:meth:`expunge` from an event loop (on a worker thread unless the backend says otherwise)."""
        return await asyncio.to_thread(self.expunge, mailbox, folder, uids)

    def copy(
        self, mailbox: str, folder: str, uids: list[int], dest: str, *, move: bool = False
    ) -> tuple[int, list[tuple[int, int]]]:
        return self.folders_.copy(mailbox, folder, uids, dest, move=move)
