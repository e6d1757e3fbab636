"""Shared state of one IMAP session and the helpers every command module uses.

The command modules (:mod:`.mailboxes`, :mod:`.selected`) are mixins over
:class:`SessionBase`; :class:`~.session.Session` combines them and owns the I/O loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ...events import Event, FolderChanged
from ...protocols.imap.commands import State
from ...protocols.imap.encoder import Raw, untagged
from ...protocols.imap.errors import No
from ...store.base import Entry, ImapStore
from .account import Account
from .derivesoon import DeriveSoon
from .messages import MessageCache
from .snapshots import Snapshots
from .tracker import RecentClaims, Tracker, new_keywords

if TYPE_CHECKING:
    from ...app import App

__all__ = ["FLUSH_BYTES", "SYSTEM_FLAGS", "Selected", "SessionBase"]

log = logging.getLogger("postroom.imap")

T = TypeVar("T")

# Write to the socket once this much output is queued (keeps memory flat for FETCH 1:*).
FLUSH_BYTES = 256 * 1024
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
CACHE_KEY = "imap_message_cache"
RECENT_KEY = "imap_recent_claims"
SNAPSHOTS_KEY = "imap_folder_snapshots"
DERIVE_KEY = "imap_derive_soon"
# Changes held from events for the next sync (our bound: beyond it, a session that has not
# synced for long reads the listing instead).
MAX_HELD = 10_000


@dataclass
class Selected:
    """The selected folder (RFC 3501 section 3.3)."""

    name: str  # IMAP name
    mailbox: str
    folder: str
    readonly: bool
    uidvalidity: int
    tracker: Tracker
    keywords: set[str] = field(default_factory=set)
    listing: int = 0  # Snapshot.seq of the last listing the client was brought up to date from
    # every delivery with a lower UID is known to the tracker (or was expunged): new messages
    # whose events continue from here need no read of the store (see SessionBase._sync_new)
    uidnext: int = 1
    # the folder's highest MODSEQ as far as the session knows it (SELECT's, the events' and
    # listings' entries, a check's folder row): a NOOP's check against the folder's row
    # (see SessionBase._check_folder)
    modseq: int = 0

    @property
    def key(self) -> tuple[str, str, int]:
        """What :class:`RecentClaims` records this folder under."""
        return (self.mailbox, self.folder, self.uidvalidity)


class SessionBase:
    """State shared by the command mixins."""

    app: App
    store: ImapStore
    state: State
    account: Account | None
    selected: Selected | None
    tls: bool
    condstore: bool
    saved: frozenset[int]  # SEARCHRES result, as UIDs (RFC 5182)
    cache: MessageCache
    derive_soon: DeriveSoon  # new messages' ENVELOPE/BODYSTRUCTURE, derived after their APPEND
    recent: RecentClaims
    snapshots: Snapshots
    out: list[bytes]
    out_size: int
    dirty: bool
    relist: bool  # a change the events do not describe came: the next sync reads the listing
    grown: bool  # new messages came unlisted: the next sync reads those above the largest known UID
    added: dict[int, Entry]  # from new-message events since the last sync, by UID
    appending: tuple[str, str] | None  # the folder an APPEND of this session is storing into
    appended: dict[int, Entry]  # that APPEND's new messages, from their events, by UID
    reflagged: dict[int, Entry]  # from flag-change events since the last sync, by UID
    expunged: list[int]  # UIDs from expunge events since the last sync
    # change events heard while a SELECT/EXAMINE is under way (None when none is): replayed
    # once the folder is selected (see hold_changes)
    selecting: list[FolderChanged] | None
    selecting_for: tuple[str, str]  # the (mailbox, folder) that SELECT/EXAMINE is reading
    wake: asyncio.Event
    writer: asyncio.StreamWriter

    def init_base(self, app: App) -> None:
        self.app = app
        self.store = app.store
        self.state = State.NOT_AUTHENTICATED
        self.account = None
        self.selected = None
        self.condstore = False
        self.saved = frozenset()
        cache = app.extras.get(CACHE_KEY)
        if not isinstance(cache, MessageCache):
            cache = MessageCache(app.store)
            app.extras[CACHE_KEY] = cache
            app.bus.subscribe(cache.on_event)  # deleted messages leave memory with their rows
        self.cache = cache
        soon = app.extras.get(DERIVE_KEY)
        if not isinstance(soon, DeriveSoon):
            soon = app.extras[DERIVE_KEY] = DeriveSoon(cache)
        self.derive_soon = soon
        snapshots = app.extras.get(SNAPSHOTS_KEY)
        if not isinstance(snapshots, Snapshots):
            snapshots = app.extras[SNAPSHOTS_KEY] = Snapshots(app.store)
            app.bus.subscribe(snapshots.on_event)
        self.snapshots = snapshots
        recent = app.extras.get(RECENT_KEY)
        if not isinstance(recent, RecentClaims):
            recent = app.extras[RECENT_KEY] = RecentClaims()
        self.recent = recent
        self.out = []
        self.out_size = 0
        self.dirty = False
        self.relist = False
        self.grown = False
        self.added = {}
        self.appending = None
        self.appended = {}
        self.reflagged = {}
        self.expunged = []
        self.selecting = None
        self.selecting_for = ("", "")
        self.wake = asyncio.Event()

    # -- output ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)

    def write_many(self, chunks: list[bytes]) -> None:
        self.out.extend(chunks)
        self.out_size += sum(map(len, chunks))

    def untagged(self, *parts: Any) -> None:
        self.write(untagged(*parts))

    async def flush(self) -> None:
        """Send what the commands wrote, in one write; wait only when the transport holds
        unsent bytes or is closing (StreamWriter.drain would return at once otherwise: a
        coroutine call per command saved)."""
        transport = self.writer.transport
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.out_size = 0
            transport.write(data)
        if transport.get_write_buffer_size() or transport.is_closing():
            await self.writer.drain()

    async def maybe_flush(self) -> None:
        if self.out_size >= FLUSH_BYTES:
            await self.flush()

    # -- store access (never block the loop) ------------------------------------------------
    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def require_account(self) -> Account:
        if self.account is None:
            raise No("not logged in")
        return self.account

    def require_selected(self) -> Selected:
        if self.selected is None:
            raise No("no mailbox selected")
        return self.selected

    # -- change notification ---------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Bus subscriber (runs on the loop): note changes to the selected folder."""
        if not isinstance(event, FolderChanged):
            return
        if (
            event.change == "exists"
            and event.entries is not None
            and (event.mailbox, event.folder) == self.appending
        ):
            # an APPEND into a folder not selected here: its message IDs (the folder selected
            # gets them through ``added`` below), so that its bytes are kept for the FETCH
            for e in event.entries:
                self.appended[e.uid] = e
        sel = self.selected
        if sel is None:
            holding = self.selecting
            if (
                holding is not None
                and (event.mailbox, event.folder) == self.selecting_for
                and len(holding) <= MAX_HELD
            ):
                holding.append(event)  # past the bound, replay_held() marks the folder for a read
            return
        if event.mailbox == sel.mailbox and event.folder == sel.folder:
            if event.uidvalidity and event.uidvalidity < sel.uidvalidity:
                return  # a change to the folder of that name before this one (UIDVALIDITY grows)
            self.dirty = True
            change = event.change
            if event.uidvalidity > sel.uidvalidity:
                # made again since it was selected: its UIDs are not the session's (the
                # listing read tells the client what is gone, as NOOP's check would)
                self.relist = True
            if event.entries:
                sel.modseq = max(sel.modseq, max(e.modseq for e in event.entries))
            if change == "exists":
                if event.entries is None or self.grown:
                    self.grown = True
                    self.added = {}
                else:
                    for e in event.entries:
                        self.added[e.uid] = e
            elif self.relist:
                pass
            elif change == "flags" and event.entries is not None:
                held = self.reflagged
                for e in event.entries:
                    old = held.get(e.uid)
                    if old is None or old.modseq < e.modseq:
                        held[e.uid] = e
            elif change == "expunge" and event.uids:
                self.expunged.extend(event.uids)
            else:  # not said which messages, or how (another node, the API): read the listing
                self.relist = True
            if self.relist or len(self.reflagged) + len(self.expunged) + len(self.added) > MAX_HELD:
                self.relist = True
                self.reflagged = {}
                self.expunged = []
                self.added = {}
            self.wake.set()

    def hold_changes(self, mailbox: str, folder: str) -> None:
        """A SELECT/EXAMINE of ``mailbox``/``folder`` begins: hold that folder's change
        events from now until :meth:`replay_held` (its state and listing are read on worker
        threads while events keep coming; one that came in between, for a change the
        listing was read before, would be lost: no FETCH, EXISTS or EXPUNGE for it ever).
        Other folders' events are not held (a burst to them during a slow SELECT would fill
        :data:`MAX_HELD` and cost a second read of the listing)."""
        self.selecting = []
        self.selecting_for = (mailbox, folder)

    def replay_held(self) -> None:
        """The folder is selected (and its pending changes forgotten): take in the events
        held since :meth:`hold_changes` as if they came now. One for a change the listing
        already holds is harmless: an older or equal MODSEQ is not shown again
        (:meth:`.Tracker._reflag`), a UID below :attr:`Selected.uidnext` is not new, an
        unknown UID is not expunged; one from a folder of that name deleted before (a lower
        UIDVALIDITY than SELECT read) is dropped (:meth:`on_event`): its ``expunge`` of UID 1
        is not the new folder's UID 1. Past :data:`MAX_HELD`, the next sync reads the listing."""
        held, self.selecting = self.selecting, None
        sel = self.selected
        if held is None or sel is None:
            return
        if len(held) > MAX_HELD:
            self.dirty = self.relist = True
            self.wake.set()
            return
        for event in held:
            self.on_event(event)

    def forget_changes(self) -> None:
        """Nothing heard of the selected folder is pending (SELECT, CLOSE, UNSELECT)."""
        self.dirty = self.relist = self.grown = False
        self.added = {}
        self.reflagged = {}
        self.expunged = []

    def added_here(self, mailbox: str, folder: str, uids: list[int]) -> None:
        """This session added ``uids`` to the folder (APPEND, COPY, MOVE): listings read
        before are stale, and if it is the selected one, the client hears of the new
        messages before the tagged OK (RFC 3501 6.3.11): from their change event if it has
        come with them (the SQLite store publishes it before answering), else read without
        a listing (see :meth:`sync_selected`)."""
        self.snapshots.changed(mailbox, folder)
        sel = self.selected
        if sel is not None and (sel.mailbox, sel.folder) == (mailbox, folder):
            self.dirty = True
            top = max(uids, default=0)
            if top not in self.added and top > sel.tracker.largest_uid:
                self.grown = True
                self.added = {}

    async def sync_selected(self, *, allow_expunge: bool, with_uid: bool, check: bool = False) -> None:
        """Send EXISTS/EXPUNGE/FETCH for changes made elsewhere (RFC 3501 section 7).

        When every change since the last sync came with an event saying what changed, no
        listing is read: expunges and flag changes are taken from the events (the
        expunged UIDs, the re-flagged entries as their transaction left them:
        :meth:`.Tracker.apply`), and new messages are read as the deliveries above the
        highest UID the session knows (:meth:`_sync_new`). Else (another PostgreSQL
        node's flag change, an API change, too many held) the folder's listing is read
        (shared by the sessions, see :mod:`.snapshots`). With ``check`` (NOOP, CHECK),
        the folder's row is compared with what the session knows too, for a change whose
        event never came (:meth:`_check_folder`)."""
        sel = self.selected
        if sel is None:
            return
        if self.dirty or sel.tracker.gone:
            await self._sync_heard(sel, allow_expunge=allow_expunge, with_uid=with_uid)
        if check and self.selected is sel:
            await self._check_folder(sel, allow_expunge=allow_expunge, with_uid=with_uid)

    async def _check_folder(self, sel: Selected, *, allow_expunge: bool, with_uid: bool) -> None:
        """NOOP's and CHECK's look for a change no event told of (a write by another
        process on the same SQLite file, a PostgreSQL notification lost with its
        connection): the folder's row (its kept message count, UIDNEXT and highest MODSEQ,
        which every change moves: one indexed row, on the event loop when the store can)
        against what the session knows. Only when they disagree is the listing read (as
        after a change whose event did not say what changed); a NOOP costs the changes
        heard, not the folder (it read the whole listing each time: ~1 s at 100,000
        messages). A disagreement from a change whose event is on its way only costs a
        read too early."""
        info = self.store.folder_info_now(sel.mailbox, sel.folder)
        if info is None:
            info = await self.blocking(self.store.folder_info, sel.mailbox, sel.folder)
            if self.selected is not sel:
                return  # another SELECT began
        t = sel.tracker
        if info is None or info.uidvalidity != sel.uidvalidity:
            # deleted or renamed away by another session (which sends no event for the
            # folder), or another folder of that name since: what the session shows is gone,
            # and only a read tells it so (an empty listing: every message expunged)
            self.snapshots.changed(sel.mailbox, sel.folder)
            await self._relist(sel, allow_expunge=allow_expunge, with_uid=with_uid)
            return
        if (
            info.exists != t.exists - len(t.gone)
            or info.uidnext > sel.uidnext
            or info.highestmodseq > max(sel.modseq, t.highest)
        ):
            self.snapshots.changed(sel.mailbox, sel.folder)  # a kept listing may lack it
            await self._relist(sel, allow_expunge=allow_expunge, with_uid=with_uid)
        # the listing (read after info, or the changes heard) holds info's state
        sel.modseq = max(sel.modseq, info.highestmodseq)
        sel.uidnext = max(sel.uidnext, info.uidnext)

    async def _sync_heard(self, sel: Selected, *, allow_expunge: bool, with_uid: bool) -> None:
        """The changes heard since the last sync (see :meth:`sync_selected`)."""
        relist = self.relist
        grown, added, reflagged, expunged = self.grown, self.added, self.reflagged, self.expunged
        self.forget_changes()
        self.wake.clear()
        if not relist:
            t = sel.tracker
            # new messages from their events, as later events left them (taken in after the
            # expunges and flag changes below, as a read of the new rows would be)
            new = self._from_events(sel, added, reflagged, expunged) if added and not grown else None
            grown = grown or (bool(added) and new is None)
            if reflagged or expunged or (t.gone and allow_expunge):
                changed = [reflagged[u] for u in sorted(reflagged)]
                added_kw = new_keywords(changed, sel.keywords)
                if added_kw:  # * FLAGS before a FETCH could show the keyword (RFC 3501 7.2.6)
                    sel.keywords |= added_kw
                    self.write_flags(sel)
                for line in t.apply(
                    changed,
                    expunged,
                    allow_expunge=allow_expunge,
                    with_uid=with_uid,
                    condstore=self.condstore,
                ):
                    self.write(line)
            if new is not None:
                self._extend(sel, new)
            elif grown:
                await self._sync_new(sel)
            return
        await self._relist(sel, allow_expunge=allow_expunge, with_uid=with_uid)

    async def _relist(self, sel: Selected, *, allow_expunge: bool, with_uid: bool) -> None:
        """Bring the client up to date from a listing with every change heard of."""
        self.forget_changes()
        self.wake.clear()
        snap = self.snapshots.peek_current(sel.mailbox, sel.folder, sel.listing)
        if snap is None:  # the first session to sync after a change reads the listing
            snap = await self.blocking(self.snapshots.current, sel.mailbox, sel.folder, sel.listing)
        sel.listing = snap.seq
        sel.modseq = max(sel.modseq, snap.highest_modseq)
        if snap.uids:
            sel.uidnext = max(sel.uidnext, snap.uids.top + 1)
        # a keyword another session added: * FLAGS before any FETCH that shows it (RFC 3501 7.2.6)
        new_kw = snap.keywords - sel.keywords
        if new_kw:
            sel.keywords |= new_kw
            self.write_flags(sel)
        for line in sel.tracker.sync(
            snap,
            allow_expunge=allow_expunge,
            with_uid=with_uid,
            condstore=self.condstore,
            claim=lambda uids: self.recent.claim(sel.key, uids, sel.readonly),
        ):
            self.write(line)

    async def _sync_new(self, sel: Selected) -> None:
        """EXISTS and RECENT for the messages above the tracker's highest UID, read from
        the store by UID range (an APPEND into a 20,000-message folder reads one row, not
        20,000). UIDs only grow and are given out in commit order (RFC 3501 2.3.1.1), so
        nothing can appear below that UID later; flag changes and expunges come with
        events of their own, which take the listing path. Used when the new messages'
        events did not carry them (another PostgreSQL node, a COPY) or left a gap."""
        t = sel.tracker
        # a shared listing whose read began before this one may lack what it finds
        sel.listing = max(sel.listing, self.snapshots.ticket())
        added = await self.blocking(self.store.folder_entries, sel.mailbox, sel.folder, t.largest_uid)
        self._extend(sel, added)

    @staticmethod
    def _from_events(
        sel: Selected, added: dict[int, Entry], reflagged: dict[int, Entry], expunged: list[int]
    ) -> list[Entry] | None:
        """The new messages of ``added`` (held from events) in UID order, each with a later
        flag change applied; None unless they continue the UIDs the session knows without
        a gap (UIDs are given out one by one, in commit order, and every new-message event
        carries all of its folder's: a gap is an event this session did not hear, e.g. one
        that came while SELECT read the listing). Those below :attr:`Selected.uidnext` are
        known already, and one expunged before the session heard of it is left out (never
        shown, never EXPUNGEd)."""
        uids = sorted(added)
        if uids[0] > sel.uidnext or uids[-1] - uids[0] + 1 != len(uids):
            return None
        gone = set(expunged)
        new = []
        for u in uids:
            if u < sel.uidnext or u in gone:
                continue
            e = added[u]
            later = reflagged.get(u)
            new.append(later if later is not None and later.modseq >= e.modseq else e)
        sel.uidnext = max(sel.uidnext, uids[-1] + 1)
        return new

    def _extend(self, sel: Selected, added: list[Entry]) -> None:
        """Take in new messages (ascending): * FLAGS for a keyword new to the session, then
        EXISTS and RECENT (:meth:`.Tracker.extend`)."""
        t = sel.tracker
        if added:
            sel.uidnext = max(sel.uidnext, added[-1].uid + 1)
            sel.modseq = max(sel.modseq, max(e.modseq for e in added))
        new_kw = new_keywords(added, sel.keywords)
        if new_kw:  # * FLAGS before a FETCH could show the keyword (RFC 3501 7.2.6)
            sel.keywords |= new_kw
            self.write_flags(sel)

        def claim(uids: list[int]) -> set[int]:
            return self.recent.claim(sel.key, uids, sel.readonly)

        for line in t.extend(added, claim):
            self.write(line)

    def write_flags(self, sel: Selected) -> None:
        flags = " ".join([*SYSTEM_FLAGS, *sorted(sel.keywords)])
        self.untagged("FLAGS", Raw(f"({flags})".encode()))
        if not sel.readonly:
            self.untagged("OK", Raw(f"[PERMANENTFLAGS ({flags} \\*)] Flags permitted.".encode()))
        else:
            self.untagged("OK", Raw(b"[PERMANENTFLAGS ()] Read-only mailbox."))
