"""The ingest journal: where an SMTP message is committed before its 250.

Group commit through SQLite costs every message the whole batch's work (header scan,
compression, inserts, commit) plus two thread hops: ~8 ms per message with 10 sessions on
a busy 2-core machine, which caps a session at ~120 messages per second. The journal
takes that off the acknowledgement path: an append writes one record (the message's ID,
envelope, tags and bytes) to an append-only file and returns; once ``write`` has returned
the record is in the kernel's page cache and survives a crash or ``kill -9`` of postroom,
the same guarantee SQLite's WAL gives at ``synchronous=NORMAL``. The store's writer thread
then applies records to SQLite in batches and records how far it got in the same
transaction. At start, what is above that mark is applied again before any listener opens.

Two writers share one format. The main process's :class:`Journal` holds mail received by
its own SMTP sessions (the message as received) and is cut back once applied
(``meta.journal_seq`` is the highest applied sequence number). Each SMTP worker process
(servers/smtp_workers.py) writes a :class:`SegmentedJournal` of its own, with messages it
has prepared (compressed, headers scanned) so that the main process only inserts rows; the
main process reads it with a :class:`JournalTail` and records how far it has applied it
(``meta.journal_w<slot>`` = ``"gen:offset"``). A worker never truncates: past
:data:`ROTATE_AT` bytes it starts the next segment (``<base>.<gen+1>``) and ends the old one
with an end-of-segment record; the main process deletes a segment once it has applied it
to the end and committed that.

Format, version 2 (docs/architecture.md, "The ingest journal"): every file starts with a
16-byte header, ``b"\\x89PRJ\\r\\n\\x1a\\n"``, the version (2, unsigned 16-bit big-endian),
flags (0) and a 4-byte random *sync tag* chosen when the file is created. Each record is a
16-byte frame header (the sync tag, payload length, CRC-32 of the payload, CRC-32 of the
first 12 header bytes), then the payload: one kind byte, ``M`` (a message) or ``E`` (end of
segment); a message continues with a 4-byte length, that many bytes of ASCII JSON
(``seq``, ``id``, ``envelope``, ``tags``, ``codec``, ``size``, ``head``), then the message
bytes (``codec`` ``"raw"``: as received; ``"stored"``: postroom's compressed frame,
store/rawcodec.py). Nothing depends on the Python version (the previous format, ``PRJ1``
records of ``marshal`` dumps, did; :func:`scan_file` still reads it, for a journal an older
postroom left behind).

A record is whole or ignored: a frame whose header or payload CRC fails, or that ends past
the end of a file nobody writes any more, is skipped, and reading resumes at the next sync
tag whose frame checks out, so records written after a damaged one are recovered. A writer
whose ``write`` fails (ENOSPC) cuts the torn record back out before it reports the error,
so it never appends after half a record; the random sync tag means a message's bytes
cannot pass for a frame.

Errors: :class:`JournalError` (an ``OSError``) when the file cannot be written.
"""

from __future__ import annotations

import json
import logging
import marshal
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .compactjson import compact

__all__ = [
    "END_OF_SEGMENT",
    "FORMAT_VERSION",
    "EndOfSegment",
    "Journal",
    "JournalError",
    "JournalTail",
    "Record",
    "Scan",
    "SegmentedJournal",
    "encode_message",
    "keep_damaged",
    "read_journal",
    "read_records",
    "scan_file",
    "segment_path",
]

log = logging.getLogger(__name__)

