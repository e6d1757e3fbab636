"""The ingest journal: where an SMTP message is committed before its 250.

Group commit through SQLite costs every message the whole batch's work (header scan,
compression, inserts, commit) plus two thread hops: ~8 ms per message with 10 sessions on
a busy 2-core machine, which caps a session at ~120 messages per second. The journal
takes that off the acknowledgement path: :meth:`Journal.append` writes one record (the
message's ID, envelope, tags and bytes) to an append-only file with a single ``write``
and returns; once ``write`` has returned the record is in the kernel's page cache and
survives a crash or ``kill -9`` of postroom, the same guarantee SQLite's WAL gives at
``synchronous=NORMAL``. The store's writer thread then applies records to SQLite in
batches and records the highest applied sequence number in the same transaction
(``meta.journal_seq``). At start, records above it are applied again before any listener
opens (:func:`read_records`); when everything appended has been applied the file is cut
back to empty.

Record layout: ``b"PRJ1"``, 4-byte big-endian payload length, 4-byte CRC-32 of the payload,
then the payload, a ``marshal`` dump of ``(seq, pid, envelope_json, tags, raw)``. A record
whose length or CRC does not check out ends the replay: it can only be a torn write that
was never acknowledged.

SMTP worker processes (servers/smtp_workers.py) each write a journal of their own, a
:class:`SegmentedJournal`: the same framing, records ``(seq, pid, envelope_json, tags,
compressed_raw, size, header_fields)`` prepared by the worker (compressed, headers
scanned) so that the main process only inserts rows. The worker owns the file; the main
process reads it with a :class:`JournalTail` and records how far it has applied it
(``meta.journal_w<slot>`` = ``"gen:offset"``) in the same transaction as the rows. A
worker never truncates: past :data:`ROTATE_AT` bytes it starts the next segment
(``<base>.<gen+1>``) and ends the old one with a one-field record ``(-1,)``; the main
process deletes a segment once it has applied it to the end.

Errors: :class:`JournalError` (an ``OSError``) when the file cannot be written.
"""

from __future__ import annotations

import marshal
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "Journal",
    "JournalError",
    "JournalTail",
    "Record",
    "SegmentedJournal",
    "parse_records",
    "read_records",
    "segment_path",
]

MAGIC = b"PRJ1"
HEADER = struct.Struct(">4sII")  # magic, payload length, CRC-32
MAX_RECORD = 1 << 31  # larger than any message the SMTP limits allow
TRUNCATE_AT = 16 * 1024 * 1024  # cut the file back once it is this large and fully applied
ROTATE_AT = 64 * 1024 * 1024  # a worker's segment size before it starts the next one
READ_CHUNK = 8 * 1024 * 1024  # bytes of records a tail reads at once, at most (one record may be larger)
END_OF_SEGMENT = (-1,)

# (seq, pid, envelope json, tags, raw) from the main process's journal;
# (seq, pid, envelope json, tags, compressed raw, size, header fields) from a worker's;
# (-1,): the segment continues in the next one.
Record = tuple[Any, ...]


