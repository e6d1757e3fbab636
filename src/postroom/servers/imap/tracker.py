"""Per-session sequence numbers for the selected folder (RFC 3501 section 2.3.1.2).

The store knows UIDs; a session must map them to message sequence numbers that only
change when the session itself reports the change (EXISTS, EXPUNGE). The tracker keeps
the UIDs (and last-reported flags) the client has seen and turns a fresh store listing
into the untagged updates that bring the client up to date.

``\\Recent`` (RFC 3501 section 2.3.2) is per session: a message is recent in the one
session that first selects its folder read-write after it arrived (or that has the folder
selected when it arrives). :class:`RecentClaims` is the server-wide record of which UIDs
have been claimed; the tracker adds ``\\Recent`` to the flags of the UIDs its session
claimed (a range from its SELECT and a set of those claimed since: :class:`.listing.Recent`),
so FETCH FLAGS and SEARCH RECENT/NEW/OLD see it like any other flag. The record
lives in memory: after a restart the first session to select a folder gets all of it as
recent, as after a first login. Expunges are held back
during FETCH, STORE and SEARCH (RFC 3501 section 7.4.1) and reported at the next
command that allows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ...protocols.imap.encoder import Raw
from ...store.base import Entry
from .listing import RECENT, Recent, Uids, with_recent
from .snapshots import Snapshot

__all__ = ["RECENT", "RecentClaims", "Tracker", "new_keywords"]


class RecentClaims:
    """Per folder (and UIDVALIDITY), the highest UID some session has claimed as recent."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str, int], int] = {}

    def claim(self, key: tuple[str, str, int], uids: list[int], readonly: bool) -> set[int]:
        """The UIDs of ``uids`` that are recent for the calling session; a read-write
        session takes them (no other session will see them as recent)."""
        mark = self.marks.get(key, 0)
        mine = {u for u in uids if u > mark}
        if mine and not readonly:
            self.marks[key] = max(mine)
        return mine

    def claim_above(self, key: tuple[str, str, int], top: int, readonly: bool) -> Recent:
        """The recent UIDs of a folder whose highest UID is ``top``, for a session that
        selects it: all above the mark, as a range (nothing per message: a SELECT after
        only EXAMINEs claims a whole 100,000-message folder); a read-write session takes
        them."""
        mark = self.marks.get(key, 0)
        if top <= mark:
            return Recent()
        if not readonly:
            self.marks[key] = top
        return Recent(mark, top)

    def mark(self, key: tuple[str, str, int]) -> int:
        """The highest UID claimed in the folder (every UID above it is unclaimed)."""
        return self.marks.get(key, 0)

    def unclaimed(self, key: tuple[str, str, int], uids: list[int]) -> int:
        """How many of ``uids`` no session has claimed (STATUS RECENT)."""
        mark = self.marks.get(key, 0)
        return sum(1 for u in uids if u > mark)


def flag_list(flags: frozenset[str] | set[str]) -> Raw:
    """``(\\Seen \\Flagged kw)`` in a stable order."""
    if isinstance(flags, frozenset):
        raw = _FLAG_LISTS.get(flags)
        if raw is None:
            if len(_FLAG_LISTS) >= _FLAG_LISTS_MAX:
                _FLAG_LISTS.clear()
            raw = _FLAG_LISTS[flags] = Raw(b"(" + " ".join(sorted(flags)).encode("utf-8") + b")")
        return raw
    return Raw(b"(" + " ".join(sorted(flags)).encode("utf-8") + b")")


# Rendered flag lists: a folder has few distinct flag sets, and FETCH 1:* FLAGS renders
# one per message (bounded against clients that invent keywords).
_FLAG_LISTS: dict[frozenset[str], Raw] = {}
_FLAG_LISTS_MAX = 1024


def new_keywords(entries: Iterable[Entry], known: set[str]) -> set[str]:
    """The keywords (flags without a backslash) of ``entries`` that are not in ``known``:
    each session asks this of every change it hears of, nearly always of a few flag sets
    without a new keyword (their keywords are kept by flag set, not split per call)."""
    out: set[str] = set()
    for e in entries:
        kw = _KEYWORDS.get(e.flags)
        if kw is None:
            if len(_KEYWORDS) >= _FLAG_LISTS_MAX:
                _KEYWORDS.clear()
            kw = _KEYWORDS[e.flags] = frozenset(f for f in e.flags if not f.startswith("\\"))
        if kw and not kw <= known:
            out |= kw - known
    return out


# the keywords of each flag set (bounded as _FLAG_LISTS)
_KEYWORDS: dict[frozenset[str], frozenset[str]] = {}


