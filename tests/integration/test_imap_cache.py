"""The IMAP cache kept in the store (imap_meta / imap_text): filled on first use, kept
across restarts, gone with its message. A real server over sockets, a real SQLite file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from postroom.servers.imap.core import CACHE_KEY
from postroom.servers.imap.messages import MessageCache
from postroom.servers.imap.persist import FORMAT, HEAD, META, TEXT, dump_meta
from postroom.servers.imap.sortorder import SortOrders
from postroom.store.base import Envelope
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire, count_parses

MIXED = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: parts\r\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <parts@x>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
    b"the quetzal is green\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64"
    b"\r\n\r\nJVBERi0=\r\n--b--\r\n"
)


def msg(subject: str, body: str = "hello") -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject}@x>\r\n\r\n{body}\r\n"
    ).encode()


def deliver(s: RunningServer, raw: bytes, *rcpt: str) -> str:
    pid: str = s.call(s.app.store.deliver(Envelope("alice@example.org", rcpt or ("bob@example.org",)), raw))
    return pid


def login(s: RunningServer, user: str = "bob@example.org") -> Wire:
    w = Wire(*s.addr("imap"))
    w.ok(f'LOGIN "{user}" x')
    return w


def settle(s: RunningServer) -> None:
    """Wait until what sessions derived is written to the store (it is written behind)."""
    cache = s.app.extras[CACHE_KEY]
    assert isinstance(cache, MessageCache)
    assert cache.writes.drain(30)


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as c:
        n: int = c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return n


def test_fetch_and_search_survive_a_restart_from_the_cache(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with running_server(db=str(db)) as s:
        ids = [deliver(s, msg(f"m{i}", f"body {i}")) for i in range(3)] + [deliver(s, MIXED)]
        with login(s) as w:
            w.ok("EXAMINE INBOX")
            before = w.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)")
            # (an OR: a lone TEXT would rule out the plain messages 1-3 from their bytes
            # without deriving their text, protocols/imap/prefilter.py)
            assert w.ok('SEARCH OR TEXT "quetzal" BODY "quetzal"') == [b"* SEARCH 4\r\n"]
            assert w.ok('SEARCH FROM "alice" SENTON 1-Jan-2024') == [b"* SEARCH 1 2 3\r\n"]
        settle(s)
        assert set(s.app.store.imap_cache_get(META, ids)) == set(ids)
        assert set(s.app.store.imap_cache_get(TEXT, ids)) == set(ids)
        assert set(s.app.store.imap_cache_get(HEAD, ids)) == set(ids)
    assert rows(db, "imap_meta") == 4 and rows(db, "imap_head") == 4 and rows(db, "imap_text") == 4
    # doctor one cached ENVELOPE while the server is down: what comes back after the restart
    # is the cached row, not a fresh parse
    with sqlite3.connect(db) as c:
        mid = c.execute("SELECT id FROM message WHERE pid = ?", (ids[0],)).fetchone()[0]
        doctored = dump_meta(b'(NIL "cached" NIL NIL NIL NIL NIL NIL NIL NIL)', b"(x)", b"(y)", None)
        c.execute("UPDATE imap_meta SET data = ? WHERE id = ?", (doctored, mid))
    with running_server(db=str(db)) as s, login(s) as w:
        w.ok("EXAMINE INBOX")
        after = w.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)")
        assert after[1:] == before[1:]
        assert (
            after[0]
            == b'* 1 FETCH (ENVELOPE (NIL "cached" NIL NIL NIL NIL NIL NIL NIL NIL) BODYSTRUCTURE (x) BODY (y))\r\n'
        )
        assert w.ok('SEARCH TEXT "quetzal"') == [b"* SEARCH 4\r\n"]
        assert w.ok('SEARCH BODY "body 2"') == [b"* SEARCH 3\r\n"]


def test_a_row_of_another_format_is_derived_again_and_replaced(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with running_server(db=str(db)) as s:
        pid = deliver(s, msg("fmt"))
        with login(s) as w:
            w.ok("EXAMINE INBOX")
            good = w.ok("FETCH 1 ENVELOPE")
        settle(s)
    with sqlite3.connect(db) as c:  # as an older postroom would have left it
        stale = b"\0" * len(FORMAT) + dump_meta(b"(stale)", b"(x)", b"(y)", None)[len(FORMAT) :]
        c.execute("UPDATE imap_meta SET data = ?", (stale,))
    with running_server(db=str(db)) as s:
        with login(s) as w:
            w.ok("EXAMINE INBOX")
            assert w.ok("FETCH 1 ENVELOPE") == good
        settle(s)
        assert s.app.store.imap_cache_get(META, [pid])[pid].startswith(FORMAT)


def test_rows_go_with_their_message(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with running_server(db=str(db)) as s:
        solo = [deliver(s, msg(f"s{i}")) for i in range(3)]
        shared = deliver(s, msg("shared"), "bob@example.org", "carol@example.org")
        with login(s) as w:
            w.ok("SELECT INBOX")
            w.ok("FETCH 1:* ENVELOPE")
            w.ok('SEARCH TEXT "hello"')
        settle(s)
        store = s.app.store
        assert len(store.imap_cache_get(META, [*solo, shared])) == 4
        assert rows(db, "imap_meta") == 4 and rows(db, "imap_text") == 4
        # EXPUNGE of the last delivery deletes the message, and its rows
        with login(s) as w:
            w.ok("SELECT INBOX")
            w.ok("STORE 1,4 +FLAGS (\\Deleted)")
            assert w.ok("EXPUNGE") == [b"* 4 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
        assert store.imap_cache_get(META, [solo[0]]) == {}
        # the shared message lives on in carol's INBOX: its rows stay, and serve her
        assert set(store.imap_cache_get(META, [shared])) == {shared}
        assert rows(db, "imap_meta") == 3 and rows(db, "imap_head") == 3 and rows(db, "imap_text") == 3
        with login(s, "carol@example.org") as w:
            w.ok("EXAMINE INBOX")
            assert b'"shared"' in w.ok("FETCH 1 ENVELOPE")[0]
        # deletion through the API (what the web UI does)
        assert store.delete_messages([solo[1]]) == [solo[1]]
        assert rows(db, "imap_meta") == 2 and rows(db, "imap_text") == 2
        # and everything at once
        store.delete_messages(None)
        assert rows(db, "imap_meta") == 0 and rows(db, "imap_head") == 0 and rows(db, "imap_text") == 0
        assert store.imap_cache_get(META, [solo[2], shared]) == {}


def test_cache_rows_are_not_written_for_a_message_deleted_meanwhile(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with running_server(db=str(db)) as s:
        pid = deliver(s, msg("gone"))
        store = s.app.store
        store.delete_messages([pid])
        blob = dump_meta(b"(e)", b"(b)", b"(b)", None)
        store.imap_cache_put(META, {pid: blob})
        assert store.imap_cache_get(META, [pid]) == {}
        assert rows(db, "imap_meta") == 0


def test_sort_keys_are_remembered_within_their_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SORT computes a message's key once and keeps it (a bounded number of them): repeated
    SORTs over more messages than the bound still order correctly."""
    import postroom.servers.imap.messages as messages

    monkeypatch.setattr(messages, "SORT_KEY_ITEMS", 5)
    with running_server(db=str(tmp_path / "store.db")) as s:
        subjects = ["delta", "Re: alpha", "echo", "charlie", "[list] bravo", "foxtrot"]
        for i, subject in enumerate(subjects):
            raw = msg(subject).replace(b"01 Jan 2024 10:00", f"0{6 - i} Jan 2024 10:00".encode())
            deliver(s, raw)
        with login(s) as w:
            w.ok("SELECT INBOX")
            cache = s.app.extras[CACHE_KEY]
            assert isinstance(cache, MessageCache)
            for _ in range(3):
                assert w.ok("SORT (SUBJECT) UTF-8 ALL")[0] == b"* SORT 2 5 4 1 3 6\r\n"
                assert w.ok("SORT (DATE) UTF-8 ALL")[0] == b"* SORT 6 5 4 3 2 1\r\n"
                assert w.ok("SORT (REVERSE ARRIVAL) UTF-8 ALL")[0] == b"* SORT 6 5 4 3 2 1\r\n"
                assert sum(len(k) for k in cache._sort_keys.values()) == cache._sort_key_count <= 5
            monkeypatch.setattr(messages, "SORT_KEY_ITEMS", 100)
            cache.orders = SortOrders()  # the kept orders answer without keys: sort again
            w.ok("SORT (SUBJECT) UTF-8 ALL")
            w.ok("SORT (DATE) UTF-8 ALL")
            assert len(cache._sort_keys["SUBJECT"]) == len(cache._sort_keys["DATE"]) == 6
            assert "ARRIVAL" not in cache._sort_keys  # taken from the listing, nothing kept