FILE_MAGIC = b"\x89PRJ\r\n\x1a\n"  # PNG-style: a non-ASCII byte and line ends catch text-mode mangling
FORMAT_VERSION = 2
FILE_HEADER = struct.Struct(">8sHH4s")  # magic, version, flags, sync tag
FRAME = struct.Struct(">4sIII")  # sync tag, payload length, payload CRC-32, CRC-32 of the 12 bytes before
META_LEN = struct.Struct(">I")
KIND_MESSAGE = b"M"
KIND_END = b"E"
MAX_RECORD = 1 << 31  # larger than any message the SMTP limits allow
TRUNCATE_AT = 16 * 1024 * 1024  # cut the file back once it is this large and fully applied
ROTATE_AT = 64 * 1024 * 1024  # a worker's segment size before it starts the next one
READ_CHUNK = 8 * 1024 * 1024  # bytes of records a tail reads at once, at most (one record may be larger)
LEGACY_MAGIC = b"PRJ1"  # version 1: no file header, b"PRJ1" + length + CRC-32 + marshal payload
LEGACY_HEADER = struct.Struct(">4sII")


class JournalError(OSError):
    """The journal could not be written (disk full, file removed...)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One acknowledged message in a journal.

    ``compressed`` says whether ``body`` is the message as received (the main process) or
    postroom's stored frame (store/rawcodec.py, an SMTP worker); ``head`` is the worker's
    header scan (store/headers.summary_fields), None when the store scans it itself.
    """

    seq: int
    pid: str
    envelope_json: str
    tags: tuple[str, ...]
    body: bytes
    compressed: bool = False
    size: int = 0
    head: Any = None


class EndOfSegment:
    """The record that ends a worker's segment: the journal continues in the next one."""


END_OF_SEGMENT = EndOfSegment()


def encode_message(rec: Record) -> bytes:
    """The payload of a message record (see the module docstring for the layout)."""
    return _message_payload(
        rec.seq,
        rec.pid,
        rec.envelope_json,
        rec.tags,
        rec.compressed,
        rec.size or len(rec.body),
        rec.head,
        rec.body,
    )


# The metadata is what ``json.dumps({"seq": ..., "id": ..., ...}, separators=(",", ":"))``
# writes, byte for byte (tests/unit/test_journal_format.py checks it), put together here
# without that call's per-call encoder and dict: it runs before each SMTP worker's 250.
_JSON_STR = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _message_meta(
    seq: int, pid: str, envelope_json: str, tags: tuple[str, ...], compressed: bool, size: int, head: Any
) -> bytes:
    """The kind byte, length and JSON metadata that start a message record's payload."""
    codec = '"stored"' if compressed else '"raw"'
    meta = (
        f'{{"seq":{int(seq)},"id":{_JSON_STR(pid)},"envelope":{_JSON_STR(envelope_json)},'
        f'"tags":{compact(list(tags)) if tags else "[]"},"codec":{codec},"size":{int(size)},'
        f'"head":{compact(head)}}}'
    ).encode("ascii")
    return KIND_MESSAGE + META_LEN.pack(len(meta)) + meta


def _message_payload(
    seq: int,
    pid: str,
    envelope_json: str,
    tags: tuple[str, ...],
    compressed: bool,
    size: int,
    head: Any,
    body: bytes,
) -> bytes:
    return _message_meta(seq, pid, envelope_json, tags, compressed, size, head) + body


def _message_frame(tag: bytes, start: bytes, body: bytes) -> bytes:
    """``_frame(tag, start + body)``, with the message's bytes copied once (into the frame)."""
    size = len(start) + len(body)
    head = _FRAME_START.pack(tag, size, zlib.crc32(body, zlib.crc32(start)))
    return b"".join((head, _CRC.pack(zlib.crc32(head)), start, body))


_JSON_DECODE = json.JSONDecoder().raw_decode


def json_text(text: str) -> Any:
    """``json.loads(text)`` (ValueError for anything but one JSON value), without its two
    scans for whitespace when there is none around the value, as postroom writes the
    journal's metadata and an envelope (~0.5 µs of the writer's per message each)."""
    try:
        value, end = _JSON_DECODE(text)
    except ValueError:
        end = -1
    if end != len(text):
        return json.loads(text)  # whitespace around it, or not JSON: as json.loads says
    return value


