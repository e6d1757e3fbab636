"""Another session's STORE and EXPUNGE reach a session with the folder selected from the
change events' content (the re-flagged entries, the expunged UIDs), not from a new read
of the folder's listing (issue 19: under imaptest's stress most commands re-read it), with
the same untagged responses: FETCH FLAGS (UID, MODSEQ), * FLAGS for a new keyword first,
EXPUNGE in order, held back during FETCH/STORE/SEARCH. NOOP reads no listing either, and a
change the events do not describe (an API flag change) still reaches the session.
A real server, real imaplib and raw-socket clients."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from postroom.events import Event, FolderChanged
from postroom.protocols.imap.args import format_datetime
from postroom.servers.imap import mailboxes
from postroom.servers.imap.core import SessionBase
from postroom.store.base import Entry
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire
from tests.integration.test_imap_append_selected import (
    BOB,
    counted_reads,
    events_carry_new,
    msg,
    prefill,
    two_sessions,
)

N = 30  # messages in the folder
T = TypeVar("T")


def test_stores_and_expunges_of_another_session_read_no_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server() as s, two_sessions(s, N, enable="CONDSTORE") as (a, b):
        with counted_reads(s, monkeypatch) as reads:
            lines: list[bytes] = []
            for i in range(1, 11):
                assert a.store(str(i), "+FLAGS.SILENT", "(\\Seen)")[0] == "OK"
                lines += b.ok("UID FETCH 1 (UID)")
            fetches = [x for x in lines if b"FLAGS" in x]
            assert len(fetches) == 10, lines
            m = re.fullmatch(rb"\* 10 FETCH \(UID 10 FLAGS \(\\Seen\) MODSEQ \((\d+)\)\)\r\n", fetches[-1])
            assert m, fetches
            # a keyword new to the folder: * FLAGS (and PERMANENTFLAGS) before the FETCH
            assert a.store("2", "+FLAGS.SILENT", "($Label7)")[0] == "OK"
            got = b.ok("UID FETCH 1 (UID)")
            assert got[1].startswith(b"* FLAGS (") and b"$Label7" in got[1], got
            assert re.fullmatch(
                rb"\* 2 FETCH \(UID 2 FLAGS \(\$Label7 \\Seen\) MODSEQ \(\d+\)\)\r\n", got[3]
            ), got
            # expunges held back during FETCH (RFC 3501 7.4.1), then reported in order
            assert a.store("3,5", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
            assert a.expunge()[0] == "OK"
            got = b.ok("FETCH 4 (UID)")
            assert not [x for x in got if b"EXPUNGE" in x], got
            assert b"* 4 FETCH (UID 4)\r\n" in got, got
            got = b.ok("UID FETCH 1 (UID)")
            assert [x for x in got if b"EXPUNGE" in x] == [b"* 5 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n"], got
            assert b.ok("FETCH 4 (UID)")[0] == b"* 4 FETCH (UID 6)\r\n"
            assert reads == [], reads  # not one listing (nor new-rows) read
        # NOOP checks the folder's row, not its listing: nothing changed unheard, no read
        with counted_reads(s, monkeypatch) as reads:
            assert b.ok("NOOP") == []
            assert reads == [], reads


def test_a_change_without_its_entries_still_reaches_the_session() -> None:
    """A flag change from the API's Read state says neither UIDs nor flags: the session
    reads the listing and reports it, even with event-described changes held too."""
    with running_server() as s, two_sessions(s, 5) as (a, b):
        assert a.store("1", "+FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
        ids = [e.id for e in s.app.store.folder_entries(BOB, "INBOX")]
        s.app.store.set_read([ids[3]], True)
        got = b.ok("UID FETCH 1 (UID)")
        assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n" in got, got
        assert [x for x in got if x.startswith(b"* 4 FETCH") and b"\\Seen" in x], got


def test_a_store_reply_announces_a_keyword_another_session_added() -> None:
    """A STORE's FETCH shows every flag of the message, also a keyword another session put
    on it since this session last heard: * FLAGS lists it first (RFC 3501 7.2.6; imaptest's
    "Keyword used without being in FLAGS")."""
    with running_server() as s, two_sessions(s, 3) as (a, b):
        assert a.store("1", "+FLAGS.SILENT", "($Other)")[0] == "OK"
        got = b.ok("STORE 1 +FLAGS (\\Seen)")
        fetch = got.index(b"* 1 FETCH (FLAGS ($Other \\Seen))\r\n")
        flags = [i for i, x in enumerate(got) if x.startswith(b"* FLAGS (") and b"$Other" in x]
        assert flags and flags[0] < fetch, got
        # the \\Seen a FETCH BODY[] sets: the FETCH shows the flags, after * FLAGS
        assert a.store("2", "+FLAGS.SILENT", "($Other2)")[0] == "OK"
        got = b.ok("FETCH 2 (BODY[HEADER.FIELDS (SUBJECT)])")
        fetch = next(i for i, x in enumerate(got) if x.startswith(b"* 2 FETCH"))
        flags = [i for i, x in enumerate(got) if x.startswith(b"* FLAGS (") and b"$Other2" in x]
        assert flags and flags[0] < fetch, got


def _entry_line(e: Entry, seq: int) -> bytes:
    """A session's FETCH (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ) of ``e``."""
    flags = " ".join(sorted(e.flags))
    date = format_datetime(e.internaldate)
    return b'* %d FETCH (UID %d FLAGS (%s) INTERNALDATE "%s" RFC822.SIZE %d MODSEQ (%d))\r\n' % (
        seq,
        e.uid,
        flags.encode(),
        date.encode(),
        e.size,
        e.modseq,
    )