def test_select_reuses_a_folder_listing_only_while_the_folder_is_unchanged(tmp_path: Path) -> None:
    """SELECT copies a shared listing of the folder (snapshots.py) while the folder's
    UIDVALIDITY, UIDNEXT, count and highest MODSEQ are those it was read in; any change
    (flags, new mail, expunge) makes the next SELECT read the store again."""
    import dataclasses

    from postroom.servers.imap.core import SNAPSHOTS_KEY
    from postroom.servers.imap.snapshots import Snapshots

    with running_server(db=str(tmp_path / "store.db")) as s:
        for i in range(3):
            deliver(s, msg(f"s{i}"))
        with login(s) as a, login(s) as b:
            a.ok("SELECT INBOX")
            snaps = s.app.extras[SNAPSHOTS_KEY]
            assert isinstance(snaps, Snapshots)
            first = snaps._kept[("bob@example.org", "INBOX")]
            assert b"* 3 EXISTS\r\n" in b.ok("SELECT INBOX")
            assert snaps._kept[("bob@example.org", "INBOX")] is first  # reused
            a.ok("STORE 1 +FLAGS (\\Flagged)")
            b.ok("CLOSE")
            b.ok("SELECT INBOX")
            assert b"\\Flagged" in b.ok("FETCH 1 FLAGS")[0]
            deliver(s, msg("s3"))
            b.ok("CLOSE")
            assert b"* 4 EXISTS\r\n" in b.ok("SELECT INBOX")
            a.ok("NOOP")
            a.ok("STORE 2 +FLAGS (\\Deleted)")
            a.ok("EXPUNGE")
            b.ok("CLOSE")
            lines = b.ok("SELECT INBOX")
            assert b"* 3 EXISTS\r\n" in lines
            assert [x for x in b.ok("UID SEARCH ALL") if x.startswith(b"* SEARCH")] == [b"* SEARCH 1 3 4\r\n"]
        # the folder state alone decides, whether or not a change event arrived
        info = s.app.store.folder_info("bob@example.org", "INBOX")
        assert info is not None
        snap = snaps.get(info)
        assert snaps.get(info) is snap and snaps.peek(info) is snap
        for field, value in (("highestmodseq", 10**6), ("uidnext", 10**6), ("exists", 99)):
            changed = dataclasses.replace(info, **{field: value})
            assert snaps.peek(changed) is None
            assert snaps.get(changed) is not snap