def _decode(data: bytes, start: int = 0, end: int | None = None) -> Record | EndOfSegment:
    """The checked payload ``data[start:end]`` as a record (read in place: the message's
    bytes are the one copy made); ValueError if it is not one (a damaged file)."""
    end = len(data) if end is None else end
    kind = data[start : start + 1]
    if kind == KIND_END:
        return END_OF_SEGMENT
    if kind != KIND_MESSAGE or end - start < 1 + META_LEN.size:
        raise ValueError("unknown journal record kind")
    (n,) = META_LEN.unpack_from(data, start + 1)
    first = start + 1 + META_LEN.size
    if first + n > end:
        raise ValueError("journal metadata past its record")
    meta = json_text(data[first : first + n].decode())
    codec = meta["codec"]
    if codec not in ("raw", "stored"):
        raise ValueError(f"unknown journal codec {codec!r}")
    tags = meta["tags"]
    return Record(
        seq=int(meta["seq"]),
        pid=str(meta["id"]),
        envelope_json=str(meta["envelope"]),
        tags=tuple(map(str, tags)) if tags else (),
        body=bytes(data[first + n : end]),  # bytes of bytes: no copy
        compressed=codec == "stored",
        size=int(meta["size"]),
        head=meta["head"],
    )


_FRAME_START = struct.Struct(">4sII")  # the first 12 bytes of FRAME
_CRC = struct.Struct(">I")


def _frame(tag: bytes, payload: bytes) -> bytes:
    head = _FRAME_START.pack(tag, len(payload), zlib.crc32(payload))
    return b"".join((head, _CRC.pack(zlib.crc32(head)), payload))


def _file_header(tag: bytes) -> bytes:
    return FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, 0, tag)


def _sync_tag(header: bytes) -> bytes | None:
    """The sync tag of a version-2 file header, or None if ``header`` is not one."""
    if len(header) < FILE_HEADER.size:
        return None
    magic, version, _flags, tag = FILE_HEADER.unpack_from(header)
    if magic != FILE_MAGIC or version != FORMAT_VERSION:
        return None
    return bytes(tag)


class Scan:
    """Records in a buffer of journal bytes, skipping damaged ones.

    ``final`` says nobody writes the file any more (replay at start, a worker that exited):
    then a frame that runs past the end of the file is a torn write to skip, not a record
    still being written to wait for. ``pos`` is how far the last :meth:`records` consumed
    the buffer (records and damaged bytes); ``skipped`` counts the damaged bytes.
    """

    def __init__(self, tag: bytes, *, final: bool) -> None:
        self.tag = tag
        self.final = final
        self.pos = 0
        self.skipped = 0

    def records(self, data: bytes, pos: int, *, eof: bool) -> Iterator[tuple[Record | EndOfSegment, int]]:
        """Each whole record of ``data`` from ``pos`` with the offset just past it. ``eof``:
        the buffer reaches the end of the file. Stops at the end of the buffer, or at a
        record not completely there (written later, or read with the next buffer)."""
        view = memoryview(data)
        n = len(data)
        tag = self.tag
        torn_is_damage = self.final and eof
        self.pos = pos
        while pos + FRAME.size <= n:
            t, size, crc, head_crc = FRAME.unpack_from(view, pos)
            if t == tag and zlib.crc32(view[pos : pos + 12]) == head_crc and size <= MAX_RECORD:
                end = pos + FRAME.size + size
                if end > n and not torn_is_damage:
                    return  # being written, or past this buffer: the rest comes later
                if end <= n and zlib.crc32(view[pos + FRAME.size : end]) == crc:
                    try:
                        rec = _decode(data, pos + FRAME.size, end)
                    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                        pass  # checks out but does not decode: damaged beyond what CRC-32 sees
                    else:
                        pos = self.pos = end
                        yield rec, end
                        continue
            # damaged here: resume at the next sync tag after this byte
            nxt = data.find(tag, pos + 1)
            if nxt < 0:  # keep the last bytes: they may be the start of the next frame's tag
                nxt = n if torn_is_damage else max(pos + 1, n - len(tag) + 1)
            self.skipped += nxt - pos
            pos = self.pos = nxt
        if torn_is_damage and pos < n:  # less than a frame header of junk at the very end
            self.skipped += n - pos
            self.pos = n


