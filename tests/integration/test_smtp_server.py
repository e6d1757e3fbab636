"""The SMTP listener over real sockets, with the real store (running_server)."""

from __future__ import annotations

import asyncio
import gc
import smtplib
import socket
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from postroom.protocols.smtp import Reply
from postroom.servers.smtp import MAX_BUFFER_WHILE_BUSY, SessionInfo
from postroom.servers.smtp_hooks import SMTPHook
from tests.helpers import RunningServer, smtp_server, unverified

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: integration\r\n"
    b"Message-ID: <it-1@example.org>\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
    b".a line that starts with a dot\r\n"
)


def raw_session(port: int, data: bytes, until: bytes = b"221 ") -> bytes:
    """Send ``data`` in one write and read replies until a line starts with ``until``."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        got = b""
        while not got.endswith(b"\r\n"):
            got += sock.recv(4096)
        sock.sendall(data)
        while not any(line.startswith(until) for line in got.split(b"\r\n")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def mailbox_subjects(server: RunningServer, mailbox: str) -> list[str]:
    page = server.app.store.list_messages(mailbox=mailbox)
    return [m.subject for m in page.messages]


def test_smtplib_delivers_to_one_mailbox_per_recipient_bcc_included() -> None:
    with smtp_server() as s, smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
        refused = client.sendmail(
            "alice@example.org", ["bob@example.org", "Carol@Example.org", "hidden@example.net"], MESSAGE
        )
        assert refused == {}
        code, _ = client.noop()
        assert code == 250
        for mailbox in ("bob@example.org", "carol@example.org", "hidden@example.net"):
            assert mailbox_subjects(s, mailbox) == ["integration"]
        page = s.app.store.list_messages()
        assert page.total == 1  # stored once
        msg_id = page.messages[0].id
        env = s.app.store.get_envelope(msg_id)
        assert env is not None
        assert env.mail_from == "alice@example.org"
        assert env.rcpt_to == ("bob@example.org", "Carol@Example.org", "hidden@example.net")
        assert env.helo and env.peer.startswith("127.0.0.1:") and env.tls is False
        raw = s.app.store.get_raw(msg_id)
        assert raw is not None
        # final delivery adds the envelope sender as Return-Path (RFC 5321 4.4; Mailpit does too)
        assert raw.startswith(b"Return-Path: <alice@example.org>\r\nReceived: from ")
        head, _, rest = raw.partition(b"\r\n\tby ")
        assert head.endswith(b"([127.0.0.1])")
        assert rest.startswith(b"postroom (postroom) with ESMTP id ")
        assert b"for <" not in raw.split(b"\r\nFrom:")[0]  # several recipients: no "for"
        assert raw.endswith(b"\r\n\r\nHello Bob.\r\n.a line that starts with a dot\r\n")


def test_single_recipient_trace_header_names_it_and_the_reply_has_the_id() -> None:
    with smtp_server() as s, smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
        client.ehlo("tester.example")
        client.mail("alice@example.org")
        client.rcpt("bob@example.org")
        code, text = client.data(MESSAGE)
        assert code == 250
        assert text.startswith(b"2.0.0 Ok: queued as ")
        msg_id = text.decode().rsplit(" ", 1)[1]
        raw = s.app.store.get_raw(msg_id)
        assert raw is not None
        assert raw.startswith(
            b"Return-Path: <alice@example.org>\r\nReceived: from tester.example ([127.0.0.1])\r\n\tby postroom"
        )
        assert b"\r\n\tfor <bob@example.org>;\r\n\t" in raw.split(b"\r\nFrom:")[0]


def test_starttls_and_auth_with_a_credentials_file(tmp_path: Path) -> None:
    creds = tmp_path / "smtp-users"
    creds.write_text("# users\nalice@example.org:s3cret:with:colons\n")
    with smtp_server(tls_self_signed=True, smtp_auth_file=str(creds), smtp_require_tls=True) as s:
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
            client.ehlo()
            assert client.has_extn("starttls") and not client.has_extn("auth")
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("alice@example.org", ["bob@example.org"], MESSAGE)
            assert refused.value.smtp_code == 530
            client.starttls(context=unverified())
            client.ehlo()
            assert client.has_extn("auth") and not client.has_extn("starttls")
            with pytest.raises(smtplib.SMTPAuthenticationError) as denied:
                client.login("alice@example.org", "wrong")
            assert denied.value.smtp_code == 535
            assert denied.value.smtp_error.startswith(b"5.7.8")
            client.login("alice@example.org", "s3cret:with:colons")
            client.sendmail("alice@example.org", ["bob@example.org"], MESSAGE)
        msg = s.app.store.list_messages(mailbox="bob@example.org").messages[0]
        env = s.app.store.get_envelope(msg.id)
        assert env is not None and env.tls is True and env.auth_user == "alice@example.org"
        raw = s.app.store.get_raw(msg.id)
        assert raw is not None and b" with ESMTPSA id " in raw[:300]


@pytest.mark.parametrize("mechanism", ["CRAM-MD5", "PLAIN", "LOGIN"])
def test_each_auth_mechanism_against_the_file(tmp_path: Path, mechanism: str) -> None:
    creds = tmp_path / "users"
    creds.write_text("bob@example.org:pw\n")
    with smtp_server(smtp_auth_file=str(creds), smtp_require_auth=True) as s:
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
            client.ehlo()
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("bob@example.org", ["x@example.org"], MESSAGE)
            assert refused.value.smtp_code == 530
            client.user, client.password = "bob@example.org", "nope"
            with pytest.raises(smtplib.SMTPAuthenticationError) as denied:
                client.auth(mechanism, getattr(client, "auth_" + mechanism.lower().replace("-", "_")))
            assert denied.value.smtp_code == 535
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
            client.ehlo()
            client.user, client.password = "bob@example.org", "pw"
            code, _ = client.auth(mechanism, getattr(client, "auth_" + mechanism.lower().replace("-", "_")))
            assert code == 235
            client.sendmail("bob@example.org", ["x@example.org"], MESSAGE)
        assert mailbox_subjects(s, "x@example.org") == ["integration"]


def test_implicit_tls_listener() -> None:
    with smtp_server(tls_self_signed=True, smtps="127.0.0.1:0") as s:
        port = s.addr("smtps")[1]
        with smtplib.SMTP_SSL("127.0.0.1", port, context=unverified(), timeout=20) as client:
            client.ehlo()
            assert not client.has_extn("starttls")
            client.login("anyone", "anything")  # any credentials by default
            client.sendmail("a@example.org", ["tls@example.org"], MESSAGE)
        msg = s.app.store.list_messages(mailbox="tls@example.org").messages[0]
        env = s.app.store.get_envelope(msg.id)
        assert env is not None and env.tls and env.auth_user == "anyone"


def test_oversize_by_size_and_by_data_stores_nothing_and_the_session_goes_on() -> None:
    with smtp_server(smtp_max_size=1000) as s, smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "1000"
        code, text = client.mail("a@example.org", ["SIZE=5000"])
        assert (code, text[:5]) == (552, b"5.3.4")
        client.rset()
        client.mail("a@example.org")  # no SIZE: the data itself is too big
        client.rcpt("big@example.org")
        code, text = client.data(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 40 + b"y" * 3000 + b"\r\n")
        assert (code, text[:5]) == (552, b"5.3.4")
        client.sendmail("a@example.org", ["small@example.org"], b"Subject: small\r\n\r\nok\r\n")
        assert mailbox_subjects(s, "big@example.org") == []
        assert mailbox_subjects(s, "small@example.org") == ["small"]


def test_pipelined_session_in_one_write_with_bdat() -> None:
    with smtp_server() as s:
        session = (
            b"EHLO pipe.example\r\n"
            b"MAIL FROM:<a@example.org>\r\n"
            b"RCPT TO:<p1@example.org>\r\n"
            b"BDAT 20\r\nSubject: chunked\r\n\r\nBDAT 4 LAST\r\nhi\r\n"
            b"MAIL FROM:<a@example.org>\r\n"
            b"RCPT TO:<p2@example.org>\r\n"
            b"RCPT TO:<p3@example.org>\r\n"
            b"DATA\r\n"
        )
        # DATA is the end of a pipelined group (RFC 2920 3.1): wait for the 354
        with socket.create_connection(("127.0.0.1", s.smtp_port), timeout=20) as sock:
            f = sock.makefile("rb")
            assert f.readline().startswith(b"220 ")
            sock.sendall(session)
            replies = []
            while not replies or not replies[-1].startswith(b"354"):
                line = f.readline()
                if not line.startswith(b"250-"):
                    replies.append(line)
            sock.sendall(b"Subject: dotted\r\n\r\n..\r\n.\r\nQUIT\r\n")
            replies += [f.readline(), f.readline()]
        codes = [r[:3] for r in replies]
        assert codes == [
            b"250",
            b"250",
            b"250",
            b"250",
            b"250",
            b"250",
            b"250",
            b"250",
            b"354",
            b"250",
            b"221",
        ]
        assert replies[4].startswith(b"250 2.0.0 Ok: queued as ")
        assert mailbox_subjects(s, "p1@example.org") == ["chunked"]
        assert mailbox_subjects(s, "p3@example.org") == ["dotted"]
        raw = s.app.store.get_raw(s.app.store.list_messages(mailbox="p3@example.org").messages[0].id)
        assert raw is not None and raw.endswith(b"\r\n\r\n.\r\n")


def test_too_many_connections_get_421() -> None:
    with smtp_server(smtp_max_connections=2) as s:
        socks = [socket.create_connection(("127.0.0.1", s.smtp_port), timeout=20) for _ in range(2)]
        try:
            for sock in socks:
                assert sock.recv(100).startswith(b"220 ")
            with socket.create_connection(("127.0.0.1", s.smtp_port), timeout=20) as third:
                data = third.recv(200)
                assert data.startswith(b"421 4.3.2 ")
                assert third.recv(100) == b""  # and closed
        finally:
            for sock in socks:
                sock.close()


def test_idle_client_gets_421_and_is_disconnected() -> None:
    with smtp_server(smtp_timeout=1) as s:
        out = raw_session(s.smtp_port, b"EHLO idle\r\nMAIL FROM:<a@example.org>\r\n", until=b"421 ")
        assert out.endswith(b"421 4.4.2 postroom Error: timeout exceeded\r\n")


def test_a_store_failure_is_451_and_nothing_is_acknowledged() -> None:
    with smtp_server() as s:
        s.app.store.close()  # the real store, shut down: deliver raises StoreClosed
        out = raw_session(
            s.smtp_port,
            b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
        )
        assert out.endswith(
            b"354 End data with <CR><LF>.<CR><LF>\r\n451 4.3.0 "
            b"Error: could not store the message, try again later\r\n221 2.0.0 Bye\r\n"
        )


def test_hooks_can_refuse_and_see_the_session() -> None:
    seen: list[tuple[str, SessionInfo]] = []

    class Hook(SMTPHook):  # typed stage methods
        async def on_connect(self, info: SessionInfo) -> Reply | None:
            seen.append(("connect", info))
            return None

        async def on_helo(self, info: SessionInfo) -> Reply | None:
            seen.append(("helo", info))
            return None

        async def on_mail(self, info: SessionInfo) -> Reply | None:
            seen.append(("mail", info))
            return None

        async def on_rcpt(self, info: SessionInfo) -> Reply | None:
            seen.append(("rcpt", info))
            return Reply.parse("550 5.7.1 no") if info.argument.startswith("blocked@") else None

        async def on_data(self, info: SessionInfo) -> Reply | None:
            seen.append(("data", info))
            return None

        async def on_message(self, info: SessionInfo) -> Reply | None:
            seen.append(("message", info))
            return Reply(552, "5.3.4", ("hook says too big",)) if info.size > 1000 else None

    with smtp_server() as s:
        s.app.smtp_hooks[:] = [Hook()]
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
            refused = client.sendmail("a@example.org", ["ok@example.org", "blocked@example.org"], MESSAGE)
            assert refused == {"blocked@example.org": (550, b"5.7.1 no")}
            with pytest.raises(smtplib.SMTPDataError) as big:
                client.sendmail("a@example.org", ["ok@example.org"], MESSAGE + b"z" * 2000 + b"\r\n")
            assert big.value.smtp_code == 552
        assert len(mailbox_subjects(s, "ok@example.org")) == 1
        assert mailbox_subjects(s, "blocked@example.org") == []
        stages = [stage for stage, _ in seen]
        assert stages[:6] == ["connect", "helo", "mail", "rcpt", "rcpt", "data"]
        message_info = next(info for stage, info in seen if stage == "message")
        assert message_info.mail_from == "a@example.org"
        assert message_info.rcpt_to == ("ok@example.org",)
        assert message_info.peer.startswith("127.0.0.1:")


def test_shutdown_says_421_to_idle_clients() -> None:
    with smtp_server() as s:
        sock = socket.create_connection(("127.0.0.1", s.smtp_port), timeout=20)
        assert sock.recv(100).startswith(b"220 ")
    try:
        data = sock.recv(200)
    finally:
        sock.close()
    assert data.startswith(b"421 4.3.2 ")


def test_a_session_may_finish_while_the_server_stops() -> None:
    """A client that has just had its 250 when the server begins to stop (--exit-after)
    sends QUIT and gets 221, not 421: sessions carry on for DRAIN_SECONDS."""
    with ExitStack() as stack:
        s = stack.enter_context(smtp_server())
        client = smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20)
        client.sendmail("a@example.org", ["ok@example.org"], MESSAGE)
        stopping = threading.Thread(target=stack.close)
        stopping.start()
        time.sleep(0.2)  # the listener is closed by now; the session is not
        assert stopping.is_alive()
        assert client.docmd("QUIT") == (221, b"2.0.0 Bye")
        client.close()
        stopping.join(10)
        assert not stopping.is_alive()


def test_client_gone_mid_data_stores_nothing() -> None:
    with smtp_server() as s:
        with socket.create_connection(("127.0.0.1", s.smtp_port), timeout=20) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<gone@x.org>\r\nDATA\r\n")
            for _ in range(3):
                f.readline()
            sock.sendall(b"Subject: half\r\n\r\nnever finished\r\n")
        # a new session on the same server still works and is answered in order
        out = raw_session(s.smtp_port, b"HELO c\r\nNOOP\r\nQUIT\r\n")
        assert out.endswith(b"250 postroom\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n")
        assert s.app.store.list_messages().total == 0


def test_a_client_that_does_not_read_its_replies_is_throttled_not_dropped() -> None:
    n = 100_000
    with smtp_server() as s, socket.create_connection(("127.0.0.1", s.smtp_port), timeout=30) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        sender = threading.Thread(target=sock.sendall, args=(b"HELO c\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n",))
        sender.start()
        time.sleep(0.5)  # let both directions fill up before anything is read
        replies = [f.readline() for _ in range(n + 2)]
        sender.join(30)
    assert replies[0] == b"250 postroom\r\n"
    assert replies[1:-1] == [b"250 2.0.0 Ok\r\n"] * n
    assert replies[-1] == b"221 2.0.0 Bye\r\n"


def test_input_buffered_while_a_message_is_stored_is_bounded() -> None:
    seen: list[int] = []

    with smtp_server() as s:

        class SlowHook(SMTPHook):
            async def on_message(self, info: SessionInfo) -> Reply | None:
                await asyncio.sleep(1.0)  # the client keeps pipelining meanwhile
                seen.extend(sess.conn.buffered for sess in s.app.extras["smtp_sessions"] if sess.conn)
                return None

        s.app.smtp_hooks[:] = [SlowHook()]
        n = 500_000  # 3 MB of NOOPs behind the message
        with socket.create_connection(("127.0.0.1", s.smtp_port), timeout=30) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<slow@x.org>\r\nDATA\r\n")
            for _ in range(4):
                f.readline()
            sender = threading.Thread(
                target=sock.sendall, args=(b"x\r\n.\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n",)
            )
            sender.start()
            first = f.readline()
            rest = [f.readline() for _ in range(n + 1)]
            sender.join(30)
    assert first.startswith(b"250 2.0.0 Ok: queued as ")
    assert rest[-1] == b"221 2.0.0 Bye\r\n" and rest[:-1] == [b"250 2.0.0 Ok\r\n"] * n
    assert seen and max(seen) <= MAX_BUFFER_WHILE_BUSY + 2**18  # one more read may land


def test_commands_injected_with_starttls_are_dropped() -> None:
    # CVE-2011-0411: what follows STARTTLS in the same packet was sent in clear
    with (
        smtp_server(tls_self_signed=True) as s,
        socket.create_connection(("127.0.0.1", s.smtp_port), timeout=20) as raw,
    ):
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"EHLO c\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        assert f.readline() == b"220 2.0.0 Ready to start TLS\r\n"
        with unverified().wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"MAIL FROM:<a@example.org>\r\nEHLO c\r\nQUIT\r\n")
            got = b""
            while not got.endswith(b"221 2.0.0 Bye\r\n"):
                chunk = tls.recv(4096)
                assert chunk, got
                got += chunk
    lines = got.split(b"\r\n")
    assert lines[0] == b"503 5.5.1 Error: send HELO/EHLO first"  # the injected MAIL left no state
    assert b"250-STARTTLS" not in got and b"250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2" in got


def test_missing_message_id_is_generated_and_a_return_path_kept() -> None:
    """As Mailpit's store: a message without Message-ID gets one (so every message has an ID
    to search by); one that names its Return-Path keeps it (no second one is added)."""
    with smtp_server() as s, smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: no id\r\n\r\nx\r\n")
        client.sendmail(
            "a@example.org",
            ["b@example.org"],
            b"Return-Path: <bounce@example.org>\r\nSubject: rp\r\n\r\nx\r\n",
        )
        by_subject = {m.subject: m for m in s.app.store.list_messages().messages}
        no_id = by_subject["no id"]
        assert no_id.message_id.endswith("@postroom")
        raw = s.app.store.get_raw(no_id.id)
        assert raw is not None and f"\r\nMessage-ID: <{no_id.message_id}>\r\n".encode() in raw
        kept = s.app.store.get_raw(by_subject["rp"].id)
        assert kept is not None and kept.count(b"Return-Path:") == 1 and b"<bounce@example.org>" in kept


def test_envelope_only_recipients_are_named_in_a_bcc_header() -> None:
    """As Mailpit's store: recipients the To/Cc headers do not name get a Bcc header; a
    message that has a Bcc header, or names everyone, gets none."""
    with smtp_server() as s, smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
        head = "To: Bob <Bob@example.org>,\r\n carol@example.org\r\nSubject: {}\r\n"
        client.sendmail("a@example.org", ["bob@example.org", "carol@example.org", "hidden@example.net"],
                        (head.format("hidden") + "\r\nx\r\n").encode())  # fmt: skip
        client.sendmail(
            "a@example.org",
            ["bob@example.org", "carol@example.org"],
            (head.format("all") + "\r\nx\r\n").encode(),
        )
        client.sendmail(
            "a@example.org", ["x@example.net"], b"Bcc: x@example.net\r\nSubject: own\r\n\r\nx\r\n"
        )
        raws = {m.subject: s.app.store.get_raw(m.id) or b"" for m in s.app.store.list_messages().messages}
        assert b"\r\nBcc: hidden@example.net\r\n" in raws["hidden"]
        assert b"Bcc:" not in raws["all"] and raws["own"].count(b"Bcc:") == 1


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_a_listener_on_an_address_is_bound_as_asyncio_binds_it() -> None:
    """A listener on an IP address binds its socket itself (no lookup, no task): it still
    reuses addresses as asyncio's create_server does, and on IPv6 accepts IPv6 only."""
    from postroom.testing import Server

    with Server(http=False, pop3=False, imap=False) as s:
        sock = s.app._servers[0].server.sockets[0]  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert s.address("smtp")[0] == "127.0.0.1"
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    with Server(smtp="[::]:0", http=False, pop3=False, imap=False) as s:
        sock = s.app._servers[0].server.sockets[0]  # type: ignore[attr-defined]
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        with smtplib.SMTP("::1", s.smtp_port, timeout=10) as c:
            assert c.noop()[0] == 250
        with pytest.raises(OSError):
            smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=5).quit()


