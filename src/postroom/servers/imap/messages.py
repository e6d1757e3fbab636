"""Message data for FETCH, SEARCH and SORT, cached across sessions.

Messages are immutable once stored, so what we derive from their bytes (the MIME tree,
ENVELOPE, BODYSTRUCTURE, decoded header fields and text) is cached by message ID and
shared by every session. Two bounded LRUs: raw bytes by total size, derived data by
count. All methods block (they read the store); call them from worker threads.
"""

from __future__ import annotations

import email.utils
import quopri
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from ...protocols.imap import bodystructure as bs
from ...protocols.imap import mime
from ...protocols.imap.encoder import encode
from ...protocols.imap.fetch import Section, decode_part
from ...protocols.imap.sort import decode_words
from ...store.base import Entry, Store

__all__ = ["Derived", "MessageCache", "MessageView"]

# Raw bytes kept in memory for repeated FETCH BODY[...] of the same messages (our choice).
RAW_CACHE_BYTES = 64 * 1024 * 1024
# Derived entries (envelope, structure, header fields; text only when searched).
DERIVED_CACHE_ITEMS = 50_000
# Decoded text kept per message for SEARCH BODY/TEXT (longer text is cut; our choice).
MAX_TEXT = 1024 * 1024


@dataclass(slots=True)
class Derived:
    """What FETCH/SEARCH/SORT need besides the raw bytes."""

    envelope: bytes
    bodystructure: bytes
    body: bytes
    headers: dict[str, list[str]]  # lower-case name -> raw unfolded values (UTF-8 decoded)
    sent_date: tuple[int, int, int] | None
    text: str | None = None  # casefolded header+body text, filled on first TEXT/BODY search
    body_text: str | None = None


@dataclass
class MessageCache:
    store: Store
    raw_budget: int = RAW_CACHE_BYTES
    max_derived: int = DERIVED_CACHE_ITEMS
    _raws: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    _raw_size: int = 0
    _derived: OrderedDict[str, Derived] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def raw(self, id: str) -> bytes | None:
        with self._lock:
            data = self._raws.get(id)
            if data is not None:
                self._raws.move_to_end(id)
                return data
        data = self.store.get_raw(id)
        if data is None:
            return None
        if len(data) <= self.raw_budget // 8:
            with self._lock:
                if id not in self._raws:
                    self._raws[id] = data
                    self._raw_size += len(data)
                    while self._raw_size > self.raw_budget and self._raws:
                        _, old = self._raws.popitem(last=False)
                        self._raw_size -= len(old)
        return data

    def part(self, id: str) -> mime.Part | None:
        data = self.raw(id)
        return None if data is None else mime.parse(data)

    def derived(self, id: str) -> Derived | None:
        with self._lock:
            d = self._derived.get(id)
            if d is not None:
                self._derived.move_to_end(id)
                return d
        part = self.part(id)
        if part is None:
            return None
        d = derive(part)
        with self._lock:
            self._derived[id] = d
            while len(self._derived) > self.max_derived:
                self._derived.popitem(last=False)
        return d

    def text(self, id: str, d: Derived) -> None:
        """Fill ``d.text`` and ``d.body_text`` (decoded, casefolded) for SEARCH."""
        if d.text is not None:
            return
        part = self.part(id)
        if part is None:
            d.text = d.body_text = ""
            return
        body = body_text(part)[:MAX_TEXT].casefold()
        head = "\n".join(decode_words(v) for vs in d.headers.values() for v in vs).casefold()
        d.body_text = body
        d.text = head + "\n" + body


def derive(part: mime.Part) -> Derived:
    headers: dict[str, list[str]] = {}
    for name, value in part.fields:
        headers.setdefault(name, []).append(mime.unfold(value).decode("utf-8", "replace").strip())
    sent = None
    date = headers.get("date")
    if date:
        try:
            t = email.utils.parsedate_tz(date[0])
        except (TypeError, ValueError, IndexError):
            t = None
        if t is not None:
            sent = (t[0], t[1], t[2])
    return Derived(
        envelope=encode(bs.envelope(part)),
        bodystructure=encode(bs.body_structure(part, True)),
        body=encode(bs.body_structure(part, False)),
        headers=headers,
        sent_date=sent,
    )


def body_text(part: mime.Part, depth: int = 0) -> str:
    """Decoded text of every text/* and message/* leaf (what SEARCH BODY looks at)."""
    if depth > mime.MAX_MIME_DEPTH:
        return ""
    if part.is_multipart:
        return "\n".join(body_text(c, depth + 1) for c in part.children)
    if part.is_message and part.message is not None:
        return body_text(part.message, depth + 1)  # the embedded body; its header is not body text
    if part.type.lower() != "text":
        return ""
    enc = (part.get("content-transfer-encoding") or b"").decode("latin-1").strip().lower()
    data = part.body
    try:
        if enc == "base64":
            data = decode_part(_Single(part), Section((1,)))
        elif enc == "quoted-printable":
            data = quopri.decodestring(data)
    except Exception:
        data = part.body
    charset = part.param("charset") or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _Single(part: mime.Part) -> mime.Part:
    """A stand-in top whose part 1 is ``part`` (to reuse fetch.decode_part)."""
    return mime.Part(part.raw, part.start, part.start, part.end, [], "multipart", "mixed", children=[part])


class MessageView:
    """The :class:`~postroom.protocols.imap.search.Target` of one message in a session."""

    __slots__ = ("_cache", "_d", "entry", "flags", "internaldate", "modseq", "seq", "size", "uid")

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

    def _derived(self) -> Derived | None:
        if self._d is None:
            self._d = self._cache.derived(self.entry.id)
        return self._d

    def header(self, name: str) -> list[str]:
        d = self._derived()
        if d is None:
            return []
        return [decode_words(v) for v in d.headers.get(name, [])]

    def raw_header(self, name: str) -> str | None:
        d = self._derived()
        if d is None:
            return None
        vals = d.headers.get(name)
        return vals[0] if vals else None

    def sent_date(self) -> tuple[int, int, int] | None:
        d = self._derived()
        return None if d is None else d.sent_date

    def body_text(self) -> str:
        d = self._derived()
        if d is None:
            return ""
        self._cache.text(self.entry.id, d)
        return d.body_text or ""

    def full_text(self) -> str:
        d = self._derived()
        if d is None:
            return ""
        self._cache.text(self.entry.id, d)
        return d.text or ""
