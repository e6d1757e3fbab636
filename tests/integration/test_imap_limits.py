"""IMAP resource limits over real sockets: literals before login, idle and connection caps,
and the latency of a command that arrives in two TCP segments (issues 14 and 19)."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.servers.imap import session as imap_session
from tests.helpers import RunningServer, free_port, running_server, wait_for_port
from tests.integration.imap_wire import Wire


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def imap_process(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A real `postroom serve` with only IMAP (and SMTP in-process): (pid, IMAP port)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", "off", "--http", "off", "--pop3", "off",
         "--imap", f"127.0.0.1:{port}", "--db", str(tmp_path / "db"), "--indexer", "thread",
         "--smtp-workers", "0", "--quiet"],
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(20)


def hostile_append(port: int, nonsync: bool) -> tuple[socket.socket, bytes]:
    """Before login, announce a 50 MB literal and send 45 MB of it if let; the socket is
    left open (the caller closes it) with what the server answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.recv(4096)  # greeting
    if not nonsync:
        sock.sendall(b"a APPEND INBOX {52428800}\r\n")
        reply = sock.recv(4096)
        if not reply.startswith(b"+"):
            return sock, reply  # refused before sending the literal
    else:
        sock.sendall(b"a APPEND INBOX {52428800+}\r\n")
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(45):
            sock.sendall(chunk)
    except OSError:
        return sock, b""  # the server closed the connection (non-synchronizing form)
    sock.settimeout(1)
    try:
        return sock, sock.recv(4096)
    except OSError:
        return sock, b""


def test_literals_before_login_are_refused_and_memory_stays_flat(imap_process: tuple[int, int]) -> None:
    pid, port = imap_process
    # byte-level: the synchronizing form is refused before the client sends a byte of it
    with Wire("127.0.0.1", port) as w:
        assert w.cmd("APPEND INBOX {52428800}") == [
            b"t1 BAD [TOOBIG] literal too large (limit 4096 octets)\r\n"
        ]
        assert w.cmd("LOGIN {5000}") == [b"t2 BAD [TOOBIG] literal too large (limit 4096 octets)\r\n"]
        # a password in a literal still works, and then APPEND may carry a message again
        w.send(b"t3 LOGIN {5}\r\n")
        assert w.read_line().startswith(b"+ ")
        w.send(b"alice {6}\r\n")
        assert w.read_line().startswith(b"+ ")
        w.send(b"secret\r\n")
        assert w.read_until("t3")[-1].startswith(b"t3 OK ")
        w.send(b"t4 APPEND INBOX {10000}\r\n")
        assert w.read_line().startswith(b"+ ")
    with Wire("127.0.0.1", port) as w:  # the non-synchronizing form ends the connection
        w.send(b"t1 APPEND INBOX {100000+}\r\n" + b"x" * 100_000)
        assert w.read_line() == b"* BYE [TOOBIG] command too large before login\r\n"
        with pytest.raises(ConnectionError):
            w.read_line()
    hostile_append(port, nonsync=False)[0].close()  # warm up what a first connection allocates
    before = rss_kib(pid)
    socks = []
    for i in range(20):
        sock, reply = hostile_append(port, nonsync=bool(i % 2))
        socks.append(sock)
        if i % 2:  # (or nothing, if the reset of the connection overtook the BYE)
            assert reply in (b"", b"* BYE [TOOBIG] command too large before login\r\n"), reply
        else:
            assert reply == b"a BAD [TOOBIG] literal too large (limit 4096 octets)\r\n", reply
    during = rss_kib(pid) - before
    for sock in socks:
        sock.close()
    time.sleep(0.5)
    after = rss_kib(pid) - before
    # was: 45 MB buffered per connection while it lasted
    assert during < 20 * 1024 and after < 20 * 1024, (
        f"grew {during} KiB with 20 hostile clients, {after} after"
    )
    with Wire("127.0.0.1", port) as w:  # and it still serves
        assert w.cmd("NOOP") == [b"t1 OK NOOP completed\r\n"]


def two_segments(sock: socket.socket, first: bytes, second: bytes, until: bytes) -> float:
    """Send a command as two writes (Nagle on, as clients leave it) and time the reply."""
    start = time.perf_counter()
    sock.send(first)
    sock.send(second)
    data = b""
    while until not in data:
        data += sock.recv(65536)
    return time.perf_counter() - start


