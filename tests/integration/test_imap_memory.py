"""What the IMAP server keeps in memory stays bounded under a stream of APPEND and EXPUNGE
(imaptest's stress, issue 19): a deleted message leaves the shared caches with its rows,
and the part trees kept are bounded. A real server over sockets, a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from pathlib import Path

import pytest

from postroom.events import MessagesPruned
from postroom.servers.imap.core import CACHE_KEY
from postroom.servers.imap.messages import MessageCache
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire
from tests.integration.test_imap_cache import MIXED, deliver, login, msg, settle


def cache_of(s: RunningServer) -> MessageCache:
    cache = s.app.extras[CACHE_KEY]
    assert isinstance(cache, MessageCache)
    return cache


def held(cache: MessageCache) -> set[str]:
    """Every message ID some part of the cache holds something of."""
    ids = set(cache._raws) | set(cache._parts) | set(cache._derived) | set(cache._texts)
    ids |= set(cache._msgids)
    for memo in cache._sort_keys.values():
        ids |= set(memo)
    return ids


def use_everything(w: Wire) -> None:
    """Commands that fill each of the caches for the messages of the selected folder."""
    w.ok("FETCH 1:* (ENVELOPE BODY.PEEK[1] X-GM-MSGID)")
    w.ok('SEARCH TEXT "hello"')
    w.ok("SORT (SUBJECT) UTF-8 ALL")


def test_a_deleted_message_leaves_the_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import postroom.servers.imap.messages as messages

    monkeypatch.setattr(messages, "DELETED_GRACE", 0.0)
    with running_server(db=str(tmp_path / "store.db")) as s:
        ids = [deliver(s, msg(f"m{i}")) for i in range(4)] + [deliver(s, MIXED)]
        cache = cache_of_after(s, ids)
        with login(s) as w:
            w.ok("SELECT INBOX")
            # IMAP EXPUNGE of the last delivery deletes the message: gone from memory too
            w.ok("STORE 1,2 +FLAGS.SILENT (\\Deleted)")
            w.ok("EXPUNGE")
            assert held(cache) == set(ids[2:])
            # an APPENDed message FETCHed at once (kept from its APPEND), then expunged
            assert w.append("INBOX", msg("appended"), "\\Deleted")[-1].split()[1] == b"OK"
            w.ok("FETCH 4 (ENVELOPE BODY.PEEK[1])")
            assert len(held(cache)) == 4
            w.ok("EXPUNGE")
            assert held(cache) == set(ids[2:])
        # deletion through the API (the web UI), and everything at once
        s.app.store.delete_messages([ids[2]])
        s.call(asyncio.sleep(0))  # the event is on the loop before this runs
        assert held(cache) == set(ids[3:])
        s.app.store.delete_messages(None)
        s.call(asyncio.sleep(0))
        assert held(cache) == set()
        assert cache._raw_size == cache._text_bytes == cache._sort_key_count == 0


def cache_of_after(s: RunningServer, ids: list[str]) -> MessageCache:
    """Fill the caches for ``ids`` (the INBOX) and return the cache."""
    with login(s) as w:
        w.ok("SELECT INBOX")
        use_everything(w)
    cache = cache_of(s)
    settle(s)
    assert held(cache) == set(ids)
    return cache


def test_nothing_is_written_behind_for_a_message_deleted_before_its_turn(tmp_path: Path) -> None:
    with running_server(db=str(tmp_path / "store.db")) as s:
        pid = deliver(s, msg("gone"))
        with login(s) as w:
            w.ok("SELECT INBOX")
        cache = cache_of(s)
        cache.writes.add("meta", pid, b"x")
        cache.writes.add("meta", "other", b"y")
        cache.forget([pid])
        assert cache.writes._pending == {"meta": {"other": b"y"}}
        cache.forget(None)
        assert cache.writes._pending == {"meta": {}}


def test_the_part_trees_kept_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import postroom.servers.imap.messages as messages

    monkeypatch.setattr(messages, "PARTS_KEPT", 2)
    with running_server(db=str(tmp_path / "store.db")) as s:
        for i in range(5):
            deliver(s, msg(f"p{i}", f"body {i}"))
        with login(s) as w:
            w.ok("EXAMINE INBOX")
            for i in range(1, 6):
                assert f"body {i - 1}".encode() in b"".join(w.ok(f"FETCH {i} BODY.PEEK[1]"))
            cache = cache_of(s)
            assert len(cache._raws) == 5 and len(cache._parts) == 2
            assert b"body 0" in b"".join(w.ok("FETCH 1 BODY.PEEK[1]"))  # parsed again


def test_a_session_not_yet_told_of_an_expunge_still_searches_and_fetches_the_message(tmp_path: Path) -> None:
    """imaptest's SEARCHes: another session expunged (and so deleted) a message this one
    still shows; its data stays in memory DELETED_GRACE seconds for that."""
    with running_server(db=str(tmp_path / "store.db")) as s:
        ids = [deliver(s, msg(f"m{i}", f"body {i}")) for i in range(3)]
        with login(s) as a, login(s) as b:
            a.ok("SELECT INBOX")
            envelopes = a.ok("FETCH 1:* (ENVELOPE BODY.PEEK[TEXT])")
            assert len(envelopes) == 3
            b.ok("SELECT INBOX")
            b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
            assert b.ok("EXPUNGE") == [b"* 2 EXPUNGE\r\n"]
            # the store no longer has it, nor its IMAP rows
            assert s.app.store.get_summary(ids[1]) is None
            assert s.app.store.imap_cache_get("meta", [ids[1]]) == {}
            # FETCH, STORE and SEARCH do not report expunges (RFC 3501 7.4.1): 2 is still there
            assert a.ok('SEARCH SUBJECT "m1"') == [b"* SEARCH 2\r\n"]
            assert a.ok('SEARCH NOT SUBJECT "m1"') == [b"* SEARCH 1 3\r\n"]
            assert a.ok('SEARCH BODY "body 1"') == [b"* SEARCH 2\r\n"]
            assert a.ok("FETCH 2 (ENVELOPE BODY.PEEK[TEXT])") == envelopes[1:2]
            assert b"* 2 EXPUNGE\r\n" in a.ok("NOOP")


def test_a_deleted_message_is_forgotten_when_its_grace_ends_on_an_idle_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grace ends by a timer: no later event is needed (it waited for the next one)."""
    import postroom.servers.imap.messages as messages

    monkeypatch.setattr(messages, "DELETED_GRACE", 0.3)
    with running_server(db=str(tmp_path / "store.db")) as s:
        ids = [deliver(s, msg(f"m{i}")) for i in range(3)]
        cache = cache_of_after(s, ids)
        s.app.store.delete_messages([ids[0]])
        s.call(asyncio.sleep(0))  # the event is on the loop before this runs
        assert held(cache) == set(ids)  # within its grace
        deadline = time.monotonic() + 20
        while held(cache) != set(ids[1:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held(cache) == set(ids[1:])


def test_deleted_messages_are_forgotten_a_chunk_a_turn_of_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune of 100,000 messages does not hold the loop while all of them are forgotten."""
    import postroom.servers.imap.messages as messages

    monkeypatch.setattr(messages, "DELETED_GRACE", 0.0)
    with running_server(db=str(tmp_path / "store.db")) as s:
        ids = [deliver(s, msg(f"m{i}")) for i in range(5)]
        cache = cache_of_after(s, ids)
        cache.dying.chunk = 2

        async def prune_and_watch() -> list[int]:
            cache.on_event(MessagesPruned(tuple(ids)))
            seen = [len(held(cache))]
            while held(cache):
                await asyncio.sleep(0)
                seen.append(len(held(cache)))
            return seen

        seen = s.call(prune_and_watch())
        assert seen[0] == 3 and seen[-1] == 0 and len(seen) >= 3, seen  # 2, then the rest later
        assert all(a - b <= 2 for a, b in pairwise(seen)), seen
        assert len(cache.dying) == 0
