"""``--smtp-max-connections`` is one count for SMTP, SMTPS and the SMTP worker processes,
whichever listener starts first (issue 14): the shared count was made by the SMTP listener,
so an SMTPS listener started before it (postroom's pytest fixture starts listeners on first
use) kept a count of its own and the two together admitted twice the limit.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from postroom.app import App
from postroom.config import Settings
from tests.helpers import unverified, wait_for_port

LIMIT = 4


@contextmanager
def smtps_then_smtp(db: Path) -> Iterator[App]:
    """A postroom with two SMTP workers whose SMTPS listener starts before its SMTP one."""
    settings = Settings(
        smtp="127.0.0.1:0", smtps="127.0.0.1:0", http="off", pop3="off", imap="off", db=str(db),
        smtp_workers="2", tls_self_signed=True, smtp_max_connections=LIMIT,
    )  # fmt: skip
    settings.validate()
    app = App(settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)  # type: ignore[arg-type]

    try:
        call(app.start(defer=frozenset({"smtp"})))
        call(app.start_listener("smtp"))  # after SMTPS
        wait_for_port(app.addresses["smtp"][1])  # listening once a worker serves it
        yield app
    finally:
        call(app.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def plain(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.recv(1024)[:3]


def tls(port: int, ctx: ssl.SSLContext) -> tuple[socket.socket, bytes]:
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
    return sock, sock.recv(1024)[:3]


def test_smtps_started_first_shares_the_connection_count(tmp_path: Path) -> None:
    ctx = unverified()
    with smtps_then_smtp(tmp_path / "s.db") as app:
        smtp, smtps = app.addresses["smtp"][1], app.addresses["smtps"][1]
        held = [tls(smtps, ctx) for _ in range(2)] + [plain(smtp) for _ in range(2)]
        assert [g for _, g in held] == [b"220"] * LIMIT
        # the limit is reached, through either door
        over = [plain(smtp), tls(smtps, ctx)]
        assert [g for _, g in over] == [b"421", b"421"]
        for sock, _ in held + over:
            sock.close()