def _legacy_records(data: bytes) -> Iterator[tuple[Record | EndOfSegment, int]]:
    """Records of a version-1 file (``PRJ1`` frames, ``marshal`` payloads), which postroom
    wrote before this format: read once at start so that an upgrade loses nothing. marshal
    reads the dumps of earlier Python versions; a frame that does not check out ends it."""
    pos = 0
    view = memoryview(data)
    while pos + LEGACY_HEADER.size <= len(view):
        magic, size, crc = LEGACY_HEADER.unpack_from(view, pos)
        end = pos + LEGACY_HEADER.size + size
        if magic != LEGACY_MAGIC or end > len(view):
            return
        payload = bytes(view[pos + LEGACY_HEADER.size : end])
        if zlib.crc32(payload) != crc:
            return
        t = marshal.loads(payload)
        pos = end
        if t[0] == -1:
            yield END_OF_SEGMENT, end
        elif len(t) == 5:  # the main process: (seq, pid, envelope json, tags, raw)
            yield Record(int(t[0]), str(t[1]), str(t[2]), tuple(t[3]), bytes(t[4])), end
        else:  # a worker: (seq, pid, envelope json, tags, compressed raw, size, header fields)
            yield (
                Record(int(t[0]), str(t[1]), str(t[2]), tuple(t[3]), bytes(t[4]), True, int(t[5]), t[6]),
                end,
            )


def scan_file(data: bytes, pos: int = 0) -> tuple[Iterator[tuple[Record | EndOfSegment, int]], Scan | None]:
    """Every record of a whole journal file from ``pos``, for a replay (nobody writes it).

    Returns the records with the offset past each, and the :class:`Scan` (None for a
    version-1 file or an empty one) whose ``skipped`` tells how many bytes were damaged.
    """
    if data.startswith(LEGACY_MAGIC):
        return (item for item in _legacy_records(data) if item[1] > pos), None
    tag = _sync_tag(data)
    if tag is None:
        return iter(()), None
    scan = Scan(tag, final=True)
    return scan.records(data, max(pos, FILE_HEADER.size), eof=True), scan


def read_records(path: str) -> Iterator[Record]:
    """Every whole record of the journal at ``path``, in order (none if it does not exist)."""
    records, damaged = read_journal(path)
    if damaged:
        log.warning("the ingest journal %s had %d damaged bytes, skipped", path, damaged)
    yield from records


