"""Selected-state commands: FETCH, STORE, SEARCH, SORT, THREAD, COPY, MOVE, EXPUNGE,
CLOSE, UNSELECT, CHECK (RFC 3501 section 6.4, RFC 4315, 6851, 5256, 3516, 7162 basics).
"""

from __future__ import annotations

import asyncio

from ...protocols.imap.args import Args, internaldate_item
from ...protocols.imap.commands import State
from ...protocols.imap.decoder import Group
from ...protocols.imap.encoder import Binary, Raw, encode
from ...protocols.imap.errors import No, ParseError
from ...protocols.imap.fetch import (
    Item,
    apply_partial,
    decode_part,
    section_content,
    was_decoded,
)
from ...protocols.imap.labels import format_labels, parse_labels
from ...protocols.imap.mime import Part, SectionError
from ...protocols.imap.numset import NumSet, format_numbers, format_pairs
from ...protocols.imap.prefilter import raw_excludes
from ...protocols.imap.search import (
    CHARSETS,
    BadCharset,
    Context,
    Key,
    matches,
    needs_message,
    parse_criteria,
    uses_gm,
    uses_headers,
    uses_labels,
    uses_text,
)
from ...protocols.imap.sort import parse_sort
from ...store.base import Entry
from .core import Selected, SessionBase
from .fetchplan import Plan, parse_items_memo, plan_of
from .gmail import GmIds, conversation_ids, deadline, message_ids, prefetch_gm, prefetch_labels
from .labels import LABEL_MODES, change_labels, check_labels
from .messages import Derived, MessageView, prefetch
from .sortorder import sort_line
from .tracker import flag_list, new_keywords

__all__ = ["SelectedCommands"]

Reply = tuple[str, str | None]
_Target = tuple[int, Entry, frozenset[str], bool]  # seq, entry, flags, add FLAGS (set \\Seen now)

# Messages rendered per worker-thread hop during FETCH (our choice: amortizes the hop,
# keeps each response chunk small enough to stream).
FETCH_BATCH = 256
# A message this small, already in memory, is parsed on the event loop for a sectioned
# FETCH instead of hopping to a thread (parsing 64 KB takes well under a millisecond).
INLINE_PARSE_MAX = 64 * 1024
# A FETCH of one message this small that is not in memory reads it on the event loop: one
# indexed SQLite read and a decompression take ~50 us here, the hop to a worker thread and
# back ~170 us on a 2-core machine (measured: 200 single-message UID FETCH BODY.PEEK[]
# after a restart, 65 ms through a thread, 30 ms inline).
INLINE_READ_MAX = 256 * 1024
# Messages of at most INLINE_PARSE_MAX bytes, in memory, whose ENVELOPE/BODYSTRUCTURE one
# FETCH batch derives on the event loop (~250 us each for imaptest's messages) rather than
# hopping to a worker thread: a new message just APPENDed (our choice: keeps the loop's
# stall under a millisecond).
INLINE_DERIVE = 2
# Messages whose data one SEARCH holds at once (our choice: ~1,000 messages of text is a
# few MB; fewer chunks cost one more batch read of the store each).
SEARCH_CHUNK = 1000