def test_stopping_with_a_session_in_a_slow_step_leaves_no_task_pending(tmp_path: Path) -> None:
    """A session whose message is in a slow hook when the server stops: its connection is
    closed, and its task is cancelled and awaited, not left pending on a closing loop
    ('Task was destroyed but it is pending'); a message acknowledged before is stored."""
    in_hook = threading.Event()

    class Slow(SMTPHook):
        async def on_message(self, info: SessionInfo) -> Reply | None:
            if b"slow" in info.data:
                in_hook.set()
                await asyncio.sleep(60)
            return None

    problems: list[str] = []
    db = str(tmp_path / "store.db")
    with smtp_server(db=db) as s:
        s.loop.set_exception_handler(lambda loop, context: problems.append(str(context.get("message"))))
        s.app.smtp_hooks[:] = [Slow()]
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
            client.sendmail("a@example.org", ["ok@example.org"], MESSAGE)
        slow = socket.create_connection(("127.0.0.1", s.smtp_port), timeout=20)
        slow.sendall(
            b"HELO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<slow@example.org>\r\nDATA\r\n"
            + MESSAGE
            + b"slow\r\n.\r\n"
        )
        assert in_hook.wait(20)
    loop = s.loop
    try:
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        assert left == []
        del left
        gc.collect()
        assert not [p for p in problems if "Task was destroyed" in p]
    finally:
        slow.close()
    with smtp_server(db=db) as again:
        assert mailbox_subjects(again, "ok@example.org") == ["integration"]
        assert mailbox_subjects(again, "slow@example.org") == []
