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

Errors: :class:`JournalError` (an ``OSError``) when the file cannot be written.
"""

from __future__ import annotations

import marshal
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

__all__ = ["Journal", "JournalError", "Record", "read_records"]

MAGIC = b"PRJ1"
HEADER = struct.Struct(">4sII")  # magic, payload length, CRC-32
MAX_RECORD = 1 << 31  # larger than any message the SMTP limits allow
TRUNCATE_AT = 16 * 1024 * 1024  # cut the file back once it is this large and fully applied

Record = tuple[int, str, str, tuple[str, ...], bytes]  # seq, pid, envelope json, tags, raw


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
            payload = marshal.dumps((seq, pid, envelope_json, tags, raw))
            data = HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError as e:
                raise JournalError(
                    e.errno, f"cannot write the ingest journal {self.path}: {e.strerror}"
                ) from None
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


def read_records(path: str) -> Iterator[Record]:
    """Every intact record of the journal at ``path``, in order (none if it does not exist)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, size, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + size
        if magic != MAGIC or size > MAX_RECORD or end > len(data):
            return  # a torn tail: never acknowledged
        payload = data[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return
        rec: Any = marshal.loads(payload)
        yield (int(rec[0]), str(rec[1]), str(rec[2]), tuple(rec[3]), bytes(rec[4]))
        pos = end
