"""RENAME INBOX (RFC 3501 6.3.5) moves every message of INBOX to the new folder: a session
with INBOX selected hears of it from the change's event, as after a MOVE (``* n EXPUNGE``
on its next command or in IDLE), without waiting for a NOOP. Before, the store sent no
event for INBOX, so FETCH and IDLE showed the moved messages until a NOOP's check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import deliver, login


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(smtp="off", http="off", pop3="off") as s:
        yield s


def test_rename_inbox_expunges_for_a_session_with_inbox_selected(srv: RunningServer) -> None:
    user = "rename1@example.org"
    deliver(srv, user, 2)
    with login(srv, user) as a, login(srv, user) as b:
        assert b"* 2 EXISTS\r\n" in a.ok("SELECT INBOX")
        b.ok("RENAME INBOX Old")
        # the command runs on what the client knows; the expunges follow, before its OK
        assert a.ok("UID FETCH 1:* (UID)") == [
            b"* 1 FETCH (UID 1)\r\n",
            b"* 2 FETCH (UID 2)\r\n",
            b"* 2 EXPUNGE\r\n",
            b"* 1 EXPUNGE\r\n",
        ]
        assert a.ok("UID SEARCH ALL") == [b"* SEARCH\r\n"]
        assert b"* 2 EXISTS\r\n" in b.ok("SELECT Old")


def test_rename_inbox_is_heard_in_idle(srv: RunningServer) -> None:
    user = "rename2@example.org"
    deliver(srv, user, 1)
    with login(srv, user) as a, login(srv, user) as b:
        assert b"* 1 EXISTS\r\n" in a.ok("SELECT INBOX")
        a.send(b"i1 IDLE\r\n")
        assert a.read_line().startswith(b"+ ")
        b.ok("RENAME INBOX Old")
        assert a.read_line() == b"* 1 EXPUNGE\r\n"
        a.send(b"DONE\r\n")
        assert a.read_line().startswith(b"i1 OK")
