"""The IMAP cache's on-disk side: blob formats and the thread that writes them.

What :mod:`.messages` derives from a message is kept in the store
(:meth:`~postroom.store.base.Store.imap_cache_put`) so that it survives a restart. Two
kinds of blob, both starting with :data:`FORMAT` (8 bytes):

``meta``  ENVELOPE, BODYSTRUCTURE and BODY as wire bytes and the Date: header's (y, m, d);
          what FETCH needs, kept small (a FETCH 1:* after a restart reads one per message)::

              FORMAT | <IIIHBB lengths, date (year 0: none)> | envelope | bodystructure | body

``head``  the header fields as JSON (lower-case name -> unfolded values), for SEARCH
          FROM/HEADER/SENT*, SORT and THREAD, after the message's SORT keys of the criteria
          that read header fields (:data:`HEAD_SORT`; the DATE key null when the Date:
          field does not parse), so that a SORT reads the start of each blob only
          (``imap_cache_get(..., prefix)``) and neither decodes the fields nor parses a date::

              FORMAT | <H length of the keys> | keys as utf-8 JSON list | utf-8 JSON

``text``  the search text SEARCH TEXT and BODY match (:mod:`.searchtext`), stored by the
          indexer after it indexes a new message when the server has an IMAP listener,
          else by the first SEARCH TEXT or BODY over the message; LZ4-compressed unless
          short (:data:`TEXT_PACK_MIN`)::

              FORMAT | <IB length of the header part in characters, 2 if LZ4> | utf-8 text

:data:`FORMAT` is a digest of the modules that produce the data, so a postroom whose
parsing or rendering changed never serves what an older one cached: a blob of another
format reads as a miss and is replaced when the message is next derived.

Blobs are written behind the command that derived them (:class:`WriteBehind`, one daemon
thread, batches through the store's writer), so no FETCH waits for a disk commit.

Errors: :func:`load_meta` and :func:`load_text` return None for a blob they cannot read;
store failures while writing are logged and the batch dropped (it is only a cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import lz4.block

from ... import __version__, charsets
from ...charsets import date_timestamp
from ...protocols.imap import bodystructure, encoder, fetch, mime, sort
from ...store.base import ImapStore, StoreClosed

__all__ = [
    "FORMAT",
    "HEAD",
    "HEAD_SORT",
    "META",
    "META_START",
    "TEXT",
    "MetaLayout",
    "WriteBehind",
    "dump_head",
    "dump_meta",
    "dump_text",
    "head_sort_keys",
    "load_head",
    "load_sort_keys",
    "load_text",
    "meta_layout",
]

log = logging.getLogger("postroom.imap")

META = "meta"
HEAD = "head"
TEXT = "text"
# Search text longer than this is stored LZ4-compressed (an LZ4 block). The indexer stores
# the text of every new message (it was stored only once searched, and only over 4 KB
# compressed, with zstd): uncompressed, the text of 10,000 realistic messages took 1.7x
# their raw bytes. On imap_scale_bench's texts (2.3 KB each) an LZ4 block is 0.39 of
# the text, compressed in 3.6 us and decompressed in 0.9 us (zstd: 0.26, 11 us and 3.9
# us, 0.4 s per SEARCH TEXT of 100,000 messages); shorter text is stored as it is.
TEXT_PACK_MIN = 256
# Blobs per store write (one writer transaction each; our choice).
WRITE_BATCH = 1000
# Seconds the writing thread lets blobs gather before it writes them (our choice): a few
# large transactions instead of one per FETCH of new mail, no thread woken per command
# (under imaptest's stress, waking it and the writer's commit for every new message held
# ~10% of the process's GIL time), and nothing written for a message deleted meanwhile
# (WriteBehind.forget: imaptest expunges what it APPENDed within a second).
WRITE_DELAY = 1.0
# ... unless this many bytes of blobs are waiting (our choice; header fields count as
# HEAD_GUESS bytes each) or a search text is: a SEARCH TEXT derives text a chunk at a time
# and what waits is memory the command holds (written at once, its peak stays a chunk's).
WRITE_GATHER_BYTES = 256 * 1024
HEAD_GUESS = 1024

Headers = dict[str, list[str]]  # a message's header fields by lower-case name (the ``head`` blob)


def _fingerprint() -> bytes:
    """A digest of postroom's version and of the code whose output the blobs hold (the
    search text's folding and decoding too: search.fold, charsets.decode_text and
    decode_words; search.py by its path: persist does not need it imported). Computed at
    import: ~0.2 ms for the ten files (~135 KB; ~0.17 ms for the eight before)."""
    h = hashlib.blake2b(__version__.encode(), digest_size=8)
    files = [Path(m.__file__ or m.__name__) for m in (bodystructure, charsets, encoder, fetch, mime, sort)]
    files.append(Path(mime.__file__ or "mime.py").with_name("search.py"))
    files += [Path(__file__).with_name(name) for name in ("messages.py", "searchtext.py")] + [Path(__file__)]
    for path in files:
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(path.name.encode())
    return h.digest()


FORMAT = _fingerprint()
_META_HEAD = struct.Struct("<IIIHBB")
_TEXT_HEAD = struct.Struct("<IB")
_LZ4 = 2  # the ``text`` blob's codec: an LZ4 block (with its size); 0: none
_HEAD_KEYS = struct.Struct("<H")
HEAD_START = 8 + _HEAD_KEYS.size  # where the SORT keys start in a ``head`` blob
# SORT criteria whose key depends on the header fields alone, in the order a ``head`` blob
# keeps them (ARRIVAL and SIZE come from the folder listing)
HEAD_SORT = ("DATE", "SUBJECT", "FROM", "TO", "CC", "DISPLAYFROM", "DISPLAYTO")
SortKey = str | float | None

# (end of envelope, end of bodystructure, end of body, sent date) as offsets into the blob
MetaLayout = tuple[int, int, int, tuple[int, int, int] | None]


def dump_meta(
    envelope: bytes, bodystructure: bytes, body: bytes, sent_date: tuple[int, int, int] | None
) -> bytes:
    """The ``meta`` blob."""
    y, m, d = sent_date if sent_date is not None and 0 < sent_date[0] < 65536 else (0, 0, 0)
    head = _META_HEAD.pack(len(envelope), len(bodystructure), len(body), y, m & 0xFF, d & 0xFF)
    return b"".join((FORMAT, head, envelope, bodystructure, body))


META_START = len(FORMAT) + _META_HEAD.size  # where the envelope starts in a ``meta`` blob


def meta_layout(blob: bytes) -> MetaLayout | None:
    """Where the parts of a ``meta`` blob end (the envelope starts at :data:`META_START`),
    and its date; None for another format or a damaged blob."""
    if blob[:8] != FORMAT or len(blob) < META_START:
        return None
    le, lbs, lb, y, m, d = _META_HEAD.unpack_from(blob, 8)
    a = META_START + le
    b = a + lbs
    c = b + lb
    if c != len(blob):
        return None
    return a, b, c, ((y, m, d) if y else None)


def head_sort_keys(headers: Headers) -> list[SortKey]:
    """The SORT keys of :data:`HEAD_SORT` (RFC 5256, :func:`~postroom.protocols.imap.sort.sort_key`)
    of a message with these header fields; the DATE key is None when there is no Date:
    field that parses (SORT then uses the arrival time, which is not in the headers)."""

    def header(name: str) -> str | None:
        vals = headers.get(name)
        return vals[0] if vals else None

    date = header("date")
    out: list[SortKey] = [date_timestamp(date) if date else None]
    return out + [sort.sort_key(c, header, 0, 0.0) for c in HEAD_SORT[1:]]


def dump_head(headers: Headers) -> bytes:
    """The ``head`` blob."""
    keys = _pack_keys(head_sort_keys(headers))
    body = json.dumps(headers, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"".join((FORMAT, _HEAD_KEYS.pack(len(keys)), keys, body))


def _pack_keys(keys: list[SortKey]) -> bytes:
    """The keys as UTF-8 joined by NUL (the DATE key as ``repr`` of the float, empty for
    None): a SORT splits them apart, cheaper than decoding JSON. Empty (none kept: a SORT
    computes them from the fields) when a key holds a NUL itself (an RFC 2047 word can
    decode to one) or they do not fit the length field."""
    date, rest = keys[0], keys[1:]
    if any("\0" in str(k) for k in rest):
        return b""
    data = "\0".join([repr(date) if date is not None else "", *(str(k) for k in rest)]).encode("utf-8")
    return data if len(data) <= 0xFFFF else b""


def load_head(blob: bytes) -> Headers | None:
    """The header fields of a ``head`` blob; None for another format or a damaged blob."""
    if blob[:8] != FORMAT or len(blob) < HEAD_START:
        return None
    (n,) = _HEAD_KEYS.unpack_from(blob, 8)
    try:
        out = json.loads(blob[HEAD_START + n :])
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def load_sort_keys(start: bytes) -> list[SortKey] | None:
    """The SORT keys (:data:`HEAD_SORT`) at the start of a ``head`` blob, given its first
    bytes; None for another format, a blob without them, or too few bytes to hold them."""
    if start[:8] != FORMAT or len(start) < HEAD_START:
        return None
    (n,) = _HEAD_KEYS.unpack_from(start, 8)
    if n == 0 or len(start) < HEAD_START + n:
        return None
    try:
        parts = start[HEAD_START : HEAD_START + n].decode("utf-8").split("\0")
        if len(parts) != len(HEAD_SORT):
            return None
        date: SortKey = float(parts[0]) if parts[0] else None
    except ValueError:  # (UnicodeDecodeError too)
        return None
    return [date, *parts[1:]]


def dump_text(text: str, head_chars: int) -> bytes:
    """The ``text`` blob: ``text`` is header text + "\\n" + body text; head_chars its first part."""
    data = text.encode("utf-8")
    if len(data) < TEXT_PACK_MIN:
        return FORMAT + _TEXT_HEAD.pack(head_chars, 0) + data
    packed: bytes = lz4.block.compress(data)
    return FORMAT + _TEXT_HEAD.pack(head_chars, _LZ4) + packed


def load_text(blob: bytes) -> tuple[str, str] | None:
    """(full text, body text), or None for another format or a damaged blob."""
    if blob[:8] != FORMAT or len(blob) < 8 + _TEXT_HEAD.size:
        return None
    head, packed = _TEXT_HEAD.unpack_from(blob, 8)
    data = blob[8 + _TEXT_HEAD.size :]
    try:
        if packed == _LZ4:
            data = lz4.block.decompress(data)
        elif packed:
            return None
        text = data.decode("utf-8")
    except (lz4.block.LZ4BlockError, UnicodeDecodeError):
        return None
    return text, text[head + 1 :]


class WriteBehind:
    """Collects blobs and stores them from one daemon thread, in batches, so that the
    command that derived them does not wait for a commit: what was handed over
    (:meth:`kick`) is written :data:`WRITE_DELAY` seconds later, or at once by
    :meth:`drain`. A daemon thread (not an executor) so that an unwritten batch never
    holds up the process exiting."""

    def __init__(self, store: ImapStore) -> None:
        self.store = store
        # a ``head`` blob may be added as its header fields: serialised on the writing
        # thread (a JSON dump per message was ~20% of a first FETCH ENVELOPE of new mail)
        self._pending: dict[str, dict[str, bytes | Headers]] = {}  # added, not handed over
        self._queued: dict[str, dict[str, bytes | Headers]] = {}  # handed over, by kind
        self._queued_bytes = 0  # about (see WRITE_GATHER_BYTES)
        self._cond = threading.Condition()
        self._busy = False
        self._idle = False  # the thread waits for something to write (kick wakes it)
        self._hurry = False  # a drain waits: write what is queued now
        self._thread: threading.Thread | None = None

    def add(self, kind: str, id: str, blob: bytes | Headers) -> None:
        """Keep ``blob`` for message ``id``: bytes, or for ``head`` the fields themselves
        (not changed afterwards)."""
        with self._cond:
            self._pending.setdefault(kind, {})[id] = blob

    def forget(self, ids: Iterable[str] | None) -> None:
        """Write nothing more for the deleted messages ``ids`` (for any, with None)."""
        with self._cond:
            for items in [*self._pending.values(), *self._queued.values()]:
                if ids is None:
                    items.clear()
                else:
                    for id in ids:
                        items.pop(id, None)

    def kick(self) -> None:
        """Hand what was added so far to the writing thread."""
        with self._cond:
            if not self._pending:
                return
            for kind, items in self._pending.items():
                self._queued.setdefault(kind, {}).update(items)
                self._queued_bytes += sum(
                    len(v) if isinstance(v, bytes) else HEAD_GUESS for v in items.values()
                )
            self._pending = {}
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="postroom-imap-cache", daemon=True)
                self._thread.start()
            if self._idle or self._urgent():  # else it looks at the queue later
                self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until everything kicked is written; False on timeout."""
        self.kick()
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._queued and not self._busy, timeout)
            finally:
                self._hurry = False

    def _run(self) -> None:
        while True:
            with self._cond:
                self._idle = True
                self._cond.wait_for(lambda: bool(self._queued))
                self._idle = False
                # let more gather
                self._cond.wait_for(lambda: self._hurry or self._urgent(), WRITE_DELAY)
                by_kind, self._queued, self._queued_bytes = self._queued, {}, 0
                self._busy = True
            try:
                for kind, items in by_kind.items():
                    rows = list(items.items())
                    for at in range(0, len(rows), WRITE_BATCH):
                        self._write(kind, dict(rows[at : at + WRITE_BATCH]))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _urgent(self) -> bool:
        return self._queued_bytes >= WRITE_GATHER_BYTES or TEXT in self._queued

    def _write(self, kind: str, items: dict[str, bytes | Headers]) -> None:
        if not items:
            return
        try:
            blobs = {k: v if isinstance(v, bytes) else dump_head(v) for k, v in items.items()}
            self.store.imap_cache_put(kind, blobs)
        except StoreClosed:
            pass
        except Exception:
            log.warning("imap cache: %d %s blobs not stored", len(items), kind, exc_info=True)
