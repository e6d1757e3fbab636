"""The storage seam: what every backend (SQLite, PostgreSQL) provides.

Grouped by who needs it:

* ingest (SMTP, ``POST /api/v1/send``, import): :meth:`Store.deliver` -- async, returns
  only after the message is committed (group commit), so a 250 can follow.
* the HTTP API and tools: message listing, reading, read state, tags, deletion.
* IMAP/POP3: per-mailbox folders, UIDs, flags, expunge, copy/move, append.

Model: a *message* is stored once (raw bytes + a summary row). It is delivered to one
or more *mailboxes* (by default one per envelope recipient, named by the lower-cased
address). Each mailbox has *folders* ("INBOX" always exists; IMAP users may create more);
a *delivery* places a message in one folder with its own UID and flags. UIDs grow
strictly per folder; UIDVALIDITY is fixed per folder and changes when a name is reused.

Reader methods are synchronous and thread-safe (the web and IMAP layers call them from
worker threads via ``asyncio.to_thread``). Writes go through one writer thread.

Errors (all subclasses of :class:`StoreError`)::

    StoreError
     +-- NotFound          unknown message, mailbox or folder
     +-- AlreadyExists     folder name taken
     +-- InvalidQuery      search text that does not parse (message names the problem)
     +-- StoreClosed       the store is shut down
"""

from __future__ import annotations

import json.encoder
import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .compactjson import compact

__all__ = [
    "Address",
    "AlreadyExists",
    "Entry",
    "Envelope",
    "FlagMode",
    "FolderInfo",
    "ImapStore",
    "IndexProgress",
    "Ingest",
    "InvalidQuery",
    "Lifecycle",
    "MailboxInfo",
    "MessageAdmin",
    "MessagePage",
    "MessageReader",
    "NotFound",
    "Pop3Store",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreStats",
    "Summary",
    "ThreadInfo",
    "ThreadPage",
    "WebStore",
]

INBOX = "INBOX"


class StoreError(Exception):
    """Base of all store errors."""


class NotFound(StoreError):
    """Unknown message, mailbox or folder."""


class AlreadyExists(StoreError):
    """A folder with that name exists."""


class InvalidQuery(StoreError):
    """A search query that does not parse; the message says why."""


class StoreClosed(StoreError):
    """The store has been closed."""


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str

    def to_json(self) -> dict[str, str]:
        return {"Name": self.name, "Address": self.address}


