"""Another session's STORE and EXPUNGE reach a session with the folder selected from the
change events' content (the re-flagged entries, the expunged UIDs), not from a new read
of the folder's listing (issue 19: under imaptest's stress most commands re-read it), with
the same untagged responses: FETCH FLAGS (UID, MODSEQ), * FLAGS for a new keyword first,
EXPUNGE in order, held back during FETCH/STORE/SEARCH. NOOP still reads the listing, and a
change the events do not describe (an API flag change) still reaches the session.
A real server, real imaplib and raw-socket clients."""

from __future__ import annotations

import re

import pytest

from tests.helpers import running_server
from tests.integration.test_imap_append_selected import BOB, counted_reads, two_sessions

N = 30  # messages in the folder


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
        # NOOP re-checks everything: it reads the listing (RFC 3501 6.1.2)
        with counted_reads(s, monkeypatch) as reads:
            b.ok("NOOP")
            assert reads == [(0, N - 2)], reads


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