def test_new_messages_of_another_session_come_from_their_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """A's APPENDs reach B with UID, flags, size, date and MODSEQ as the store lists them,
    on SQLite without any read of the folder (the new-message event carries the entries);
    a flag change and an expunge that come before B hears of a new message apply to it."""
    with running_server() as s, two_sessions(s, N, enable="CONDSTORE") as (a, b):
        with counted_reads(s, monkeypatch) as reads:
            date = '"05-Dec-2026 10:11:12 +0000"'
            assert a.append("INBOX", "(\\Seen $Fresh)", date, msg("new 1"))[0] == "OK"
            got = b.ok("UID FETCH 1 (UID)")
            # the new keyword announced before the EXISTS of the message that has it
            assert got[1].startswith(b"* FLAGS (") and b"$Fresh" in got[1], got
            assert got[3] == b"* %d EXISTS\r\n" % (N + 1), got
            # a new message re-flagged, another expunged, before B syncs
            assert a.append("INBOX", None, None, msg("new 2"))[0] == "OK"
            assert a.append("INBOX", None, None, msg("new 3"))[0] == "OK"
            assert a.store(str(N + 2), "+FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
            assert a.store(str(N + 3), "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
            assert a.expunge()[0] == "OK"
            got = b.ok("UID FETCH 1 (UID)")
            assert b"* %d EXISTS\r\n" % (N + 2) in got and not [x for x in got if b"EXPUNGE" in x], got
            shown = b.ok(f"FETCH {N + 1}:* (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ)")
            assert reads == [] or not events_carry_new(s), reads
        listed = s.app.store.folder_entries(BOB, "INBOX", N)
        assert [e.uid for e in listed] == [N + 1, N + 2]
        assert shown == [_entry_line(e, N + 1 + i) for i, e in enumerate(listed)], (shown, listed)
        assert "\\Flagged" in listed[1].flags


def test_a_missed_new_message_event_is_read_from_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """New-message events are applied only when they continue the UIDs a session knows: a
    session that did not hear one (e.g. it came while SELECT read the listing) reads the new
    rows above its highest UID instead of skipping a message."""
    with running_server() as s, two_sessions(s, N, enable="CONDSTORE") as (a, b):
        bus = s.app.bus
        session_b = next(
            o for f in bus._subs if getattr(o := getattr(f, "__self__", None), "condstore", False)
        )
        dropped: list[FolderChanged] = []

        def deaf_once(event: Event) -> None:
            if isinstance(event, FolderChanged) and event.change == "exists" and not dropped:
                dropped.append(event)
                return
            session_b.on_event(event)

        with bus._lock:
            bus._subs = [deaf_once if getattr(f, "__self__", None) is session_b else f for f in bus._subs]
        with counted_reads(s, monkeypatch) as reads:
            assert a.append("INBOX", None, None, msg("unheard"))[0] == "OK"
            assert a.append("INBOX", None, None, msg("heard"))[0] == "OK"
            got = b.ok("UID FETCH 1 (UID)")
            assert dropped and b"* %d EXISTS\r\n" % (N + 2) in got, got
            assert reads == [(N, 2)], reads
        assert b.ok(f"UID FETCH {N + 1}:* (UID)") == [
            b"* %d FETCH (UID %d)\r\n" % (N + 1, N + 1),
            b"* %d FETCH (UID %d)\r\n" % (N + 2, N + 2),
        ]


def test_new_message_events_carry_the_entries_a_listing_shows() -> None:
    """The SQLite store's exists event: every new delivery of the folder, as folder_entries
    lists it after the commit (deliveries and APPEND with flags and a date)."""
    with running_server() as s:
        heard: list[FolderChanged] = []
        s.app.bus.subscribe(lambda e: heard.append(e) if isinstance(e, FolderChanged) else None)
        prefill(s, 2)
        s.call(s.app.store.append(BOB, "INBOX", msg("kept"), frozenset({"\\Seen", "$K"}), 1_700_000_000.5))
        deadline = time.monotonic() + 10
        while len(carried := [x for e in heard if e.change == "exists" for x in e.entries or ()]) < 3:
            assert time.monotonic() < deadline, heard
            time.sleep(0.01)
        assert carried == s.app.store.folder_entries(BOB, "INBOX")
        assert (
            carried[-1].flags == frozenset({"\\Seen", "$K"}) and carried[-1].internaldate == 1_700_000_000.5
        )


def test_status_recent_reads_only_the_unclaimed_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """STATUS (MESSAGES UNSEEN RECENT), imaptest's: RECENT counts the messages no session has
    claimed, read as the rows above the highest claimed UID, not the folder's listing; with
    the highest UID claimed (or none ever), from the folder's row alone, on the event loop."""
    with running_server() as s, two_sessions(s, N) as (_, b):
        b.ok("UNSELECT")
        with counted_reads(s, monkeypatch) as reads, worker_hops(s, monkeypatch) as hops:
            assert b.ok("STATUS INBOX (MESSAGES UNSEEN RECENT)") == [
                b"* STATUS INBOX (MESSAGES %d UNSEEN %d RECENT 0)\r\n" % (N, N)
            ]
            assert reads == [] and hops == [], (reads, hops)  # every UID claimed: none recent
            prefill(s, 2)  # delivered, not yet claimed by a's session
            deadline = time.monotonic() + 10  # stored (else STATUS waits for it on a worker thread)
            while not s.app.store.db.applied_now() and time.monotonic() < deadline:  # type: ignore[attr-defined]
                time.sleep(0.01)
            assert b.ok("STATUS INBOX (RECENT MESSAGES)") == [
                b"* STATUS INBOX (RECENT 2 MESSAGES %d)\r\n" % (N + 2)
            ]
            assert reads == [] and hops == [], (reads, hops)  # two above the highest claimed: counted
            monkeypatch.setattr(mailboxes, "RECENT_NOW_SPAN", 1)  # too many: the rows, on a worker thread
            assert b.ok("STATUS INBOX (RECENT MESSAGES)") == [
                b"* STATUS INBOX (RECENT 2 MESSAGES %d)\r\n" % (N + 2)
            ]
            assert reads == [(N, 2)] and len(hops) == 1, (reads, hops)
            # SIZE needs every message: the listing
            assert b.ok("STATUS INBOX (SIZE RECENT)")[0].startswith(b"* STATUS INBOX (SIZE ")
            assert reads[1:] == [(0, N + 2)], reads


def test_status_and_list_read_the_folder_rows_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """STATUS without RECENT (or with no UID ever claimed: all are recent) and LIST answer
    from the folder rows read on the loop (a hop to a worker thread cost ~6% of the server's
    GIL time under imaptest's stress), with the same figures as the listing."""
    with running_server() as s:
        prefill(s, 3)
        w = Wire(*s.addr("imap"))
        try:
            w.ok(f'LOGIN "{BOB}" x')
            w.ok("CREATE Sent")
            with worker_hops(s, monkeypatch) as hops:
                assert w.ok("STATUS INBOX (MESSAGES UNSEEN RECENT UIDNEXT)") == [
                    b"* STATUS INBOX (MESSAGES 3 UNSEEN 3 RECENT 3 UIDNEXT 4)\r\n"
                ]
                assert w.ok("STATUS Sent (MESSAGES UIDVALIDITY)")[0].startswith(b"* STATUS Sent (MESSAGES 0 ")
                assert w.ok('LIST "" "*"') == [
                    b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
                    b'* LIST (\\HasNoChildren) "/" Sent\r\n',
                ]
                assert hops == []
                # a folder that does not exist: asked on a worker thread, answered NO
                assert w.cmd("STATUS Nope (MESSAGES)")[-1].split()[1] == b"NO"
                assert len(hops) == 1
        finally:
            w.close()


@contextlib.contextmanager
def worker_hops(s: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record what IMAP sessions send to a worker thread (SessionBase.blocking)."""
    hops: list[str] = []
    real = SessionBase.blocking

    async def counting(self: SessionBase, fn: Callable[..., T], *args: object) -> T:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args)

    monkeypatch.setattr(SessionBase, "blocking", counting)
    try:
        yield hops
    finally:
        monkeypatch.setattr(SessionBase, "blocking", real)


def test_a_new_message_is_fetched_from_the_bytes_its_append_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session that APPENDs into its selected folder keeps the bytes it stored: a FETCH
    of the new message (by any session) reads nothing back from the store."""
    with running_server() as s, two_sessions(s, 3) as (a, b):
        calls: list[str] = []
        for name in ("get_raw", "get_raw_stored", "get_raws"):
            real = getattr(s.app.store, name)
            monkeypatch.setattr(s.app.store, name, lambda *x, _n=name, _r=real: calls.append(_n) or _r(*x))
        body = msg("kept in memory")
        assert b.append("INBOX", body)[-1].split(b" ")[1] == b"OK"
        assert events_carry_new(s)
        got = b.ok("UID FETCH 4 (BODY.PEEK[])")
        assert got[0] == b"* 4 FETCH (UID 4 BODY[] {%d}\r\n" % len(body) + body + b")\r\n", got
        assert a.noop()[0] == "OK"  # (a hears of it)
        typ, data = a.uid("FETCH", "4", "(BODY.PEEK[TEXT])")
        assert typ == "OK" and isinstance(data[0], tuple) and data[0][1] == b"body of kept in memory\r\n"
        assert calls == [], calls


def test_a_new_message_is_derived_on_the_loop_from_its_append_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENVELOPE/BODYSTRUCTURE of a message just APPENDed (its bytes in memory, small) are
    derived where the FETCH runs, without reading the store's derived cache on a worker
    thread, and equal what a fresh derivation from the store gives."""
    with running_server() as s, two_sessions(s, 3) as (_, b):
        asked: list[object] = []
        real = s.app.store.imap_cache_get
        monkeypatch.setattr(s.app.store, "imap_cache_get", lambda *x: asked.append(x) or real(*x))
        assert b.append("INBOX", msg("derived here"))[-1].split(b" ")[1] == b"OK"
        got = b.ok("UID FETCH 4 (ENVELOPE BODYSTRUCTURE)")
        assert asked == [], asked
        assert b'"derived here"' in got[0] and b"BODYSTRUCTURE (" in got[0], got
        monkeypatch.undo()
        s.app.extras.pop("imap_message_cache")  # a new cache: derived from the store again
        c = Wire(*s.addr("imap"))
        try:
            c.ok(f'LOGIN "{BOB}" x')
            c.ok("EXAMINE INBOX")
            assert c.ok("UID FETCH 4 (ENVELOPE BODYSTRUCTURE)") == got
        finally:
            c.close()
