"""A message APPENDed has its ENVELOPE/BODYSTRUCTURE derived in the background from the
bytes the APPEND brought, whichever folder the session has selected (issue 19: the first
FETCH 1:* (ENVELOPE BODYSTRUCTURE) of 1,000 new messages). A real server over sockets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import postroom.protocols.imap.mime as mime
from postroom.servers.imap.core import CACHE_KEY
from postroom.servers.imap.messages import MessageCache, derive
from tests.helpers import running_server
from tests.integration.imap_wire import Wire, count_parses

BOB = "bob@example.org"
MIXED = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\nTo: bob@example.org\r\nSubject: parts\r\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <parts@x>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
    b"the quetzal is green\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64"
    b"\r\n\r\nJVBERi0=\r\n--b--\r\n"
)


@pytest.mark.parametrize("selected", ["INBOX", "Sent"])
def test_an_appended_message_is_derived_before_its_first_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selected: str
) -> None:
    """APPEND into Sent, with INBOX or Sent itself selected: the bytes are kept and its data
    derived without a FETCH; the FETCH then parses nothing, and answers the same bytes a
    parse of the message gives."""
    with running_server(db=str(tmp_path / "store.db")) as s:
        w = Wire(*s.addr("imap"))
        try:
            w.ok(f'LOGIN "{BOB}" x')
            w.ok("CREATE Sent")
            w.ok(f"SELECT {selected}")
            w.append("Sent", MIXED)
            cache = s.app.extras[CACHE_KEY]
            assert isinstance(cache, MessageCache)
            (entry,) = s.app.store.folder_entries(BOB, "Sent")
            assert cache.peek_raw(entry.id) == MIXED  # kept, not read back
            deadline = time.monotonic() + 10
            while cache.peek_derived(entry.id) is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert cache.peek_derived(entry.id) is not None
            entity = mime._parse_entity
            parsed = count_parses(monkeypatch)
            w.ok("SELECT Sent")
            got = b"".join(w.ok("FETCH 1 (ENVELOPE BODYSTRUCTURE)"))
            assert parsed == []
            monkeypatch.setattr(mime, "_parse_entity", entity)
            want = derive(mime.parse(MIXED))
            assert b"ENVELOPE " + want.envelope + b" BODYSTRUCTURE " + want.bodystructure + b")" in got
        finally:
            w.close()


def test_what_waits_to_be_derived_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue holds the bytes of what waits (even once the raw cache let go of them):
    none over DERIVE_SOON_MAX bytes, at most DERIVE_SOON_BYTES together and at most
    DERIVE_SOON_ITEMS messages; what does not fit is left to the FETCH."""
    import postroom.servers.imap.derivesoon as ds

    def sized(n: int) -> bytes:
        head = b"From: a@example.org\r\nSubject: s\r\n\r\n"
        return head + b"x" * (n - len(head))

    monkeypatch.setattr(ds, "DERIVE_SOON_MAX", 1000)
    monkeypatch.setattr(ds, "DERIVE_SOON_BYTES", 2500)
    monkeypatch.setattr(ds, "DERIVE_SOON_ITEMS", 3)
    with running_server(db=str(tmp_path / "store.db")) as s:
        cache = MessageCache(s.app.store)
        # one add() on an empty queue: the thread takes nothing before it has decided
        items = [("big", sized(1001)), ("a", sized(1000)), ("b", sized(1000)), ("c", sized(1000))]
        items += [("d", sized(400)), ("e", sized(50))]
        for id, data in items:
            cache.keep_raw(id, data)
        ds.DeriveSoon(cache).add(items)
        deadline = time.monotonic() + 10
        while any(cache.peek_derived(id) is None for id in "abd") and time.monotonic() < deadline:
            time.sleep(0.01)
        # "c" went over the bytes, "e" over the count; all that waited is done
        assert [id for id, _ in items if cache.peek_derived(id) is not None] == ["a", "b", "d"]


def test_messages_added_in_a_burst_wake_the_thread_once_and_the_forgotten_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APPENDs in quick succession (imaptest's ~450/s) queue their messages without waking the
    thread for each: once woken it lets them gather for DERIVE_SOON_GATHER, and derives all of
    them then, but one deleted meanwhile (its bytes gone from the cache)."""
    import postroom.servers.imap.derivesoon as ds

    monkeypatch.setattr(ds, "DERIVE_SOON_GATHER", 0.5)  # longer than this test's adds, even under load

    with running_server(db=str(tmp_path / "store.db")) as s:
        cache = MessageCache(s.app.store)
        soon = ds.DeriveSoon(cache)
        ids = [f"m{i}" for i in range(40)]
        for id in ids:
            cache.keep_raw(id, MIXED)
        soon.add([(ids[0], MIXED)])
        cache.forget([ids[0]])  # deleted before the thread's turn
        for id in ids[1:]:  # one APPEND after another, faster than the gathering time
            soon.add([(id, MIXED)])
        deadline = time.monotonic() + 10
        while any(cache.peek_derived(id) is None for id in ids[1:]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(cache.peek_derived(id) is not None for id in ids[1:])
        assert cache.peek_derived(ids[0]) is None
        assert 1 <= soon.wakes <= 2  # was one per add() (40)