def _render(
    seq: int,
    entry: Entry,
    flags: frozenset[str],
    plan: Plan,
    raw: bytes | None,
    part: Part | None,
    derived: Derived | None,
    extra_flags: bool,
    out: list[bytes],
    gm: GmIds | None = None,
    labels: list[str] | None = None,
) -> None:
    """Append one ``* seq FETCH (...)`` response to ``out`` (message bodies are appended as
    their own chunks, not copied into the line)."""
    out.append(b"* %d FETCH (" % seq)
    first = True
    for item, rname in zip(plan.items, plan.names, strict=True):
        if not first:
            out.append(b" ")
        first = False
        n = item.name
        if item.section is not None:
            out.append(rname + b" ")
            if part is None:
                assert raw is not None
                _whole_value(raw, item, out)
            else:
                _section_value(part, item, out)
        elif n == "UID":
            out.append(b"UID %d" % entry.uid)
        elif n == "FLAGS":
            out.append(b"FLAGS " + flag_list(flags).data)
        elif n == "INTERNALDATE":
            out.append(internaldate_item(entry.internaldate))
        elif n == "RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % entry.size)
        elif n == "MODSEQ":
            out.append(b"MODSEQ (%d)" % entry.modseq)
        elif n == "X-POSTROOM-ID":
            out.append(b"X-POSTROOM-ID " + encode(entry.id))
        elif gm is not None and n == "X-GM-MSGID":
            out.append(b"X-GM-MSGID %d" % gm[0])
        elif gm is not None and n == "X-GM-THRID":
            out.append(b"X-GM-THRID %d" % gm[1])
        elif labels is not None and n == "X-GM-LABELS":
            out.append(b"X-GM-LABELS " + format_labels(labels))
        elif derived is not None and n == "ENVELOPE":
            out.append(b"ENVELOPE " + derived.envelope)
        elif derived is not None and n == "BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + derived.bodystructure)
        elif derived is not None and n == "BODY":
            out.append(b"BODY " + derived.body)
        elif raw is not None and n == "RFC822":
            out.append(b"RFC822 {%d}\r\n" % len(raw))
            out.append(raw)
        elif part is not None and n == "RFC822.HEADER":
            out.append(b"RFC822.HEADER {%d}\r\n" % len(part.header))
            out.append(part.header)
        elif part is not None and n == "RFC822.TEXT":
            out.append(b"RFC822.TEXT {%d}\r\n" % len(part.body))
            out.append(part.body)
    if extra_flags:
        out.append(b" FLAGS " + flag_list(flags).data)
    out.append(b")\r\n")


def _whole_value(raw: bytes, item: Item, out: list[bytes]) -> None:
    """BODY[], BINARY[] or BINARY.SIZE[] of the whole message, from its bytes alone."""
    if item.name == "BINARY.SIZE":
        out.append(b"%d" % len(raw))
        return
    data = apply_partial(raw, item.partial) if item.partial is not None else raw
    # RFC 3516 section 4.2: literal8 only where needed (NUL octets), as encode(Binary) does
    eight = item.name == "BINARY" and b"\0" in data
    out.append((b"~{%d}\r\n" if eight else b"{%d}\r\n") % len(data))
    out.append(data)


def _section_value(part: Part, item: Item, out: list[bytes]) -> None:
    """BODY[section], BINARY[section] or BINARY.SIZE[section] of a parsed message, appended
    to ``out`` (a literal's octets as a chunk of their own, not copied)."""
    assert item.section is not None
    try:
        if item.name == "BODY":
            data = section_content(part, item.section)
            if item.partial is not None:
                data = apply_partial(data, item.partial)
            out.append(b"{%d}\r\n" % len(data))
            out.append(data)
            return
        data = decode_part(part, item.section)
    except SectionError:
        # a part that does not exist reads as empty, as in Dovecot
        out.append(b"0" if item.name == "BINARY.SIZE" else b"{0}\r\n")
        return
    if item.name == "BINARY.SIZE":
        out.append(b"%d" % len(data))
        return
    out.append(encode(Binary(apply_partial(data, item.partial), was_decoded(part, item.section))))


