"""Authenticated-state commands: SELECT/EXAMINE, LIST/LSUB, STATUS, CREATE/DELETE/RENAME,
SUBSCRIBE/UNSUBSCRIBE, APPEND, NAMESPACE, ENABLE (RFC 3501 section 6.3, RFC 5258, 6154, 5161).
"""

from __future__ import annotations

import contextlib
import re

from ...protocols.imap import utf7
from ...protocols.imap.args import Args, parse_datetime
from ...protocols.imap.commands import State
from ...protocols.imap.decoder import Atom, Group, String
from ...protocols.imap.encoder import Raw, encode
from ...protocols.imap.errors import No, ParseError
from ...protocols.imap.mime import without_nul
from ...protocols.imap.numset import format_numbers
from ...store.base import INBOX, Entry, FolderInfo, NotFound
from .account import DELIMITER, Account
from .core import Selected, SessionBase
from .gmail import THREAD_EXT, thread_key_arg
from .snapshots import Snapshot
from .tracker import Tracker

__all__ = ["MailboxCommands"]

Reply = tuple[str, str | None]

_SPECIAL_USE = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
_STATUS_ITEMS = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED"}


# STATUS RECENT counts the UIDs above the highest claimed on the event loop when at most this
# many lie there (a range of the (folder_id, uid) key; a wider one is read on a worker thread)
RECENT_NOW_SPAN = 1000
_ATOM = re.compile(rb"[^\x00-\x20(){%*\"\\\]\x7f]+\Z")


def _quote_name(name: str) -> bytes:
    """A mailbox name as an atom when it can be one, else quoted (as Dovecot writes them)."""
    wire = utf7.encode(name).encode("ascii")
    return wire if _ATOM.match(wire) and wire.upper() != b"NIL" else encode(wire)


class ListPattern:
    """A LIST reference + pattern (RFC 3501 section 6.3.8: ``*`` matches anything, ``%``
    anything but the hierarchy delimiter).

    Matched by walking the pattern's positions over the name once (a set of live positions
    per character, O(len(name) x len(pattern))), not by a regular expression: the pattern
    is the client's, and ``*a*a*a*a*a*a*b`` as ``.*a.*a...`` took 10 s against a 60-letter
    name (issue 14, the regular-expression audit).
    """

    __slots__ = ("_pattern",)

    def __init__(self, ref: str, pattern: str) -> None:
        full = pattern if (pattern.startswith(DELIMITER) or not ref) else ref + pattern
        # INBOX matches case-insensitively (RFC 3501 section 5.1)
        if full[:5].upper() == "INBOX":
            full = "INBOX" + full[5:]
        self._pattern = full

    def match(self, name: str) -> bool:
        """True when the whole of ``name`` matches."""
        pat = self._pattern
        states = self._close({0})
        for ch in name:
            nxt: set[int] = set()
            for i in states:
                if i == len(pat):
                    continue
                p = pat[i]
                if p == "*" or (p == "%" and ch != DELIMITER):
                    nxt.add(i)  # the wildcard takes this character and may take more
                elif p == ch:
                    nxt.add(i + 1)
            if not nxt:
                return False
            states = self._close(nxt)
        return len(pat) in states

    def _close(self, states: set[int]) -> set[int]:
        """Add the positions reachable by letting wildcards match nothing."""
        pat = self._pattern
        out = set(states)
        for i in sorted(states):
            while i < len(pat) and pat[i] in "*%":
                i += 1
                out.add(i)
        return out


