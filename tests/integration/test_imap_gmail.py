"""Gmail's IMAP extension X-GM-EXT-1 (docs/imap.md): X-GM-MSGID and X-GM-THRID as FETCH
items and SEARCH keys, byte for byte over a real socket, with the thread ids compared to the
store's ThreadID (what the API shows). Runs on PostgreSQL too (POSTROOM_TEST_DB=postgresql).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire, login


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(smtp="off", http="off", pop3="off") as s:
        yield s


def mail(mid: str, subject: str, refs: str = "") -> bytes:
    head = f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
    if refs:
        head += f"References: {refs}\r\nIn-Reply-To: {refs.split()[-1]}\r\n"
    return (head + "Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n").encode()


_LINE = re.compile(rb'\* (\d+) FETCH \(X-GM-MSGID (\d+) X-GM-THRID (\d+) X-POSTROOM-ID "([^"]+)"\)\r\n')


def gm(w: Wire, what: str = "1:*") -> dict[int, tuple[int, int, str]]:
    """seq -> (X-GM-MSGID, X-GM-THRID, public id)."""
    out = {}
    for line in w.ok(f"FETCH {what} (X-GM-MSGID X-GM-THRID X-POSTROOM-ID)"):
        m = _LINE.fullmatch(line)
        assert m is not None, line
        out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)), m.group(4).decode())
    return out


def test_capability_lists_x_gm_ext_1_before_and_after_login(srv: RunningServer) -> None:
    with Wire(*srv.addr("imap")) as w:
        assert b" X-GM-EXT-1" in w.greeting
        (caps,) = w.ok("CAPABILITY")
        assert b" X-GM-EXT-1" in caps
        assert b" X-GM-EXT-1" in w.cmd("LOGIN caps@example.org x")[-1]
        (caps,) = w.ok("CAPABILITY")
        assert b" X-GM-EXT-1" in caps


def test_fetch_gives_gmail_ids_equal_within_a_conversation(srv: RunningServer) -> None:
    store = srv.app.store
    with login(srv, "gm@example.org") as w:
        w.append("INBOX", mail("root@x", "plans"))
        w.append("INBOX", mail("other@x", "lunch"))
        w.append("INBOX", mail("reply@x", "Re: plans", "<root@x>"))
        w.ok("SELECT INBOX")
        got = gm(w)
        (m1, t1, _), (m2, t2, _), (m3, t3, _) = got[1], got[2], got[3]
        assert len({m1, m2, m3}) == 3
        # a conversation's id is its first message's id; the reply joins it
        assert t1 == m1 and t3 == t1 and t2 == m2
        for msgid, thrid, pid in got.values():
            s = store.get_summary(pid)
            assert s is not None and s.thread_id == str(thrid)  # the API's ThreadID
            assert 0 < msgid < 1 << 64
        # one item alone, UID FETCH, the byte form of the reply
        assert w.ok("FETCH 3 X-GM-THRID") == [b"* 3 FETCH (X-GM-THRID %d)\r\n" % t1]
        assert w.ok("UID FETCH 2 (X-GM-MSGID)") == [b"* 2 FETCH (UID 2 X-GM-MSGID %d)\r\n" % m2]
        assert w.ok("UID FETCH 1:3 (UID X-GM-THRID FLAGS)")[0] == (
            b"* 1 FETCH (UID 1 X-GM-THRID %d FLAGS (\\Recent))\r\n" % t1
        )


def test_search_by_thread_and_message_id(srv: RunningServer) -> None:
    with login(srv, "gmsearch@example.org") as w:
        w.append("INBOX", mail("s1@x", "alpha"))
        w.append("INBOX", mail("s2@x", "beta"))
        w.append("INBOX", mail("s3@x", "Re: alpha", "<s1@x>"))
        w.append("INBOX", mail("s4@x", "Re: beta", "<s2@x>"))
        w.append("INBOX", mail("s5@x", "Re: alpha", "<s1@x> <s3@x>"))
        w.ok("SELECT INBOX")
        got = gm(w)
        alpha, beta = got[1][1], got[2][1]
        assert w.ok(f"SEARCH X-GM-THRID {alpha}") == [b"* SEARCH 1 3 5\r\n"]
        assert w.ok(f"UID SEARCH X-GM-THRID {beta}") == [b"* SEARCH 2 4\r\n"]
        assert w.ok(f"SEARCH NOT X-GM-THRID {alpha}") == [b"* SEARCH 2 4\r\n"]
        assert w.ok(f"SEARCH X-GM-MSGID {got[4][0]}") == [b"* SEARCH 4\r\n"]
        assert w.ok(f"SEARCH OR X-GM-MSGID {got[2][0]} X-GM-MSGID {got[5][0]}") == [b"* SEARCH 2 5\r\n"]
        assert w.ok(f"SEARCH X-GM-THRID {alpha} SUBJECT beta") == [b"* SEARCH\r\n"]
        assert w.ok(f"SEARCH RETURN (COUNT) X-GM-THRID {alpha}")[0].endswith(b" COUNT 3\r\n")
        assert w.ok("SEARCH X-GM-THRID 18446744073709551615") == [b"* SEARCH\r\n"]
        for bad in ("SEARCH X-GM-THRID", "SEARCH X-GM-MSGID abc", "SEARCH X-GM-THRID 18446744073709551616"):
            assert w.cmd(bad)[-1].split(b" ", 2)[1] == b"BAD", bad


def test_a_copy_keeps_its_message_id_and_thread(srv: RunningServer) -> None:
    with login(srv, "gmcopy@example.org") as w:
        w.append("INBOX", mail("c1@x", "copied"))
        w.append("INBOX", mail("c2@x", "Re: copied", "<c1@x>"))
        w.ok("CREATE Archive")
        w.ok("SELECT INBOX")
        before = gm(w)
        w.ok("COPY 2 Archive")
        w.ok("SELECT Archive")
        after = gm(w)
        assert after[1] == before[2]  # same message: same X-GM-MSGID, X-GM-THRID and id
        assert w.ok(f"SEARCH X-GM-THRID {before[1][1]}") == [b"* SEARCH 1\r\n"]


def test_merged_conversations_take_the_older_id_at_once(srv: RunningServer) -> None:
    # two conversations joined by a later message: the younger one's messages answer with
    # the older id from then on, as the API's ThreadID does (Gmail never merges)
    store = srv.app.store
    with login(srv, "gmmerge@example.org") as w:
        w.append("INBOX", mail("m1@x", "one"))
        w.append("INBOX", mail("m2@x", "two"))
        w.ok("SELECT INBOX")
        first = gm(w)
        assert first[1][1] != first[2][1]
        w.append("INBOX", mail("m3@x", "Re: both", "<m1@x> <m2@x>"))
        w.ok("NOOP")
        merged = gm(w)
        assert {t for _, t, _ in merged.values()} == {first[1][1]}
        assert all(store.get_summary(p).thread_id == str(t) for _, t, p in merged.values())  # type: ignore[union-attr]
        assert w.ok(f"SEARCH X-GM-THRID {first[1][1]}") == [b"* SEARCH 1 2 3\r\n"]
        assert w.ok(f"SEARCH X-GM-THRID {first[2][1]}") == [b"* SEARCH\r\n"]


def test_unknown_gmail_items_are_bad(srv: RunningServer) -> None:
    # X-GM-RAW is not offered (docs/imap.md): a clean BAD, not a wrong answer
    with login(srv, "gmbad@example.org") as w:
        w.append("INBOX", mail("b1@x", "x"))
        w.ok("SELECT INBOX")
        assert w.cmd('SEARCH X-GM-RAW "in:inbox"')[-1].split(b" ", 2)[1] == b"BAD"
        assert w.cmd("FETCH 1 (X-GM-RAW)")[-1].split(b" ", 2)[1] == b"BAD"


def test_append_with_a_thread_key_joins_messages_no_header_links(srv: RunningServer) -> None:
    # APPEND's X-POSTROOM-THREAD (postroom fetch gives Gmail's X-GM-THRID so): messages with
    # one key are one conversation although nothing in their headers links them; the API's
    # ThreadID agrees, and a message with another key (or none) stays apart
    store = srv.app.store
    with login(srv, "gmkey@example.org") as w:

        def put(mid: str, subject: str, key: str = "") -> None:
            raw = mail(mid, subject)
            ext = f' X-POSTROOM-THREAD "{key}"' if key else ""
            w.send(f"{w.tag()} APPEND INBOX{ext} {{{len(raw)}}}\r\n".encode())
            assert w.read_line().startswith(b"+")
            w.send(raw + b"\r\n")
            assert w.read_until(f"t{w.n}")[-1].split(b" ", 2)[1] == b"OK"

        put("k1@x", "quarterly plans", "gmail 1 alice 7001")
        put("k2@x", "lunch?", "")
        put("k3@x", "totally different", "gmail 1 alice 7001")
        put("k4@x", "quarterly plans 2", "gmail 1 alice 7002")
        w.ok("SELECT INBOX")
        ids = gm(w)
        assert ids[1][1] == ids[3][1] == ids[1][0]
        assert len({ids[1][1], ids[2][1], ids[4][1]}) == 3
        assert all(store.get_summary(p).thread_id == str(t) for _, t, p in ids.values())  # type: ignore[union-attr]
        assert w.ok(f"SEARCH X-GM-THRID {ids[1][1]}") == [b"* SEARCH 1 3\r\n"]
        # a later message with the key joins too (the key is kept with the message)
        put("k5@x", "unrelated subject", "gmail 1 alice 7001")
        w.ok("NOOP")
        assert gm(w, "5")[5][1] == ids[1][1]


@pytest.mark.parametrize(
    "ext", ['X-POSTROOM-THREAD ""', "X-POSTROOM-THREAD", 'X-POSTROOM-THREAD "' + "k" * 257 + '"']
)
def test_a_bad_thread_key_is_bad(srv: RunningServer, ext: str) -> None:
    with login(srv, "gmkeybad@example.org") as w:
        tag = w.tag()
        w.send(f"{tag} APPEND INBOX {ext} {{3}}\r\n".encode())
        assert w.read_line().startswith(b"+")
        w.send(b"x\r\n\r\n")
        lines = w.read_until(tag)
        assert lines[-1].split(b" ", 2)[1] == b"BAD", lines
        w.ok("SELECT INBOX")
        assert w.ok("SEARCH ALL") == [b"* SEARCH\r\n"]  # nothing stored
