"""The ingest interface: what the SMTP path needs of a store to commit a message before its 250.

The SMTP server (servers/smtp.py) and its worker processes (servers/smtp_workers.py) see
the store only through these protocols, checked once when a listener starts
(:func:`ingest_paths`), never probed per message:

- :class:`~postroom.store.base.Ingest`, which every store provides: ``await deliver(envelope, raw)`` returns the
  message's ID once it is committed.
- :class:`JournaledIngest`: a store that commits with one write to its ingest journal and
  can do so without an event loop (``deliver_journaled``), so the SMTP session answers
  without an asyncio task. ``journaled`` is False when the store was opened without a
  journal (``--fsync``).
- :class:`WorkerIngest`: a journaled store that also takes mail that SMTP worker processes
  journal themselves. ``open_worker_journal(slot)`` gives a :class:`WorkerFeed`: the
  ``location`` the worker writes to, and the callbacks through which the store asks the
  worker for a note or tells it to refuse mail; ``poke_journals()`` says a worker wrote.
- :class:`WorkerJournalWriter`, the worker process's side: it prepares a message the way
  the store keeps it (header fields scanned, bytes compressed) and appends it to the
  journal at ``location``. The worker does not know the journal's format (store/journal.py).

Errors: ``deliver``/``deliver_journaled``/:meth:`WorkerJournalWriter.commit` raise
:class:`~postroom.store.base.StoreError` or ``OSError`` (a full disk) when the message is
not committed; the SMTP server answers 451.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .base import Envelope, Ingest
from .conforms import conforms
from .headers import scan_summary
from .ids import new_id
from .journal import SegmentedJournal
from .rawcodec import compress

__all__ = [
    "Ingest",
    "IngestPaths",
    "JournaledIngest",
    "WorkerFeed",
    "WorkerIngest",
    "WorkerJournalWriter",
    "ingest_paths",
]


@runtime_checkable
class JournaledIngest(Protocol):
    """A store that commits a message with one journal write, synchronously and thread-safely."""

    @property
    def journaled(self) -> bool:
        """False when this store has no journal (``--fsync``): use ``deliver`` then."""
        ...

    def deliver_journaled(self, envelope: Envelope, raw: bytes, tags: tuple[str, ...] = ()) -> str: ...


class WorkerFeed(Protocol):
    """The store's side of one SMTP worker's journal."""

    @property
    def location(self) -> str:
        """Where the worker writes (given to :class:`WorkerJournalWriter`)."""
        ...

    arm: Callable[[], None] | None  # ask the worker for a note when it next writes
    refuse: Callable[[bool], None] | None  # tell the worker to refuse mail (True) or take it again
    armed: bool  # a note has been asked for and not received yet
    gone: bool  # the worker has exited


@runtime_checkable
class WorkerIngest(JournaledIngest, Protocol):
    """A journaled store that also takes mail journaled by SMTP worker processes."""

    def open_worker_journal(self, slot: int) -> WorkerFeed: ...

    def poke_journals(self) -> None:
        """A worker has written (thread-safe): have the store read what it wrote."""
        ...


@dataclass(frozen=True, slots=True)
class IngestPaths:
    """How the SMTP server commits mail to one store, decided once at start."""

    deliver: Callable[..., Awaitable[str]]  # Ingest.deliver
    deliver_now: Callable[[Envelope, bytes], str] | None  # JournaledIngest.deliver_journaled
    workers: WorkerIngest | None  # the store takes mail from SMTP worker processes


def ingest_paths(store: Ingest) -> IngestPaths:
    """The ways ``store`` can take mail (checked once: a listener calls this at start)."""
    journaled = conforms(store, JournaledIngest) and store.journaled
    now = store.deliver_journaled if conforms(store, JournaledIngest) and journaled else None
    workers = store if journaled and conforms(store, WorkerIngest) else None
    return IngestPaths(store.deliver, now, workers)


class WorkerJournalWriter:
    """An SMTP worker process's ingest: each message prepared and appended to its journal.

    Once :meth:`commit` returns, the message survives a crash of either process and may be
    acknowledged; the main process's store applies it (store/sqlite_tails.py).
    """

    def __init__(self, location: str) -> None:
        self._journal = SegmentedJournal(location)

    def commit(self, envelope: Envelope, raw: bytes, tags: tuple[str, ...] = ()) -> str:
        """Journal one message; returns its ID.

        Raises:
            OSError: it could not be written (a full disk): nothing of it is kept.
        """
        pid = new_id()
        head = scan_summary(raw)
        self._journal.append(pid, envelope.dumps(), tuple(tags), compress(raw), len(raw), head)
        return pid

    def close(self) -> None:
        self._journal.close()
