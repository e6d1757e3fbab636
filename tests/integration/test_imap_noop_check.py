"""NOOP and CHECK cost the changes a session heard of, not its folder: with nothing
changed they read no listing (each read the whole listing before: ~1 s at 100,000
messages), and still report every change, whether its event said what changed (another
session's STORE, APPEND, EXPUNGE), said only that something changed (the HTTP API's
Read state and delete), or never came at all (a write by another process on the same
SQLite file, a PostgreSQL notification lost with its connection: here the store's events
are dropped while the change is made). A real server and raw-socket clients."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.helpers import RunningServer, running_server
from tests.integration.test_imap_append_selected import BOB, counted_reads, msg, prefill, two_sessions

N = 12  # messages in the folder


@contextmanager
def no_events(s: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Changes made inside publish no event (as another process's write would not)."""
    with monkeypatch.context() as m:
        m.setattr(s.app.bus, "publish", lambda event: None)
        m.setattr(s.app.bus, "publish_many", lambda events: None)
        yield


def api(s: RunningServer, method: str, path: str, body: dict[str, Any]) -> None:
    host, port = s.addr("http")
    req = urllib.request.Request(
        f"http://{host}:{port}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


def ids(s: RunningServer) -> list[str]:
    return [e.id for e in s.app.store.folder_entries(BOB, "INBOX")]


def until(get: Callable[[], list[bytes]], want: bytes, tries: int = 50) -> list[bytes]:
    """Run ``get`` (a NOOP) until ``want`` is among its lines (an event reaches a session
    just after its commit); all the lines seen."""
    seen: list[bytes] = []
    for _ in range(tries):
        seen += get()
        if want in seen:
            return seen
    raise AssertionError((want, seen))


def test_noop_and_check_read_no_listing_when_nothing_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server() as s, two_sessions(s, N) as (a, b), counted_reads(s, monkeypatch) as reads:
        for _ in range(5):
            assert b.ok("NOOP") == []
            assert b.ok("CHECK") == []
        assert reads == [], reads
        # a change another session made, described by its event: no listing either
        assert a.store("2", "+FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
        until(lambda: b.ok("NOOP"), b"* 2 FETCH (FLAGS (\\Flagged))\r\n")
        assert b.ok("NOOP") == []
        assert all(after > 0 for after, _ in reads), reads  # new rows at most, no listing


def test_noop_reports_changes_whose_events_never_came(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server() as s, two_sessions(s, N) as (_, b):
        assert b.ok("NOOP") == []
        with no_events(s, monkeypatch):
            s.app.store.update_flags(BOB, "INBOX", [3], frozenset({"\\Answered"}), "add")
        assert b.ok("FETCH 1 (UID)") == [b"* 1 FETCH (UID 1)\r\n"]  # not heard of
        assert b.ok("NOOP") == [b"* 3 FETCH (FLAGS (\\Answered))\r\n"]
        assert b.ok("NOOP") == []
        with no_events(s, monkeypatch):
            s.app.store.update_flags(BOB, "INBOX", [5], frozenset({"\\Deleted"}), "add")
            s.app.store.expunge(BOB, "INBOX")
        assert b.ok("CHECK") == [b"* 5 EXPUNGE\r\n"]
        with no_events(s, monkeypatch):
            prefill(s, 1)
        got = b.ok("NOOP")
        assert got[0] == b"* %d EXISTS\r\n" % N, got
        assert b.ok("NOOP") == []
        assert b.ok("UID SEARCH ALL") == [
            b"* SEARCH " + b" ".join(b"%d" % u for u in [*range(1, 5), *range(6, N + 1), N + 1]) + b"\r\n"
        ]


def test_noop_reports_api_changes_and_another_sessions() -> None:
    with running_server() as s, two_sessions(s, N) as (a, b):
        listed = ids(s)
        api(s, "PUT", "/api/v1/messages", {"IDs": [listed[3]], "Read": True})
        until(lambda: b.ok("NOOP"), b"* 4 FETCH (FLAGS (\\Seen))\r\n")
        api(s, "DELETE", "/api/v1/messages", {"IDs": [listed[5]]})
        until(lambda: b.ok("NOOP"), b"* 6 EXPUNGE\r\n")
        assert a.append("INBOX", None, None, msg("another"))[0] == "OK"
        until(lambda: b.ok("NOOP"), b"* %d EXISTS\r\n" % N)
        assert a.store("1", "+FLAGS.SILENT", "($Tag)")[0] == "OK"
        until(lambda: b.ok("NOOP"), b"* 1 FETCH (FLAGS ($Tag))\r\n")
        assert b.ok("NOOP") == []


def test_noop_reports_the_expunges_of_a_selected_folder_another_session_deleted() -> None:
    """Deleting (or renaming away) a folder tells its sessions nothing by event: NOOP's
    look at the folder's row finds none, and the session's messages are all expunged (as
    when NOOP read the listing each time), not kept on show for good."""
    with running_server() as s, two_sessions(s, 0) as (a, b):
        assert a.create("Archive")[0] == "OK"
        for i in range(3):
            assert a.append("Archive", "", None, msg(f"kept {i}"))[0] == "OK"
        b.ok("SELECT Archive")
        assert a.delete("Archive")[0] == "OK"
        lines = b.ok("NOOP")
        assert sorted(lines) == [b"* 1 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n"], lines
        assert b.ok("NOOP") == []
