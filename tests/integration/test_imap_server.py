"""The IMAP server over real sockets (postroom running in a thread, a raw wire client)."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postroom.store.base import Envelope
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire

VECTORS = Path(__file__).parent.parent / "vectors" / "imap"


def msg(subject: str, body: str = "hello", to: str = "bob@example.org") -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server() as s:
        yield s


def deliver(s: RunningServer, raw: bytes, *rcpt: str) -> None:
    s.call(s.app.store.deliver(Envelope("alice@example.org", rcpt or ("bob@example.org",)), raw))


def tail(lines: list[bytes]) -> bytes:
    """The tagged reply without its tag."""
    return lines[-1].split(b" ", 1)[1]


def connect(s: RunningServer, user: str | None = None) -> Wire:
    w = Wire(*s.addr("imap"))
    if user:
        w.ok(f'LOGIN "{user}" x')
    return w


def test_greeting_login_select_fetch(srv: RunningServer) -> None:
    deliver(srv, msg("first"), "carol@example.org")
    with connect(srv) as w:
        assert w.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        assert tail(w.cmd("SELECT INBOX")) == b"BAD SELECT not allowed before login\r\n"
        login = tail(w.cmd("LOGIN carol@example.org anything"))
        assert login.startswith(b"OK [CAPABILITY IMAP4rev1 ") and b"AUTH=" not in login
        sel = w.ok("SELECT INBOX")
        assert b"* 1 EXISTS\r\n" in sel and b"* 1 RECENT\r\n" in sel  # the first session to select
        assert any(line.startswith(b"* OK [UIDVALIDITY ") for line in sel)
        assert b"* OK [UIDNEXT 2] Predicted next UID\r\n" in sel
        assert w.cmd("FETCH 1 (UID FLAGS RFC822.SIZE)")[
            0
        ] == b"* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE %d)\r\n" % len(msg("first"))
        body = w.ok("FETCH 1 BODY[TEXT]")[0]
        assert body == b"* 1 FETCH (BODY[TEXT] {7}\r\nhello\r\n FLAGS (\\Recent \\Seen))\r\n"
        assert w.ok("UID FETCH 1 (FLAGS)")[0] == b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen))\r\n"
        bye = w.cmd("LOGOUT")
        assert bye[0] == b"* BYE postroom logging out\r\n" and tail(bye) == b"OK LOGOUT completed\r\n"


def test_malformed_input_gets_bad_and_the_connection_lives(srv: RunningServer) -> None:
    with connect(srv, "dave@example.org") as w:
        for bad, reply in [
            (b"a1 FROB\r\n", b"a1 BAD unknown command FROB\r\n"),
            (b"a2 FETCH 1:* (\r\n", b"a2 BAD unbalanced '('\r\n"),
            (b"\x00\xff garbage\r\n", b"* BAD missing or invalid tag\r\n"),
            (b"a3 FETCH 1 FLAGS\r\n", b"a3 BAD FETCH not allowed without a selected mailbox\r\n"),
            (b"a4 UID FROB 1\r\n", b"a4 BAD UID not allowed without a selected mailbox\r\n"),
            (b'a5 SELECT "&Jjo"\r\n', b"a5 NO unterminated '&' in mailbox name\r\n"),
            (b"a6 LOGIN {99999999999}\r\n", b"a6 BAD [TOOBIG] literal too large (limit 1048576 octets)\r\n"),
        ]:
            w.send(bad)
            assert w.read_line() == reply
        w.ok("SELECT INBOX")
        for bad in (
            b"b1 FETCH 5 FLAGS",
            b"b2 FETCH 1:* BODY[0]",
            b"b3 SEARCH FROB",
            b"b4 STORE 1 FLAGS (\\Seen",
        ):
            w.send(bad + b"\r\n")
            assert w.read_line().startswith(bad[:3] + b"BAD ")
        assert tail(w.cmd("NOOP")).endswith(b"OK NOOP completed\r\n")


def test_thousand_pipelined_commands(srv: RunningServer) -> None:
    deliver(srv, msg("pipelined"), "erin@example.org")
    with connect(srv, "erin@example.org") as w:
        w.ok("SELECT INBOX")
        w.send(b"".join(b"p%d FETCH 1 (FLAGS)\r\n" % i for i in range(1000)))
        tagged = 0
        while tagged < 1000:
            line = w.read_line()
            if line.startswith(b"p"):
                assert line == b"p%d OK FETCH completed\r\n" % tagged
                tagged += 1
            else:
                assert line == b"* 1 FETCH (FLAGS (\\Recent))\r\n"


def test_literal_plus_and_append_uid(srv: RunningServer) -> None:
    raw = msg("appended")
    with connect(srv, "frank@example.org") as w:
        w.send(b"a1 APPEND INBOX (\\Flagged) {%d+}\r\n" % len(raw) + raw + b"\r\n")
        reply = w.read_until("a1")[-1]
        assert reply.startswith(b"a1 OK [APPENDUID ") and reply.endswith(b" 1] APPEND completed\r\n")
        w.ok("SELECT INBOX")
        assert w.ok("FETCH 1 (FLAGS BODY.PEEK[])")[
            0
        ] == b"* 1 FETCH (FLAGS (\\Flagged \\Recent) BODY[] {%d}\r\n%s)\r\n" % (
            len(raw),
            raw,
        )
        assert tail(w.cmd("APPEND Nowhere {1+}\r\nx")) == b"NO [TRYCREATE] mailbox does not exist\r\n"


@pytest.mark.slow
def test_fifty_megabyte_append(srv: RunningServer) -> None:
    big = msg("big", "x" * 76 + "\r\n")[:-2] + (b"y" * 998 + b"\r\n") * 50_000
    assert len(big) > 50_000_000
    with connect(srv, "grace@example.org") as w:
        w.send(b"a1 APPEND INBOX {%d}\r\n" % len(big))
        assert w.read_line().startswith(b"+ ")
        w.send(big + b"\r\n")
        assert w.read_until("a1")[-1].startswith(b"a1 OK [APPENDUID ")
        w.ok("SELECT INBOX")
        assert w.ok("FETCH 1 (RFC822.SIZE)")[0] == b"* 1 FETCH (RFC822.SIZE %d)\r\n" % len(big)
        # one octet over the configured maximum is refused before the client sends it
        limit = srv.app.settings.smtp_max_size
        assert tail(w.cmd(f"APPEND INBOX {{{limit + 1}}}")).startswith(b"BAD [TOOBIG]")


def test_flags_expunge_and_a_second_session_sees_changes(srv: RunningServer) -> None:
    for i in range(3):
        deliver(srv, msg(f"m{i}"), "heidi@example.org")
    with connect(srv, "heidi@example.org") as a, connect(srv, "heidi@example.org") as b:
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        assert a.ok("STORE 2 +FLAGS (\\Deleted $Work)") == [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n",
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted.\r\n",
            b"* 2 FETCH (FLAGS ($Work \\Deleted \\Recent))\r\n",  # a selected first: \\Recent is a's
        ]
        assert a.ok("STORE 1 +FLAGS.SILENT (\\Seen)") == []
        noop = b.ok("NOOP")
        assert b"* 1 FETCH (FLAGS (\\Seen))\r\n" in noop
        assert b"* 2 FETCH (FLAGS ($Work \\Deleted))\r\n" in noop
        assert a.ok("EXPUNGE") == [b"* 2 EXPUNGE\r\n"]
        # expunges are not reported during FETCH (RFC 3501 7.4.1) but at the next NOOP
        assert all(b"EXPUNGE" not in line for line in b.ok("FETCH 1:* (UID)"))
        assert b.ok("NOOP") == [b"* 2 EXPUNGE\r\n"]
        assert b.ok("UID SEARCH ALL") == [b"* SEARCH 1 3\r\n"]
        deliver(srv, msg("m3"), "heidi@example.org")
        assert b"* 3 EXISTS\r\n" in b.ok("NOOP")


def test_copy_move_uidplus(srv: RunningServer) -> None:
    for i in range(3):
        deliver(srv, msg(f"c{i}"), "ivan@example.org")
    with connect(srv, "ivan@example.org") as w:
        w.ok("CREATE Archive")
        assert tail(w.cmd("CREATE Archive")) == b"NO [ALREADYEXISTS] folder 'Archive' exists\r\n"
        w.ok("SELECT INBOX")
        copy = tail(w.cmd("COPY 1:2 Archive"))
        assert copy.startswith(b"OK [COPYUID ") and copy.endswith(b" 1:2 1:2] COPY completed\r\n")
        moved = w.ok("UID MOVE 3 Archive")
        assert moved[0].startswith(b"* OK [COPYUID ") and moved[0].endswith(b" 3 3] Moved\r\n")
        assert moved[1:] == [b"* 3 EXPUNGE\r\n"]
        assert tail(w.cmd("COPY 1 Nope")) == b"NO [TRYCREATE] mailbox does not exist\r\n"
        status = w.ok("STATUS Archive (MESSAGES UIDNEXT UNSEEN)")
        assert status == [b"* STATUS Archive (MESSAGES 3 UIDNEXT 4 UNSEEN 3)\r\n"]
        w.ok("UID STORE 1 +FLAGS (\\Deleted)")
        w.ok("UID STORE 2 +FLAGS (\\Deleted)")
        assert w.ok("UID EXPUNGE 2") == [b"* 2 EXPUNGE\r\n"]
        w.ok("CLOSE")
        assert w.ok("STATUS INBOX (MESSAGES)") == [b"* STATUS INBOX (MESSAGES 0)\r\n"]


def test_list_hierarchy_special_use_and_utf7_names(srv: RunningServer) -> None:
    with connect(srv, "judy@example.org") as w:
        w.ok("CREATE Work/Projects/Alpha")
        w.ok("CREATE Entw&APw-rfe (USE (\\Drafts))")
        w.ok("SUBSCRIBE Work/Projects")  # CREATE does not subscribe (RFC 3501 6.3.3)
        w.ok("SUBSCRIBE Entw&APw-rfe")
        assert w.ok('LIST "" ""') == [b'* LIST (\\Noselect) "/" ""\r\n']
        assert w.ok('LIST "" "%"') == [
            b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
            b'* LIST (\\HasNoChildren \\Drafts) "/" Entw&APw-rfe\r\n',
            b'* LIST (\\HasChildren) "/" Work\r\n',
        ]
        assert w.ok('LIST "Work/" "*"') == [
            b'* LIST (\\HasChildren) "/" Work/Projects\r\n',
            b'* LIST (\\HasNoChildren) "/" Work/Projects/Alpha\r\n',
        ]
        assert w.ok('LIST (SPECIAL-USE) "" "*"') == [
            b'* LIST (\\HasNoChildren \\Drafts) "/" Entw&APw-rfe\r\n'
        ]
        assert w.ok('LSUB "" "*"') == [
            b'* LSUB () "/" INBOX\r\n',
            b'* LSUB () "/" Entw&APw-rfe\r\n',
            b'* LSUB () "/" Work/Projects\r\n',
        ]
        assert w.ok('LSUB "" "%"')[-1] == b'* LSUB (\\Noselect) "/" Work\r\n'  # RFC 3501 6.3.9
        listing = w.ok('LIST "" "INBOX" RETURN (STATUS (MESSAGES UIDVALIDITY))')
        assert listing[1].startswith(b"* STATUS INBOX (MESSAGES 0 UIDVALIDITY ")
        w.ok("RENAME Work/Projects Work/Done")
        assert w.ok('LIST "" "Work/*"')[-1] == b'* LIST (\\HasNoChildren) "/" Work/Done/Alpha\r\n'
        w.ok("DELETE Work/Done/Alpha")
        assert tail(w.cmd("DELETE INBOX")).startswith(b"NO [CANNOT]")
        assert w.ok("NAMESPACE") == [b'* NAMESPACE (("" "/")) NIL NIL\r\n']


def test_all_login_sees_every_mailbox(srv: RunningServer) -> None:
    deliver(srv, msg("to both"), "kate@example.org", "leo@example.org")
    with connect(srv, "all") as w:
        names = w.ok('LIST "" "%"')
        assert b'* LIST (\\HasNoChildren) "/" kate@example.org\r\n' in names
        assert b'* LIST (\\HasNoChildren) "/" leo@example.org\r\n' in names
        sel = w.ok("SELECT kate@example.org")
        assert b"* 1 EXISTS\r\n" in sel
        w.ok("CREATE leo@example.org/Saved")
        assert tail(w.cmd("COPY 1 leo@example.org/Saved")).startswith(b"OK [COPYUID ")
        assert w.ok("STATUS leo@example.org/Saved (MESSAGES)") == [
            b"* STATUS leo@example.org/Saved (MESSAGES 1)\r\n"
        ]
        assert tail(w.cmd("SELECT INBOX")) == b"NO [NONEXISTENT] mailbox does not exist\r\n"


def test_search_sort_thread(srv: RunningServer) -> None:
    names = ["plain.eml", "attachment.eml", "addresses.eml", "alternative.eml"]
    with connect(srv, "mallory@example.org") as w:
        for n in names:
            w.append("INBOX", (VECTORS / n).read_bytes())
        w.ok("SELECT INBOX")
        assert w.ok("SEARCH TEXT zebra") == [b"* SEARCH 1\r\n"]
        assert w.ok('SEARCH CHARSET UTF-8 BODY "caf\xc3\xa9"'.encode("latin-1")) == [b"* SEARCH 4\r\n"]
        assert (
            tail(w.cmd("SEARCH CHARSET KOI8-R ALL"))
            == b"NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset KOI8-R\r\n"
        )
        assert w.ok("SEARCH RETURN (MIN MAX COUNT) FROM example") == [
            b'* ESEARCH (TAG "t%d") MIN 1 MAX 4 COUNT 4\r\n' % w.n
        ]
        w.ok("SEARCH RETURN (SAVE) SUBJECT report")
        assert w.ok("FETCH $ (UID)") == [b"* 2 FETCH (UID 2)\r\n"]
        assert w.ok("SORT (DATE) UTF-8 ALL") == [b"* SORT 1 4 2 3\r\n"]
        assert w.ok("SORT (REVERSE SIZE) UTF-8 ALL") == [b"* SORT 2 4 3 1\r\n"]
        assert w.ok("THREAD REFERENCES UTF-8 ALL") == [b"* THREAD (1 2 3)(4)\r\n"]


def test_idle_wakes_on_smtp_mail(srv: RunningServer) -> None:
    with connect(srv, "nina@example.org") as w:
        w.ok("SELECT INBOX")
        w.send(b"i1 IDLE\r\n")
        assert w.read_line() == b"+ idling\r\n"
        with smtplib.SMTP(*srv.addr("smtp")) as smtp:
            smtp.sendmail("alice@example.org", ["nina@example.org"], msg("wake up", to="nina@example.org"))
        assert w.read_line() == b"* 1 EXISTS\r\n"
        assert w.read_line() == b"* 1 RECENT\r\n"  # RFC 3501 7.3.2: with EXISTS
        w.send(b"DONE\r\n")
        assert w.read_line() == b"i1 OK IDLE terminated\r\n"


def test_authenticate_plain(srv: RunningServer) -> None:
    with connect(srv) as w:
        assert tail(w.cmd("AUTHENTICATE PLAIN AG9saXZlckBleGFtcGxlLm9yZwBzZWNyZXQ=")).startswith(
            b"OK [CAPABILITY "
        )
    with connect(srv) as w:
        w.send(b"a AUTHENTICATE PLAIN\r\n")
        assert w.read_line() == b"+ \r\n"
        w.send(b"AG9saXZlckBleGFtcGxlLm9yZwBzZWNyZXQ=\r\n")
        assert w.read_line().startswith(b"a OK [CAPABILITY ")
        assert tail(w.cmd("AUTHENTICATE PLAIN")) == b"BAD AUTHENTICATE not allowed after login\r\n"


def test_auth_file_and_tls_rules(tmp_path: Path) -> None:
    creds = tmp_path / "users"
    creds.write_text("oscar@example.org:s3cret\n")
    with (
        running_server(auth_file=str(creds), require_tls_login=True, tls_self_signed=True) as s,
        Wire(*s.addr("imap")) as w,
    ):
        caps = w.ok("CAPABILITY")[0]
        assert b" STARTTLS" in caps and b" LOGINDISABLED" in caps and b"AUTH=PLAIN" not in caps
        assert tail(w.cmd("LOGIN oscar@example.org s3cret")) == (
            b"NO [PRIVACYREQUIRED] plaintext login needs TLS; use STARTTLS\r\n"
        )
        assert tail(w.cmd("STARTTLS")) == b"OK Begin TLS negotiation now\r\n"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        w.sock = ctx.wrap_socket(w.sock, server_hostname="localhost")
        caps = w.ok("CAPABILITY")[0]
        assert b"STARTTLS" not in caps and b"AUTH=PLAIN" in caps
        assert tail(w.cmd("LOGIN oscar@example.org wrong")) == (
            b"NO [AUTHENTICATIONFAILED] invalid user name or password\r\n"
        )
        assert tail(w.cmd("LOGIN OSCAR@example.org s3cret")).startswith(b"OK ")


def test_implicit_tls() -> None:
    with running_server(imaps="127.0.0.1:0", tls_self_signed=True) as s:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with Wire(*s.addr("imaps"), tls=ctx) as w:
            assert w.greeting.startswith(b"* OK [CAPABILITY ")
            assert b"STARTTLS" not in w.greeting
            w.ok("LOGIN paul@example.org x")
            assert w.ok("STATUS INBOX (MESSAGES)") == [b"* STATUS INBOX (MESSAGES 0)\r\n"]


def test_client_vanishing_mid_literal_does_not_hurt_the_server(srv: RunningServer) -> None:
    sock = socket.create_connection(srv.addr("imap"))
    sock.sendall(b"a LOGIN x y\r\nb APPEND INBOX {100+}\r\nabc")
    sock.close()
    done = threading.Event()
    with connect(srv, "quinn@example.org") as w:
        w.ok("NOOP")
        done.set()
    assert done.is_set()


def test_one_small_body_is_read_on_the_event_loop_a_large_one_on_a_thread(
    srv: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postroom.servers.imap.selected import INLINE_READ_MAX

    small = msg("inline read", "short body")
    big = msg("thread read", "x" * 76 + "\r\n")[:-2] + (b"z" * 998 + b"\r\n") * (INLINE_READ_MAX // 1000 + 5)
    assert len(big) > INLINE_READ_MAX
    deliver(srv, small, "henry@example.org")
    deliver(srv, big, "henry@example.org")
    store = srv.app.store
    calls: list[tuple[str, str]] = []
    for name in ("get_raw", "get_raw_stored"):
        real = getattr(store, name)

        def spy(id: str, _real: Any = real, _name: str = name) -> bytes | None:
            calls.append((_name, threading.current_thread().name))
            return _real(id)

        monkeypatch.setattr(store, name, spy)
    with connect(srv, "henry@example.org") as w:
        w.ok("EXAMINE INBOX")
        got = w.ok("UID FETCH 1 BODY.PEEK[]")[0]
        assert got == b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(small) + small + b")\r\n"
        got = w.ok("UID FETCH 2 BODY.PEEK[]")[0]
        assert got == b"* 2 FETCH (UID 2 BODY[] {%d}\r\n" % len(big) + big + b")\r\n"
        assert w.ok("UID FETCH 1 BODY.PEEK[]")[0].endswith(small + b")\r\n")  # from memory now
    loop_thread = "postroom-test-server"  # tests/helpers.running_server's loop thread
    assert calls[0] == ("get_raw_stored", loop_thread)
    assert calls[1][0] == "get_raw" and calls[1][1] != loop_thread
    assert len(calls) == 2
