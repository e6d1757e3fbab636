"""APPEND into the folder a session has selected (``postroom fetch``, a mail client saving
into an open Sent folder, imapsync): the session learns of its new messages by reading
the new rows only, not the folder's listing (issue 18: a 20,000-message fetch slowed down
quadratically), and the client sees the same EXISTS, RECENT, sequence numbers and
EXPUNGE ordering as before. A real server, real imaplib and raw-socket clients."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from postroom.store.base import Entry, Envelope
from postroom.store.sqlite import SQLiteStore
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire

BOB = "bob@example.org"


def events_carry_new(s: RunningServer) -> bool:
    """The SQLite store's new-message events carry the new entries (a session reads
    nothing); PostgreSQL's do not (a session reads the rows above its highest UID)."""
    return isinstance(s.app.store, SQLiteStore)


PREFILL = 150  # messages in the folder before the APPENDs
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


def msg(subject: str) -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: {BOB}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject}@x>\r\n\r\nbody of {subject}\r\n"
    ).encode()


def prefill(s: RunningServer, n: int) -> None:
    for i in range(n):
        s.call(s.app.store.deliver(Envelope("alice@example.org", (BOB,)), msg(f"old {i}")))


@contextmanager
def two_sessions(s: RunningServer, n: int, *, enable: str = "") -> Iterator[tuple[imaplib.IMAP4, Wire]]:
    """``n`` messages in bob's INBOX, then two sessions with it selected: ``a`` through
    imaplib, ``b`` on the wire (``enable``: an extension ``b`` enables first)."""
    prefill(s, n)
    a = imaplib.IMAP4(*s.addr("imap"))
    b = Wire(*s.addr("imap"))
    try:
        a.login(BOB, "x")
        a.select("INBOX")
        b.ok(f'LOGIN "{BOB}" x')
        if enable:
            b.ok(f"ENABLE {enable}")
        b.ok("SELECT INBOX")
        yield a, b
    finally:
        b.close()
        a.logout()


Reads = list[tuple[int, int]]  # (after_uid, rows returned) of each folder_entries call


