"""The POP3 listener over real sockets, against the real store (tests.helpers.running_server)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.protocols.pop3 import apop_digest
from postroom.store.base import INBOX, Envelope
from tests.helpers import RunningServer, running_server

ALICE = "alice@example.org"


class Client:
    """A tiny byte-level POP3 client: send lines, read status lines and dot-terminated blocks."""

    def __init__(self, server: RunningServer, name: str = "pop3") -> None:
        self.sock = socket.create_connection(server.addr(name), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self) -> bytes:
        return self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, command: str) -> bytes:
        self.send(command.encode() + b"\r\n")
        return self.line()

    def block(self) -> list[bytes]:
        """Lines of a multi-line body up to the terminating ".", un-stuffed."""
        lines = []
        while (line := self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line[1:] if line.startswith(b"..") else line)
        return lines

    def login(self, user: str = ALICE, password: str = "any") -> bytes:
        assert self.cmd(f"USER {user}").startswith(b"+OK")
        return self.cmd(f"PASS {password}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def message(n: int, body: bytes = b"") -> bytes:
    return (
        f"From: sender@example.org\r\nTo: {ALICE}\r\nSubject: message {n}\r\n\r\nbody {n}\r\n".encode() + body
    )


def deliver(server: RunningServer, raw: bytes, *rcpt: str) -> str:
    return str(server.call(server.app.store.deliver(Envelope("sender@example.org", rcpt or (ALICE,)), raw)))


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    c = Client(server)
    yield c
    c.close()


def test_greeting_and_capa(client: Client) -> None:
    assert client.greeting == b"+OK postroom POP3 server ready\r\n"
    assert client.cmd("CAPA") == b"+OK capability list follows\r\n"
    caps = client.block()
    assert b"UIDL\r\n" in caps and b"TOP\r\n" in caps and b"SASL PLAIN\r\n" in caps
    assert b"STLS\r\n" not in caps  # no certificate configured


def test_stat_list_uidl_retr_top(server: RunningServer, client: Client) -> None:
    raws = [message(1), message(2, b".starts with a dot\r\n..two dots\r\n")]
    for raw in raws:
        deliver(server, raw)
    assert client.login() == f"+OK {ALICE} has 2 messages ({sum(map(len, raws))} octets)\r\n".encode()
    assert client.cmd("STAT") == f"+OK 2 {sum(map(len, raws))}\r\n".encode()
    assert client.cmd("LIST") == f"+OK 2 messages ({sum(map(len, raws))} octets)\r\n".encode()
    assert client.block() == [f"1 {len(raws[0])}\r\n".encode(), f"2 {len(raws[1])}\r\n".encode()]
    assert client.cmd("UIDL").startswith(b"+OK")
    uidls = [line.split()[1] for line in client.block()]
    validity = server.app.store.folder_info(ALICE, INBOX).uidvalidity
    assert uidls == [f"{validity}.1".encode(), f"{validity}.2".encode()]
    assert client.cmd("RETR 2") == f"+OK {len(raws[1])} octets\r\n".encode()
    assert b"".join(client.block()) == raws[1]
    assert client.cmd("TOP 2 1") == b"+OK top of message follows\r\n"
    assert b"".join(client.block()) == raws[1].split(b"\r\n\r\n")[0] + b"\r\n\r\nbody 2\r\n"


def test_deletions_apply_only_at_quit(server: RunningServer) -> None:
    for n in range(1, 4):
        deliver(server, message(n))
    c = Client(server)
    c.login()
    assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
    assert c.cmd("DELE 3") == b"+OK message 3 deleted\r\n"
    assert len(server.app.store.folder_entries(ALICE, INBOX)) == 3  # nothing happens before UPDATE
    assert c.cmd("QUIT") == b"+OK postroom POP3 server signing off (1 message)\r\n"
    assert c.line() == b""  # the server closed the connection
    c.close()
    left = server.app.store.folder_entries(ALICE, INBOX)
    assert [e.uid for e in left] == [2]
    c = Client(server)
    assert c.login() == f"+OK {ALICE} has 1 message ({len(message(2))} octets)\r\n".encode()
    assert c.cmd("RETR 1") == f"+OK {len(message(2))} octets\r\n".encode()
    assert b"".join(c.block()) == message(2)
    c.close()


def test_rset_and_dropped_connection_keep_everything(server: RunningServer) -> None:
    deliver(server, message(1))
    deliver(server, message(2))
    c = Client(server)
    c.login()
    c.cmd("DELE 1")
    assert (
        c.cmd("RSET")
        == f"+OK maildrop has 2 messages ({len(message(1)) + len(message(2))} octets)\r\n".encode()
    )
    c.cmd("DELE 2")
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()
    assert len(server.app.store.folder_entries(ALICE, INBOX)) == 1
    c = Client(server)
    c.login()
    c.cmd("DELE 1")
    c.close()  # no QUIT: RFC 1939 §6, no UPDATE state
    c = Client(server)  # the lock was released when the connection dropped
    assert c.login().startswith(f"+OK {ALICE} has 1 message".encode())
    c.close()


def test_maildrop_lock_in_use(server: RunningServer) -> None:
    first = Client(server)
    assert first.login().startswith(b"+OK")
    second = Client(server)
    assert second.login() == b"-ERR [IN-USE] maildrop is locked by another POP3 session\r\n"
    other = Client(server)
    assert other.login("bob@example.org").startswith(b"+OK")  # locks are per mailbox
    assert first.cmd("QUIT").startswith(b"+OK")
    first.close()
    assert second.login().startswith(b"+OK")
    second.close()
    other.close()


def test_unknown_login_gets_empty_maildrop_without_creating_a_mailbox(
    server: RunningServer, client: Client
) -> None:
    assert client.login("Nobody@Example.org") == b"+OK nobody@example.org has 0 messages (0 octets)\r\n"
    assert client.cmd("STAT") == b"+OK 0 0\r\n"
    assert client.cmd("QUIT").startswith(b"+OK")
    assert "nobody@example.org" not in [m.name for m in server.app.store.mailboxes()]


def test_login_is_case_insensitive_and_sees_only_its_mailbox(server: RunningServer, client: Client) -> None:
    deliver(server, message(1), ALICE, "bob@example.org")
    deliver(server, message(2), "bob@example.org")
    assert client.login("ALICE@Example.ORG").startswith(f"+OK {ALICE} has 1 message".encode())


def test_more_than_a_hundred_messages(server: RunningServer, client: Client) -> None:
    for n in range(150):
        deliver(server, message(n))
    assert client.login().startswith(f"+OK {ALICE} has 150 messages".encode())
    assert client.cmd("LIST").startswith(b"+OK 150 messages")
    assert len(client.block()) == 150
    assert client.cmd("RETR 150").startswith(b"+OK")
    assert b"Subject: message 149\r\n" in client.block()


def test_pipelined_commands_in_one_write(server: RunningServer, client: Client) -> None:
    deliver(server, message(1))
    client.send(b"USER alice@example.org\r\nPASS x\r\nSTAT\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
    got = b"".join(iter(client.line, b""))
    size = len(message(1))
    assert got == (
        f"+OK send PASS for {ALICE}\r\n+OK {ALICE} has 1 message ({size} octets)\r\n+OK 1 {size}\r\n"
        f"+OK {size} octets\r\n".encode()
        + message(1)
        + b".\r\n+OK\r\n+OK postroom POP3 server signing off (1 message)\r\n"
    )


def test_uidl_stable_across_sessions_and_deletions(server: RunningServer) -> None:
    for n in range(3):
        deliver(server, message(n))
    c = Client(server)
    c.login()
    c.cmd("UIDL")
    before = dict(line.split() for line in c.block())
    c.cmd("DELE 2")
    c.cmd("QUIT")
    c.close()
    c = Client(server)
    c.login()
    c.cmd("UIDL")
    after = dict(line.split() for line in c.block())
    assert list(after.values()) == [before[b"1"], before[b"3"]]
    c.close()


def test_retr_marks_seen_at_quit(server: RunningServer, client: Client) -> None:
    deliver(server, message(1))
    deliver(server, message(2))
    client.login()
    client.cmd("RETR 2")
    client.block()
    client.cmd("TOP 1 0")
    client.block()
    assert not any("\\Seen" in e.flags for e in server.app.store.folder_entries(ALICE, INBOX))
    client.cmd("QUIT")
    flags = [("\\Seen" in e.flags) for e in server.app.store.folder_entries(ALICE, INBOX)]
    assert flags == [False, True]


def test_message_removed_elsewhere_during_session(server: RunningServer, client: Client) -> None:
    mid = deliver(server, message(1))
    client.login()
    server.app.store.delete_messages([mid])
    assert client.cmd("RETR 1") == b"-ERR message 1 was removed by another client\r\n"
    assert client.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
    assert client.cmd("QUIT").startswith(b"+OK")


def test_malformed_input_gets_err_and_session_goes_on(server: RunningServer, client: Client) -> None:
    client.send(b"\xff\xfe\x00garbage\r\n" + b"X" * 5000 + b"\r\nretr\r\n")
    assert client.line() == b"-ERR commands must be ASCII or UTF-8\r\n"
    assert client.line() == b"-ERR line too long (max 255 octets with CRLF)\r\n"
    assert client.line() == b"-ERR RETR is not valid in the AUTHORIZATION state\r\n"
    assert client.login().startswith(b"+OK")
    assert client.cmd("NOOP") == b"+OK\r\n"


def test_auth_plain(server: RunningServer, client: Client) -> None:
    import base64

    token = base64.b64encode(f"\0{ALICE}\0pw".encode()).decode()
    assert client.cmd(f"AUTH PLAIN {token}").startswith(f"+OK {ALICE} has 0 messages".encode())


@pytest.fixture
def auth_file(tmp_path: Path) -> str:
    path = tmp_path / "users"
    path.write_text(f"# postroom POP3/IMAP users\n{ALICE}:s3cret pass\nbob@example.org:hunter2\n")
    return str(path)


def test_auth_file_checks_passwords(auth_file: str) -> None:
    import base64

    with running_server(auth_file=auth_file) as server:
        c = Client(server)
        assert c.greeting.startswith(b"+OK postroom POP3 server ready <")  # APOP offered
        assert c.login(password="wrong") == b"-ERR [AUTH] invalid user name or password\r\n"
        assert c.login("eve@example.org", "s3cret pass") == b"-ERR [AUTH] invalid user name or password\r\n"
        assert c.login(password="s3cret pass").startswith(b"+OK")
        c.close()
        c = Client(server)
        token = base64.b64encode(b"\0bob@example.org\0hunter2").decode()
        assert c.cmd(f"AUTH PLAIN {token}").startswith(b"+OK bob@example.org")
        c.close()
        c = Client(server)
        timestamp = c.greeting.split()[-1].decode()
        assert c.cmd(f"APOP {ALICE} {apop_digest(timestamp, 'wrong')}").startswith(b"-ERR [AUTH]")
        assert c.cmd(f"APOP {ALICE} {apop_digest(timestamp, 's3cret pass')}").startswith(
            f"+OK {ALICE}".encode()
        )
        c.close()


def test_inline_pop3_logins_as_mp_pop3_auth() -> None:
    """MP_POP3_AUTH "user:password user2:password2": those logins only (USER/PASS, APOP),
    with the same reader as MP_SMTP_AUTH; a malformed entry stops the start."""
    from postroom import mailpit_env
    from postroom.config import ConfigError

    values, notes = mailpit_env.read(
        {"MP_POP3_AUTH": f"{ALICE}:s3cret bob@example.org:hunter2"}, frozenset({"pop3_auth"})
    )
    assert notes == [] and values == {"pop3_auth": f"{ALICE}:s3cret bob@example.org:hunter2"}
    with running_server(**values) as server:
        c = Client(server)
        assert c.login(password="wrong") == b"-ERR [AUTH] invalid user name or password\r\n"
        assert c.login(password="s3cret").startswith(b"+OK")
        c.close()
        c = Client(server)
        assert c.login("bob@example.org", "hunter2").startswith(b"+OK")
        c.close()
        c = Client(server)
        timestamp = c.greeting.split()[-1].decode()
        assert c.cmd(f"APOP {ALICE} {apop_digest(timestamp, 's3cret')}").startswith(f"+OK {ALICE}".encode())
        c.close()
    with pytest.raises(ConfigError, match="--pop3-auth"), running_server(pop3_auth="nocolon"):
        pass


def test_require_tls_login_refuses_plaintext() -> None:
    with running_server(require_tls_login=True) as server:
        c = Client(server)
        assert c.cmd(f"USER {ALICE}") == (
            b"-ERR [AUTH] plaintext authentication is disabled without TLS: connect to the POP3S port\r\n"
        )
        assert c.cmd("AUTH PLAIN AGFsaWNlAHB3").startswith(
            b"-ERR [AUTH] plaintext authentication is disabled"
        )
        c.close()


def test_stls_pop3s_and_shutdown_on_uvloop() -> None:
    """`postroom serve` runs on uvloop, whose transports and start_tls differ from asyncio's."""
    import asyncio
    import poplib
    import ssl

    uvloop = pytest.importorskip("uvloop")
    from postroom.app import App
    from postroom.config import Settings

    body = b"Subject: big\r\n\r\n" + b".dot line\r\n" * 20000
    seen: dict[str, object] = {}

    def client(app: App) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        p = poplib.POP3(*app.addresses["pop3"], timeout=30)
        p.stls(context)
        p.user(ALICE)
        p.pass_("x")
        seen["retr"] = b"\r\n".join(p.retr(1)[1]) + b"\r\n"
        q = poplib.POP3_SSL(*app.addresses["pop3s"], context=context, timeout=30)
        q.user("bob@example.org")
        q.pass_("x")
        seen["pop3s stat"] = q.stat()
        q.quit()
        # ``p`` stays logged in: stopping the server must end its session.

    async def main() -> None:
        settings = Settings(
            smtp="off", http="off", imap="off", pop3="127.0.0.1:0", pop3s="127.0.0.1:0",
            db=":memory:", tls_self_signed=True,
        )  # fmt: skip
        app = App(settings)
        await app.start()
        try:
            await app.store.deliver(Envelope("sender@example.org", (ALICE,)), body)
            await asyncio.to_thread(client, app)
        finally:
            await asyncio.wait_for(app.stop(), 10)
        seen["locks after stop"] = set(app.extras["pop3_locks"])

    uvloop.run(main())
    assert seen == {"retr": body, "pop3s stat": (0, 0), "locks after stop": set()}


