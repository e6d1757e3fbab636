"""Message data for FETCH, SEARCH and SORT, cached across sessions and restarts.

Messages are immutable once stored, so what we derive from their bytes (ENVELOPE,
BODYSTRUCTURE, decoded header fields and search text) is cached by message ID and shared
by every session, at two levels:

* memory: two bounded LRUs, raw bytes by total size and derived data by count;
* the store (:mod:`.persist`): derived data written behind the command that computed it,
  read back in batches, so the first FETCH 1:* or SEARCH after a restart reads rows
  instead of parsing every message again.

``peek_*`` methods look at memory only and may run on the event loop; the others may read
the store and block, so call them from worker threads (but :meth:`MessageCache.raw_stored`,
one indexed read, for a single small message).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice

from ...charsets import date_fields, decode_words
from ...events import Event, MessagesDeleted, MessagesPruned, StoreTruncated
from ...protocols.imap import bodystructure as bs
from ...protocols.imap import mime
from ...protocols.imap.encoder import encode
from ...protocols.imap.sort import sort_key
from ...store.base import Entry, ImapStore
from .expiry import Expiry
from .gmail import GmIds, deadline, prefetch_gm, prefetch_labels
from .persist import (
    HEAD,
    HEAD_SORT,
    META,
    META_START,
    TEXT,
    MetaLayout,
    WriteBehind,
    dump_head,
    dump_meta,
    dump_text,
    load_head,
    load_sort_keys,
    load_text,
    meta_layout,
)
from .persist import SortKey as PersistedKey
from .searchtext import body_text, header_fields, search_text
from .sortorder import SortOrders

__all__ = [
    "Derived",
    "MessageCache",
    "MessageView",
    "body_text",
    "header_fields",
    "index_blobs",
    "prefetch",
]

# Raw bytes kept in memory for repeated FETCH BODY[...] of the same messages (our choice).
RAW_CACHE_BYTES = 64 * 1024 * 1024
# new messages to derive are read RAW_GROUP at a time, those of at most RAW_GROUP_MAX bytes
# (a read of at most 16 MB); a larger one is read on its own
RAW_GROUP = 64
RAW_GROUP_MAX = 256 * 1024
# Derived entries (envelope, structure, header fields; text only when searched).
DERIVED_CACHE_ITEMS = 50_000
# Part trees kept with their bytes (our choice: a tree takes about as much as its message).
PARTS_KEPT = 2000
# Seconds a deleted message stays in memory (ours): sessions not told of its EXPUNGE yet read it.
DELETED_GRACE = 5.0
# Search text kept in memory, in bytes of the strings over all messages (our choice; what
# does not fit is read back from the store's cache at the next search, ~20 ms per 1,000
# messages). It was 64M characters, counted as characters: with the body text a copy of
# the full text's tail and non-ASCII text taking 2-4 bytes a character, that let a SEARCH
# TEXT over a large mailbox keep 150-250 MB (issue 19). The body is not kept apart (_Kept).
TEXT_CACHE_BYTES = 24 * 1024 * 1024
# SORT keys kept in memory, over all criteria (our choice: a date or a base subject per
# message, ~100 bytes each, so ~20 MB at the bound). Messages never change, so a key
# computed once holds for good; without these a SORT of a mailbox larger than the derived
# cache read and decoded the header fields of every message again.
SORT_KEY_ITEMS = 200_000
# Messages whose header fields a SORT holds at once while computing keys (our choice, as
# SEARCH's chunk: the fields of 1,000 messages are a few MB).
SORT_KEY_CHUNK = 1000
# Bytes read of a ``head`` row for its SORT keys (our choice: ~250 for a 100-character subject).
SORT_PREFIX = 512
# X-GM-MSGIDs kept in memory (our choice: ~120 bytes each, so ~12 MB at the bound). A
# message's id never changes, and imapflow asks for it in every FETCH once the server has
# X-GM-EXT-1: kept, a FETCH of one message is rendered on the event loop as without it.
MSGID_ITEMS = 100_000
# Criteria whose key comes from the listing alone (nothing to remember).
_LISTING_KEYS = frozenset({"ARRIVAL", "SIZE"})
SortKey = str | float | int

Text = tuple[str, str]  # (header + "\n" + body text, body text), case-folded
# What the text cache keeps of a Text: the full text and where its body starts (the body
# is sliced off when asked for, not kept twice).
_Kept = tuple[str, int]


class Derived:
    """ENVELOPE, BODYSTRUCTURE and BODY of a message as wire bytes, its Date: header as
    (y, m, d), and its header fields once something asked for them.

    The three wire values are slices of one ``meta`` blob (:mod:`.persist`), the form the
    store keeps: a FETCH 1:* after a restart then holds one object per message, not four.
    """

    __slots__ = ("_a", "_b", "_blob", "_c", "headers", "sent_date")

    def __init__(self, blob: bytes, layout: MetaLayout, headers: dict[str, list[str]] | None = None) -> None:
        self._blob = blob
        self._a, self._b, self._c, self.sent_date = layout
        self.headers = headers  # None until loaded (FETCH never needs them)

    @classmethod
    def load(cls, blob: bytes) -> Derived | None:
        """From a stored ``meta`` blob; None if it is of another format."""
        layout = meta_layout(blob)
        return None if layout is None else cls(blob, layout)

    @property
    def blob(self) -> bytes:
        return self._blob

    @property
    def envelope(self) -> bytes:
        return self._blob[META_START : self._a]

    @property
    def bodystructure(self) -> bytes:
        return self._blob[self._a : self._b]

    @property
    def body(self) -> bytes:
        return self._blob[self._b : self._c]


class MessageCache:
    """The shared cache (see the module docstring). Thread-safe."""

    def __init__(
        self, store: ImapStore, raw_budget: int = RAW_CACHE_BYTES, max_derived: int = DERIVED_CACHE_ITEMS
    ) -> None:
        self.store = store
        self.raw_budget = raw_budget
        self.max_derived = max_derived
        self._raws: OrderedDict[str, bytes] = OrderedDict()
        self._raw_size = 0
        # the part tree of a kept message (offsets into its bytes, so little besides them):
        # ten sessions FETCHing sections of the same new mail parse it once, not ten times
        self._parts: dict[str, mime.Part] = {}
        self._derived: OrderedDict[str, Derived] = OrderedDict()
        self._texts: OrderedDict[str, _Kept] = OrderedDict()
        self._text_bytes = 0
        self._sort_keys: dict[str, dict[str, SortKey]] = {}  # criterion -> message ID -> key
        self._sort_key_count = 0
        self.orders = SortOrders()  # whole folders' SORT orders (.sortorder)
        self._msgids: dict[str, int] = {}  # public ID -> X-GM-MSGID (servers/imap/gmail.py)
        self.dying = Expiry(self.forget, DELETED_GRACE)  # deleted: forgotten after a grace
        self._lock = threading.Lock()
        self.writes = WriteBehind(store)

    # -- memory only (no I/O: safe on the event loop) -------------------------------------------
    def peek_raw(self, id: str) -> bytes | None:
        with self._lock:
            data = self._raws.get(id)
            if data is not None:
                self._raws.move_to_end(id)
            return data

    def peek_derived(self, id: str) -> Derived | None:
        with self._lock:
            d = self._derived.get(id)
            if d is not None:
                self._derived.move_to_end(id)
            return d

    def peek_msgid(self, id: str) -> int | None:
        return self._msgids.get(id)

    def on_event(self, event: Event) -> None:
        """Bus subscriber: :meth:`forget` deleted messages DELETED_GRACE seconds later (.expiry)."""
        if isinstance(event, MessagesDeleted | MessagesPruned):
            self.writes.forget(event.ids)  # the store would skip them anyway
            self.dying.add(event.ids)
        elif isinstance(event, StoreTruncated):
            self.forget(None)

    def forget(self, ids: Iterable[str] | None) -> None:
        """Drop what memory holds of the deleted messages ``ids`` (of every one with None)."""
        with self._lock:
            if ids is None:
                self._raws.clear()
                self._raw_size = self._text_bytes = self._sort_key_count = 0
                for kept in (self._parts, self._derived, self._texts, self._sort_keys, self._msgids):
                    kept.clear()
            else:
                for id in ids:
                    self._raw_size -= len(self._raws.pop(id, b""))
                    self._parts.pop(id, None)
                    self._derived.pop(id, None)
                    text = self._texts.pop(id, None)
                    self._text_bytes -= 0 if text is None else _size(text)
                    self._sort_key_count -= sum(m.pop(id, None) is not None for m in self._sort_keys.values())
                    self._msgids.pop(id, None)
        self.writes.forget(ids)

    def keep_msgids(self, ids: dict[str, int]) -> None:
        """Remember X-GM-MSGIDs; past :data:`MSGID_ITEMS` the oldest quarter goes."""
        if not ids:
            return
        with self._lock:
            self._msgids.update(ids)
            if len(self._msgids) > MSGID_ITEMS:
                for old in list(islice(self._msgids, len(self._msgids) - MSGID_ITEMS * 3 // 4)):
                    del self._msgids[old]

    # -- may read the store ---------------------------------------------------------------------
    def raw(self, id: str, keep: bool = True) -> bytes | None:
        """The message's bytes; kept in memory for the next FETCH unless not ``keep`` (a
        search reads every message once: it must not push out what FETCH reads again)."""
        data = self.peek_raw(id)
        if data is not None:
            return data
        data = self.store.get_raw(id)
        return self._keep(id, data) if keep else data

    def keep_raw(self, id: str, data: bytes) -> None:
        """Remember the bytes of message ``id`` (as stored) for the next FETCH."""
        self._keep(id, data)

    def raw_stored(self, id: str) -> bytes | None:
        """:meth:`raw` of a message listed in a folder: one indexed read and no waiting, so a
        single small message may be read on the event loop (a thread hop costs more)."""
        data = self.peek_raw(id)
        if data is not None:
            return data
        return self._keep(id, self.store.get_raw_stored(id))

    def _keep(self, id: str, data: bytes | None) -> bytes | None:
        if data is None:
            return None
        if len(data) <= self.raw_budget // 8:
            with self._lock:
                if id not in self._raws:
                    self._raws[id] = data
                    self._raw_size += len(data)
                    while self._raw_size > self.raw_budget and self._raws:
                        gone, old = self._raws.popitem(last=False)
                        self._raw_size -= len(old)
                        self._parts.pop(gone, None)
        return data

    def part(self, id: str, keep: bool = True) -> mime.Part | None:
        data = self.raw(id, keep)
        return None if data is None else self.parsed(id, data)

    def parsed(self, id: str, data: bytes) -> mime.Part:
        """The part tree of message ``id`` whose bytes are ``data``: parsed once while the
        bytes are kept in memory (a tree is only read once built)."""
        with self._lock:
            part = self._parts.get(id)
            kept = self._raws.get(id) is data
        if part is not None and part.raw is data:
            return part
        part = mime.parse(data)
        if kept:
            with self._lock:
                if self._raws.get(id) is data:  # not pushed out meanwhile
                    self._parts[id] = part
                    if len(self._parts) > PARTS_KEPT:  # the oldest tree goes
                        del self._parts[next(iter(self._parts))]
        return part

    def derived(self, id: str) -> Derived | None:
        d = self.peek_derived(id)
        return d if d is not None else self.derived_many([id]).get(id)

    def derived_many(self, ids: Iterable[str]) -> dict[str, Derived]:
        """Derived data of each of ``ids`` that still exists: memory, then one batch read
        of the store's cache, then parsing (what was parsed is written behind)."""
        out: dict[str, Derived] = {}
        missing: list[str] = []
        with self._lock:
            for id in ids:
                d = self._derived.get(id)
                if d is None:
                    missing.append(id)
                else:
                    self._derived.move_to_end(id)
                    out[id] = d
        if not missing:
            return out
        blobs = self.store.imap_cache_get(META, missing)
        loaded = {id: Derived.load(blob) for id, blob in blobs.items()}
        # the bytes of what must be parsed: small ones a group per read, not one read each
        need = [id for id in missing if loaded.get(id) is None and self.peek_raw(id) is None]
        place = {id: i for i, id in enumerate(need)}
        group: dict[str, bytes] = {}
        fresh: list[tuple[str, Derived]] = []
        for id in missing:
            d = loaded.get(id)
            if d is None:
                i = place.get(id)
                if i is not None and i % RAW_GROUP == 0 and len(need) > 1:
                    group = self.store.get_raws(need[i : i + RAW_GROUP], RAW_GROUP_MAX)
                raw = group.pop(id, None)
                if raw is not None:
                    self._keep(id, raw)
                    part: mime.Part | None = self.parsed(id, raw)
                else:  # a large one (or one gone meanwhile): read on its own
                    part = self.part(id)
                if part is None:
                    continue  # deleted meanwhile
                d = derive(part)
                assert d.headers is not None
                self.writes.add(META, id, d.blob)
                self.writes.add(HEAD, id, d.headers)
            out[id] = d
            fresh.append((id, d))
        self.writes.kick()
        with self._lock:
            for id, d in fresh:
                self._derived.setdefault(id, d)
            while len(self._derived) > self.max_derived:
                self._derived.popitem(last=False)
        return out

    def derive_kept(self, id: str, data: bytes) -> Derived:
        """Derived data of message ``id`` from its bytes ``data`` (in memory), parsed here:
        for the event loop, a small message at a time (see INLINE_DERIVE in selected.py).
        Kept and written behind as :meth:`derived_many` does."""
        d = derive(self.parsed(id, data))
        assert d.headers is not None
        self.writes.add(META, id, d.blob)
        self.writes.add(HEAD, id, d.headers)
        self.writes.kick()
        with self._lock:
            d = self._derived.setdefault(id, d)
            while len(self._derived) > self.max_derived:
                self._derived.popitem(last=False)
        return d

    def text(self, id: str) -> Text:
        """The search text of a message (empty for a deleted one)."""
        with self._lock:
            k = self._texts.get(id)
            if k is not None:
                self._texts.move_to_end(id)
                return k[0], k[0][k[1] :]
        return self.texts_many([id]).get(id, ("", ""))

    def texts_many(
        self, ids: Iterable[str], excludes: Callable[[bytes], bool] | None = None
    ) -> dict[str, Text]:
        """Search text of each of ``ids`` that still exists: memory, then one batch read of
        the store's cache, then decoding the message. Nothing but the text is kept from
        that decoding (not its bytes, MIME tree or header fields). A message whose bytes
        ``excludes`` rules out (:func:`~postroom.protocols.imap.prefilter.raw_excludes`) is
        left out instead of decoded: the search cannot match it."""
        out: dict[str, Text] = {}
        missing: list[str] = []
        with self._lock:
            for id in ids:
                k = self._texts.get(id)
                if k is None:
                    missing.append(id)
                else:
                    self._texts.move_to_end(id)
                    out[id] = (k[0], k[0][k[1] :])
        if not missing:
            return out
        blobs = self.store.imap_cache_get(TEXT, missing)
        todo: list[str] = []
        for id in missing:
            blob = blobs.get(id)
            loaded = load_text(blob) if blob is not None else None
            if loaded is None:
                todo.append(id)
            else:
                out[id] = loaded
        group: dict[str, bytes] = {}
        for i, id in enumerate(todo):
            if i % RAW_GROUP == 0 and len(todo) - i > 1:
                # RAW_GROUP messages per read of the store, not one (a first SEARCH TEXT
                # reads every message); those not in memory, of at most RAW_GROUP_MAX bytes
                ahead = [x for x in todo[i : i + RAW_GROUP] if self.peek_raw(x) is None]
                group = self.store.get_raws(ahead, RAW_GROUP_MAX) if ahead else {}
            raw = group.pop(id, None)
            if raw is None:
                raw = self.raw(id, keep=False)
            if raw is None:
                continue  # deleted meanwhile
            if excludes is not None and excludes(raw):
                continue
            text, head = search_text(self.parsed(id, raw))
            out[id] = (text, text[head + 1 :])
            self.writes.add(TEXT, id, dump_text(text, head))
        self.writes.kick()
        with self._lock:
            for id in missing:
                t = out.get(id)
                if t is not None and id not in self._texts:
                    k = self._texts[id] = (t[0], len(t[0]) - len(t[1]))
                    self._text_bytes += _size(k)
            while self._text_bytes > TEXT_CACHE_BYTES and self._texts:
                _, old = self._texts.popitem(last=False)
                self._text_bytes -= _size(old)
        return out

    def sort_keys(
        self, criterion: str, entries: list[Entry], folder: tuple[str, str, int] | None = None
    ) -> list[SortKey]:
        """The SORT key of ``criterion`` (RFC 5256) for each of ``entries`` (of ``folder``:
        mailbox, name, UIDVALIDITY), in order: from memory, else the keys stored at the
        start of the ``head`` rows (only those bytes are read; by UID range when the chunk's
        UIDs are dense), else computed from the header fields (a ``head`` row of an older
        format, a message not derived yet); a chunk at a time, let go of once its keys are
        taken: never the ENVELOPE and BODYSTRUCTURE rows, nor the derived cache (FETCH's)."""
        if criterion in _LISTING_KEYS:
            return [sort_key(criterion, _no_header, e.size, e.internaldate) for e in entries]
        with self._lock:
            memo = self._sort_keys.setdefault(criterion, {})
            got = [memo.get(e.id) for e in entries]
        todo = [i for i, k in enumerate(got) if k is None]
        out: list[SortKey] = got  # type: ignore[assignment]  # (the None entries are filled below)
        for start in range(0, len(todo), SORT_KEY_CHUNK):
            chunk = todo[start : start + SORT_KEY_CHUNK]
            stored = self._stored_sort_keys([entries[i] for i in chunk], HEAD_SORT.index(criterion), folder)
            heads = self.heads([entries[i].id for i in chunk if entries[i].id not in stored])
            for i in chunk:
                e = entries[i]
                if e.id in stored:
                    k = stored[e.id]
                    out[i] = e.internaldate if k is None else k  # (only DATE's is ever None)
                    continue
                header = partial(_first, heads.get(e.id, {}))
                out[i] = sort_key(criterion, header, e.size, e.internaldate)
        if not todo:
            return out
        with self._lock:
            memo = self._sort_keys.setdefault(criterion, {})
            for i in todo:
                id = entries[i].id
                if id not in memo:
                    memo[id] = out[i]
                    self._sort_key_count += 1
            while self._sort_key_count > SORT_KEY_ITEMS:  # drop the oldest keys first
                crit = max(self._sort_keys, key=lambda c: len(self._sort_keys[c]))
                keys = self._sort_keys[crit]
                for old in list(keys)[: max(1, self._sort_key_count - SORT_KEY_ITEMS)]:
                    del keys[old]
                    self._sort_key_count -= 1
        return out

    def _stored_sort_keys(
        self, chunk: list[Entry], at: int, folder: tuple[str, str, int] | None
    ) -> dict[str, PersistedKey]:
        """Key ``at`` of :data:`HEAD_SORT` of each of ``chunk`` whose ``head`` row starts with
        its keys: by UID range (3-6x faster than by ID) when the chunk is dense."""
        got: dict[str, bytes] | None = None
        lo, hi = min(e.uid for e in chunk), max(e.uid for e in chunk)
        if folder is not None and hi - lo < 2 * len(chunk):
            by_uid = self.store.imap_cache_range(HEAD, *folder, (lo, hi), SORT_PREFIX)
            if by_uid is not None:  # (else the folder has another UIDVALIDITY now)
                got = {e.id: by_uid[e.uid] for e in chunk if e.uid in by_uid}
        if got is None:
            got = self.store.imap_cache_get(HEAD, [e.id for e in chunk], SORT_PREFIX)
        out: dict[str, PersistedKey] = {}
        for id, start in got.items():
            keys = load_sort_keys(start)
            if keys is not None:
                out[id] = keys[at]
        return out

    def heads(self, ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """The header fields of each of ``ids`` that still exists: a derived entry in
        memory that has them, else the store's ``head`` row, else parsing (written behind)."""
        out: dict[str, dict[str, list[str]]] = {}
        with self._lock:
            for id in ids:
                d = self._derived.get(id)
                if d is not None and d.headers is not None:
                    out[id] = d.headers
        rest = [id for id in ids if id not in out]
        if not rest:
            return out
        blobs = self.store.imap_cache_get(HEAD, rest)
        for id in rest:
            blob = blobs.get(id)
            headers = load_head(blob) if blob is not None else None
            if headers is None:
                part = self.part(id, keep=False)
                if part is None:
                    continue  # deleted meanwhile
                headers = header_fields(part)
                self.writes.add(HEAD, id, headers)  # serialised on the write-behind thread
            out[id] = headers
        self.writes.kick()
        return out


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    vals = fields.get(name)
    return vals[0] if vals else None


def _no_header(name: str) -> str | None:
    return None


def _size(k: _Kept) -> int:
    """Bytes a cached text takes (as CPython stores the string)."""
    return sys.getsizeof(k[0])


def sent_of(headers: dict[str, list[str]]) -> tuple[int, int, int] | None:
    """The (y, m, d) of the first Date: field, as the ``meta`` blob keeps it (a year it
    cannot hold reads as no date): SENTON and friends compare it."""
    date = headers.get("date")
    t = date_fields(date[0]) if date else None
    return (t[0], t[1], t[2]) if t is not None and 0 < t[0] < 65536 else None


def derive(part: mime.Part) -> Derived:
    """Parse what FETCH/SEARCH/SORT need out of a message's MIME tree."""
    headers = header_fields(part)
    sent = sent_of(headers)
    blob = dump_meta(
        encode(bs.envelope(part)),
        encode(bs.body_structure(part, True)),
        encode(bs.body_structure(part, False)),
        sent,
    )
    d = Derived.load(blob)
    assert d is not None
    d.headers = headers
    return d


def index_blobs(
    raw: bytes, meta: bool = True, text: bool = True
) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The ``meta``, ``head`` and ``text`` blobs of a message (:mod:`.persist`), which the
    indexer stores after it indexes the message, so that the first FETCH ENVELOPE/
    BODYSTRUCTURE, SORT or SEARCH TEXT after delivery reads them instead of parsing and
    decoding (``store.index_worker``). One parse for the three. Without ``meta`` the first
    two are None, without ``text`` the last: for a message whose other data is stored (the
    IMAP server derived it: APPENDed, FETCHed or searched early)."""
    part = mime.parse(raw)
    if not meta:
        return None, None, dump_text(*search_text(part)) if text else None
    d = derive(part)
    assert d.headers is not None
    if not text:
        return d.blob, dump_head(d.headers), None
    body, head = search_text(part, d.headers)
    return d.blob, dump_head(d.headers), dump_text(body, head)


class MessageView:
    """The :class:`~postroom.protocols.imap.search.Target` of one message in a session."""

    __slots__ = (
        "_cache",
        "_d",
        "_gm",
        "_h",
        "_labels",
        "_t",
        "entry",
        "flags",
        "internaldate",
        "modseq",
        "seq",
        "size",
        "uid",
    )

    def __init__(self, seq: int, entry: Entry, flags: frozenset[str], cache: MessageCache) -> None:
        self.seq = seq
        self.uid = entry.uid
        self.entry = entry
        self.flags = flags
        self.size = entry.size
        self.internaldate = entry.internaldate
        self.modseq = entry.modseq
        self._cache = cache
        self._d: Derived | None = None
        self._h: dict[str, list[str]] | None = None  # header fields (set by prefetch)
        self._t: Text | None = None
        self._gm: GmIds | None = None  # set by prefetch_gm
        self._labels: frozenset[str] | None = None  # set by prefetch_labels (case-folded)

    def release(self) -> None:
        """Let go of the derived data and text loaded for this message (they are read
        again, from the caches, if asked for)."""
        self._d = None
        self._h = None
        self._t = None

    def _derived(self) -> Derived | None:
        if self._d is None:
            self._d = self._cache.derived(self.entry.id)
        return self._d

    def _headers(self) -> dict[str, list[str]]:
        if self._h is None:
            self._h = self._cache.heads([self.entry.id]).get(self.entry.id, {})
        return self._h

    def header(self, name: str) -> list[str]:
        return [decode_words(v) for v in self._headers().get(name, [])]

    def raw_header(self, name: str) -> str | None:
        vals = self._headers().get(name)
        return vals[0] if vals else None

    def sent_date(self) -> tuple[int, int, int] | None:
        if self._h is None and self._d is not None:
            return self._d.sent_date
        return sent_of(self._headers())

    def _text(self) -> Text:
        if self._t is None:
            self._t = self._cache.text(self.entry.id)
        return self._t

    def body_text(self) -> str:
        return self._text()[1]

    def full_text(self) -> str:
        return self._text()[0]

    def gm_ids(self) -> GmIds:
        if self._gm is None:
            prefetch_gm(self._cache.store, [self], deadline())
        assert self._gm is not None
        return self._gm

    def gm_labels(self) -> frozenset[str]:
        if self._labels is None:
            prefetch_labels(self._cache.store, [self])
        assert self._labels is not None
        return self._labels


def prefetch(
    cache: MessageCache,
    views: list[MessageView],
    *,
    headers: bool,
    text: bool,
    excludes: Callable[[bytes], bool] | None = None,
) -> None:
    """Load the header fields and/or the search text of ``views`` in batches, so that
    matching them does not read the store once per message. A message ``excludes`` rules
    out (see :meth:`MessageCache.texts_many`) gets an empty text, which the search it was
    made for does not match."""
    if headers:
        # the ``head`` rows alone (not ENVELOPE and BODYSTRUCTURE), held by the views until
        # released: never kept in the derived cache, so a SEARCH FROM or THREAD over a
        # large folder leaves no more behind than a FETCH would
        heads = cache.heads([v.entry.id for v in views])
        for v in views:
            v._h = heads.get(v.entry.id, {})
    if text:
        texts = cache.texts_many((v.entry.id for v in views), excludes)
        for v in views:
            v._t = texts.get(v.entry.id, ("", ""))
