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
from postroom.servers.imap import core
from postroom.servers.imap.account import Account
from postroom.servers.imap.core import SNAPSHOTS_KEY
from postroom.servers.imap.snapshots import Snapshot, Snapshots
from postroom.store.base import FolderInfo
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire, deliver, login


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(smtp="off", http="off", pop3="off") as s:
        yield s


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


def test_other_folders_events_during_select_are_not_held(
    srv: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the folder being selected has its events held: a burst of new mail to another
    mailbox while the listing is read does not fill the bound (here lowered to 2) and
    force a second listing read (SELECT's own sync, before its tagged OK)."""
    user = "window4@example.org"
    monkeypatch.setattr(core, "MAX_HELD", 2)
    with login(srv, user) as a, login(srv, user) as b:
        stale_selected(srv, user, a)
        others = [f"other4-{i}@example.org" for i in range(4)]  # an event each, batched or not

        def burst() -> None:
            for other in others:
                deliver(srv, other, 1)

        during_listing(srv, monkeypatch, others[-1], burst)  # the last one's event: every one's
        reads: list[str] = []
        relist = core.SessionBase._relist

        async def spy(self: core.SessionBase, sel: core.Selected, **kw: bool) -> None:
            reads.append(sel.folder)
            await relist(self, sel, **kw)

        monkeypatch.setattr(core.SessionBase, "_relist", spy)
        b.ok("SELECT INBOX")
        assert b.ok("FETCH 1:* (FLAGS)") == [
            b"* 1 FETCH (FLAGS (\\Flagged))\r\n",
            b"* 2 FETCH (FLAGS ())\r\n",
            b"* 3 FETCH (FLAGS ())\r\n",
        ]
        assert reads == [], "the listing was read again"


def test_a_deleted_folders_events_during_select_are_not_replayed(
    srv: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a SELECT reads its folder's state, the folder is expunged, deleted, made again
    and given a message (UID 1 of the new folder): the old folder's expunge of UIDs 1 and 2,
    held, is not replayed onto the new folder (no ``* 1 EXPUNGE`` for a message that is there)."""
    user = "window5@example.org"
    with login(srv, user) as a, login(srv, user) as b:
        a.ok("CREATE Work")
        a.append("Work", b"Subject: old1\r\n\r\nx\r\n")
        a.append("Work", b"Subject: old2\r\n\r\nx\r\n")
        account_info = Account.info
        done: list[int] = []

        def info(self: Account, name: str) -> FolderInfo | None:
            if not done:  # the changes' events reach the loop while SELECT waits for this read
                done.append(1)
                a.ok("SELECT Work")
                a.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
                a.ok("EXPUNGE")
                a.ok("UNSELECT")
                a.ok("DELETE Work")
                a.ok("CREATE Work")
                a.append("Work", b"Subject: new\r\n\r\nx\r\n")
            return account_info(self, name)

        monkeypatch.setattr(Account, "info", info)
        sel = b.ok("SELECT Work")
        assert b"* 1 EXISTS\r\n" in sel, sel
        assert not [line for line in sel if line.endswith(b" EXPUNGE\r\n")], sel
        got = b.ok("UID FETCH 1:* (UID)")
        assert got == [b"* 1 FETCH (UID 1)\r\n"], got