def _frame(payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _write_all(fd: int, data: bytes, path: str) -> None:
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as e:
        raise JournalError(e.errno, f"cannot write the ingest journal {path}: {e.strerror}") from None


class JournalError(OSError):
    """The journal could not be written (disk full, file removed...)."""


class Journal:
    """Append-only file of acknowledged-but-maybe-not-yet-applied messages."""

    def __init__(self, path: str, start_seq: int) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        self.seq = start_seq  # last sequence number handed out
        self.size = os.fstat(self._fd).st_size

    def append(self, pid: str, envelope_json: str, tags: tuple[str, ...], raw: bytes) -> int:
        """Write one record; returns its sequence number once it is in the file."""
        with self._lock:
            self.seq += 1
            seq = self.seq
            data = _frame(marshal.dumps((seq, pid, envelope_json, tags, raw)))
            _write_all(self._fd, data, self.path)
            self.size += len(data)
            return seq

    def truncate_if_applied(self, applied_seq: int) -> bool:
        """Cut the file back to empty when every record in it has been applied."""
        with self._lock:
            if applied_seq < self.seq or self.size < TRUNCATE_AT:
                return False
            os.ftruncate(self._fd, 0)
            self.size = 0
            return True

    def reset(self) -> None:
        """Empty the file (after a replay has applied everything in it)."""
        with self._lock:
            os.ftruncate(self._fd, 0)
            self.size = 0

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def parse_records(data: bytes | memoryview, pos: int = 0) -> Iterator[tuple[Record, int]]:
    """Each intact record in ``data`` from ``pos``, with the offset just past it.

    Stops at the first incomplete or damaged record (a write in progress, or a torn tail).
    """
    view = memoryview(data)
    end_of_data = len(view)
    while pos + HEADER.size <= end_of_data:
        magic, size, crc = HEADER.unpack_from(view, pos)
        end = pos + HEADER.size + size
        if magic != MAGIC or size > MAX_RECORD or end > end_of_data:
            return
        payload = view[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return
        yield marshal.loads(payload), end
        pos = end


def read_records(path: str) -> Iterator[Record]:
    """Every intact record of the journal at ``path``, in order (none if it does not exist)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    for rec, _ in parse_records(data):
        yield tuple(rec)


def segment_path(base: str, gen: int) -> str:
    return f"{base}.{gen}"


class SegmentedJournal:
    """The journal an SMTP worker process writes (one writer: no lock)."""

    def __init__(self, base: str, rotate_at: int = ROTATE_AT) -> None:
        self.base = base
        self.gen = 0
        self.seq = 0
        self.rotate_at = rotate_at
        self.path = segment_path(base, 0)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self._fd).st_size

    def append(
        self, pid: str, envelope_json: str, tags: tuple[str, ...], zraw: bytes, size: int, head: Any
    ) -> None:
        """Write one prepared record; once this returns the message may be acknowledged."""
        if self.size >= self.rotate_at:
            self._rotate()
        self.seq += 1
        data = _frame(marshal.dumps((self.seq, pid, envelope_json, tags, zraw, size, head)))
        _write_all(self._fd, data, self.path)
        self.size += len(data)

    def _rotate(self) -> None:
        # the next segment exists before the old one says so: the reader can always open it
        path = segment_path(self.base, self.gen + 1)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise JournalError(e.errno, f"cannot start the journal segment {path}: {e.strerror}") from None
        _write_all(self._fd, _frame(marshal.dumps(END_OF_SEGMENT)), self.path)
        os.close(self._fd)
        self._fd, self.path, self.size = fd, path, 0
        self.gen += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class JournalTail:
    """The main process's reading side of one worker's :class:`SegmentedJournal`.

    :meth:`read` is called by the store's writer thread only; :meth:`mark` by any thread
    (readers waiting for their writes). ``applied`` is set by the writer after each commit.
    """

    def __init__(self, base: str, slot: int) -> None:
        self.base = base
        self.slot = slot
        self.gen = 0
        self.pos = 0  # read up to here (maybe not committed yet)
        self.applied = (0, 0)  # (gen, offset) committed to SQLite
        self.finished: list[str] = []  # segments read to their end, to delete after the commit
        # Notes from the worker (servers/smtp_workers.py): set by whoever delivers them.
        self.arm: Callable[[], None] | None = None  # ask the worker for a note when it writes
        self.refuse: Callable[[], None] | None = None  # tell the worker to refuse mail (451)
        self.armed = False
        self.gone = False  # the worker has exited (set before the store is poked a last time)
        self.drained = False  # read to the end after the worker exited: a torn rest never completes
        self.last_read_bytes = 0  # bytes of records the last read() returned
        self._lock = threading.Lock()
        self._fd = os.open(segment_path(base, 0), os.O_RDONLY)

    def read(self, limit: int, max_bytes: int = READ_CHUNK) -> list[Record]:
        """Up to ``limit`` new records, stopping once they take ``max_bytes`` (but at least one
        record): a batch of large messages stays small in memory. Segment markers are
        followed, not returned."""
        out: list[Record] = []
        taken = 0
        while len(out) < limit and taken < max_bytes:
            size = os.fstat(self._fd).st_size
            if size <= self.pos:
                break
            start = self.pos
            data = os.pread(self._fd, min(size - start, max(max_bytes - taken, HEADER.size)), start)
            if len(data) >= HEADER.size:
                need = HEADER.size + HEADER.unpack_from(data)[1]
                if len(data) < need <= size - start:  # one record larger than the chunk
                    data = os.pread(self._fd, need, start)
            progressed = switched = False
            for rec, end in parse_records(data):
                progressed = True
                taken += start + end - self.pos
                self.pos = start + end
                if rec[0] == -1:
                    self._next_segment()
                    switched = True
                    break
                out.append(rec)
                if len(out) >= limit or taken >= max_bytes:
                    break
            if not progressed and not switched:
                break  # an incomplete record: the worker is writing it
        self.last_read_bytes = taken
        return out

    def _next_segment(self) -> None:
        fd = os.open(segment_path(self.base, self.gen + 1), os.O_RDONLY)
        with self._lock:
            old = self._fd
            self._fd = fd
            self.finished.append(segment_path(self.base, self.gen))
            self.gen += 1
            self.pos = 0
        os.close(old)

    @property
    def position(self) -> tuple[int, int]:
        return (self.gen, self.pos)

    def mark(self) -> tuple[int, int]:
        """Where the worker has written up to now: once ``applied`` reaches it, a reader sees
        every message the worker has acknowledged so far."""
        with self._lock:
            if self._fd < 0:
                return self.applied
            if self.drained:  # nothing more will come: a half-written record is not waited for
                return (self.gen, self.pos)
            gen, size = self.gen, os.fstat(self._fd).st_size
        while True:  # the worker may have moved on to later segments
            try:
                size = os.stat(segment_path(self.base, gen + 1)).st_size
            except FileNotFoundError:
                return (gen, size)
            gen += 1

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
