"""Listings of recently selected folders, shared by every session (SELECT without a
store read per message).

A SELECT needs each message's UID, flags and MODSEQ. Reading and converting them costs
time in proportion to the folder (~1 s at 100,000 messages), so the last listing of a
folder is kept as a :class:`Snapshot` and a SELECT's tracker shares its tables (see
:meth:`~.tracker.Tracker.from_snapshot` and :mod:`.listing`: nothing is copied, and a
change later costs in proportion to the change) instead of reading the store again.

A snapshot is valid for the folder state it was read in: UIDVALIDITY, UIDNEXT, the
message count and the folder's highest MODSEQ (every flag change raises it; an APPEND
raises UIDNEXT; an EXPUNGE lowers the count). SELECT reads those four from the store
anyway (the counts are kept with the folder: no count per SELECT) and reuses the snapshot
only if all four match, so a change whose event has not reached this process yet cannot
hide behind a snapshot. Change events retire the folder's snapshot; when messages were
only added or re-flagged since, the next SELECT grows the retired one by them (a read of
those rows; the new UIDs appended to the shared UID array, the entries in a new small
patch over the shared base: nothing per message of the folder) instead of reading the
whole listing (:meth:`Snapshots._grow`, :meth:`Snapshot.grown`).
The re-flagged messages are those a STORE's change events carried since (kept per folder
while they describe every change: :class:`_Heard`), used when they account for the
folder's highest MODSEQ exactly; else they are looked for in the database (a scan of the
folder's deliveries: there is no index on MODSEQ). At most :data:`MAX_FOLDERS` are kept
(and as many retired).

After a change its event does not describe (a STORE's event carries the entries it
left on SQLite, an EXPUNGE's its UIDs: those are applied to each session's tracker without
a read), every session with the folder selected brings its client up to date
(RFC 3501 section 7) from a new listing: :meth:`Snapshots.current` reads it once for all
of them (ten sessions each reading the listing after every STORE, EXPUNGE and APPEND
were most of the server's work under imaptest's stress). It is keyed by the folder's
*generation*, which each change event raises: a listing read at generation g (taken
before the read) serves while the generation is still g. A change committed before the
read is in it; one committed after raises the generation when its event arrives, and
that event is also what tells the sessions to sync again.

New messages alone (an APPEND, a COPY or MOVE into the folder, a delivery: change events
of kind ``exists``) need no listing: a session reads just the deliveries above the
highest UID it knows (an index range, whatever the folder's size) and extends its own
tracker. Without that, every APPEND into the folder a session has selected read the whole
listing again (``postroom fetch`` of 20,000 messages, Thunderbird saving into an open Sent
folder, imapsync), so a long run slowed down quadratically.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ...events import Event, FolderChanged
from ...store.base import Entry, FolderInfo, ImapStore
from .listing import Uids

__all__ = ["MAX_FOLDERS", "Snapshot", "Snapshots"]

# Folders whose listing is kept (our choice: a 100,000-message listing takes ~25 MB).
MAX_FOLDERS = 4
# Re-flagged messages a listing is grown by at most, instead of read again (our choice:
# reading 1,000 entries costs a few ms; more is a bulk change, read the listing afresh).
MAX_REFLAGGED = 1000
# Entries a listing's patch holds at least before it is merged into its base (see patch_limit).
MIN_PATCH = 1024

Key = tuple[int, int, int, int]  # UIDVALIDITY, UIDNEXT, message count, highest MODSEQ


def state_key(info: FolderInfo) -> Key:
    return (info.uidvalidity, info.uidnext, info.exists, info.highestmodseq)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A folder's listing in the tables a session's tracker shares (:mod:`.listing`;
    treat as read-only). Its entries are :attr:`patch` over :attr:`base`, less
    :attr:`gone`: exactly the messages in :attr:`uids`."""

    key: Key | None  # the folder state it was read in (None: read for a sync, by generation)
    gen: int  # the folder's generation when the read began
    seq: int  # when the read began, among all reads (a later read never shows less)
    uids: Uids  # ascending (a prefix of an array later listings append to)
    base: dict[int, Entry]  # as read from the store (never changed: shared by trackers)
    patch: dict[int, Entry]  # added or re-flagged since that read (never changed once built)
    keywords: frozenset[str]  # every keyword (non-system flag) in use (or once in use)
    first_unseen: int  # sequence number of the first message without \Seen, or 0
    highest_modseq: int  # the highest MODSEQ of a message (0 for an empty folder)
    gone: frozenset[int] = frozenset()  # in base but expunged since

    @classmethod
    def build(cls, key: Key | None, gen: int, seq: int, listing: list[Entry]) -> Snapshot:
        uids = [e.uid for e in listing]
        first_unseen = next((i for i, e in enumerate(listing, 1) if "\\Seen" not in e.flags), 0)
        distinct = {e.flags for e in listing}  # few distinct flag sets
        keywords = frozenset(f for fl in distinct for f in fl if not f.startswith("\\"))
        return cls(
            key,
            gen,
            seq,
            Uids(uids),
            dict(zip(uids, listing, strict=True)),
            {},
            keywords,
            first_unseen,
            max((e.modseq for e in listing), default=0),
        )

    def get(self, uid: int) -> Entry | None:
        """The entry of ``uid``, or None if it is not in this listing."""
        e = self.patch.get(uid)
        if e is not None:
            return e
        return None if uid in self.gone else self.base.get(uid)

    def entry(self, uid: int) -> Entry:
        """The entry of ``uid`` (one of :attr:`uids`)."""
        return self.patch.get(uid) or self.base[uid]

    def as_dict(self) -> dict[int, Entry]:
        """Every entry by UID (a copy: for checks, not for a hot path)."""
        return {u: e for u, e in {**self.base, **self.patch}.items() if u not in self.gone}

    def above(self, uid: int) -> list[Entry]:
        """The entries above ``uid``, ascending."""
        get, base = self.patch.get, self.base
        return [get(u) or base[u] for u in self.uids.slice(self.uids.bisect_right(uid), self.uids.n)]

    def grown(
        self,
        key: Key,
        gen: int,
        seq: int,
        added: list[Entry],
        reflagged: Sequence[Entry] = (),
        expunged: Sequence[int] = (),
    ) -> Snapshot:
        """This listing without ``expunged`` (some of its UIDs), with ``added``
        (ascending, above its UIDs) after it and its messages in ``reflagged`` as they are
        now, in time and memory proportional to those (and to the patch so far): the UIDs
        appended to the shared array (copied only if another holder appended to it first,
        or for an expunge: 4 bytes a UID), the base shared, a new patch. A patch (with the
        expunged) past :func:`patch_limit` is merged into a new base (a copy of the
        folder's entries once per that many changes)."""
        uids = self.uids.share()
        removed = sorted(u for u in set(expunged) if uids.seq_of(u))
        uids.without([uids.seq_of(u) - 1 for u in removed])
        uids.extend(e.uid for e in added)
        patch = dict(self.patch)
        for u in removed:
            patch.pop(u, None)
        reflagged = [e for e in reflagged if uids.seq_of(e.uid)]
        for e in (*reflagged, *added):
            patch[e.uid] = e
        base, gone = self.base, self.gone | {u for u in removed if u in self.base}
        if len(patch) + len(gone) > patch_limit(len(base)):
            base = {u: e for u, e in {**base, **patch}.items() if u not in gone}
            patch, gone = {}, frozenset()
        first_unseen = self._first_unseen(uids, base, patch, reflagged, added, removed)
        new_kw = {f for e in (*reflagged, *added) for f in e.flags if not f.startswith("\\")}
        highest = max([self.highest_modseq, *(e.modseq for e in (*reflagged, *added))])
        kw = self.keywords | new_kw
        return Snapshot(key, gen, seq, uids, base, patch, kw, first_unseen, highest, frozenset(gone))

    def _first_unseen(
        self,
        uids: Uids,
        base: dict[int, Entry],
        patch: dict[int, Entry],
        reflagged: Sequence[Entry],
        added: list[Entry],
        removed: list[int],
    ) -> int:
        """The first unseen of the grown listing, from this one's: the lowest of the
        re-flagged messages that lost \\Seen and the old first unseen if it is still there
        and unseen, else the next unseen after it, looked for from there on (every message
        before it was seen)."""
        get = patch.get
        old = self.uids[self.first_unseen - 1] if self.first_unseen else 0
        found = [e.uid for e in reflagged if "\\Seen" not in e.flags]
        if old and uids.seq_of(old) and "\\Seen" not in (get(old) or base[old]).flags:
            found.append(old)
        elif old:
            arr = uids.arr
            found += [
                next(
                    (
                        arr[i]
                        for i in range(uids.bisect_right(old), uids.n)
                        if "\\Seen" not in (get(arr[i]) or base[arr[i]]).flags
                    ),
                    0,
                )
            ]
        else:
            found += [next((e.uid for e in added if "\\Seen" not in e.flags), 0)]
        found = [u for u in found if u]
        return uids.seq_of(min(found)) if found else 0