class MailboxCommands(SessionBase):
    # -- SELECT / EXAMINE ----------------------------------------------------------------------
    async def cmd_select(self, args: Args, uid: bool) -> Reply:
        return await self._select(args, readonly=False)

    async def cmd_examine(self, args: Args, uid: bool) -> Reply:
        return await self._select(args, readonly=True)

    async def _select(self, args: Args, readonly: bool) -> Reply:
        name = args.mailbox()
        if args.more():
            for t in Args(args.group("select parameters")).tokens:
                if isinstance(t, Atom) and t.value.upper() == "CONDSTORE":
                    self.condstore = True
                else:
                    raise ParseError("unknown SELECT parameter")
        args.end()
        account = self.require_account()
        if self.selected is not None:
            self.untagged("OK", Raw(b"[CLOSED] Previous mailbox closed."))
            self.selected = None
            self.state = State.AUTHENTICATED
            self.forget_changes()
        try:
            mailbox, folder = account.resolve(name)
            # its events from here on are taken in once selected (replay_held)
            self.hold_changes(mailbox, INBOX if folder.upper() == INBOX else folder)
            return await self._open(name, readonly, account)
        finally:
            self.selecting = None

    async def _open(self, name: str, readonly: bool, account: Account) -> Reply:
        info = await self.blocking(account.info, name)
        if info is None:
            raise No("mailbox does not exist", "NONEXISTENT")
        # a kept listing is taken on the event loop whatever its size (the tracker shares
        # its tables and holds its \Recent as a range, see Tracker.from_snapshot); else it
        # is read (or grown by the changes since) in a worker thread
        kept = self.snapshots.peek(info)
        if kept is not None:
            snap, tracker = kept, Tracker.from_snapshot(kept)
        else:
            snap, tracker = await self.blocking(self._listing, info)
        sel = Selected(
            name, info.mailbox, info.name, readonly, info.uidvalidity, tracker, set(snap.keywords), snap.seq
        )
        # the listing, read after info, holds every delivery below info's UIDNEXT and its own top
        sel.uidnext = max(info.uidnext, snap.uids.top + 1)
        sel.modseq = max(info.highestmodseq, snap.highest_modseq)
        tracker.set_recent(self.recent.claim_above(sel.key, snap.uids.top, readonly))
        self.write_flags(sel)
        self.untagged(tracker.exists, "EXISTS")
        self.untagged(tracker.recent_count, "RECENT")
        if snap.first_unseen:
            self.untagged("OK", Raw(b"[UNSEEN %d] First unseen." % snap.first_unseen))
        self.untagged("OK", Raw(b"[UIDVALIDITY %d] UIDs valid" % info.uidvalidity))
        self.untagged("OK", Raw(b"[UIDNEXT %d] Predicted next UID" % info.uidnext))
        if self.condstore:
            self.untagged(
                "OK", Raw(b"[HIGHESTMODSEQ %d] Highest" % max(info.highestmodseq, snap.highest_modseq, 1))
            )
        self.selected = sel
        self.forget_changes()
        self.replay_held()  # what changed while info and the listing were read
        self.state = State.SELECTED
        return ("SELECT completed" if not readonly else "EXAMINE completed"), (
            "READ-ONLY" if readonly else "READ-WRITE"
        )

    def _listing(self, info: FolderInfo) -> tuple[Snapshot, Tracker]:
        """The folder's shared snapshot and a tracker of its own (in a worker thread)."""
        snap = self.snapshots.get(info)
        return snap, Tracker.from_snapshot(snap)

    # -- LIST / LSUB -----------------------------------------------------------------------------
    async def cmd_list(self, args: Args, uid: bool) -> Reply:
        select_opts: set[str] = set()
        if isinstance(args.peek(), Group):
            select_opts = {Args([t]).atom().upper() for t in args.group("selection options")}
            # RFC 5258 section 3: unknown options, and RECURSIVEMATCH without an option it
            # could apply to, are errors
            if select_opts - _SELECT_OPTIONS:
                raise ParseError("unknown LIST selection option")
            if "RECURSIVEMATCH" in select_opts and not select_opts - {"RECURSIVEMATCH", "REMOTE"}:
                raise ParseError("RECURSIVEMATCH needs another selection option")
        ref = args.text("reference")
        pat_tok = args.peek()
        patterns: list[str]
        if isinstance(pat_tok, Group):
            patterns = [_list_pattern(Args([t])) for t in args.group("patterns")]
        else:
            patterns = [_list_pattern(args)]
        return_opts: set[str] = set()
        status_items: list[str] = []
        if args.more():
            if args.atom("RETURN").upper() != "RETURN":
                raise ParseError("expected RETURN")
            sub = Args(args.group("return options"))
            while sub.more():
                opt = sub.atom("return option").upper()
                if opt not in _RETURN_OPTIONS:
                    raise ParseError("unknown LIST return option")
                return_opts.add(opt)
                if opt == "STATUS":
                    status_items = [Args([t]).atom().upper() for t in sub.group("status items")]
        args.end()
        await self._list(ref, patterns, select_opts, return_opts, status_items, lsub=False)
        return "LIST completed", None

    async def cmd_lsub(self, args: Args, uid: bool) -> Reply:
        ref = args.text("reference")
        pattern = _list_pattern(args)
        args.end()
        await self._list(ref, [pattern], {"SUBSCRIBED"}, set(), [], lsub=True)
        return "LSUB completed", None

    async def _list(
        self,
        ref: str,
        patterns: list[str],
        select_opts: set[str],
        return_opts: set[str],
        status_items: list[str],
        *,
        lsub: bool,
    ) -> None:
        account = self.require_account()
        verb = "LSUB" if lsub else "LIST"
        if patterns == [""]:
            # RFC 3501 section 6.3.8: the hierarchy delimiter and root name
            self.untagged(verb, Raw(b"(\\Noselect)"), DELIMITER.encode(), b"")
            return
        folders = account.folders_now()  # on the loop when the store can (no hop to a thread)
        if folders is None:
            folders = await self.blocking(account.folders)
        names = {n: f for n, f in folders}
        # parents that exist only as hierarchy levels
        implied: set[str] = set()
        for n in names:
            parts = n.split(DELIMITER)
            for i in range(1, len(parts)):
                p = DELIMITER.join(parts[:i])
                if p not in names:
                    implied.add(p)
        regexes = [ListPattern(ref, p) for p in patterns]
        subscribed_only = "SUBSCRIBED" in select_opts
        special_only = "SPECIAL-USE" in select_opts
        show_sub = subscribed_only or "SUBSCRIBED" in return_opts
        recursive = "RECURSIVEMATCH" in select_opts
        subscribed = {n for n, f in names.items() if f.subscribed}
        ghosts: set[str] = set()
        if subscribed_only or show_sub:
            ghosts = {g for g in self._ghosts(account) if g not in names}
            subscribed |= ghosts
            implied -= ghosts
        for name in sorted(set(names) | implied | ghosts, key=lambda n: (n != INBOX, n)):
            if not any(r.match(name) for r in regexes):
                continue
            info = names.get(name)
            # a subscribed mailbox below this one: RFC 5258 CHILDINFO, and for LSUB with "%"
            # the parent is listed \Noselect (RFC 3501 6.3.9)
            # (RFC 5258 3.5: only for a descendant the patterns do not list themselves)
            hidden_sub = (subscribed_only or lsub) and any(
                o.startswith(name + DELIMITER) and not any(r.match(o) for r in regexes) for o in subscribed
            )
            childinfo = subscribed_only and recursive and hidden_sub and not lsub
            lsub_parent = lsub and name not in subscribed and hidden_sub
            if subscribed_only and name not in subscribed and not childinfo and not lsub_parent:
                continue
            if special_only and (info is None or not info.special_use):
                continue
            attrs: list[str] = []
            if name in ghosts and not lsub:
                attrs.append("\\NonExistent")  # RFC 5258 3.4 (it implies \\Noselect)
            elif info is None or lsub_parent:
                attrs.append("\\Noselect")
            has_children = any(o.startswith(name + DELIMITER) for o in names)
            if not lsub:
                attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
            if info is not None and info.special_use and not lsub:
                attrs.append(info.special_use)
            if show_sub and name in subscribed and not lsub:
                attrs.append("\\Subscribed")
            extra = [Raw(b'(CHILDINFO ("SUBSCRIBED"))')] if childinfo else []
            self.untagged(
                verb,
                Raw(("(" + " ".join(attrs) + ")").encode()),
                DELIMITER.encode(),
                Raw(_quote_name(name)),
                *extra,
            )
            if status_items and info is not None:
                await self._status(name, status_items)

    # -- STATUS ------------------------------------------------------------------------------------
    async def cmd_status(self, args: Args, uid: bool) -> Reply:
        name = args.mailbox()
        items = [Args([t]).atom("status item").upper() for t in args.group("status items")]
        args.end()
        if not items or any(i not in _STATUS_ITEMS for i in items):
            raise ParseError("unknown STATUS item")
        await self._status(name, items)
        return "STATUS completed", None

    async def _status(self, name: str, items: list[str]) -> None:
        account = self.require_account()
        listed = bool({"SIZE", "DELETED", "HIGHESTMODSEQ"} & set(items))
        recent = "RECENT" in items

        def read() -> tuple[FolderInfo | None, list[Entry] | None, int]:  # one trip to a worker thread
            info = account.info(name)
            if info is None:
                return info, None, 0
            key = (info.mailbox, info.name, info.uidvalidity)
            if listed:
                entries = self.store.folder_entries(info.mailbox, info.name)
                return info, entries, self.recent.unclaimed(key, [e.uid for e in entries])
            if not recent:
                return info, None, 0
            # RECENT alone (imaptest's STATUS, Thunderbird's): only the rows above the highest
            # UID a session has claimed (usually none), not the whole folder
            above = self.store.folder_entries(info.mailbox, info.name, self.recent.mark(key))
            return info, None, self.recent.unclaimed(key, [e.uid for e in above])

        quick = None if listed else self._status_now(account, name, recent)
        info: FolderInfo | None
        if quick is not None:  # the folder row alone, read on the loop
            (info, unclaimed), entries = quick, None
        else:
            info, entries, unclaimed = await self.blocking(read)
        if info is None:
            raise No("mailbox does not exist", "NONEXISTENT")
        values: dict[str, int] = {
            "MESSAGES": info.exists,
            "RECENT": unclaimed,
            "UIDNEXT": info.uidnext,
            "UIDVALIDITY": info.uidvalidity,
            "UNSEEN": info.unseen,
        }
        if entries is not None:
            values["SIZE"] = sum(e.size for e in entries)
            values["DELETED"] = sum(1 for e in entries if "\\Deleted" in e.flags)
            values["HIGHESTMODSEQ"] = _highest(info, entries)
        body = " ".join(f"{i} {values[i]}" for i in items)
        self.untagged("STATUS", Raw(_quote_name(name)), Raw(f"({body})".encode()))

    def _status_now(self, account: Account, name: str, recent: bool) -> tuple[FolderInfo, int] | None:
        """STATUS of the folder row alone, read on the event loop, when the store can (SQLite,
        nothing acknowledged waiting to be stored) and RECENT needs no listing: no UID was
        ever claimed (all are unclaimed), the highest is claimed (none are), or at most
        RECENT_NOW_SPAN UIDs lie above the highest claimed (a count of that range). Else None."""
        info = account.info_now(name)
        if info is None or not recent:
            return None if info is None else (info, 0)
        mark = self.recent.mark((info.mailbox, info.name, info.uidvalidity))
        if mark == 0:
            return info, info.exists
        if mark >= info.uidnext - 1:
            return info, 0
        if info.uidnext - 1 - mark > RECENT_NOW_SPAN:
            return None
        above = self.store.count_above_now(info.mailbox, info.name, mark)
        return None if above is None else (info, above)

    # -- CREATE / DELETE / RENAME / SUBSCRIBE ---------------------------------------------------------
    async def cmd_create(self, args: Args, uid: bool) -> Reply:
        name = args.mailbox()
        special = ""
        if args.more():
            opts = Args(args.group("create parameters"))
            if opts.atom().upper() != "USE":
                raise ParseError("unknown CREATE parameter")
            uses = [Args([t]).atom() for t in opts.group("special-use flags")]
            opts.end()
            for u in uses:
                canon = next((s for s in _SPECIAL_USE if s.lower() == u.lower()), None)
                if canon is None:
                    raise No(f"unsupported special-use {u[:20]}", "USEATTR")
                special = canon
        args.end()
        if not name.strip(DELIMITER):
            raise No("invalid mailbox name", "CANNOT")
        account = self.require_account()
        await self.blocking(account.create, name, special)
        ghosts = self._ghosts(account)
        if name.rstrip(DELIMITER) in ghosts:  # a subscription that outlived its mailbox
            ghosts.discard(name.rstrip(DELIMITER))
            mailbox, folder = account.resolve(name.rstrip(DELIMITER))
            await self.blocking(self.store.set_subscribed, mailbox, folder, True)
        return "CREATE completed", None

    def _ghosts(self, account: Account) -> set[str]:
        """Subscribed names with no mailbox (RFC 3501 6.3.6: DELETE keeps the subscription,
        SUBSCRIBE may name a mailbox that does not exist). Held in memory for the server's
        life, per login name; subscriptions of existing folders are stored with the folder."""
        table = self.app.extras.setdefault(GHOSTS_KEY, {})
        assert isinstance(table, dict)
        ghosts: set[str] = table.setdefault(account.user, set())
        return ghosts

    async def cmd_delete(self, args: Args, uid: bool) -> Reply:
        name = args.mailbox()
        args.end()
        sel = self.selected
        account = self.require_account()
        if sel is not None and sel.name == name:
            raise No("mailbox is selected; close it first", "INUSE")
        info = await self.blocking(account.info, name)
        await self.blocking(account.delete, name)
        if info is not None and info.subscribed:
            self._ghosts(account).add(name)
        return "DELETE completed", None

    async def cmd_rename(self, args: Args, uid: bool) -> Reply:
        old = args.mailbox()
        new = args.mailbox()
        args.end()
        await self.blocking(self.require_account().rename, old, new.rstrip(DELIMITER))
        return "RENAME completed", None

    async def cmd_subscribe(self, args: Args, uid: bool) -> Reply:
        return await self._subscribe(args, True)

    async def cmd_unsubscribe(self, args: Args, uid: bool) -> Reply:
        return await self._subscribe(args, False)

    async def _subscribe(self, args: Args, on: bool) -> Reply:
        name = args.mailbox()
        args.end()
        account = self.require_account()
        mailbox, folder = account.resolve(name)
        ghosts = self._ghosts(account)
        try:
            await self.blocking(self.store.set_subscribed, mailbox, folder, on)
        except NotFound:
            if on:
                ghosts.add(name)
        if not on:
            ghosts.discard(name)
        return ("SUBSCRIBE" if on else "UNSUBSCRIBE") + " completed", None

    # -- APPEND (RFC 3501 6.3.11, RFC 4315 APPENDUID) -----------------------------------------
    async def cmd_append(self, args: Args, uid: bool) -> Reply:
        """APPEND, with several messages in one command (RFC 3502 MULTIAPPEND)."""
        name = args.mailbox()
        items: list[tuple[bytes, frozenset[str], float | None, str]] = []
        while True:
            flags: list[str] = []
            date: float | None = None
            thread_key = ""
            tok = args.peek()
            if isinstance(tok, Group):
                flags = args.flags()
                if "\\Recent" in flags:
                    raise ParseError("\\Recent cannot be set")
                tok = args.peek()
            if isinstance(tok, String) and not tok.literal:
                date = parse_datetime(args.string("date-time").decode("ascii", "replace"))
            if args.peek_atom() == THREAD_EXT:  # append-ext (RFC 4466 section 2.1.1)
                args.next()
                thread_key = thread_key_arg(args.astring("thread key"))
            items.append((args.string("message literal"), frozenset(flags), date, thread_key))
            if not args.more():
                break
        args.end()
        account = self.require_account()
        mailbox, folder = account.resolve(name)
        # The store refuses a folder that does not exist (NotFound, below): no folder_info
        # here, whose message counts cost O(folder) per APPEND (an import of 100,000
        # messages slowed to ~70/s). The all-mailboxes view's INBOX needs its own check.
        if account.all_view and folder == INBOX and await self.blocking(account.info, name) is None:
            raise No("mailbox does not exist", "TRYCREATE")
        if any(not message for message, _, _, _ in items):
            raise No("empty message")
        validity, uids = 0, []
        stored: list[bytes] = []
        self.appending, self.appended = (mailbox, folder), {}
        try:
            for message, flags_set, date, key in items:
                # literal8 content (RFC 3516 4.4): see without_nul
                data = without_nul(message)
                validity, new_uid = await self.store.append(mailbox, folder, data, flags_set, date, key)
                uids.append(new_uid)
                stored.append(data)
        except NotFound:
            if uids:  # the folder went away between two messages of one MULTIAPPEND
                await self._undo_append(mailbox, folder, uids)
            raise No("mailbox does not exist", "TRYCREATE") from None
        except BaseException:
            if uids:  # RFC 3502: all of them or none
                await self._undo_append(mailbox, folder, uids)
            raise
        finally:
            self.appending = None
        appended, self.appended = self.appended, {}
        self.added_here(mailbox, folder, uids)  # EXISTS before the tagged OK (RFC 3501 6.3.11)
        # the bytes are at hand: a FETCH of the new message (any session's, clients do it at
        # once) renders from memory, without a hop to a worker thread to read them back
        kept: list[tuple[str, bytes]] = []
        for new_uid, data in zip(uids, stored, strict=True):
            # its change event has come (SQLite), with its ID
            entry = self.added.get(new_uid) or appended.get(new_uid)
            if entry is not None:
                self.cache.keep_raw(entry.id, data)
                kept.append((entry.id, data))
        # ... and its ENVELOPE/BODYSTRUCTURE are derived in the background (the next FETCH's)
        self.derive_soon.add(kept)
        return "APPEND completed", f"APPENDUID {validity} {format_numbers(uids)}"

    async def _undo_append(self, mailbox: str, folder: str, uids: list[int]) -> None:
        """Take back the messages of a MULTIAPPEND that failed part way (RFC 3502: all or none)."""
        with contextlib.suppress(NotFound):
            deleted = frozenset({"\\Deleted"})
            await self.store.update_flags_async(mailbox, folder, uids, deleted, "add")
            await self.store.expunge_async(mailbox, folder, uids)

    # -- NAMESPACE / ENABLE / CHECK ---------------------------------------------------------------
    async def cmd_namespace(self, args: Args, uid: bool) -> Reply:
        args.end()
        self.untagged("NAMESPACE", Raw(b'(("" "/")) NIL NIL'))
        return "NAMESPACE completed", None

    async def cmd_enable(self, args: Args, uid: bool) -> Reply:
        enabled = []
        while args.more():
            cap = args.atom("capability").upper()
            if cap == "CONDSTORE":
                self.condstore = True
                enabled.append(cap)
        self.untagged("ENABLED", *[Raw(c.encode()) for c in enabled])
        return "ENABLE completed", None


GHOSTS_KEY = "imap_subscribed_without_mailbox"  # app.extras: {login: {IMAP names}}
# RFC 5258 (LIST-EXTENDED), RFC 6154 (SPECIAL-USE), RFC 5819 (LIST-STATUS)
_SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"})


def _list_pattern(args: Args) -> str:
    raw = args.astring("mailbox pattern")
    try:
        text = raw.decode("ascii")
        return utf7.decode(text) if "&" in text else text
    except utf7.Utf7Error:
        return text  # matches no mailbox (names are valid modified UTF-7), as in Dovecot
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


def _highest(info: FolderInfo, entries: list[Entry]) -> int:
    best = info.highestmodseq
    for e in entries:
        best = max(best, e.modseq)
    return max(best, 1)