class SelectedCommands(SessionBase):
    tag: str

    # -- message set resolution ---------------------------------------------------------------------
    def targets(self, sel: Selected, ns: NumSet, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs named by a sequence set or UID set, in sequence order."""
        t = sel.tracker
        if ns.saved:
            return [(t.seq_of(u), u) for u in sorted(self.saved) if t.seq_of(u)]
        uids = t.uids
        if uid:
            # UIDs are sorted: find each range by bisection (UID FETCH n must not scan the folder)
            ranges = ns.resolve(t.largest_uid)
            if len(ranges) == 1:
                lo, hi = ranges[0]
                a, b = uids.bisect_left(lo), uids.bisect_right(hi)
                return list(zip(range(a + 1, b + 1), uids.slice(a, b), strict=True))
            picked: set[int] = set()
            for lo, hi in ns.resolve(t.largest_uid):
                picked.update(range(uids.bisect_left(lo), uids.bisect_right(hi)))
            arr = uids.arr  # (positions below uids.n: this tracker's)
            return [(i + 1, arr[i]) for i in sorted(picked)]
        exists = len(uids)
        if not exists:
            if ns.has_star():
                return []
            raise ParseError("invalid message sequence number (mailbox is empty)")
        ranges = ns.resolve(exists)
        for _lo, hi in ranges:
            if hi > exists:
                raise ParseError(f"invalid message sequence number {hi}")
        if len(ranges) == 1:  # 1:*, n, n:m: a slice (the set is checked above)
            lo, hi = ranges[0]
            return list(zip(range(lo, hi + 1), uids.slice(lo - 1, hi), strict=True))
        arr = uids.arr
        return [(s, arr[s - 1]) for s in ns.expand(exists)]

    # -- FETCH (RFC 3501 6.4.5) -----------------------------------------------------------------
    async def cmd_fetch(self, args: Args, uid: bool) -> Reply:
        sel = self.require_selected()
        ns = args.numset()
        items = parse_items_memo(args.next("fetch items"))
        changedsince: int | None = None
        if args.more():
            mods = Args(args.group("fetch modifiers"))
            if mods.atom().upper() != "CHANGEDSINCE":
                raise ParseError("unknown FETCH modifier")
            changedsince = mods.number("mod-sequence")
            mods.end()
            self.condstore = True
        args.end()
        names = {i.name for i in items}
        enabling = "MODSEQ" in names and not self.condstore
        if enabling:
            self.condstore = True  # RFC 7162 3.1: FETCH MODSEQ is a CONDSTORE-enabling command
        if uid and "UID" not in names:
            items.insert(0, Item("UID"))
        if (
            (changedsince is not None or self.condstore)
            and "MODSEQ" not in names
            and changedsince is not None
        ):
            items.append(Item("MODSEQ"))
        targets = self.targets(sel, ns, uid)
        t = sel.tracker
        if changedsince is not None:
            targets = [(s, u) for s, u in targets if t.entry(u).modseq > changedsince]
        seen_now: set[int] = set()
        if not sel.readonly and any(i.sets_seen for i in items):
            want = [u for _, u in targets if t.live(u) and "\\Seen" not in t.entry(u).flags]
            if want:
                seen = frozenset({"\\Seen"})
                marked = await self.store.update_flags_async(sel.mailbox, sel.folder, want, seen, "add")
                for e in marked:
                    t.take(e, modseq=False)
                    seen_now.add(e.uid)
                self._own_write(sel)
                # the flags now shown may hold a keyword another session added: * FLAGS first
                others = new_keywords(marked, sel.keywords)
                if others:
                    sel.keywords |= others
                    self.write_flags(sel)
        has_flags = "FLAGS" in names
        plan = plan_of(items)
        entries = t.entries_of([u for _, u in targets])
        todo = [
            (s, e, f, e.uid in seen_now and not has_flags)
            for (s, _), e, f in zip(targets, entries, t.views(entries), strict=True)
        ]
        batches = [todo[i : i + FETCH_BATCH] for i in range(0, len(todo), FETCH_BATCH)]
        until = deadline() if plan.thread else 0.0
        ahead: asyncio.Future[list[bytes]] | None = None
        try:
            for i, batch in enumerate(batches):
                # what memory holds is rendered here; anything else on a worker thread
                if ahead is not None:
                    chunks, ahead = await ahead, None
                    threaded = True
                else:
                    maybe = self._render_inline(batch, plan, read=len(todo) == 1)
                    threaded = maybe is None
                    chunks = (
                        await self.blocking(self._render_batch, batch, plan, until)
                        if maybe is None
                        else maybe
                    )
                if threaded and i + 1 < len(batches):
                    # the store is being read: prepare the next batch while this one is sent
                    ahead = asyncio.ensure_future(
                        self.blocking(self._render_batch, batches[i + 1], plan, until)
                    )
                self.write_many(chunks)
                await self.maybe_flush()
        finally:
            if ahead is not None:
                ahead.cancel()
        if enabling:
            # RFC 7162 3.1: the first CONDSTORE-enabling command on a selected mailbox
            # reports the mailbox's HIGHESTMODSEQ
            highest = max(1, t.highest)
            self.untagged("OK", Raw(b"[HIGHESTMODSEQ %d] Highest" % highest))
        return "FETCH completed", None

    def _render_inline(self, batch: list[_Target], plan: Plan, read: bool = False) -> list[bytes] | None:
        """Render on the event loop from memory (and with ``read``, a message of at most
        INLINE_READ_MAX bytes from the store); None if anything else must be read."""
        if plan.thread or plan.labels:
            return None  # the store is read for these
        cache = self.cache
        out: list[bytes] = []
        budget = INLINE_DERIVE
        for seq, entry, flags, extra in batch:
            raw = part = derived = None
            if plan.raw:
                small = read and entry.size <= INLINE_READ_MAX
                raw = cache.raw_stored(entry.id) if small else cache.peek_raw(entry.id)
                if raw is None:
                    return None
                if plan.part:
                    if len(raw) > INLINE_PARSE_MAX:
                        return None
                    part = cache.parsed(entry.id, raw)
            if plan.derived:
                derived = cache.peek_derived(entry.id)
                if derived is None:
                    # a new message whose bytes memory holds (its APPEND's): derived here,
                    # a few per batch (a hop to a worker thread costs about as much)
                    kept = raw if raw is not None else cache.peek_raw(entry.id)
                    if kept is None or len(kept) > INLINE_PARSE_MAX or budget <= 0:
                        return None
                    budget -= 1
                    derived = cache.derive_kept(entry.id, kept)
            gm = None
            if plan.gm:
                msgid = cache.peek_msgid(entry.id)
                if msgid is None:
                    return None
                gm = (msgid, 0)
            _render(seq, entry, flags, plan, raw, part, derived, extra, out, gm)
        return out

    def _render_batch(self, batch: list[_Target], plan: Plan, until: float = 0.0) -> list[bytes]:
        """Render on a worker thread: read what is missing, in one batch where possible
        (``until``: how long X-GM-THRID may wait for the indexer, see :mod:`.gmail`)."""
        cache = self.cache
        derived = cache.derived_many(e.id for _, e, _, _ in batch) if plan.derived else {}
        gms: dict[str, GmIds] = {}
        if plan.gm:
            ids = [e.id for _, e, _, _ in batch]
            gms = conversation_ids(self.store, ids, until) if plan.thread else message_ids(self.store, ids)
            cache.keep_msgids({pid: msgid for pid, (msgid, _) in gms.items()})
        tags = self.store.message_tags([e.id for _, e, _, _ in batch]) if plan.labels else {}
        out: list[bytes] = []
        for seq, entry, flags, extra in batch:
            raw = part = d = None
            if plan.raw:
                raw = cache.raw(entry.id)
                if raw is None:
                    continue  # deleted meanwhile
                if plan.part:
                    part = cache.parsed(entry.id, raw)
            if plan.derived:
                d = derived.get(entry.id)
                if d is None:
                    continue
            gm = gms.get(entry.id)
            if (plan.gm and gm is None) or (plan.labels and entry.id not in tags):
                continue  # deleted meanwhile
            _render(seq, entry, flags, plan, raw, part, d, extra, out, gm, tags.get(entry.id))
        return out

    # -- STORE (RFC 3501 6.4.6, RFC 7162 UNCHANGEDSINCE) ----------------------------------------------
    async def cmd_store(self, args: Args, uid: bool) -> Reply:
        sel = self.require_selected()
        ns = args.numset()
        unchangedsince: int | None = None
        if isinstance(args.peek(), Group):
            mods = Args(args.group("store modifiers"))
            if mods.atom().upper() != "UNCHANGEDSINCE":
                raise ParseError("unknown STORE modifier")
            unchangedsince = mods.number("mod-sequence")
            mods.end()
            self.condstore = True
        op = args.atom("store operation").upper()
        silent = op.endswith(".SILENT")
        base = op.removesuffix(".SILENT")
        if base in LABEL_MODES:
            return await self._store_labels(sel, ns, uid, args, base, silent, unchangedsince)
        modes = {"FLAGS": "set", "+FLAGS": "add", "-FLAGS": "remove"}
        if base not in modes:
            raise ParseError("expected FLAGS, +FLAGS or -FLAGS")
        flags = frozenset(args.flags())
        args.end()
        if "\\Recent" in flags:
            raise ParseError("\\Recent cannot be changed")  # RFC 3501 2.3.2; Dovecot answers BAD too
        if sel.readonly:
            raise No("mailbox is read-only", "READ-ONLY")
        targets = self.targets(sel, ns, uid)
        t = sel.tracker
        failed: list[int] = []
        if unchangedsince is not None:
            ok = [(s, u) for s, u in targets if t.entry(u).modseq <= unchangedsince]
            failed = [u if uid else s for s, u in targets if t.entry(u).modseq > unchangedsince]
            targets = ok
        uids = [u for _, u in targets if t.live(u)]
        if uids:
            new_kw = {f for f in flags if not f.startswith("\\")} - sel.keywords
            if new_kw and base != "-FLAGS":
                sel.keywords |= new_kw  # announce a new keyword before it is used (RFC 3501 7.2.6)
                self.write_flags(sel)
            mode = modes[base]
            entries = await self.store.update_flags_async(sel.mailbox, sel.folder, uids, flags, mode)  # type: ignore[arg-type]
            self._own_write(sel)
            # a keyword another session put on these messages since this one last synced:
            # * FLAGS before the FETCH shows it (RFC 3501 7.2.6)
            others = new_keywords(entries, sel.keywords)
            if others and (not silent or unchangedsince is not None):
                sel.keywords |= others
                self.write_flags(sel)
            for e in entries:
                t.take(e)
                if not silent or unchangedsince is not None:
                    parts = [b"FLAGS " + flag_list(t.view(e)).data]
                    if uid:
                        parts.insert(0, b"UID %d" % e.uid)
                    if self.condstore:
                        parts.append(b"MODSEQ (%d)" % e.modseq)
                    self.write(b"* %d FETCH (" % t.seq_of(e.uid) + b" ".join(parts) + b")\r\n")
        code = f"MODIFIED {format_numbers(failed)}" if failed else None
        return "STORE completed", code

    async def _store_labels(
        self, sel: Selected, ns: NumSet, uid: bool, args: Args, base: str, silent: bool, since: int | None
    ) -> Reply:
        """STORE [+-]X-GM-LABELS (:mod:`.labels`): the tags of the messages."""
        if since is not None:
            raise ParseError("UNCHANGEDSINCE applies to flags, not X-GM-LABELS")
        labels = parse_labels(args.next("label list"))
        args.end()
        check_labels(labels)
        if sel.readonly:
            raise No("mailbox is read-only", "READ-ONLY")
        t = sel.tracker
        targets = [(s, u) for s, u in self.targets(sel, ns, uid) if t.live(u)]
        ids = [t.entry(u).id for _, u in targets]
        now = await self.blocking(change_labels, self.store, ids, labels, LABEL_MODES[base])
        if not silent:
            for s, u in targets:
                if (got := now.get(t.entry(u).id)) is not None:
                    head = b"* %d FETCH (" % s + (b"UID %d " % u if uid else b"")
                    self.write(head + b"X-GM-LABELS " + format_labels(got) + b")\r\n")
        return "STORE completed", None

    # -- SEARCH / SORT (RFC 3501 6.4.4, RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 5256) ---------
    def _charset(self, args: Args, required: bool) -> str:
        if not required and args.peek_atom() != "CHARSET":
            return "UTF-8"
        if not required:
            args.next()
        cs = args.text("charset").upper()
        if cs not in CHARSETS:
            raise BadCharset(cs)
        return cs

    def _views(self, sel: Selected) -> list[MessageView]:
        t = sel.tracker
        entries = t.entries_of(t.uids)
        cache = self.cache
        flags = t.views(entries)
        return [MessageView(i, e, f, cache) for i, (e, f) in enumerate(zip(entries, flags, strict=True), 1)]

    def _run_search(self, sel: Selected, key: Key) -> list[MessageView]:
        """The messages matching ``key`` (runs on a worker thread), holding nothing loaded
        for the search (text, header fields)."""
        views = self._views(sel)
        ctx = Context(sel.tracker.exists, sel.tracker.largest_uid, self.saved)
        gm, labels = uses_gm(key), uses_labels(key)
        until = deadline() if gm else 0.0
        if not needs_message(key) and not gm and not labels:
            found = [v for v in views if matches(key, v, ctx)]
        else:
            # a chunk at a time, each chunk's text and header data let go once matched: the
            # memory of a SEARCH TEXT stays that of one chunk, whatever the folder's size
            # (the text cache keeps what fits under its own bound)
            with_headers, with_text = uses_headers(key), uses_text(key)
            excludes = raw_excludes(key) if with_text else None  # (prefilter.py)
            found = []
            for start in range(0, len(views), SEARCH_CHUNK):
                chunk = views[start : start + SEARCH_CHUNK]
                prefetch(self.cache, chunk, headers=with_headers, text=with_text, excludes=excludes)
                if gm:
                    prefetch_gm(self.store, chunk, until)
                if labels:
                    prefetch_labels(self.store, chunk)
                found += [v for v in chunk if matches(key, v, ctx)]
                for v in chunk:
                    v.release()
        return found

    async def cmd_search(self, args: Args, uid: bool) -> Reply:
        sel = self.require_selected()
        ret: list[str] | None = None
        if args.peek_atom() == "RETURN":
            args.next()
            ret = [Args([x]).atom().upper() for x in args.group("return options")]
            if any(r not in ("MIN", "MAX", "ALL", "COUNT", "SAVE") for r in ret):
                raise ParseError("unknown SEARCH return option")
        charset = self._charset(args, required=False)
        key = parse_criteria(args, charset)
        await self.sync_selected(allow_expunge=uid, with_uid=uid)
        found = await self.blocking(self._run_search, sel, key)
        nums = [v.uid if uid else v.seq for v in found]
        modseq = max((v.modseq for v in found), default=0) if _uses_modseq(key) else 0
        if ret is None:
            tail = [Raw(b"(MODSEQ %d)" % modseq)] if modseq else []
            self.untagged("SEARCH", *[n for n in nums], *tail)
            return "SEARCH completed", None
        if "SAVE" in ret:
            self.saved = frozenset(v.uid for v in found)
            ret = [r for r in ret if r != "SAVE"]
            if not ret:
                return "SEARCH completed", None
        if not ret:
            ret = ["ALL"]
        parts: list[bytes] = [b'(TAG "%s")' % self.tag.encode()]
        if uid:
            parts.append(b"UID")
        if nums:
            if "MIN" in ret:
                parts.append(b"MIN %d" % min(nums))
            if "MAX" in ret:
                parts.append(b"MAX %d" % max(nums))
            if "ALL" in ret:
                parts.append(b"ALL " + format_numbers(nums).encode())
        if "COUNT" in ret:
            parts.append(b"COUNT %d" % len(nums))
        if modseq and found and not ({"ALL", "COUNT"} & set(ret)):
            # RFC 7162 3.1.5 / RFC 4731: with only MIN and/or MAX, the highest mod-sequence
            # of the messages those return
            shown = {min(nums)} if "MIN" in ret else set()
            shown |= {max(nums)} if "MAX" in ret else set()
            modseq = max(v.modseq for v in found if (v.uid if uid else v.seq) in shown)
        if modseq:
            parts.append(b"MODSEQ %d" % modseq)
        self.write(b"* ESEARCH " + b" ".join(parts) + b"\r\n")
        return "SEARCH completed", None

    async def cmd_sort(self, args: Args, uid: bool) -> Reply:
        sel = self.require_selected()
        criteria = parse_sort(args)
        charset = self._charset(args, required=True)
        key = parse_criteria(args, charset)
        await self.sync_selected(allow_expunge=uid, with_uid=uid)

        def run() -> bytes:
            t = sel.tracker
            known = t.uids.tolist()  # what _views shows
            found = known if key.op == "ALL" else [v.uid for v in self._run_search(sel, key)]

            def compute(uids: list[int]) -> list[int]:
                # stable sorts of the ascending UIDs (the sequence order: the final
                # tie-break), the last criterion first
                entries = t.entries_of(uids)
                idx = list(range(len(entries)))
                for name, reverse in reversed(criteria):
                    keys = self.cache.sort_keys(name, entries, sel.key)
                    idx = sorted(idx, key=keys.__getitem__, reverse=reverse)
                return [uids[i] for i in idx]

            orders = self.cache.orders
            order = orders.sorted_uids(sel.key, crit, found, lambda: known, compute)
            if uid:
                return orders.line(sel.key, crit, order)
            seqs = {u: i for i, u in enumerate(t.uids, 1)}
            return sort_line([seqs[u] for u in order])

        crit = tuple(criteria)
        self.write(await self.blocking(run))
        return "SORT completed", None

    # -- COPY / MOVE (RFC 3501 6.4.7, RFC 4315 COPYUID, RFC 6851) ---------------------------------
    async def cmd_copy(self, args: Args, uid: bool) -> Reply:
        return await self._copy(args, uid, move=False)

    async def cmd_move(self, args: Args, uid: bool) -> Reply:
        return await self._copy(args, uid, move=True)

    async def _copy(self, args: Args, uid: bool, move: bool) -> Reply:
        sel = self.require_selected()
        ns = args.numset()
        dest = args.mailbox()
        args.end()
        if move and sel.readonly:
            raise No("mailbox is read-only", "READ-ONLY")
        account = self.require_account()
        info = await self.blocking(account.info, dest)
        if info is None:
            raise No("mailbox does not exist", "TRYCREATE")
        t = sel.tracker
        uids = [u for _, u in self.targets(sel, ns, uid) if t.live(u)]
        verb = "MOVE" if move else "COPY"
        if not uids:
            return f"{verb} completed", None
        dmb, dfolder = account.resolve(dest)
        if dmb == sel.mailbox:
            store = self.store
            validity, pairs = await self.blocking(
                lambda: store.copy(sel.mailbox, sel.folder, uids, dfolder, move=move)
            )
        else:
            validity, pairs = await self._copy_across(sel, uids, dmb, dfolder, move)
        if move:
            self._own_write(sel)
        self.added_here(
            dmb, dfolder, [b for _, b in pairs]
        )  # into the selected folder: EXISTS before the tagged OK
        code = None
        if pairs:
            code = f"COPYUID {validity} {format_pairs([a for a, _ in pairs])} {format_pairs([b for _, b in pairs])}"
        if move:
            if code:
                self.untagged("OK", Raw(f"[{code}] Moved".encode()))
            for line in t.remove([a for a, _ in pairs]):
                self.write(line)
            return "MOVE completed", None
        return "COPY completed", code

    async def _copy_across(
        self, sel: Selected, uids: list[int], mailbox: str, folder: str, move: bool
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copy between two store mailboxes (the "all" view): append each message."""
        pairs: list[tuple[int, int]] = []
        validity = 0
        t = sel.tracker
        for u in uids:
            e = t.entry(u)
            raw = await self.blocking(self.cache.raw, e.id)
            if raw is None:
                continue
            validity, new = await self.store.append(mailbox, folder, raw, e.flags, e.internaldate)
            pairs.append((u, new))
        if move and pairs:
            done = [a for a, _ in pairs]
            await self.store.update_flags_async(
                sel.mailbox, sel.folder, done, frozenset({"\\Deleted"}), "add"
            )
            await self.store.expunge_async(sel.mailbox, sel.folder, done)
        return validity, pairs

    def _own_write(self, sel: Selected) -> None:
        """This session changed its selected folder and has shown the client the result:
        a folder listing read before the change must not serve its next sync (which would
        take the flags and MODSEQs back), though the change's event is still on its way."""
        self.snapshots.changed(sel.mailbox, sel.folder)

    # -- EXPUNGE / CLOSE / UNSELECT / CHECK ---------------------------------------------------------
    async def cmd_expunge(self, args: Args, uid: bool) -> Reply:
        sel = self.require_selected()
        only: list[int] | None = None
        if uid:
            ns = args.numset()
            only = [u for _, u in self.targets(sel, ns, True)]
        args.end()
        if sel.readonly:
            raise No("mailbox is read-only", "READ-ONLY")
        gone = await self.store.expunge_async(sel.mailbox, sel.folder, only)
        self._own_write(sel)
        for line in sel.tracker.remove(gone):
            self.write(line)
        return "EXPUNGE completed", None

    async def cmd_close(self, args: Args, uid: bool) -> Reply:
        sel = self.require_selected()
        args.end()
        if not sel.readonly:
            await self.store.expunge_async(sel.mailbox, sel.folder, None)
        self._deselect()
        return "CLOSE completed", None

    async def cmd_unselect(self, args: Args, uid: bool) -> Reply:
        self.require_selected()
        args.end()
        self._deselect()
        return "UNSELECT completed", None

    async def cmd_check(self, args: Args, uid: bool) -> Reply:
        args.end()
        await self.sync_selected(allow_expunge=True, with_uid=False, check=True)
        return "CHECK completed", None

    def _deselect(self) -> None:
        self.selected = None
        self.state = State.AUTHENTICATED
        self.forget_changes()


def _uses_modseq(key: Key) -> bool:
    return key.op == "MODSEQ" or any(_uses_modseq(k) for k in key.children)
