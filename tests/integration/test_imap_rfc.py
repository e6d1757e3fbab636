"""Byte-level tests of the RFC points Dovecot's imaptest found wrong (issue 19), one per cause,
over real sockets against postroom running in a thread."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import login


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(smtp="off", http="off", pop3="off") as s:
        yield s


def tail(lines: list[bytes]) -> bytes:
    return lines[-1].split(b" ", 1)[1]


MSG = b"Subject: s\r\n\r\nbody\r\n"


def uidvalidity(lines: list[bytes]) -> bytes:
    return next(line for line in lines if line.startswith(b"* OK [UIDVALIDITY "))


def test_uidvalidity_differs_after_delete_and_create_in_the_same_second(srv: RunningServer) -> None:
    # cause 1 (RFC 3501 2.3.1.1)
    with login(srv, "uv@example.org") as w:
        for i in range(5):  # values handed out within one second run ahead of the clock
            w.ok(f"CREATE first{i}")
        w.ok("CREATE again")
        before = uidvalidity(w.ok("EXAMINE again"))
        w.ok("CLOSE")
        w.ok("DELETE again")
        w.ok("CREATE again")
        assert uidvalidity(w.ok("EXAMINE again")) != before


def test_parts_inside_a_message_rfc822_body(srv: RunningServer) -> None:
    # cause 2 (RFC 3501 6.4.5): a message whose whole body is message/rfc822
    inner = b"From: sub@domain.org\r\nSubject: submsg\r\n\r\nHello world\r\n"
    raw = b"From: a@b\r\nMime-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    with login(srv, "rfc822@example.org") as w:
        w.append("INBOX", raw)
        w.ok("SELECT INBOX")
        assert w.ok("FETCH 1 (BODY.PEEK[1.1])") == [b"* 1 FETCH (BODY[1.1] {13}\r\nHello world\r\n)\r\n"]
        assert w.ok("FETCH 1 (BODY.PEEK[1.HEADER])") == [
            b"* 1 FETCH (BODY[1.HEADER] {41}\r\nFrom: sub@domain.org\r\nSubject: submsg\r\n\r\n)\r\n"
        ]
        assert w.ok("FETCH 1 (BODY.PEEK[1])") == [b"* 1 FETCH (BODY[1] {%d}\r\n%s)\r\n" % (len(inner), inner)]
        assert w.ok("FETCH 1 (BODY.PEEK[1.2])") == [b"* 1 FETCH (BODY[1.2] {0}\r\n)\r\n"]  # no such part


def test_append_to_the_selected_mailbox_reports_exists_before_its_ok(srv: RunningServer) -> None:
    # cause 3 (RFC 3501 6.3.11): the new message's EXISTS comes with the APPEND, every time
    with login(srv, "appendsel@example.org") as w:
        w.ok("SELECT INBOX")
        for n in range(1, 21):
            lines = w.append("INBOX", MSG)
            assert lines[:2] == [
                b"* %d EXISTS\r\n" % n,
                b"* 1 RECENT\r\n" if n == 1 else b"* %d RECENT\r\n" % n,
            ]
            assert tail(lines).startswith(b"OK [APPENDUID ")
            assert w.ok(f"FETCH {n} (UID)") == [b"* %d FETCH (UID %d)\r\n" % (n, n)]


def test_recent_belongs_to_the_first_session_that_selects(srv: RunningServer) -> None:
    # cause 8 (RFC 3501 2.3.2): \Recent is per session, EXAMINE and STATUS do not take it
    with login(srv, "recent@example.org") as a, login(srv, "recent@example.org") as b:
        a.ok("CREATE r")
        a.append("r", MSG)
        a.append("r", MSG)
        assert a.ok("STATUS r (RECENT)") == [b"* STATUS r (RECENT 2)\r\n"]
        assert b"* 2 RECENT\r\n" in a.ok("EXAMINE r")
        a.ok("CLOSE")
        sel = a.ok("SELECT r")
        assert b"* 2 RECENT\r\n" in sel
        assert a.ok("FETCH 1:2 (FLAGS)") == [
            b"* 1 FETCH (FLAGS (\\Recent))\r\n",
            b"* 2 FETCH (FLAGS (\\Recent))\r\n",
        ]
        assert a.ok("SEARCH NEW") == [b"* SEARCH 1 2\r\n"] and a.ok("SEARCH OLD") == [b"* SEARCH\r\n"]
        assert a.ok("STATUS r (RECENT)") == [b"* STATUS r (RECENT 0)\r\n"]
        # the other session selecting now sees them, but not as recent
        assert b"* 0 RECENT\r\n" in b.ok("SELECT r")
        assert b.ok("SEARCH RECENT") == [b"* SEARCH\r\n"]
        # a message arriving while both have the folder selected is recent in one of them
        b.append("r", MSG)
        assert b.ok("FETCH 3 (FLAGS)") == [b"* 3 FETCH (FLAGS (\\Recent))\r\n"]
        noop = a.ok("NOOP")
        assert noop[:2] == [b"* 3 EXISTS\r\n", b"* 2 RECENT\r\n"]
        assert a.ok("FETCH 3 (FLAGS)") == [b"* 3 FETCH (FLAGS ())\r\n"]
        assert tail(a.cmd("STORE 1 +FLAGS (\\Recent)")).startswith(b"BAD ")


def test_search_from_finds_an_address_written_with_comments(srv: RunningServer) -> None:
    # cause 12 (RFC 5322 3.4: comments and folding white space may sit inside an address)
    with login(srv, "comments@example.org") as w:
        w.append("INBOX", b"From: <user-from (comment)@ (comment) domain.org>\r\nSubject: c\r\n\r\nx\r\n")
        w.append("INBOX", b"From: other@domain.org\r\nSubject: c\r\n\r\nx\r\n")
        w.ok("SELECT INBOX")
        assert w.ok("SEARCH FROM user-from@domain.org") == [b"* SEARCH 1\r\n"]


def test_search_matches_across_unicode_normalisation(srv: RunningServer) -> None:
    # cause 14: a decomposed "e + U+0301" finds a composed "é", in headers and in the body
    with login(srv, "nfc@example.org") as w:
        w.append(
            "INBOX",
            b"From: a@b\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"un caf\xc3\xa9 noir\r\n",
        )
        w.ok("SELECT INBOX")
        decomposed = "cafe\u0301".encode()
        for key in ("SUBJECT", "BODY", "TEXT"):
            lines = w.cmd(
                b"SEARCH CHARSET UTF-8 " + key.encode() + b" {%d+}\r\n" % len(decomposed) + decomposed
            )
            assert lines[0] == b"* SEARCH 1\r\n", (key, lines)


def test_a_new_keyword_from_another_session_comes_in_flags_before_its_fetch(srv: RunningServer) -> None:
    # cause 13 (RFC 3501 7.2.6: FLAGS lists every keyword a FETCH may show)
    with login(srv, "kw@example.org") as a, login(srv, "kw@example.org") as b:
        a.append("INBOX", MSG)
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        b.ok("STORE 1 +FLAGS ($hello)")
        noop = a.ok("NOOP")
        flags = next(i for i, line in enumerate(noop) if line.startswith(b"* FLAGS "))
        fetch = next(i for i, line in enumerate(noop) if line.startswith(b"* 1 FETCH "))
        assert flags < fetch, noop
        assert b"$hello" in noop[flags] and noop[fetch] == b"* 1 FETCH (FLAGS ($hello \\Recent))\r\n"


def test_condstore_enabled_by_fetch_modseq_and_search_modseq_entries(srv: RunningServer) -> None:
    # cause 5 (RFC 7162 3.1, 3.1.5; RFC 4731 with MODSEQ)
    with login(srv, "condstore@example.org") as w:
        for _ in range(4):
            w.append("INBOX", MSG)
        w.ok("SELECT INBOX")
        first = w.ok("FETCH 1 MODSEQ")
        assert first[0].startswith(b"* 1 FETCH (MODSEQ (") and first[1].startswith(b"* OK [HIGHESTMODSEQ ")
        mods = {}
        for n in (1, 3, 2, 4):  # CONDSTORE is on: STORE replies carry MODSEQ
            (line,) = w.ok(f"STORE {n} +FLAGS \\Seen")
            m = re.fullmatch(rb"\* %d FETCH \(FLAGS \(\\Recent \\Seen\) MODSEQ \((\d+)\)\)\r\n" % n, line)
            assert m is not None, line
            mods[n] = int(m.group(1))
        key = 'MODSEQ "/flags/\\\\seen" all 1'
        assert w.ok(f"SEARCH RETURN (MIN) 1:3 {key}")[0].endswith(b" MIN 1 MODSEQ %d\r\n" % mods[1])
        assert w.ok(f"SEARCH RETURN (MAX) 1:3 {key}")[0].endswith(b" MAX 3 MODSEQ %d\r\n" % mods[3])
        assert w.ok(f"SEARCH RETURN () 1:3 {key}")[0].endswith(b" ALL 1:3 MODSEQ %d\r\n" % mods[2])
        assert w.ok(f"SEARCH 1:3 {key}") == [b"* SEARCH 1 2 3 (MODSEQ %d)\r\n" % mods[2]]


def test_subscriptions_are_the_clients_and_outlive_delete(srv: RunningServer) -> None:
    # cause 9 (RFC 3501 6.3.3, 6.3.6, 6.3.9; RFC 5258 \NonExistent)
    with login(srv, "subs@example.org") as w:
        w.ok("CREATE box")
        w.ok("CREATE box/child")
        assert w.ok('LSUB "" "box*"') == []  # CREATE does not subscribe
        w.ok("SUBSCRIBE box/child")
        assert w.ok('LSUB "" "box%"') == [b'* LSUB (\\Noselect) "/" box\r\n']
        assert w.ok('LSUB "" "box/%"') == [b'* LSUB () "/" box/child\r\n']
        w.ok("DELETE box/child")
        assert w.ok('LIST (SUBSCRIBED) "" "box/*"') == [
            b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" box/child\r\n'
        ]
        assert w.ok('LIST "" "box/*"') == []
        w.ok("CREATE box/child")  # the subscription is still there
        assert w.ok('LSUB "" "box/%"') == [b'* LSUB () "/" box/child\r\n']
        w.ok("UNSUBSCRIBE box/child")
        assert w.ok('LSUB "" "box*"') == []
        w.ok("SUBSCRIBE never")  # a name with no mailbox may be subscribed
        assert w.ok('LSUB "" never') == [b'* LSUB (\\Noselect) "/" never\r\n']


def test_list_extended_options_and_childinfo(srv: RunningServer) -> None:
    # cause 10 (RFC 5258 sections 3 and 3.5)
    with login(srv, "listext@example.org") as w:
        for bad in (
            'LIST (imaptest) "" ""',
            'LIST (RECURSIVEMATCH) "" ""',
            'LIST (RECURSIVEMATCH REMOTE) "" ""',
        ):
            assert tail(w.cmd(bad)).startswith(b"BAD "), bad
        assert tail(w.cmd('LIST "" "" RETURN (imaptest)')).startswith(b"BAD ")
        w.ok("CREATE p/q")
        w.ok("SUBSCRIBE p/q")
        assert w.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "p" RETURN (CHILDREN)') == [
            b'* LIST (\\HasChildren) "/" p (CHILDINFO ("SUBSCRIBED"))\r\n'
        ]
        # the child is listed itself: no CHILDINFO for it
        assert w.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" (p p/q)') == [
            b'* LIST (\\HasNoChildren \\Subscribed) "/" p/q\r\n'
        ]


def test_multiappend_adds_every_message_or_none(srv: RunningServer) -> None:
    # RFC 3502
    a, b = b"Subject: a\r\n\r\n1\r\n", b"Subject: b\r\n\r\n2\r\n"
    with login(srv, "multi@example.org") as w:
        w.ok("CREATE m")
        w.send(b"x APPEND m (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(a), a, len(b), b))
        reply = w.read_until("x")[-1]
        assert re.fullmatch(rb"x OK \[APPENDUID \d+ 1:2\] APPEND completed\r\n", reply), reply
        # an empty second message fails the whole command: the first is not added
        w.send(b"y APPEND m {%d+}\r\n%s {0+}\r\n\r\n" % (len(a), a))
        assert w.read_until("y")[-1] == b"y NO empty message\r\n"
        w.ok("SELECT m")
        assert w.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") == [
            b"* 1 FETCH (FLAGS (\\Recent \\Seen) BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: a\r\n\r\n)\r\n",
            b"* 2 FETCH (FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: b\r\n\r\n)\r\n",
        ]
