"""Several postroom nodes on one PostgreSQL database (issue 15): each sees the others' mail.

Real servers on loopback ports, the real PostgreSQL at 127.0.0.1:5432 (a database of this
module's own, dropped at the end): mail sent over SMTP to node A is in node B's API, its
event bus (what the WebSocket, ``/api/v2/wait`` and webhooks hear) and its IMAP IDLE within
a second; concurrent deliveries through both nodes get unique, increasing UIDs per mailbox
and are each listed once; ``--max`` is applied once for all nodes; ``kill -9`` of one node
in the middle of a burst loses no message that either node acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from postroom.events import Event, MessageStored
from postroom.store.base import INBOX
from postroom.testing import Server

from .. import pg
from ..helpers import free_port, wait_for_port

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name, url = pg.fresh_database("postroom_nodes")
    try:
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture
def nodes(database: str) -> Iterator[tuple[Server, Server]]:
    pg.reset_schema(database)
    with Server(db=database, pop3=False) as a, Server(db=database, pop3=False) as b:
        yield a, b


def _send(port: int, to: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.sendmail(
            "app@example.com", [to], f"From: app@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhi\r\n"
        )


def test_mail_sent_to_one_node_reaches_the_others_api_events_and_idle(nodes: tuple[Server, Server]) -> None:
    a, b = nodes
    heard: list[MessageStored] = []
    got = threading.Event()

    def on_event(ev: Event) -> None:
        if isinstance(ev, MessageStored):
            heard.append(ev)
            got.set()

    b.app.bus.subscribe(on_event)  # the bus node B's WebSocket hub, wait and webhooks use
    with IMAPClient("127.0.0.1", port=b.imap_port, ssl=False, timeout=10) as imap:
        imap.login("alice@example.org", "any")
        imap.select_folder(INBOX)
        imap.idle()
        started = time.monotonic()
        _send(a.smtp_port, "alice@example.org", "from node A")
        responses = imap.idle_check(timeout=5)
        seen_exists = time.monotonic() - started
        imap.idle_done()
    assert any(r[1] == b"EXISTS" for r in responses), responses
    assert seen_exists < 1.0
    assert got.wait(1.0)
    assert heard[0].summary.subject == "from node A" and heard[0].mailboxes == ("alice@example.org",)
    with urllib.request.urlopen(f"{b.http_url}/api/v1/messages", timeout=10) as r:
        listing = json.load(r)
    assert [m["Subject"] for m in listing["messages"]] == ["from node A"]


def test_store_and_expunge_on_one_node_reach_a_session_on_the_other(nodes: tuple[Server, Server]) -> None:
    """A flag change on node A comes to node B without its entries (B's session reads the
    listing), an expunge with its UIDs (B's session applies them): B's client gets the
    new flags and the EXPUNGE in order, as with one node."""
    a, b = nodes
    for i in range(4):
        _send(a.smtp_port, "alice@example.org", f"m{i}")
    with (
        IMAPClient("127.0.0.1", port=a.imap_port, ssl=False, timeout=10) as ia,
        IMAPClient("127.0.0.1", port=b.imap_port, ssl=False, timeout=10) as ib,
    ):
        ia.login("alice@example.org", "any")
        ib.login("alice@example.org", "any")
        end = time.monotonic() + 10
        while ia.select_folder(INBOX)[b"EXISTS"] < 4:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert ib.select_folder(INBOX)[b"EXISTS"] == 4
        ib.idle()
        ia.add_flags([2], [b"$Label3"])
        ia.add_flags([1, 3], [b"\\Deleted"])
        ia.expunge()
        got: list[tuple[object, ...]] = []
        end = time.monotonic() + 5
        while sum(1 for r in got if r[1] == b"EXPUNGE") < 2 and time.monotonic() < end:
            got += ib.idle_check(timeout=1)
        ib.idle_done()
        assert [r[0] for r in got if r[1] == b"EXPUNGE"] == [3, 1], got
        assert ib.search(["ALL"]) == [2, 4]  # (UIDs)
        assert set(ib.get_flags([2])[2]) - {b"\\Recent"} == {b"$Label3"}
        ib.use_uid = False
        assert ib.fetch([1, 2], ["UID"]) == {1: {b"SEQ": 1, b"UID": 2}, 2: {b"SEQ": 2, b"UID": 4}}


def test_concurrent_deliveries_through_both_nodes_get_unique_increasing_uids(
    nodes: tuple[Server, Server],
) -> None:
    a, b = nodes
    per_sender = 40
    errors: list[BaseException] = []

    def sender(node: Server, tag: str) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", node.smtp_port) as c:
                for i in range(per_sender):
                    c.sendmail(
                        "app@example.com",
                        ["shared@example.org"],
                        f"Subject: {tag}-{i}\r\nMessage-ID: <{tag}-{i}@test>\r\n\r\nx\r\n",
                    )
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=sender, args=(n, f"{name}{k}"))
        for name, n in (("a", a), ("b", b))
        for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    total = 4 * per_sender
    for node in (a, b):  # every message listed once, on either node
        entries = node.app.store.folder_entries("shared@example.org", INBOX)
        assert [e.uid for e in entries] == list(range(1, total + 1))
        assert len({e.id for e in entries}) == total
        assert node.app.store.list_messages(limit=0).total == total


def test_max_is_applied_once_for_all_nodes(database: str) -> None:
    pg.reset_schema(database)
    with (
        Server(db=database, pop3=False, imap=False, max=5) as a,
        Server(db=database, pop3=False, imap=False, max=5) as b,
    ):
        for i in range(12):
            _send((a if i % 2 else b).smtp_port, "x@example.org", f"m{i}")
        for node in (a, b):
            page = node.app.store.list_messages()
            assert page.total == 5
            assert [m.subject for m in page.messages] == [f"m{i}" for i in range(11, 6, -1)]


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{port}", "--http", "off",
         "--pop3", "off", "--imap", "off", "--db", url, "--max", "0", "--quiet"],
        start_new_session=True,
    )  # fmt: skip


@pytest.mark.slow
def test_kill_9_of_one_node_mid_burst_loses_no_acknowledged_message(database: str) -> None:
    pg.reset_schema(database)
    ports = [free_port(), free_port()]
    procs = [_serve(database, p) for p in ports]
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n: int) -> None:
        port, i = ports[n % 2], 0
        while not stop.is_set():
            i += 1
            mid = f"kill-{n}-{i}@test.example"
            msg = f"From: a@test.example\r\nTo: b@test.example\r\nMessage-ID: <{mid}>\r\nSubject: {i}\r\n\r\nx\r\n"
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                    s.sendmail("a@test.example", ["b@test.example"], msg)
            except (OSError, smtplib.SMTPException):
                if port == ports[1]:
                    return  # the killed node: what it did not acknowledge may be lost
                continue
            with lock:
                acked.add(mid)

    try:
        for p, proc in zip(ports, procs, strict=True):
            wait_for_port(p, proc=proc)
        threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(procs[1].pid, signal.SIGKILL)  # node B, mid-burst
        procs[1].wait(10)
        time.sleep(0.3)  # node A keeps taking mail meanwhile
        stop.set()
        for t in threads:
            t.join(20)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
    import psycopg

    with psycopg.connect(database) as conn:
        stored = {r[0] for r in conn.execute("SELECT message_id FROM message")}
    assert len(acked) >= 200
    assert acked <= stored, f"{len(acked - stored)} acknowledged messages lost"


def test_a_started_store_hears_the_next_notification(database: str) -> None:
    """Once start() returns, the node's LISTEN is in place: a notification another node sends
    right then is heard (before, the listener thread could still be connecting, and a mail
    delivered by the other node never reached a session in IDLE here)."""
    import psycopg

    from postroom.config import Settings
    from postroom.events import Bus, ReadChanged
    from postroom.store.postgres import PostgresStore
    from postroom.store.postgres_events import CHANNEL, encode

    pg.reset_schema(database)
    bus = Bus()
    heard: list[Event] = []
    got = threading.Event()

    def on_event(ev: Event) -> None:
        heard.append(ev)
        got.set()

    bus.subscribe(on_event)
    store = PostgresStore(database, Settings(db=database), bus)
    with psycopg.connect(database, autocommit=True) as other:  # the other node, connected already
        store.start()
        try:
            other.execute(
                "SELECT pg_notify(%s, %s)", (CHANNEL, encode(ReadChanged(("1",), True), "other-node"))
            )
        except BaseException:
            store.close()
            raise
    try:
        assert got.wait(5.0)
        assert heard == [ReadChanged(("1",), True)]
    finally:
        store.close()