def read_journal(path: str) -> tuple[list[Record], int]:
    """Every whole record of the journal at ``path``, in order, and how many of its bytes
    were damaged (skipped); no records if it does not exist. Logs nothing: after a replay
    the caller keeps a damaged file aside with :func:`keep_damaged`, which says so once."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    records, scan = scan_file(data)
    whole = [rec for rec, _ in records if isinstance(rec, Record)]
    return whole, scan.skipped if scan is not None else 0


def keep_damaged(path: str, damaged: int, recovered: int) -> str:
    """Rename a replayed journal file that had ``damaged`` bytes to ``<path>.damaged`` (or
    ``.damaged.N`` when that is taken), for a person to look at, rather than delete it;
    log it once. Call only once its ``recovered`` records are committed. Returns the new name."""
    kept = path + ".damaged"
    n = 1
    while os.path.exists(kept):
        n += 1
        kept = f"{path}.damaged.{n}"
    os.replace(path, kept)
    log.warning(
        "the ingest journal %s had %d damaged bytes: %d records recovered around them, the file kept as %s",
        path,
        damaged,
        recovered,
        kept,
    )
    return kept


def segment_path(base: str, gen: int) -> str:
    return f"{base}.{gen}"


class _Appender:
    """One append-only journal file: whole records only, even when ``write`` fails."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.torn = False  # a failed write left bytes that could not be cut back out yet
        tag = _sync_tag(os.pread(self.fd, FILE_HEADER.size, 0)) if self.size else None
        if tag is None:  # new, or a file of the previous format that has been replayed
            tag = os.urandom(4)
            os.ftruncate(self.fd, 0)
            self.size = 0
            self.write(_file_header(tag))
        self.tag = tag

    def write(self, data: bytes) -> None:
        """Append ``data`` whole, or leave the file as it was and raise JournalError."""
        if self.torn:
            self._cut()
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError as e:
            if len(view) < len(data):
                try:
                    self._cut()
                except OSError:
                    pass
            raise JournalError(
                e.errno, f"cannot write the ingest journal {self.path}: {e.strerror}"
            ) from None
        self.size += len(data)

    def _cut(self) -> None:
        """Take a torn record back out (truncating frees space, so it works on a full disk)."""
        self.torn = True
        try:
            os.ftruncate(self.fd, self.size)
        except OSError as e:
            raise JournalError(
                e.errno, f"cannot repair the ingest journal {self.path}: {e.strerror}"
            ) from None
        self.torn = False

    def truncate(self) -> None:
        """Empty the file, keeping its header (and sync tag)."""
        os.ftruncate(self.fd, FILE_HEADER.size)
        self.size = FILE_HEADER.size
        self.torn = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Journal:
    """The main process's journal of acknowledged-but-maybe-not-yet-applied messages."""

    def __init__(self, path: str, start_seq: int) -> None:
        self.path = path
        self._file = _Appender(path)
        self._lock = threading.Lock()
        self.seq = start_seq  # last sequence number handed out

    @property
    def size(self) -> int:
        return self._file.size

    def append(self, pid: str, envelope_json: str, tags: tuple[str, ...], raw: bytes) -> int:
        """Write one record; returns its sequence number once it is in the file.

        Raises:
            JournalError: it could not be written (nothing of it is left in the file).
        """
        with self._lock:
            seq = self.seq + 1
            start = _message_meta(seq, pid, envelope_json, tags, False, len(raw), None)
            self._file.write(_message_frame(self._file.tag, start, raw))
            self.seq = seq
            return seq

    def truncate_if_applied(self, applied_seq: int) -> bool:
        """Cut the file back to empty when every record in it has been applied."""
        with self._lock:
            if applied_seq < self.seq or self._file.size < TRUNCATE_AT:
                return False
            self._file.truncate()
            return True

    def reset(self) -> None:
        """Empty the file (after a replay has applied everything in it)."""
        with self._lock:
            self._file.truncate()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def create_segment(path: str) -> None:
    """Create an empty version-2 journal file at ``path`` (replacing one there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, _file_header(os.urandom(4)))
    finally:
        os.close(fd)


class SegmentedJournal:
    """The journal an SMTP worker process writes (one writer: no lock)."""

    def __init__(self, base: str, rotate_at: int = ROTATE_AT) -> None:
        self.base = base
        self.gen = 0
        self.seq = 0
        self.rotate_at = rotate_at
        self.path = segment_path(base, 0)
        self._file = _Appender(self.path)

    @property
    def size(self) -> int:
        return self._file.size

    def append(
        self, pid: str, envelope_json: str, tags: tuple[str, ...], zraw: bytes, size: int, head: Any
    ) -> None:
        """Write one prepared record; once this returns the message may be acknowledged.

        Raises:
            JournalError: it could not be written (nothing of it is left in the file).
        """
        if self._file.size >= self.rotate_at:
            self._rotate()
        start = _message_meta(self.seq + 1, pid, envelope_json, tags, True, size or len(zraw), head)
        self._file.write(_message_frame(self._file.tag, start, zraw))
        self.seq += 1

    def _rotate(self) -> None:
        # the next segment exists (with its header) before the old one says so: the reader
        # can always open it
        path = segment_path(self.base, self.gen + 1)
        try:
            new = _Appender(path)
        except OSError as e:
            raise JournalError(e.errno, f"cannot start the journal segment {path}: {e.strerror}") from None
        try:
            self._file.write(_frame(self._file.tag, KIND_END))
        except JournalError:
            new.close()
            os.unlink(path)
            raise
        self._file.close()
        self._file, self.path = new, path
        self.gen += 1

    def close(self) -> None:
        self._file.close()


class JournalTail:
    """The main process's reading side of one worker's :class:`SegmentedJournal`.

    :meth:`read` is called by the store's writer thread only; :meth:`mark` by any thread
    (readers waiting for their writes). ``applied`` is set by the writer after each commit.
    """

    def __init__(self, base: str, slot: int) -> None:
        self.base = base
        self.slot = slot
        self.gen = 0
        self.pos = FILE_HEADER.size  # read up to here (maybe not committed yet)
        self.applied = (0, FILE_HEADER.size)  # (gen, offset) committed to SQLite
        self.finished: list[str] = []  # segments read to their end, to delete after the commit
        # Notes from the worker (servers/smtp_workers.py): set by whoever delivers them.
        self.arm: Callable[[], None] | None = None  # ask the worker for a note when it writes
        self.refuse: Callable[[bool], None] | None = None  # tell the worker to refuse mail (451) or not
        self.armed = False
        self.gone = False  # the worker has exited (set before the store is poked a last time)
        self.drained = False  # read to the end after the worker exited: a torn rest never completes
        self.last_read_bytes = 0  # bytes of records the last read() returned
        self._lock = threading.Lock()
        self._fd = -1
        self._scan = Scan(b"", final=False)
        self._open(0)

    def _open(self, gen: int) -> None:
        fd = os.open(segment_path(self.base, gen), os.O_RDONLY)
        tag = _sync_tag(os.pread(fd, FILE_HEADER.size, 0))
        if tag is None:
            os.close(fd)
            raise JournalError(0, f"{segment_path(self.base, gen)} is not a version-2 journal")
        with self._lock:
            old, self._fd = self._fd, fd
        self._scan = Scan(tag, final=False)
        if old >= 0:
            os.close(old)

    def read(self, limit: int, max_bytes: int = READ_CHUNK) -> list[Record]:
        """Up to ``limit`` new records, stopping once they take ``max_bytes`` (but at least one
        record): a batch of large messages stays small in memory. Segment markers are
        followed, not returned; damaged bytes are skipped."""
        out: list[Record] = []
        taken = 0
        while len(out) < limit and taken < max_bytes:
            scan = self._scan
            scan.final = self.gone
            size = os.fstat(self._fd).st_size
            if size <= self.pos:
                break
            start = self.pos
            data = os.pread(self._fd, min(size - start, max(max_bytes - taken, FRAME.size)), start)
            if len(data) >= FRAME.size:
                need = FRAME.size + FRAME.unpack_from(data)[1]
                if len(data) < need <= size - start:  # one record larger than the chunk
                    data = os.pread(self._fd, need, start)
            switched = False
            for rec, _end in scan.records(data, 0, eof=start + len(data) >= size):
                if rec is END_OF_SEGMENT:
                    taken += scan.pos
                    self._next_segment()
                    switched = True
                    break
                assert isinstance(rec, Record)
                out.append(rec)
                if len(out) >= limit or taken + scan.pos >= max_bytes:
                    break
            if scan.skipped:
                log.warning("SMTP worker %d's journal: %d damaged bytes skipped", self.slot, scan.skipped)
                scan.skipped = 0
            if switched:
                continue
            with self._lock:
                self.pos = start + scan.pos
            taken += scan.pos
            if scan.pos == 0:
                break  # an incomplete record: the worker is writing it
        self.last_read_bytes = taken
        return out

    def _next_segment(self) -> None:
        done = segment_path(self.base, self.gen)
        self._open(self.gen + 1)
        with self._lock:
            self.finished.append(done)
            self.gen += 1
            self.pos = FILE_HEADER.size

    @property
    def location(self) -> str:
        """Where the worker writes (store/ingest.WorkerFeed)."""
        return self.base

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
