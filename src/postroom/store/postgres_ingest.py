"""Ingest on PostgreSQL: group commit of new messages, UIDs per folder, ``--max``.

Every SMTP session (and ``/api/v1/send``, import, IMAP APPEND) hands its message to this
node's ingest thread and waits; the thread takes every message queued at that moment (up
to :data:`MAX_BATCH`) and stores them in one transaction, so a burst shares one commit
(one WAL flush) and one hold of each folder's row lock, instead of paying them per
message. The callers' futures resolve after the commit; only then does SMTP say 250.

Within a batch, each folder's UIDs come from one ``UPDATE folder SET uidnext = uidnext + k
... RETURNING``, taken in folder-name order on every node, so concurrent batches on
several nodes never deadlock and never share a UID (RFC 3501 2.3.1.1).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event, FolderChanged, MessagesPruned, MessageStored, Placement
from ..mailboxes import mailbox_for
from .base import INBOX, Address, Envelope, StoreClosed, StoreError, Summary
from .headers import HeaderSummary, scan_headers
from .ids import new_id
from .postgres_changes import delete_ids, folder_id, tag_id
from .postgres_db import ADVISORY_RETENTION, Conn, Db
from .postgres_search import header_lines
from .rawcodec import compress

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MAX_BATCH", "Ingester"]

log = logging.getLogger(__name__)

MAX_BATCH = 256  # messages per transaction (a burst of SMTP sessions commits together)
MAX_BATCH_BYTES = 32 * 1024 * 1024  # ... or this many raw bytes, whichever comes first


@dataclass(slots=True)
class _Job:
    env: Envelope
    raw: bytes
    tags: tuple[str, ...]
    into: tuple[str, str] | None
    flags: frozenset[str]
    thread_key: str = ""  # IMAP APPEND's X-POSTROOM-THREAD (message.thread_key)
    future: concurrent.futures.Future[tuple[str, int]] = field(default_factory=concurrent.futures.Future)
    # prepared by the ingest thread
    pid: str = ""
    head: HeaderSummary | None = None
    row: tuple[Any, ...] = ()
    wanted: tuple[tuple[str, str], ...] = ()
    all_tags: list[str] = field(default_factory=list)
    bcc: list[tuple[str, str]] = field(default_factory=list)


def _jaddr(items: list[tuple[str, str]]) -> str:
    return json.dumps([[n, a] for n, a in items], ensure_ascii=False)


_STOP = object()


class Ingester:
    """This node's ingest thread (see the module docstring)."""

    def __init__(self, db: Db, settings: Settings, stored: Callable[[], None]) -> None:
        self.db = db
        self.settings = settings
        self._stored = stored  # wakes the indexer
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="postroom-pg-ingest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Store what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(30)

    def submit(
        self,
        env: Envelope,
        raw: bytes,
        tags: tuple[str, ...] = (),
        into: tuple[str, str] | None = None,
        flags: frozenset[str] = frozenset(),
        thread_key: str = "",
    ) -> concurrent.futures.Future[tuple[str, int]]:
        """Queue a message; the future gives (message ID, UID of its first delivery)."""
        if self.db.closed or not self._thread.is_alive():
            raise StoreClosed("store is closed")
        job = _Job(env, raw, tags, into, flags, thread_key=thread_key)
        self._queue.put(job)
        return job.future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Job)
            batch, size, stop = [first], len(first.raw), False
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                assert isinstance(more, _Job)
                batch.append(more)
                size += len(more.raw)
            self._store(batch)
            if stop:
                return

    def _store(self, batch: list[_Job]) -> None:
        try:
            for j in batch:
                self._prepare(j)
            results = self.db.write(lambda conn, events: self._insert(conn, events, batch))
        except Exception as e:
            if not isinstance(e, StoreError):
                log.exception("storing %d message(s) failed", len(batch))
                e = StoreError(f"cannot store mail: {type(e).__name__}")
            for j in batch:
                if not j.future.done():
                    j.future.set_exception(e)
            return
        for j, result in zip(batch, results, strict=True):
            j.future.set_result(result)
        self._stored()

    def _prepare(self, j: _Job) -> None:
        s = self.settings
        h = j.head = scan_headers(j.raw)
        j.pid = new_id()
        if not j.env.received_at:
            j.env = dataclasses.replace(j.env, received_at=time.time())
        listed = {a.lower() for _, a in h.to} | {a.lower() for _, a in h.cc}
        j.bcc = [("", r) for r in j.env.rcpt_to if r.lower() not in listed]
        tags = list(dict.fromkeys([*h.tags, *j.tags]))
        wanted: dict[tuple[str, str], None] = {}
        if j.into is not None:
            wanted[j.into] = None
        else:
            for r in j.env.rcpt_to:
                name, tag = mailbox_for(r, s.mailbox_key, s.subaddress)
                wanted[(name, INBOX)] = None
                if tag and tag not in tags:
                    tags.append(tag)
        j.wanted, j.all_tags = tuple(wanted), tags
        f = h.from_
        j.row = (
            j.pid, j.env.received_at, h.date, h.message_id, h.subject, f[0] if f else "", f[1] if f else "",
            _jaddr(h.to), _jaddr(h.cc), _jaddr(j.bcc), _jaddr(h.reply_to), h.in_reply_to, " ".join(h.references),
            len(j.raw), j.env.auth_user or "", j.env.dumps(), header_lines(j.raw), "\\Seen" in j.flags,
            j.thread_key,
        )  # fmt: skip

    def _insert(self, conn: Conn, events: list[Event], batch: list[_Job]) -> list[tuple[str, int]]:
        mids: list[int] = []
        with conn.cursor() as cur:  # one pipelined statement for the batch, ids in order
            cur.executemany(
                "INSERT INTO message (pid, created, date, message_id, subject, from_name, from_addr, to_json, "
                "cc_json, bcc_json, reply_to_json, in_reply_to, refs, size, username, envelope, headers, read, "
                "thread_key) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                [j.row for j in batch],
                returning=True,
            )
            while True:
                got = cur.fetchone()
                assert got is not None
                mids.append(int(got[0]))
                if not cur.nextset():
                    break
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO raw (id, data) VALUES (%s, %s)",
                [(mid, compress(j.raw)) for mid, j in zip(mids, batch, strict=True)],
            )
        keys = sorted({k for j in batch for k in j.wanted})  # lock order: by name, on every node
        fids = {k: folder_id(conn, k[0], k[1], create=True) for k in keys}
        need = {k: sum(1 for j in batch if k in j.wanted) for k in keys}
        next_uid: dict[tuple[str, str], int] = {}
        modseq: dict[tuple[str, str], int] = {}
        for k in keys:
            row = conn.execute(
                "UPDATE folder SET uidnext = uidnext + %s, modseq = modseq + 1 WHERE id = %s "
                "RETURNING uidnext - %s, modseq",
                (need[k], fids[k], need[k]),
            ).fetchone()
            assert row is not None
            next_uid[k], modseq[k] = int(row[0]), int(row[1])
        deliveries, tag_rows, results = [], [], []
        for mid, j in zip(mids, batch, strict=True):
            placed = []
            flag_text, seen = " ".join(sorted(j.flags)), "\\Seen" in j.flags
            for k in j.wanted:
                uid = next_uid[k]
                next_uid[k] += 1
                deliveries.append((fids[k], uid, mid, flag_text, seen, modseq[k]))
                placed.append(Placement(k[0], k[1], uid))
            tag_rows += [(mid, tag_id(conn, t)) for t in j.all_tags]
            events.append(MessageStored(self._summary(j, placed), tuple(placed)))
            results.append((j.pid, placed[0].uid if placed else 0))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO delivery (folder_id, uid, message, flags, seen, modseq) VALUES (%s, %s, %s, %s, %s, %s)",
                deliveries,
            )
            if tag_rows:
                cur.executemany(
                    "INSERT INTO message_tag (message, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING", tag_rows
                )
        events.extend(FolderChanged(m, f, "exists") for m, f in keys)
        self._prune_count(conn, events)
        return results

    @staticmethod
    def _summary(j: _Job, placed: list[Placement]) -> Summary:
        h = j.head
        assert h is not None
        return Summary(
            id=j.pid, message_id=h.message_id, subject=h.subject, from_=Address(*h.from_) if h.from_ else None,
            to=[Address(*a) for a in h.to], cc=[Address(*a) for a in h.cc], bcc=[Address(*a) for a in j.bcc],
            reply_to=[Address(*a) for a in h.reply_to], created=j.env.received_at, date=h.date, size=len(j.raw),
            read="\\Seen" in j.flags, tags=list(j.all_tags), username=j.env.auth_user or "",
            in_reply_to=h.in_reply_to, references=h.references,
            mailboxes=list(dict.fromkeys(p.mailbox for p in placed)),
        )  # fmt: skip

    def _prune_count(self, conn: Conn, events: list[Event]) -> None:
        """--max: the oldest messages beyond it go, in this transaction, once for all nodes."""
        keep = self.settings.max
        if not keep:
            return
        span = conn.execute("SELECT max(id) - min(id) + 1 FROM message").fetchone()
        if span is None or span[0] is None or span[0] <= keep:  # ids are dense: no count needed
            return
        if conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (ADVISORY_RETENTION,)).fetchone() != (True,):
            return  # another node is pruning right now; the next batch looks again
        victims = [r[0] for r in conn.execute("SELECT id FROM message ORDER BY id DESC OFFSET %s", (keep,))]
        if victims:
            pids = delete_ids(conn, victims, events)
            events.append(MessagesPruned(tuple(pids)))