class Tracker:
    """UIDs in sequence order, with what the client knows about each.

    Its tables start as a shared :class:`~.snapshots.Snapshot`'s (:mod:`.listing`): the
    UID array (a prefix of it), the base entries (never changed) and the patch (the
    tracker's overlay, copied at its first change: :meth:`_own`). A message's flags as the
    client was shown them are its entry's, with ``\\Recent`` if :attr:`recent` holds it.
    """

    __slots__ = ("_shared", "base", "gone", "highest", "over", "recent", "uids")

    def __init__(
        self,
        uids: Uids | None = None,
        base: dict[int, Entry] | None = None,
        over: dict[int, Entry] | None = None,
        highest: int = 0,
        shared: bool = False,
    ) -> None:
        self.uids = uids if uids is not None else Uids()
        self.base: dict[int, Entry] = base if base is not None else {}
        self.over: dict[int, Entry] = over if over is not None else {}
        self._shared = shared  # over is the snapshot's patch: copy before changing it
        self.gone: set[int] = set()  # expunged in the store, not yet reported
        self.recent = Recent()  # UIDs this session holds as \Recent
        self.highest = highest  # the highest MODSEQ the client was shown (HIGHESTMODSEQ)

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> Tracker:
        """A tracker starting from a shared :class:`~.snapshots.Snapshot`, then
        :meth:`set_recent`. Nothing is copied: a SELECT costs the same whatever the
        folder's size, and a change later costs in proportion to the change."""
        return cls(snap.uids.share(), snap.base, snap.patch, snap.highest_modseq, shared=True)

    def _own(self) -> None:
        """Copy the shared overlay (the snapshot's patch, small) before changing it."""
        if self._shared:
            self.over = dict(self.over)
            self._shared = False

    def entry(self, uid: int) -> Entry:
        """The entry of ``uid``, one of :attr:`uids`."""
        return self.over.get(uid) or self.base[uid]

    def get(self, uid: int) -> Entry | None:
        """The entry of ``uid``, or None if it is not in the sequence."""
        return self.entry(uid) if self.uids.seq_of(uid) else None

    def entries_of(self, uids: Iterable[int]) -> list[Entry]:
        """The entries of ``uids`` (each one of :attr:`uids`), in one pass."""
        over, base = self.over, self.base
        if not over:
            return list(map(base.__getitem__, uids))
        get = over.get
        return [get(u) or base[u] for u in uids]

    def flags_of(self, uid: int) -> frozenset[str]:
        """The flags of ``uid`` (one of :attr:`uids`) as this session shows them."""
        return self.view(self.entry(uid))

    def take(self, e: Entry, modseq: bool = True) -> None:
        """``e`` as the store has it now (after this session's STORE or FETCH that set
        \\Seen): its flags as shown, its entry and (with ``modseq``) its MODSEQ."""
        self._own()
        self.over[e.uid] = e
        if modseq and e.modseq > self.highest:
            self.highest = e.modseq

    def set_recent(self, recent: Recent) -> None:
        """The UIDs this session holds as \\Recent (from :meth:`RecentClaims.claim_above`):
        a range, not a table of them."""
        self.recent = recent

    def view(self, e: Entry) -> frozenset[str]:
        """The flags of ``e`` as this session shows them (with its \\Recent)."""
        return with_recent(e.flags) if e.uid in self.recent else e.flags

    def views(self, entries: list[Entry]) -> list[frozenset[str]]:
        """:meth:`view` of each of ``entries``."""
        if not self.recent:
            return [e.flags for e in entries]
        recent = self.recent
        return [with_recent(e.flags) if e.uid in recent else e.flags for e in entries]

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def recent_count(self) -> int:
        return self.recent.count(self.uids)

    @property
    def largest_uid(self) -> int:
        return self.uids.top

    def seq_of(self, uid: int) -> int:
        """Sequence number of ``uid`` (0 if unknown)."""
        return self.uids.seq_of(uid)

    def uid_at(self, seq: int) -> int:
        return self.uids[seq - 1]

    def live(self, uid: int) -> bool:
        """``uid`` (one of :attr:`uids`) is not expunged."""
        return uid not in self.gone

    def sync(
        self,
        snap: Snapshot,
        *,
        allow_expunge: bool,
        with_uid: bool,
        condstore: bool,
        claim: Callable[[list[int]], set[int]] | None = None,
    ) -> list[bytes]:
        """Compare with a fresh listing; return the untagged responses to send.

        ``claim`` takes the new UIDs and returns those that are recent in this session.
        """
        out: list[bytes] = []
        sbase, spatch, sgone = snap.base, snap.patch, snap.gone
        self.gone.update(u for u in self.uids if u not in spatch and (u not in sbase or u in sgone))
        if allow_expunge and self.gone:
            out += self.flush_expunges()
        # flag changes of messages the client knows (the same entry object: unchanged)
        fresh, base = (spatch.get, sbase.get) if not sgone else (snap.get, snap.get)
        for uid in self.uids:
            e = fresh(uid) or base(uid)
            if e is not None and e is not (self.over.get(uid) or self.base[uid]):
                line = self._reflag(e, with_uid, condstore)
                if line is not None:
                    out.append(line)
        # new messages: UIDs only grow (RFC 3501 2.3.1.1)
        out += self.extend(snap.above(self.largest_uid), claim)
        return out

    def apply(
        self,
        reflagged: list[Entry],
        expunged: list[int],
        *,
        allow_expunge: bool,
        with_uid: bool,
        condstore: bool,
    ) -> list[bytes]:
        """Take in changes another session made, from their change events (the expunged
        UIDs, the re-flagged entries as the change left them) without a listing; return
        the untagged responses to send, as :meth:`sync` does. UIDs the client does not
        know are left out: a message above the largest known UID is read (with its flags
        as they are then) by the next :meth:`extend`; one below it is already gone."""
        self.gone.update(u for u in expunged if self.uids.seq_of(u))
        out = self.flush_expunges() if allow_expunge and self.gone else []
        gone = self.gone
        for e in reflagged:
            if e.uid not in gone and self.uids.seq_of(e.uid):
                line = self._reflag(e, with_uid, condstore)
                if line is not None:
                    out.append(line)
        return out

    def _reflag(self, e: Entry, with_uid: bool, condstore: bool) -> bytes | None:
        """Take in ``e``, a known message as the store has it now; the ``FETCH`` response
        telling the client of its new flags, or None if they are the ones it was shown."""
        uid = e.uid
        known = self.entry(uid)
        if e.modseq < known.modseq:
            return None  # read before a change the client has seen (MODSEQ never goes down)
        if known.modseq == e.modseq and known.flags == e.flags:
            return None  # unchanged (not taken in: a shared table is copied on change only)
        self._own()
        self.over[uid] = e
        if known.flags == e.flags:
            return None
        if e.modseq > self.highest:
            self.highest = e.modseq
        shown = self.view(e)
        parts: list[bytes] = []
        if with_uid or condstore:
            parts.append(b"UID %d" % uid)
        parts.append(b"FLAGS " + flag_list(shown).data)
        if condstore:
            parts.append(b"MODSEQ (%d)" % e.modseq)
        return b"* %d FETCH (" % self.seq_of(uid) + b" ".join(parts) + b")\r\n"

    def extend(self, added: list[Entry], claim: Callable[[list[int]], set[int]] | None = None) -> list[bytes]:
        """Take in new messages (ascending; those not above the largest known UID are left
        out) without a listing of the folder; return ``* n EXISTS`` and ``* n RECENT``, or
        nothing if none is new. ``claim`` as in :meth:`sync`. The UIDs are appended to the
        shared array when nobody has appended past this tracker's end (:class:`.Uids`)."""
        top = self.largest_uid
        added = [e for e in added if e.uid > top]
        if not added:
            return []
        if claim is not None:
            self.recent.extra |= claim([e.uid for e in added])
        self._own()
        over = self.over
        for e in added:
            over[e.uid] = e
            if e.modseq > self.highest:
                self.highest = e.modseq
        self.uids.extend(e.uid for e in added)
        # RFC 3501 7.3.2: RECENT with EXISTS (formatted here: every session sends these for
        # every new message, as untagged() would)
        return [b"* %d EXISTS\r\n" % self.exists, b"* %d RECENT\r\n" % self.recent_count]

    def flush_expunges(self) -> list[bytes]:
        """Report held-back expunges (highest sequence number first, so numbers stay valid:
        removing a higher one leaves the lower ones' numbers as they were)."""
        if not self.gone:
            return []
        uids = self.uids
        positions = sorted(s - 1 for s in map(uids.seq_of, self.gone) if s)
        out = [b"* %d EXPUNGE\r\n" % (p + 1) for p in reversed(positions)]
        uids.without(positions)
        self._own()
        for uid in self.gone:
            self.over.pop(uid, None)
            self.recent.discard(uid)
        self.gone.clear()
        return out

    def remove(self, uids: list[int]) -> list[bytes]:
        """Our own expunge: mark gone and report at once."""
        self.gone.update(uids)
        return self.flush_expunges()

    def vanish_for_move(self, uids: list[int]) -> list[bytes]:
        return self.remove(uids)