def patch_limit(base: int) -> int:
    """Entries a listing's patch holds before it is merged into a new base (our choice:
    an eighth of the folder, so the copy is paid once per that many changes)."""
    return max(MIN_PATCH, base // 8)


class Snapshots:
    """The shared snapshots of one store (thread-safe; :meth:`get` may block)."""

    def __init__(self, store: ImapStore, max_folders: int = MAX_FOLDERS) -> None:
        self.store = store
        self.max_folders = max_folders
        self._kept: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()
        # the last listing of a folder that changed since, to be grown by the new messages
        # alone when nothing else changed (:meth:`_grow`)
        self._stale: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()
        # each change gives its folder a new generation, never given before (a count of
        # the changes of all folders): a read that began at one serves while it is the
        # folder's. Only folders with a listing kept (either table) or being read have an
        # entry (any other's is 0, and its next change gives it one never seen), so the
        # table stays bounded by those
        self._gens: dict[tuple[str, str], int] = {}
        self._changes = 0
        self._reading: dict[tuple[str, str], int] = {}  # reads under way, by folder
        # flag changes heard from events since the folder's last keyed listing was kept
        # (the growth base): a SELECT grows it by these instead of looking for them in
        # the database (no index on MODSEQ: a scan of the folder), see _grow
        self._heard: dict[tuple[str, str], _Heard] = {}
        self._seq = 0
        self._lock = threading.Lock()

    def peek(self, info: FolderInfo) -> Snapshot | None:
        """The kept snapshot matching ``info``, or None (no I/O: safe on the event loop)."""
        with self._lock:
            snap = self._kept.get((info.mailbox, info.name))
            if snap is None or snap.key != state_key(info):
                return None
            self._kept.move_to_end((info.mailbox, info.name))
            return snap

    def get(self, info: FolderInfo) -> Snapshot:
        """The listing of ``info``'s folder in the state ``info`` describes (or newer):
        the kept one if it matches, else the last one grown by the new messages if only
        messages were added since (:meth:`_grow`), else read from the store (and kept)."""
        snap = self.peek(info)
        if snap is not None:
            return snap
        with self._read_of((info.mailbox, info.name)):
            snap = self._grow(info)
            return snap if snap is not None else self._read(info.mailbox, info.name, state_key(info))

    @contextmanager
    def _read_of(self, where: tuple[str, str]) -> Iterator[None]:
        """A read of the folder is under way (its generation is kept meanwhile)."""
        with self._lock:
            self._reading[where] = self._reading.get(where, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._reading.pop(where) - 1
                if left:
                    self._reading[where] = left
                else:
                    self._forget_unkept(where)

    def _grow(self, info: FolderInfo) -> Snapshot | None:
        """The folder's last listing before a change, with the messages added since read
        after it (a range of UIDs) and those re-flagged since read again: a SELECT after
        new mail or a flag change in a 100,000-message folder costs those rows instead of
        reading and building 100,000 entries (~1 s). Only if nothing was
        expunged: the same UIDVALIDITY and every message of that listing still there (its
        count of UIDs up to its last is unchanged: UIDs are never reused); the messages
        with a MODSEQ above the listing's are the re-flagged ones (every flag change gives
        the message the folder's next MODSEQ), at most :data:`MAX_REFLAGGED`; the new ones
        must make up ``info``'s count. Else None (read the listing). Both counts are one
        indexed range in the database."""
        where = (info.mailbox, info.name)
        with self._lock:
            old = self._stale.get(where)
            gen = self._gen(where)
            self._seq += 1
            seq = self._seq
            heard = self._heard.get(where)
            complete = heard is not None and heard.complete
            pending = dict(heard.entries) if heard is not None and complete else None
            expunged = sorted(heard.expunged) if heard is not None and complete else []
            txns = frozenset(heard.txns) if heard is not None and complete else frozenset()
        if old is None or old.key is None or len(old.uids) != old.key[2]:
            return None
        validity, _, count, highest = old.key
        if validity != info.uidvalidity:
            return None
        top = old.uids.top
        removed: list[int] = []
        if pending is not None and _all_heard(txns, highest, info.highestmodseq):
            # every flag change between the listing's state and info's came with its event,
            # and none after info's: each raises the folder's MODSEQ by one (the event says
            # to what), so the MODSEQs heard are each of those, whatever order the events
            # came in (a commit published late, or events shuffled, only sends this to the
            # database). Entries at or below the listing's MODSEQ are in it already
            # and the expunges heard: the UIDs gone are those (the store's count of the
            # old listing's UIDs still there says no other is missing)
            removed = [u for u in expunged if old.uids.seq_of(u)]
            reflagged = sorted(
                (e for e in pending.values() if e.uid <= top and e.modseq > highest), key=lambda e: e.uid
            )
            kept = self.store.folder_count(info.mailbox, info.name, top, info.highestmodseq)[0]
            changed = -1
        else:
            kept, changed = self.store.folder_count(info.mailbox, info.name, top, highest)
        if kept != count - len(removed) or changed > MAX_REFLAGGED:
            return None  # expunged (without an event heard), or too much re-flagged, since
        added = self.store.folder_entries(info.mailbox, info.name, top)
        if kept + len(added) != info.exists:
            return None  # changed again since info was read
        if changed > 0:
            reflagged = self.store.folder_changed(info.mailbox, info.name, top, highest)
        elif changed == 0:
            reflagged = []
        # by its key only (generation -1): its older part is what the folder held when info
        # was read, not when the read began, so a sync (peek_current) must not take it
        snap = old.grown(state_key(info), -1, seq, added, reflagged, removed)
        self._keep(where, gen, seq, snap)
        return snap

    def peek_current(self, mailbox: str, folder: str, since: int = 0) -> Snapshot | None:
        """The kept listing if no change event came since it was read and its read began
        at ``since`` or later (a session passes its last listing's, so that it never goes
        back to an older one), else None (no I/O: safe on the event loop)."""
        where = (mailbox, folder)
        with self._lock:
            snap = self._kept.get(where)
            if snap is None or snap.gen != self._gen(where) or snap.seq < since:
                return None
            self._kept.move_to_end(where)
            return snap

    def current(self, mailbox: str, folder: str, since: int = 0) -> Snapshot:
        """A listing with every change whose event has arrived: :meth:`peek_current`, else
        read from the store (and kept)."""
        snap = self.peek_current(mailbox, folder, since)
        if snap is not None:
            return snap
        with self._read_of((mailbox, folder)):
            return self._read(mailbox, folder, None)

    def ticket(self) -> int:
        """A place among the reads, for a session about to read part of a folder itself
        (the new messages only, :meth:`~.core.SessionBase.sync_selected`): a listing whose
        read began before it may lack what that read finds, so a session that passes it
        as ``since`` is never given one."""
        with self._lock:
            self._seq += 1
            return self._seq

    def _read(self, mailbox: str, folder: str, key: Key | None) -> Snapshot:
        where = (mailbox, folder)
        with self._lock:
            gen = self._gen(where)
            self._seq += 1
            seq = self._seq
        snap = Snapshot.build(key, gen, seq, self.store.folder_entries(mailbox, folder))
        self._keep(where, gen, seq, snap)
        return snap

    def _keep(self, where: tuple[str, str], gen: int, seq: int, snap: Snapshot) -> None:
        with self._lock:
            kept = self._kept.get(where)
            # not kept if a change came in meanwhile, or a read that began later is kept
            if gen == self._gen(where) and (kept is None or kept.seq < seq):
                self._kept[where] = snap
                self._kept.move_to_end(where)
                if snap.key is not None:
                    # the new growth base; a listing read for a sync (NOOP's) has no state
                    # key to grow from, so the last one with a key stays for the next SELECT
                    self._stale.pop(where, None)
                    self._heard[where] = _Heard()  # (no event came since its read began)
                while len(self._kept) > self.max_folders:
                    gone, _ = self._kept.popitem(last=False)
                    self._forget_unkept(gone)

    def on_event(self, event: Event) -> None:
        """Bus subscriber: a changed folder's snapshot is stale, drop it now (and note the
        flag changes the event carries for the next SELECT's growth)."""
        if isinstance(event, FolderChanged):
            self.changed(event.mailbox, event.folder, event)

    def changed(self, mailbox: str, folder: str, event: FolderChanged | None = None) -> None:
        """The folder changed (an event, or a session's own write whose event is still on
        its way): what was read before is stale."""
        where = (mailbox, folder)
        with self._lock:
            heard = self._heard.get(where)
            if heard is not None and event is not None:
                heard.hear(event)
            snap = self._kept.pop(where, None)
            if snap is not None and snap.key is not None:
                self._stale[where] = snap
                self._stale.move_to_end(where)
                while len(self._stale) > self.max_folders:
                    gone, _ = self._stale.popitem(last=False)
                    self._forget_unkept(gone)
            self._changes += 1
            self._gens[where] = self._changes
            self._forget_unkept(where)

    def _gen(self, where: tuple[str, str]) -> int:
        """The folder's generation (under the lock)."""
        return self._gens.get(where, 0)

    def _forget_unkept(self, where: tuple[str, str]) -> None:
        """Under the lock: drop what is kept for a folder beside its listings once it has
        no growth base (a keyed listing, kept or stale: the heard changes describe what
        came since it), and its generation once it has no listing and no read under way
        (nothing holds it to compare: its next change gives it a generation never given)."""
        kept = self._kept.get(where)
        if where not in self._stale and (kept is None or kept.key is None):
            self._heard.pop(where, None)
        if kept is None and where not in self._stale and where not in self._reading:
            self._gens.pop(where, None)


def _all_heard(txns: frozenset[int], since: int, upto: int) -> bool:
    """``txns`` (the MODSEQs flag changes took) holds every one above ``since`` up to
    ``upto`` and none above (in time proportional to those: they are at most MAX_REFLAGGED)."""
    if any(m > upto for m in txns):
        return False
    need = upto - since
    return need <= len(txns) and all(m in txns for m in range(since + 1, upto + 1))


class _Heard:
    """The flag changes and expunges of one folder heard from events since its growth
    base was kept, each message as its latest change left it; not :attr:`complete` once
    an event did not say which messages changed or how (another node, the API), or more
    than MAX_REFLAGGED of either came."""

    __slots__ = ("complete", "entries", "expunged", "txns")

    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self.expunged: set[int] = set()
        self.txns: set[int] = set()  # the MODSEQs the flag changes heard took
        self.complete = True

    def hear(self, event: FolderChanged) -> None:
        if event.change == "exists" or not self.complete:
            return  # new messages are read by UID range
        if event.change == "flags" and event.entries is not None and event.modseq:
            self.txns.add(event.modseq)
            for e in event.entries:
                old = self.entries.get(e.uid)
                if old is None or old.modseq < e.modseq:
                    self.entries[e.uid] = e
            if len(self.entries) <= MAX_REFLAGGED and len(self.txns) <= MAX_REFLAGGED:
                return
        elif event.change == "expunge" and event.uids:
            self.expunged.update(event.uids)
            if len(self.expunged) <= MAX_REFLAGGED:
                return
        self.complete = False
        self.entries = {}
        self.expunged = set()
        self.txns = set()
