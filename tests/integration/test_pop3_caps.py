"""POP3 connection caps over real sockets (issue 14): ``--pop3-max-connections`` in all and
``--pop3-max-per-address`` from one address, the same rule as IMAP's (servers/admission.py):
an idle client that has not logged in is closed to make room, and when only logged-in
sessions fill a cap a new connection gets ``-ERR [SYS/TEMP]`` (RFC 2449 8.1.2) and is closed.
"""

from __future__ import annotations

import poplib
import socket
import time

import pytest

from tests.helpers import RunningServer, running_server


def connect(s: RunningServer) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(s.addr("pop3"), timeout=10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return sock, data


def read_to_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@pytest.mark.parametrize(
    ("caps", "refusal"),
    [
        ({"pop3_max_per_address": 3}, b"-ERR [SYS/TEMP] too many connections from 127.0.0.1 (limit 3)\r\n"),
        ({"pop3_max_connections": 3}, b"-ERR [SYS/TEMP] too many connections (limit 3)\r\n"),
    ],
)
def test_pop3_caps_drop_idle_strangers_first_then_refuse_clearly(
    caps: dict[str, int], refusal: bytes
) -> None:
    with running_server(smtp="off", http="off", imap="off", **caps) as s:
        strangers = [connect(s)[0] for _ in range(3)]
        time.sleep(0.05)
        users = []
        for i in range(3):  # each new client makes room by closing the longest-idle stranger
            p = poplib.POP3(*s.addr("pop3"), timeout=10)
            p.user(f"u{i}@example.org")
            p.pass_("x")
            users.append(p)
        for sock in strangers:
            assert read_to_close(sock).endswith(
                b"-ERR [SYS/TEMP] connection limit reached; closing idle connections\r\n"
            )
            sock.close()
        # every slot is a logged-in session now: a new connection is refused and told why
        sock, data = connect(s)
        assert data == refusal
        assert sock.recv(4096) == b""
        sock.close()
        users[0].quit()
        time.sleep(0.2)
        sock, data = connect(s)
        assert data.startswith(b"+OK")
        sock.close()
        for p in users[1:]:
            assert p.noop().startswith(b"+OK")
            p.quit()