def test_sessions_bring_their_clients_up_to_date_from_one_listing_per_change(tmp_path: Path) -> None:
    """After a change its event does not describe (here the API's Read state; a STORE or
    EXPUNGE of another session comes with its UIDs and flags and reads nothing), every
    session with the folder selected syncs from the same listing (read once, keyed by the
    folder's generation, which each change event raises); a listing read while a change
    event arrives is not kept."""
    from postroom.events import FolderChanged
    from postroom.servers.imap.core import SNAPSHOTS_KEY
    from postroom.servers.imap.snapshots import Snapshots

    with running_server(db=str(tmp_path / "store.db")) as s:
        for i in range(2):
            deliver(s, msg(f"g{i}"))
        sessions = [login(s) for _ in range(3)]
        try:
            for w in sessions:
                w.ok("SELECT INBOX")
            snaps = s.app.extras[SNAPSHOTS_KEY]
            assert isinstance(snaps, Snapshots)
            s.app.store.set_read([s.app.store.folder_entries("bob@example.org", "INBOX")[0].id], True)
            seen = []
            for w in sessions[1:]:  # (not NOOP: it always reads the store, for other processes' writes)
                assert any(b"\\Seen" in x for x in w.ok("UID SEARCH ALL"))
                seen.append(snaps.peek_current("bob@example.org", "INBOX"))
            assert seen[0] is not None and seen[0] is seen[1]  # one listing served both
            deliver(s, msg("g2"))
            for w in sessions:  # (the new mail's event reaches the sessions after the commit)
                end = time.monotonic() + 10
                while b"* 3 EXISTS\r\n" not in w.ok("NOOP"):
                    assert time.monotonic() < end, "no EXISTS for the new message"
                    time.sleep(0.02)
        finally:
            for w in sessions:
                w.close()
        snap = snaps.current("bob@example.org", "INBOX")
        assert snaps.current("bob@example.org", "INBOX") is snap
        snaps.on_event(FolderChanged("bob@example.org", "INBOX", "flags"))
        assert snaps.peek_current("bob@example.org", "INBOX") is None
        fresh = snaps.current("bob@example.org", "INBOX")
        assert fresh is not snap and fresh.uids == snap.uids

        class Racing:  # a store whose listing read sees a change event arrive meanwhile
            def folder_entries(self, mailbox: str, folder: str) -> object:
                snaps.on_event(FolderChanged(mailbox, folder, "exists"))
                return s.app.store.folder_entries(mailbox, folder)

        snaps.store = Racing()  # type: ignore[assignment]
        snaps.on_event(FolderChanged("bob@example.org", "INBOX", "flags"))
        assert snaps.current("bob@example.org", "INBOX").uids == [1, 2, 3]
        assert snaps.peek_current("bob@example.org", "INBOX") is None  # not kept