def test_store_failures_become_err_and_session_survives(
    server: RunningServer, client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from postroom.servers.pop3 import INLINE_READ_MAX
    from postroom.store.base import StoreClosed

    big = message(2) + (b"y" * 76 + b"\r\n") * (INLINE_READ_MAX // 78 + 10)
    assert len(big) > INLINE_READ_MAX  # read on a worker thread, message 1 on the event loop
    deliver(server, message(1))
    deliver(server, big)
    client.login()
    store = server.app.store

    def broken(id: str) -> bytes:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "get_raw_stored", broken)
    assert client.cmd("RETR 1") == b"-ERR [SYS/TEMP] internal server error\r\n"
    assert "disk on fire" in caplog.text  # logged with its traceback
    assert client.cmd("RETR 2") == b"-ERR [SYS/TEMP] internal server error\r\n"

    def closed(id: str) -> bytes:
        raise StoreClosed("store is shut down")

    monkeypatch.setattr(store, "get_raw_stored", closed)
    assert client.cmd("TOP 1 0") == b"-ERR [SYS/TEMP] mail store unavailable, try again later\r\n"
    assert client.cmd("TOP 2 0") == b"-ERR [SYS/TEMP] mail store unavailable, try again later\r\n"
    monkeypatch.undo()
    assert client.cmd("RETR 1") == f"+OK {len(message(1))} octets\r\n".encode()
    assert b"".join(client.block()) == message(1)


def test_stls_drops_injected_plaintext_and_survives_bad_handshakes() -> None:
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with running_server(tls_self_signed=True) as server:
        # CVE-2011-0411 style: a command pipelined after STLS must not run inside TLS.
        c = Client(server)
        c.send(b"STLS\r\nUSER injected@example.org\r\n")
        assert c.line() == b"+OK begin TLS negotiation\r\n"
        tls = context.wrap_socket(c.sock, server_hostname="localhost")
        tls.sendall(b"PASS x\r\n")
        reply = tls.makefile("rb").readline()
        assert reply == b"-ERR PASS must follow USER\r\n"
        tls.close()
        # A client that answers STLS with garbage instead of a handshake is dropped...
        c = Client(server)
        assert c.cmd("STLS") == b"+OK begin TLS negotiation\r\n"
        c.send(b"this is not a TLS ClientHello\r\n" * 4)
        assert c.file.read() == b""  # closed, and nothing was sent in the clear
        c.close()
        # ...and the server goes on serving others.
        c = Client(server)
        assert c.login().startswith(b"+OK")
        c.close()


def test_a_thousand_pipelined_commands(server: RunningServer, client: Client) -> None:
    deliver(server, message(1))
    client.login()
    size = len(message(1))
    client.send(b"STAT\r\nLIST 1\r\n" * 500)
    replies = [client.line() for _ in range(1000)]
    assert replies == [f"+OK 1 {size}\r\n".encode(), f"+OK 1 {size}\r\n".encode()] * 500
    assert client.cmd("NOOP") == b"+OK\r\n"
