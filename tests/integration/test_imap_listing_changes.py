"""SELECT after new mail and flag changes shares the folder's listing tables (issue 19:
they were copied per change, ~30 ms at 100,000 messages), and what the clients see is
unchanged: byte-level EXISTS, RECENT, UNSEEN, UIDNEXT, HIGHESTMODSEQ, FETCH FLAGS and
EXPUNGE, over real sockets against postroom running in a thread."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from postroom.servers.imap.core import SNAPSHOTS_KEY
from postroom.servers.imap.snapshots import Snapshot, Snapshots
from postroom.store.base import Envelope
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire, login


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(smtp="off", http="off", pop3="off") as s:
        yield s


def msg(i: int) -> bytes:
    return f"From: a@example.org\r\nSubject: m{i}\r\nMessage-ID: <m{i}@x>\r\n\r\nbody {i}\r\n".encode()


def deliver(s: RunningServer, user: str, n: int) -> None:
    for i in range(n):
        s.call(s.app.store.deliver(Envelope("a@example.org", (user,)), msg(i)))


def kept(s: RunningServer, user: str) -> Snapshot:
    """The INBOX listing the server keeps for SELECT (it matches the folder's state)."""
    snaps = s.app.extras[SNAPSHOTS_KEY]
    assert isinstance(snaps, Snapshots)
    info = s.app.store.folder_info(user, "INBOX")
    assert info is not None
    snap = snaps.peek(info)
    assert snap is not None
    return snap


def code(lines: list[bytes], name: bytes) -> bytes | None:
    """The value of response code ``name`` in SELECT's lines (``[UNSEEN 3]``: b"3")."""
    for line in lines:
        m = re.match(rb"\* OK \[%s ([^\]]*)\]" % name, line)
        if m:
            return m.group(1)
    return None


def wait_for(w: Wire, line: bytes) -> list[bytes]:
    """NOOP until ``line`` comes (a change event reaches a session just after the commit)."""
    end = time.monotonic() + 10
    while True:
        got = w.ok("NOOP")
        if line in got:
            return got
        assert time.monotonic() < end, got
        time.sleep(0.02)


def test_select_after_an_append_shares_the_listing_and_reports_the_new_message(srv: RunningServer) -> None:
    user = "grow@example.org"
    deliver(srv, user, 30)
    with login(srv, user) as a, login(srv, user) as b, login(srv, user) as c:
        sel = a.ok("SELECT INBOX")
        assert b"* 30 EXISTS\r\n" in sel and b"* 30 RECENT\r\n" in sel and code(sel, b"UNSEEN") == b"1"
        first = kept(srv, user)
        a.ok("STORE 1:30 +FLAGS.SILENT (\\Seen)")
        b.append("INBOX", msg(30))
        sel = c.ok("SELECT INBOX")
        assert sel[:4] == [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n",
            b"* 31 EXISTS\r\n",
            b"* 1 RECENT\r\n",  # 1 to 30 are a's
        ]
        assert code(sel, b"UNSEEN") == b"31" and code(sel, b"UIDNEXT") == b"32"
        grown = kept(srv, user)
        # grown from the first listing: the UID array appended to, the base shared
        assert grown is not first and grown.uids.arr is first.uids.arr and grown.base is first.base
        assert len(first.uids) == 30 and len(grown.uids) == 31
        assert c.ok("FETCH 30:31 (FLAGS)") == [
            b"* 30 FETCH (FLAGS (\\Seen))\r\n",
            b"* 31 FETCH (FLAGS (\\Recent))\r\n",
        ]
        assert c.ok("SEARCH RECENT") == [b"* SEARCH 31\r\n"] and c.ok("SEARCH UNSEEN") == [b"* SEARCH 31\r\n"]
        # the session that had it selected hears of it, not as recent
        assert wait_for(a, b"* 31 EXISTS\r\n")[:2] == [b"* 31 EXISTS\r\n", b"* 30 RECENT\r\n"]
        assert a.ok("FETCH 31 (FLAGS)") == [b"* 31 FETCH (FLAGS ())\r\n"]
        assert a.ok("FETCH 1 (FLAGS)") == [b"* 1 FETCH (FLAGS (\\Recent \\Seen))\r\n"]


def test_recent_after_only_examines_goes_to_one_select_as_a_range(srv: RunningServer) -> None:
    """\\Recent of a whole folder (nobody selected it read-write yet) is one SELECT's; an
    expunge takes the message out of it, a new message claimed later adds to it."""
    user = "recent-range@example.org"
    deliver(srv, user, 6)
    with login(srv, user) as a, login(srv, user) as b:
        for _ in range(2):
            assert b"* 6 RECENT\r\n" in a.ok("EXAMINE INBOX")
        a.ok("CLOSE")
        assert b"* 6 RECENT\r\n" in a.ok("SELECT INBOX")
        assert b"* 0 RECENT\r\n" in b.ok("SELECT INBOX")
        assert a.ok("SEARCH NEW") == [b"* SEARCH 1 2 3 4 5 6\r\n"] and b.ok("SEARCH RECENT") == [
            b"* SEARCH\r\n"
        ]
        a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        assert a.ok("EXPUNGE") == [b"* 2 EXPUNGE\r\n"]
        assert a.ok("SEARCH RECENT") == [b"* SEARCH 1 2 3 4 5\r\n"]
        a.append("INBOX", msg(99))
        assert a.ok("NOOP") == [] and a.ok("SEARCH RECENT") == [b"* SEARCH 1 2 3 4 5 6\r\n"]
        got = wait_for(b, b"* 6 EXISTS\r\n")
        assert got == [b"* 2 EXPUNGE\r\n", b"* 6 EXISTS\r\n", b"* 0 RECENT\r\n"]
        assert b.ok("FETCH 1:* (FLAGS)") == [b"* %d FETCH (FLAGS ())\r\n" % i for i in range(1, 7)]


def test_select_after_flag_changes_shows_first_unseen_and_highestmodseq(srv: RunningServer) -> None:
    user = "reflag@example.org"
    deliver(srv, user, 8)
    with login(srv, user) as a, login(srv, user) as b:
        a.ok("SELECT INBOX (CONDSTORE)")
        first = kept(srv, user)
        a.ok("STORE 1:8 +FLAGS.SILENT (\\Seen)")
        sel = b.ok("SELECT INBOX (CONDSTORE)")
        high = int(code(sel, b"HIGHESTMODSEQ") or 0)
        assert code(sel, b"UNSEEN") is None and high > 1
        b.ok("CLOSE")
        [line] = a.ok("STORE 5 -FLAGS (\\Seen)")
        m = re.fullmatch(rb"\* 5 FETCH \(FLAGS \(\\Recent\) MODSEQ \((\d+)\)\)\r\n", line)
        assert m and int(m.group(1)) > high
        sel = b.ok("SELECT INBOX (CONDSTORE)")
        assert code(sel, b"UNSEEN") == b"5" and code(sel, b"HIGHESTMODSEQ") == m.group(1)
        assert kept(srv, user).base is first.base and kept(srv, user).uids.arr is first.uids.arr
        b.ok("CLOSE")
        a.ok("STORE 5 +FLAGS.SILENT (\\Seen)")
        a.ok("STORE 3 +FLAGS.SILENT ($Later)")
        sel = b.ok("SELECT INBOX (CONDSTORE)")
        assert code(sel, b"UNSEEN") is None and b"$Later" in sel[0]
        assert b.ok("FETCH 3,5 (FLAGS)") == [
            b"* 3 FETCH (FLAGS ($Later \\Seen))\r\n",
            b"* 5 FETCH (FLAGS (\\Seen))\r\n",
        ]


def test_expunges_on_shared_listings_come_highest_first(srv: RunningServer) -> None:
    user = "expunge-order@example.org"
    deliver(srv, user, 6)
    with login(srv, user) as a, login(srv, user) as b, login(srv, user) as c:
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        first = kept(srv, user)
        assert first.uids == [1, 2, 3, 4, 5, 6]
        a.ok("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)")
        assert a.ok("EXPUNGE") == [b"* 5 EXPUNGE\r\n", b"* 4 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
        got = wait_for(b, b"* 2 EXPUNGE\r\n")
        assert [x for x in got if x.endswith(b"EXPUNGE\r\n")] == [
            b"* 5 EXPUNGE\r\n",
            b"* 4 EXPUNGE\r\n",
            b"* 2 EXPUNGE\r\n",
        ]
        assert b.ok("FETCH 1:* (UID)") == [
            b"* 1 FETCH (UID 1)\r\n",
            b"* 2 FETCH (UID 3)\r\n",
            b"* 3 FETCH (UID 6)\r\n",
        ]
        b.append("INBOX", msg(7))
        sel = c.ok("SELECT INBOX")
        assert b"* 4 EXISTS\r\n" in sel and code(sel, b"UIDNEXT") == b"8"
        # grown from the first listing by the expunges and the flag changes their events
        # carried (SQLite), not read again
        grown = kept(srv, user)
        # (PostgreSQL's events carry no entries: there the listing is read again)
        sqlite = hasattr(getattr(srv.app.store, "db", None), "reader")
        assert grown.uids == [1, 3, 6, 7] and (grown.base is first.base) == sqlite
        assert c.ok("UID FETCH 1:* (UID)") == [
            b"* 1 FETCH (UID 1)\r\n",
            b"* 2 FETCH (UID 3)\r\n",
            b"* 3 FETCH (UID 6)\r\n",
            b"* 4 FETCH (UID 7)\r\n",
        ]


def test_select_shares_the_uid_array_a_selected_session_appended_to(srv: RunningServer) -> None:
    """A session that has the folder selected hears of new mail first and appends its UID
    to the shared array; the SELECT after takes that UID as it is (no copy)."""
    user = "heard-first@example.org"
    deliver(srv, user, 10)
    with login(srv, user) as a, login(srv, user) as b, login(srv, user) as c:
        a.ok("SELECT INBOX")
        first = kept(srv, user)
        b.append("INBOX", msg(10))
        assert wait_for(a, b"* 11 EXISTS\r\n")[:2] == [b"* 11 EXISTS\r\n", b"* 11 RECENT\r\n"]
        assert len(first.uids.arr) == 11  # a's tracker appended in place
        sel = c.ok("SELECT INBOX")
        assert b"* 11 EXISTS\r\n" in sel and b"* 0 RECENT\r\n" in sel
        grown = kept(srv, user)
        assert grown.uids.arr is first.uids.arr and grown.uids == list(range(1, 12))
        assert c.ok("FETCH 11 (UID FLAGS)") == [b"* 11 FETCH (UID 11 FLAGS ())\r\n"]