@contextmanager
def counted_reads(s: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    """Record the store's folder listing reads (the real store answers them)."""
    reads: Reads = []
    real = s.app.store.folder_entries

    def counting(mailbox: str, folder: str, *rest: int) -> list[Entry]:
        out = real(mailbox, folder, *rest)
        reads.append((rest[0] if rest else 0, len(out)))
        return out

    monkeypatch.setattr(s.app.store, "folder_entries", counting)
    try:
        yield reads
    finally:
        monkeypatch.undo()


def test_append_into_the_selected_folder_reads_only_the_new_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 40
    with running_server() as s:
        prefill(s, PREFILL)
        conn = imaplib.IMAP4(*s.addr("imap"))
        try:
            conn.login(BOB, "x")
            typ, data = conn.select("INBOX")
            assert (typ, data) == ("OK", [str(PREFILL).encode()])
            conn.response("RECENT")
            uids: list[int] = []
            with counted_reads(s, monkeypatch) as reads:
                for i in range(n):
                    flags = "($Label1)" if i == n // 2 else "(\\Seen)" if i % 3 == 0 else None
                    typ, resp = conn.append("INBOX", flags, None, msg(f"new {i}"))
                    assert typ == "OK", resp
                    m = _APPENDUID.search(resp[-1] or b"")
                    assert m is not None, resp
                    uids.append(int(m.group(1)))
                    # EXISTS and RECENT before the tagged OK (RFC 3501 6.3.11, 7.3.2)
                    assert conn.response("EXISTS")[1][-1] == str(PREFILL + i + 1).encode()
                    assert conn.response("RECENT")[1][-1] == str(PREFILL + i + 1).encode()
                    if i == n // 2:  # a keyword new to the folder: * FLAGS announces it
                        assert b"$Label1" in (conn.response("FLAGS")[1][-1] or b"")
                typ, _ = conn.noop()  # (the last APPEND's change event has come by now)
                assert typ == "OK"
            # no listing of the folder was read for the APPENDs nor the NOOPs: on SQLite not
            # even the new rows (their change events carry them), else each new row read once
            if events_carry_new(s):
                assert reads == [], reads
            else:
                assert reads and all(after > 0 for after, _ in reads), reads
                assert sum(rows for _, rows in reads) == n, reads
            assert uids == list(range(PREFILL + 1, PREFILL + n + 1))
            # the appended messages by sequence number and by UID
            typ, data = conn.fetch(f"{PREFILL + 1}:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            got = [d for d in data if isinstance(d, tuple)]
            assert len(got) == n
            for i, (meta, header) in enumerate(got):
                assert meta.startswith(b"%d (UID %d FLAGS (" % (PREFILL + i + 1, uids[i])), meta
                assert header.strip() == f"Subject: new {i}".encode()
                assert (b"\\Seen" in meta) == (i % 3 == 0 and i != n // 2)
                assert (b"$Label1" in meta) == (i == n // 2)
                assert b"\\Recent" in meta
            typ, data = conn.uid("FETCH", str(uids[7]), "(BODY.PEEK[TEXT])")
            assert typ == "OK" and data[0] is not None and data[0][1] == b"body of new 7\r\n"
            typ, data = conn.uid("SEARCH", "KEYWORD", "$Label1")
            assert data == [str(uids[n // 2]).encode()]
        finally:
            conn.logout()


def test_other_sessions_see_appends_and_expunges_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second session idling on the folder gets the new messages without a listing read,
    and an expunge between APPENDs reaches both sessions before the later EXISTS."""
    with running_server() as s, two_sessions(s, PREFILL) as (a, b):
        b.send(b"i1 IDLE\r\n")
        assert b.read_line() == b"+ idling\r\n"
        with counted_reads(s, monkeypatch) as reads:
            for i in range(5):
                assert a.append("INBOX", None, None, msg(f"new {i}"))[0] == "OK"
            seen = []
            while (line := b.read_line()) != b"* %d EXISTS\r\n" % (PREFILL + 5):
                seen.append(line)
            assert all(re.fullmatch(rb"\* \d+ (EXISTS|RECENT)\r\n", x) for x in seen), seen
            assert all(after > 0 for after, _ in reads), reads  # new rows only
            assert not (events_carry_new(s) and reads), reads  # ... or none: the events carry them
        # the third message goes: * 3 EXPUNGE in both sessions, then the next APPEND
        assert a.store("3", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        typ, data = a.expunge()
        assert (typ, data) == ("OK", [b"3"])
        assert a.append("INBOX", None, None, msg("after"))[0] == "OK"
        assert a.response("EXISTS")[1][-1] == str(PREFILL + 5).encode()
        lines = []
        while (line := b.read_line()) != b"* %d EXISTS\r\n" % (PREFILL + 5):
            lines.append(line)
        expunges = [x for x in lines if x.endswith(b" EXPUNGE\r\n")]
        assert expunges == [b"* 3 EXPUNGE\r\n"], lines
        b.send(b"DONE\r\n")
        # (\Recent goes to whichever session syncs first: A's own or B's count varies)
        recent, done = b.read_until("i1")
        assert re.fullmatch(rb"\* \d RECENT\r\n", recent) and done == b"i1 OK IDLE terminated\r\n"
        # both sessions number the messages alike
        want = b"* %d FETCH (UID %d)\r\n" % (PREFILL + 5, PREFILL + 6)
        assert b.ok(f"FETCH {PREFILL + 5} (UID)") == [want]
        typ, data = a.fetch(str(PREFILL + 5), "(UID)")
        assert data == [b"%d (UID %d)" % (PREFILL + 5, PREFILL + 6)]
        typ, data = a.fetch("3", "(UID)")
        assert data == [b"3 (UID 4)"]
