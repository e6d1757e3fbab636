"""The SMTP workers' journals in the SQLite store: replay at start, and the writer's reads.

:class:`WorkerJournals` is a part of :class:`postroom.store.sqlite.SQLiteStore`. Each SMTP worker process
(servers/smtp_workers.py) appends prepared messages to a journal of its own
(journal.SegmentedJournal); the writer thread reads them through a
:class:`~postroom.store.journal.JournalTail` each, and records how far it has applied each
one (``meta.journal_w<slot>``) in the same transaction as the rows.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sqlite3
from typing import TYPE_CHECKING, Any

from .base import StoreError
from .journal import JournalTail, Record, create_segment, scan_file, segment_path
from .sqlite_jobs import _TAIL, MAX_BATCH, _Call, _Ingest, _ingest_from_record

if TYPE_CHECKING:
    from collections.abc import Callable

    from .sqlite_db import SQLiteDb

__all__ = ["TAIL_BYTES", "WorkerJournals"]

log = logging.getLogger(__name__)

# Bytes of journal records (compressed messages) taken into one transaction, across all the
# workers' journals: a burst of large messages is applied in several batches instead of one
# that holds hundreds of megabytes.
TAIL_BYTES = 8 * 1024 * 1024


class WorkerJournals:
    """The SMTP workers' journals of one SQLite store, as the writer reads them."""

    def __init__(self, db: SQLiteDb, run_batch: Callable[..., bool], journaled: Callable[[], bool]) -> None:
        self.db = db
        self._run_batch = run_batch  # the writer's: apply jobs in one transaction
        self._journaled = journaled  # whether the store has its ingest journal (not with --fsync)
        self.tails: list[JournalTail] = []  # one per SMTP worker (journal.py)
        self._tail_turn = 0  # which journal a batch reads first (each in turn)
        self._tail_queued = False

    def replay(self, conn: sqlite3.Connection) -> None:
        """At start: apply what SMTP workers of an earlier run acknowledged, then delete their
        files, each only once everything in it is committed. A file with damaged bytes is
        kept, renamed ``*.damaged``, for a person to look at."""
        prefix = self.db.path + "-journal-postroom-w"
        directory = os.path.dirname(os.path.abspath(self.db.path))
        segments: dict[int, list[int]] = {}
        for name in os.listdir(directory):
            full = os.path.join(directory, name)
            if not full.startswith(prefix):
                continue
            slot_text, _, gen_text = full[len(prefix) :].partition(".")
            if slot_text.isdigit() and gen_text.isdigit():
                segments.setdefault(int(slot_text), []).append(int(gen_text))
        done = {
            int(k[len("journal_w") :]): (int(v.split(":")[0]), int(v.split(":")[1]))
            for k, v in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'journal_w%'")
        }
        total = 0
        for slot, gens in sorted(segments.items()):
            done_gen, done_pos = done.get(slot, (0, 0))
            for gen in sorted(gens):
                path = segment_path(prefix + str(slot), gen)
                if gen >= done_gen:
                    with open(path, "rb") as f:
                        data = f.read()
                    applied, damaged = self._replay_segment(
                        conn, data, done_pos if gen == done_gen else 0, slot, gen
                    )
                    total += applied
                    if damaged:
                        os.replace(path, path + ".damaged")
                        continue
                os.remove(path)  # everything in it is committed (or was, by an earlier run)
        if total:
            log.warning("replayed %d acknowledged messages from the SMTP workers' journals", total)
        conn.execute("DELETE FROM meta WHERE key LIKE 'journal_w%'")

    def _replay_segment(
        self, conn: sqlite3.Connection, data: bytes, pos: int, slot: int, gen: int
    ) -> tuple[int, int]:
        """Apply the records of one segment past ``pos``, committing as it goes; returns how
        many were applied and how many bytes were damaged."""
        records, scan = scan_file(data, pos)
        batch: list[Any] = []
        total = end = 0
        for rec, end in records:
            if isinstance(rec, Record):
                batch.append(_ingest_from_record(rec, None))
            if len(batch) >= MAX_BATCH:
                total += self._replay_batch(conn, batch, slot, gen, end)
                batch = []
        if batch:
            total += self._replay_batch(conn, batch, slot, gen, end)
        if scan is not None and scan.skipped:
            log.error(
                "SMTP worker %d's journal segment %d had %d damaged bytes: skipped, the file is kept",
                slot,
                gen,
                scan.skipped,
            )
        return total, scan.skipped if scan is not None else 0

    def _replay_batch(self, conn: sqlite3.Connection, jobs: list[Any], slot: int, gen: int, end: int) -> int:
        key, value = f"journal_w{slot}", f"{gen}:{end}"
        mark: concurrent.futures.Future[Any] = concurrent.futures.Future()
        jobs.append(
            _Call(
                lambda c: c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)),
                mark,
                1,  # one row: the replay's mail keeps its statement journals in memory
            )
        )
        if not self._run_batch(conn, jobs, replay=True) or not mark.done() or mark.exception() is not None:
            raise StoreError("replay failed")
        return len(jobs) - 1

    def open(self, slot: int) -> JournalTail:
        """Create the (empty) journal of SMTP worker ``slot`` (it writes to ``tail.base``)."""
        if not self._journaled():
            raise StoreError("SMTP workers need the ingest journal (not available with --fsync)")
        base = f"{self.db.path}-journal-postroom-w{slot}"
        create_segment(segment_path(base, 0))
        tail = JournalTail(base, slot)
        self.tails.append(tail)
        return tail

    def poke(self) -> None:
        """An SMTP worker has written to its journal: have the writer read it (thread-safe)."""
        if not self._tail_queued and not self.db.closed:
            self._tail_queued = True
            self.db.queue.put(_TAIL)

    def read(self, limit: int) -> list[_Ingest]:
        """New records from the workers' journals. While any has mail, read again after this
        batch; a journal read to its end is armed (its worker sends a note when it writes)."""
        self._tail_queued = False  # notes arriving from now on queue another read
        jobs: list[_Ingest] = []
        budget = TAIL_BYTES
        # each journal goes first in turn: one worker's large messages, filling the byte
        # budget every time, must not hold back another's mail
        turn = self._tail_turn % max(len(self.tails), 1)
        self._tail_turn = turn + 1
        for tail in self.tails[turn:] + self.tails[:turn]:
            want = max(limit - len(jobs), 0) if budget > 0 else 0
            gone = tail.gone
            try:
                records = tail.read(want, budget)
            except OSError as e:  # its next segment cannot be opened: leave it for the next start
                log.error("cannot read the journal of SMTP worker %d: %s", tail.slot, e)
                records = []
            budget -= tail.last_read_bytes if records else 0
            if gone and len(records) < want and budget > 0:
                tail.drained = True  # read to the end after its worker exited
            for rec in records:
                jobs.append(_ingest_from_record(rec, tail))
            if want and not records and not tail.armed and tail.arm is not None:
                tail.armed = True
                tail.arm()
        if jobs:
            self.poke()
        return jobs

    def save_positions(self, conn: sqlite3.Connection) -> None:
        """Inside the batch's transaction: how far each worker journal is applied."""
        for tail in self.tails:
            if tail.position != tail.applied:
                gen, pos = tail.position
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (f"journal_w{tail.slot}", f"{gen}:{pos}"),
                )

    def committed(self) -> None:
        """After a commit: everything read from the tails is applied; drop finished segments."""
        for tail in self.tails:
            tail.applied = tail.position
            while tail.finished:
                try:
                    os.remove(tail.finished.pop(0))
                except OSError:
                    pass