def test_a_command_in_two_segments_is_answered_at_once() -> None:
    with running_server(smtp="off", http="off", pop3="off") as s:
        sock = socket.create_connection(s.addr("imap"))
        sock.recv(4096)
        sock.sendall(b"l LOGIN split@example.org x\r\n")
        while b"l OK" not in sock.recv(4096):
            pass
        noop = [two_segments(sock, b"n%d NOOP" % i, b"\r\n", b"n%d OK" % i) for i in range(30)]
        appends = []
        for i in range(30):  # imaplib's APPEND: the literal and its CRLF in separate writes
            sock.sendall(b"a%d APPEND INBOX {7}\r\n" % i)
            assert sock.recv(4096).startswith(b"+ ")
            appends.append(two_segments(sock, b"Subj: x", b"\r\n", b"a%d OK" % i))
        sock.close()
    # The bound is 5 ms; before the fix every try took 40-50 ms (the delayed ACK
    # the client's Nagle waits for). On a machine shared by parallel tests single tries
    # stall, so: a third of the tries under 5 ms, and the median below the old floor.
    for times in (noop, appends):
        assert sorted(times)[len(times) // 3] < 0.005, times
        assert statistics.median(times) < 0.02, times


def test_idle_before_login_is_logged_out_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap_session, "PREAUTH_TIMEOUT", 0.5)
    with (
        running_server(smtp="off", http="off", pop3="off") as s,
        Wire(*s.addr("imap")) as idle,
        Wire(*s.addr("imap")) as user,
    ):
        user.ok("LOGIN kept@example.org x")
        time.sleep(1)
        assert idle.read_line() == b"* BYE Autologout; idle for too long\r\n"
        with pytest.raises(ConnectionError):
            idle.read_line()
        assert user.cmd("NOOP") == [b"t2 OK NOOP completed\r\n"]  # 30 minutes once logged in


def test_idle_logged_in_sessions_are_logged_out_and_busy_ones_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AUTOLOGOUT (one idle timer per session, moved on by each read): a session that says
    nothing is logged out; one that sends a command now and then, or waits in IDLE (which
    has its own, longer timeout), is not, however long it lasts."""
    monkeypatch.setattr(imap_session, "AUTOLOGOUT", 1.0)
    with (
        running_server(smtp="off", http="off", pop3="off") as s,
        Wire(*s.addr("imap")) as quiet,
        Wire(*s.addr("imap")) as busy,
        Wire(*s.addr("imap")) as idling,
    ):
        for w in (quiet, busy, idling):
            w.ok("LOGIN kept@example.org x")
        idling.ok("SELECT INBOX")
        idling.send(b"i1 IDLE\r\n")
        assert idling.read_line().startswith(b"+ ")
        started = time.monotonic()
        for _ in range(8):  # 2.4 s, well past AUTOLOGOUT
            time.sleep(0.3)
            assert busy.cmd("NOOP")[-1].endswith(b" OK NOOP completed\r\n")
        assert quiet.read_line() == b"* BYE Autologout; idle for too long\r\n"
        with pytest.raises(ConnectionError):
            quiet.read_line()
        assert time.monotonic() - started > 2
        idling.send(b"DONE\r\n")
        assert idling.read_until("i1")[-1] == b"i1 OK IDLE terminated\r\n"
        assert busy.cmd("NOOP")[-1].endswith(b" OK NOOP completed\r\n")
        time.sleep(1.6)  # now busy is quiet too
        assert busy.read_line() == b"* BYE Autologout; idle for too long\r\n"


def greeting(s: RunningServer) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(s.addr("imap"), timeout=10)
    data = b""
    while not data.endswith(b"\r\n"):
        data += sock.recv(4096)
    return sock, data


@pytest.mark.parametrize(
    ("caps", "refusal"),
    [
        (
            {"imap_max_per_address": 3},
            b"* BYE [UNAVAILABLE] too many connections from 127.0.0.1 (limit 3)\r\n",
        ),
        ({"imap_max_connections": 3}, b"* BYE [UNAVAILABLE] too many connections (limit 3)\r\n"),
    ],
)
def test_connection_caps_drop_idle_strangers_first_then_refuse_clearly(
    caps: dict[str, int], refusal: bytes
) -> None:
    with running_server(smtp="off", http="off", pop3="off", **caps) as s:
        strangers = [greeting(s)[0] for _ in range(3)]
        time.sleep(0.05)
        users = []
        for i in range(3):  # each new client makes room by closing the longest-idle stranger
            w = Wire(*s.addr("imap"))
            assert w.greeting.startswith(b"* OK ")
            w.ok(f"LOGIN u{i}@example.org x")
            users.append(w)
        for sock in strangers:
            sock.settimeout(10)
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.endswith(
                b"* BYE [UNAVAILABLE] connection limit reached; closing idle connections\r\n"
            )
            sock.close()
        # every slot is a logged-in session now: a new connection is refused and told why
        sock, data = greeting(s)
        assert data == refusal
        assert sock.recv(4096) == b""
        sock.close()
        users[0].ok("LOGOUT")
        users[0].close()
        time.sleep(0.1)
        with Wire(*s.addr("imap")) as w:
            assert w.greeting.startswith(b"* OK ")
        for w in users[1:]:
            assert w.cmd("NOOP")[-1].endswith(b"OK NOOP completed\r\n")
            w.close()


def test_imap_caps_are_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "postroom", "serve", "--help"], capture_output=True, text=True, check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout  # fmt: skip
    assert "--imap-max-connections" in out and "--imap-max-per-address" in out
