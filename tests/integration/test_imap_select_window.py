"""A change whose event reaches a session while its SELECT reads the folder (its state
and listing are read on worker threads) is reported to that session once the folder is
selected: the re-flagged message's new flags, the new message's EXISTS, the expunge.
Before, the session dropped every event while no folder was selected and forgot what
was pending once SELECT ended, so such a change was never reported (FETCH showed the
old flags; no ``* 4 EXISTS``; an IDLE client missed it). A real server and raw-socket
clients; the change is made from inside the listing's read (Snapshots.get, a worker
thread), and the read returns only once the change's event has reached the loop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from postroom.events import Event, FolderChanged
from postroom.servers.imap.core import SNAPSHOTS_KEY
from postroom.servers.imap.snapshots import Snapshot, Snapshots
from postroom.store.base import Envelope, FolderInfo
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire, login


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(smtp="off", http="off", pop3="off") as s:
        yield s


def deliver(s: RunningServer, user: str, n: int) -> None:
    for i in range(n):
        s.call(
            s.app.store.deliver(Envelope("a@example.org", (user,)), f"Subject: m{i}\r\n\r\nbody\r\n".encode())
        )


def during_listing(
    s: RunningServer, monkeypatch: pytest.MonkeyPatch, user: str, action: Callable[[], None]
) -> None:
    """Run ``action`` inside the next listing read (after the listing is read), and let
    that read return only once the change's event has been dispatched on the loop (to
    every session: a subscriber added now runs after theirs)."""
    snaps = s.app.extras[SNAPSHOTS_KEY]
    assert isinstance(snaps, Snapshots)
    orig = snaps.get
    heard = threading.Event()
    done: list[int] = []

    def note(event: Event) -> None:
        if isinstance(event, FolderChanged) and event.mailbox == user:
            heard.set()

    def get(info: FolderInfo) -> Snapshot:
        snap = orig(info)
        if not done:
            done.append(1)
            unsubscribe = s.app.bus.subscribe(note)
            try:
                action()
                assert heard.wait(10), "the change's event never came"
            finally:
                unsubscribe()
        return snap

    monkeypatch.setattr(snaps, "get", get)


def stale_selected(s: RunningServer, user: str, a: Wire) -> None:
    """Three messages, selected by ``a``, the kept listing stale (the next SELECT reads it)."""
    deliver(s, user, 3)
    a.ok("SELECT INBOX")
    a.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")


def test_a_flag_change_during_select_is_reported(srv: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    user = "window1@example.org"
    with login(srv, user) as a, login(srv, user) as b:
        stale_selected(srv, user, a)
        during_listing(
            srv,
            monkeypatch,
            user,
            lambda: srv.app.store.update_flags(user, "INBOX", [2], frozenset({"\\Seen"}), "add"),
        )
        sel = b.ok("SELECT INBOX")
        got = b.ok("FETCH 2 FLAGS")
        assert b"* 2 FETCH (FLAGS (\\Seen))\r\n" in sel + got, (sel, got)
        assert b"* 2 FETCH (FLAGS ())\r\n" not in got, got


def test_new_mail_during_select_is_reported(srv: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    user = "window2@example.org"
    with login(srv, user) as a, login(srv, user) as b:
        stale_selected(srv, user, a)
        during_listing(srv, monkeypatch, user, lambda: a.append("INBOX", b"Subject: x\r\n\r\nx\r\n"))
        sel = b.ok("SELECT INBOX")
        assert b"* 3 EXISTS\r\n" in sel, sel
        # reported before SELECT's tagged OK (the sync after the command)
        assert sel[-2] == b"* 4 EXISTS\r\n" and sel[-1].endswith(b" RECENT\r\n"), sel
        got = b.ok("FETCH 4 (UID)")
        assert got == [b"* 4 FETCH (UID 4)\r\n"], got


def test_an_expunge_during_select_is_reported(srv: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    user = "window3@example.org"
    with login(srv, user) as a, login(srv, user) as b:
        stale_selected(srv, user, a)

        def expunge() -> None:
            a.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
            a.ok("EXPUNGE")

        during_listing(srv, monkeypatch, user, expunge)
        sel = b.ok("SELECT INBOX")
        assert b"* 3 EXISTS\r\n" in sel, sel
        assert sel[-1] == b"* 3 EXPUNGE\r\n", sel
        assert b.ok("UID SEARCH ALL") == [b"* SEARCH 1 2\r\n"]