_JSON_STR = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_FINITE_MAX = sys.float_info.max
_FINITE_MIN = -_FINITE_MAX


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the SMTP transaction said, as opposed to what the headers say."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    peer: str = ""  # "ip:port" of the client
    helo: str = ""
    tls: bool = False
    auth_user: str | None = None
    smtputf8: bool = False
    received_at: float = 0.0  # epoch seconds; 0 means "now" to the store

    def to_json(self) -> dict[str, Any]:
        return {
            "MailFrom": self.mail_from,
            "RcptTo": list(self.rcpt_to),
            "Peer": self.peer,
            "Helo": self.helo,
            "TLS": self.tls,
            "AuthUser": self.auth_user or "",
            "SMTPUTF8": self.smtputf8,
            "Received": self.received_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Envelope:
        return cls(
            mail_from=d.get("MailFrom", ""),
            rcpt_to=tuple(d.get("RcptTo", ())),
            peer=d.get("Peer", ""),
            helo=d.get("Helo", ""),
            tls=bool(d.get("TLS", False)),
            auth_user=d.get("AuthUser") or None,
            smtputf8=bool(d.get("SMTPUTF8", False)),
            received_at=float(d.get("Received", 0.0)),
        )

    def dumps(self) -> str:
        """:meth:`to_json` as compact JSON text. Written out for the types the SMTP session
        gives (one per message, before its 250), with the same text; anything else goes
        through the encoder."""
        at = self.received_at
        if (
            at.__class__ is not float
            or not _FINITE_MIN <= at <= _FINITE_MAX  # NaN and the infinities: JSON's words
            or self.tls.__class__ is not bool
            or self.smtputf8.__class__ is not bool
            or self.rcpt_to.__class__ is not tuple
            or len(self.rcpt_to) != 1
        ):
            return compact(self.to_json())
        s = _JSON_STR
        return (
            f'{{"MailFrom":{s(self.mail_from)},"RcptTo":[{s(self.rcpt_to[0])}],"Peer":{s(self.peer)},'
            f'"Helo":{s(self.helo)},"TLS":{"true" if self.tls else "false"},'
            f'"AuthUser":{s(self.auth_user or "")},"SMTPUTF8":{"true" if self.smtputf8 else "false"},'
            f'"Received":{at!r}}}'
        )


@dataclass(slots=True)
class Summary:
    """The summary row of a message (Mailpit's ``MessageSummary`` plus ours)."""

    id: str
    message_id: str = ""
    subject: str = ""
    from_: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    created: float = 0.0  # when received (epoch seconds)
    date: float | None = None  # the Date: header, when it parses
    size: int = 0
    attachments: int = 0
    snippet: str = ""
    read: bool = False
    tags: list[str] = field(default_factory=list)
    username: str = ""  # SMTP AUTH user
    thread_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    mailboxes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of a listing (the shape behind Mailpit's ``MessagesSummary``)."""

    total: int  # messages in the store (or in the mailbox, when filtered by mailbox)
    unread: int  # unread among ``total``
    messages_count: int  # messages matching the query (== total without a query)
    messages_unread: int  # unread among the matches
    start: int
    messages: list[Summary]


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """One conversation in a listing (``GET /api/v2/threads``; docs/threads.md)."""

    thread_id: str
    subject: str  # of its first message
    messages: int
    unread: int
    participants: list[Address]  # From, To and Cc of its messages, first seen first
    last_activity: float  # newest message received (epoch seconds)


@dataclass(frozen=True, slots=True)
class ThreadPage:
    total: int  # conversations (in the mailbox, when filtered)
    start: int
    threads: list[ThreadInfo]  # newest activity first


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    name: str
    total: int
    unread: int
    # folders a client made beside INBOX (IMAP CREATE): such a mailbox is kept in the
    # web/API listing when it holds no mail (see api_v2.mailboxes)
    made_folders: int = 0


@dataclass(frozen=True, slots=True)
class FolderInfo:
    mailbox: str
    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    unseen: int
    subscribed: bool = True
    special_use: str = ""  # e.g. "\\Sent", "\\Trash" (RFC 6154)
    highestmodseq: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """A delivery as IMAP/POP3 see it: one message in one folder."""

    uid: int
    id: str  # the message's public ID
    flags: frozenset[str]
    size: int
    internaldate: float
    modseq: int = 0


FlagMode = Literal["set", "add", "remove"]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts and sizes for ``GET /api/v1/info`` and the WebSocket's ``stats`` frames."""

    messages: int
    unread: int
    size: int  # bytes of every stored message, uncompressed
    database: str  # where the store lives (a path, ":memory:", or a database name)
    database_size: int  # bytes the backend occupies on disk (0 when it cannot tell)
    engine: str  # e.g. "SQLite 3.46.1"


class Lifecycle(Protocol):
    """The composition root's part (``app.py``)."""

    def start(self) -> None:
        """Open connections, apply migrations, start the writer thread."""

    def close(self) -> None:
        """Flush pending writes and close. Idempotent."""


class Ingest(Protocol):
    """Storing new mail: SMTP, ``POST /api/v1/send``, import."""

    async def deliver(self, envelope: Envelope, raw: bytes, *, tags: tuple[str, ...] = ()) -> str:
        """Store ``raw`` once and deliver it to each recipient's mailbox.

        Returns the new message ID only once the message is durably committed.
        """
        ...


class MessageReader(Protocol):
    """Reading the whole store (the HTTP API, the UI, ``postroom.testing``).

    Read-your-writes: a read that starts after :meth:`Ingest.deliver` returned (or a
    change method returned) sees that write. Thread-safe and synchronous.
    """

    def list_messages(
        self, *, mailbox: str | None = None, query: str | None = None, start: int = 0, limit: int = 50
    ) -> MessagePage:
        """Newest first. ``query`` is postroom's search language (see ``search.py``).

        Raises:
            InvalidQuery: ``query`` does not parse.
        """
        ...

    def get_summary(self, id: str) -> Summary | None: ...
    def get_raw(self, id: str) -> bytes | None: ...
    def get_envelope(self, id: str) -> Envelope | None: ...

    def latest_id(self, *, mailbox: str | None = None, query: str | None = None) -> str | None:
        """The newest message's ID (Mailpit's ``latest``), or None."""
        ...

    def mailboxes(self) -> list[MailboxInfo]: ...
    def stats(self) -> StoreStats: ...
    def tags(self) -> list[str]: ...

    # conversations (ThreadID; assigned by the indexer shortly after delivery)
    def list_threads(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> ThreadPage:
        """Conversations, newest activity first (counted within ``mailbox`` when given)."""
        ...

    def thread_messages(self, thread_id: str, *, limit: int = 10_000) -> list[Summary]:
        """The messages of a conversation in arrival order; [] for an unknown id."""
        ...

    def wait_indexed(self, timeout: float = 30) -> bool:
        """Block until every stored message is indexed (snippet, full text, thread ID);
        False if ``timeout`` seconds passed first. Tests and tools use it before a query
        that depends on the index."""
        ...


class MessageAdmin(Protocol):
    """Changing messages through the API. Each call blocks until its change is committed;
    its events are published after the commit."""

    def set_read(
        self, ids: list[str] | None, read: bool, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        """Set read state of ``ids`` (or of every match when ids is None). Returns changed IDs."""
        ...

    def delete_messages(
        self, ids: list[str] | None, *, mailbox: str | None = None, query: str | None = None
    ) -> list[str]:
        """Delete ``ids`` (or every match / everything when ids is None). Returns deleted IDs."""
        ...

    def delete_mailbox(self, mailbox: str) -> list[str]:
        """Remove ``mailbox`` with its folders and deliveries.

        A message also delivered to another mailbox stays there (a mailbox is a view of
        the store, not the owner of the message); only messages left in no mailbox at all
        are deleted. Returns the IDs of the deleted messages ([] for an unknown mailbox).
        """
        ...

    def set_tags(self, ids: list[str], tags: list[str]) -> None: ...
    def rename_tag(self, old: str, new: str) -> None: ...
    def delete_tag(self, tag: str) -> None: ...


class Pop3Store(Protocol):
    """What a POP3 session needs: the INBOX of one mailbox (RFC 1939)."""

    def folder_info(self, mailbox: str, folder: str) -> FolderInfo | None: ...

    def folder_entries(self, mailbox: str, folder: str, after_uid: int = 0) -> list[Entry]:
        """Every delivery of the folder with a UID above ``after_uid``, ordered by UID
        (a read of the new deliveries alone costs what they do, not the folder)."""
        ...

    def get_raw_stored(self, id: str) -> bytes | None:
        """Like :meth:`MessageReader.get_raw`, for a message the caller knows is stored (it
        came from a folder listing): no read-your-writes wait, so it is quick enough to call
        on an event loop for one small message (IMAP and POP3 read a single body this way)."""
        ...

    def get_raws(self, ids: list[str], max_size: int) -> dict[str, bytes]:
        """The bytes of each of ``ids`` still stored and of at most ``max_size`` bytes, in
        one read (IMAP derives ENVELOPE and BODYSTRUCTURE of new messages from them); at
        most ``len(ids) * max_size`` bytes, the caller reads larger ones one at a time."""
        ...

    def update_flags(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        """Change flags; returns the entries as they are after the change. Every changed
        delivery gets a new MODSEQ above the folder's previous HIGHESTMODSEQ (RFC 7162)."""
        ...

    def expunge(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        """Remove deliveries flagged \\Deleted (restricted to ``uids`` when given); returns
        their UIDs. A message left with no delivery is deleted."""
        ...

    async def update_flags_async(
        self, mailbox: str, folder: str, uids: list[int], flags: frozenset[str], mode: FlagMode
    ) -> list[Entry]:
        """:meth:`update_flags` for an event loop; returns once the change is committed.
        Changes from many sessions may share one commit (SQLite: the writer's next batch)."""
        ...

    async def expunge_async(self, mailbox: str, folder: str, uids: list[int] | None = None) -> list[int]:
        """:meth:`expunge` for an event loop; returns once the expunge is committed."""
        ...


class ImapStore(Pop3Store, Protocol):
    """What IMAP sessions need: folders of a mailbox, UIDs, flags, copy/move, append, and
    a cache of what IMAP derives from a message (RFC 3501, 6851 MOVE, 7162 CONDSTORE).

    UIDs grow strictly per folder and are never reused; UIDVALIDITY is fixed per folder
    and a folder created again under a used name gets a greater one (RFC 3501 2.3.1.1).
    """

    def mailboxes(self) -> list[MailboxInfo]: ...
    def get_raw(self, id: str) -> bytes | None: ...
    def folders(self, mailbox: str) -> list[FolderInfo]: ...
    def folders_now(self, mailbox: str) -> list[FolderInfo] | None:
        """:meth:`folders` if it can be read at once on the event loop (the names current, the
        counts perhaps without mail acknowledged but not yet stored), else None."""
        ...

    def folder_info_now(self, mailbox: str, folder: str) -> FolderInfo | None:
        """:meth:`folder_info` of an existing folder if it can be read at once on the event
        loop with current counts, else None (ask :meth:`folder_info` on a worker thread)."""
        ...

    def count_above_now(self, mailbox: str, folder: str, after_uid: int) -> int | None:
        """How many deliveries of the folder have a UID above ``after_uid``, if that can be
        counted at once on the event loop (nothing acknowledged waiting), else None."""
        ...

    def folder_count(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> tuple[int, int]:
        """How many deliveries of the folder have a UID at or below ``upto_uid``, and how
        many of those a MODSEQ above ``above_modseq`` (counted in the database, no row
        read into Python: is a listing read up to that UID at that MODSEQ still current?).
        The first is the folder's kept count less the deliveries above ``upto_uid``, and
        the second is 0 without a look at the deliveries when the folder's MODSEQ is not
        above ``above_modseq`` (no delivery's MODSEQ is above its folder's): new mail
        alone costs its own rows, whatever the folder's size (issue 19)."""
        ...

    def folder_changed(self, mailbox: str, folder: str, upto_uid: int, above_modseq: int) -> list[Entry]:
        """The deliveries of the folder with a UID at or below ``upto_uid`` and a MODSEQ
        above ``above_modseq`` (re-flagged since a listing read at that MODSEQ), by UID."""
        ...

    def create_folder(self, mailbox: str, folder: str, special_use: str = "") -> FolderInfo: ...
    def delete_folder(self, mailbox: str, folder: str) -> None: ...
    def rename_folder(self, mailbox: str, old: str, new: str) -> None: ...
    def set_subscribed(self, mailbox: str, folder: str, subscribed: bool) -> None: ...

    def copy(
        self, mailbox: str, folder: str, uids: list[int], dest: str, *, move: bool = False
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copy (or move) deliveries; returns (dest UIDVALIDITY, [(src uid, dest uid)])."""
        ...

    async def append(
        self,
        mailbox: str,
        folder: str,
        raw: bytes,
        flags: frozenset[str] = frozenset(),
        internaldate: float | None = None,
        thread_key: str = "",
    ) -> tuple[int, int]:
        """Store a message directly in a folder (IMAP APPEND). Returns (uidvalidity, uid).
        ``thread_key``: messages stored with the same non-empty key are one conversation
        whatever their headers say (IMAP APPEND's X-POSTROOM-THREAD; docs/threads.md)."""
        ...

    def imap_cache_get(self, kind: str, ids: list[str], prefix: int | None = None) -> dict[str, bytes]:
        """Blobs of ``kind`` ("meta", "head" or "text") for those of ``ids`` that have one
        (never for deleted messages); with ``prefix``, only the first ``prefix`` bytes of
        each (the IMAP layer keeps SORT keys at the start of a ``head`` blob)."""
        ...

    def imap_cache_put(self, kind: str, items: dict[str, bytes]) -> None:
        """Keep blobs by message ID (through the writer); they go when their message goes."""
        ...

    def imap_cache_range(
        self, kind: str, mailbox: str, folder: str, uidvalidity: int, uids: tuple[int, int], prefix: int
    ) -> dict[int, bytes] | None:
        """The first ``prefix`` bytes of the ``kind`` blobs of the folder's deliveries with a
        UID in ``uids`` (inclusive bounds), by UID: one read of the folder's UID range (no
        lookup by public ID). None when the folder's UIDVALIDITY is not ``uidvalidity``
        (deleted, or created again: its UIDs then name other messages)."""
        ...

    def conversation_ids(self, ids: list[str]) -> dict[str, tuple[int, str, bool]]:
        """For those of ``ids`` that exist: (the message's internal row id, its ``ThreadID``
        as stored now, whether the indexer has done it). The row id never changes and is
        never reused; the thread id is "" until the indexer has threaded the message (or
        for good with threading off). IMAP's X-GM-MSGID and X-GM-THRID (docs/imap.md)."""
        ...

    def message_tags(self, ids: list[str]) -> dict[str, list[str]]:
        """The tags of those of ``ids`` that exist, each list sorted (a message without tags
        maps to ``[]``). IMAP's X-GM-LABELS (docs/imap.md)."""
        ...

    def set_tags(self, ids: list[str], tags: list[str]) -> None:
        """Replace the tags of ``ids`` by ``tags`` (IMAP's STORE X-GM-LABELS)."""
        ...


@runtime_checkable
class IndexProgress(Protocol):
    """A backend whose full-text and ``has:`` queries see a message only once its
    background indexing is done: which messages are still waiting for it."""

    def unindexed(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` not indexed yet (deleted ones left out)."""
        ...


class WebStore(Ingest, MessageReader, MessageAdmin, Protocol):
    """What the HTTP API and UI use (``web/``): ingest for ``/api/v1/send``, reads, changes."""


class Store(Lifecycle, WebStore, ImapStore, Protocol):
    """Everything a storage backend provides. See the module docstring for the model.

    Consumers take the narrowest protocol they need (:class:`WebStore`, :class:`ImapStore`,
    :class:`Pop3Store`, :class:`MessageReader`...); only the composition root holds a
    :class:`Store`. Every backend passes the contract suite in ``tests/contract/``.
    """