def test_search_goes_through_the_folder_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEARCH loads message text and header data one chunk at a time (its memory is one
    chunk's, whatever the folder's size): results do not depend on where chunks end."""
    import postroom.servers.imap.selected as selected

    monkeypatch.setattr(selected, "SEARCH_CHUNK", 2)
    with running_server(db=str(tmp_path / "store.db")) as s:
        for i in range(7):
            deliver(s, msg(f"c{i}", "the okapi" if i % 3 == 0 else "nothing here"))
        with login(s) as w:
            w.ok("SELECT INBOX")
            assert w.ok('SEARCH TEXT "okapi"')[0] == b"* SEARCH 1 4 7\r\n"
            assert w.ok('SEARCH BODY "nothing" SUBJECT "c"')[0] == b"* SEARCH 2 3 5 6\r\n"
            assert w.ok('SEARCH OR SUBJECT "c1" BODY "okapi"')[0] == b"* SEARCH 1 2 4 7\r\n"
            assert w.ok('SORT (REVERSE SUBJECT) UTF-8 TEXT "okapi"')[0] == b"* SORT 7 4 1\r\n"


def test_sessions_fetching_sections_of_one_message_parse_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """imaptest's FETCH mix: several sessions read sections of the same new message. Its
    part tree is kept with its bytes, so it is parsed once, not once per FETCH; a message
    pushed out of memory takes its tree with it."""
    with running_server(db=str(tmp_path / "store.db")) as s:
        deliver(s, MIXED)
        deliver(s, msg("other"))
        parsed = count_parses(monkeypatch)
        sessions = [login(s) for _ in range(3)]
        try:
            for w in sessions:
                w.ok("SELECT INBOX")
            for _ in range(2):
                for w in sessions:
                    lines = w.ok(
                        "FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
                    )
                    assert b"the quetzal is green" in b"".join(lines)
            assert parsed == [MIXED]  # six FETCHes from three sessions, one parse
            cache = s.app.extras[CACHE_KEY]
            assert isinstance(cache, MessageCache)
            sessions[0].ok("FETCH 2 (BODY.PEEK[1])")
            assert set(cache._parts) == set(cache._raws) and len(parsed) == 2
            cache.raw_budget = 0  # the next message kept pushes out every other, trees too
            cache._keep("x", b"")
            assert not cache._parts and list(cache._raws) == ["x"]
        finally:
            for w in sessions:
                w.close()


@pytest.mark.parametrize("imap", ["127.0.0.1:0", "off"])
def test_the_indexer_derives_imap_data_only_for_a_server_with_imap(tmp_path: Path, imap: str) -> None:
    """After the text index, the indexer process derives the IMAP server's data of new mail,
    unless the server has no IMAP listener (nobody would read it: both cores for seconds
    after a large burst)."""
    db = tmp_path / "store.db"
    with running_server(db=str(db), imap=imap) as s:
        for i in range(3):
            deliver(s, msg(f"d{i}"))
        assert s.app.store.wait_indexed(30)
        deadline = time.monotonic() + (20 if imap != "off" else 2)
        while rows(db, "imap_meta") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows(db, "imap_meta") == (3 if imap != "off" else 0)
