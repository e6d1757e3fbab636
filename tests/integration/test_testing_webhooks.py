"""Webhooks: POSTs to a local aiohttp receiver that fails first, retries, the delivery log."""

from __future__ import annotations

import asyncio
import json
import smtplib
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from postroom.runtime.webhooks import Delivery
from postroom.testing import Server


@dataclass
class Receiver:
    """An HTTP server in its own thread: answers each POST with the next planned status."""

    plan: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event | None = None
    url: str = ""
    got: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.arrived.set()
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait, 10)
        self.received.append(body)
        self.got.set()
        status = self.plan.pop(0) if self.plan else 200
        return web.Response(status=status, text="ok" if status < 300 else "try later")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/hook", rec.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        rec.url = f"http://127.0.0.1:{port}/hook"
        runner_box.append(runner)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(10)
    yield rec
    if rec.hold is not None:
        rec.hold.set()
    asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)
    loop.close()


def _send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.sendmail(
            "app@example.com",
            ["u@example.com"],
            f"From: App <app@example.com>\r\nTo: u@example.com\r\nSubject: {subject}\r\n\r\nhi\r\n".encode(),
        )


def _wait_settled(server: Server, n: int) -> list[Delivery]:
    """Wait (woken by the receiver, bounded) until n deliveries are final."""
    for _ in range(400):
        log = server.webhooks.deliveries()
        if len(log) >= n and all(d.status in ("delivered", "failed") for d in log):
            return log
        threading.Event().wait(0.025)
    raise AssertionError(f"deliveries did not settle: {server.webhooks.deliveries()}")


def test_retries_until_the_receiver_accepts(receiver: Receiver) -> None:
    receiver.plan = [500, 503]
    with Server(webhook=receiver.url, webhook_retries=3, pop3=False, imap=False) as s:
        s.webhooks.backoff = 0.05
        _send(s.smtp_port, "hooked")
        [d] = _wait_settled(s, 1)
        assert (d.status, d.attempts, d.status_code, d.error) == ("delivered", 3, 200, "")
        assert len(receiver.received) == 3
        body = receiver.received[-1]
        stored = s.messages()[0]
        assert body["ID"] == stored.id and body["Subject"] == "hooked"
        assert body["From"] == {"Name": "App", "Address": "app@example.com"}
        assert body["Mailboxes"] == ["u@example.com"]
        with urllib.request.urlopen(s.http_url + "/api/v2/webhooks") as r:
            api = json.loads(r.read())
        assert api["URLs"] == [receiver.url] and api["Retries"] == 3
        assert api["Deliveries"][0]["Status"] == "delivered" and api["Deliveries"][0]["Attempts"] == 3


def test_gives_up_after_the_retries(receiver: Receiver) -> None:
    receiver.plan = [500] * 10
    with Server(webhook=receiver.url, webhook_retries=2, pop3=False, imap=False) as s:
        s.webhooks.backoff = 0.01
        _send(s.smtp_port, "doomed")
        [d] = _wait_settled(s, 1)
        assert (d.status, d.attempts, d.error) == ("failed", 3, "HTTP 500")


def test_client_errors_are_final_and_unreachable_receivers_retried(receiver: Receiver) -> None:
    receiver.plan = [404]
    with Server(webhook=receiver.url, webhook_retries=5, pop3=False, imap=False) as s:
        s.webhooks.backoff = 0.01
        dead = "http://127.0.0.1:9/nothing-listens-here"
        s.webhooks.add(dead)
        _send(s.smtp_port, "two urls")
        log = {d.url: d for d in _wait_settled(s, 2)}
        assert (log[receiver.url].status, log[receiver.url].attempts) == ("failed", 1)
        assert (log[dead].status, log[dead].attempts) == ("failed", 6)
        assert "Connect" in log[dead].error or "connect" in log[dead].error


def test_webhooks_never_delay_smtp(receiver: Receiver) -> None:
    receiver.hold = threading.Event()  # the receiver answers only when the test says so
    with Server(webhook=receiver.url, pop3=False, imap=False) as s:
        _send(s.smtp_port, "first")
        assert receiver.arrived.wait(10)  # the receiver now holds the first POST...
        _send(s.smtp_port, "second")  # ...and SMTP goes on regardless
        assert len(s.messages()) == 2
        assert s.webhooks.deliveries()[0].status == "pending"
        receiver.hold.set()
        assert [d.status for d in _wait_settled(s, 2)] == ["delivered", "delivered"]
        assert sorted(b["Subject"] for b in receiver.received) == ["first", "second"]


def test_urls_set_over_the_api(receiver: Receiver) -> None:
    with Server(pop3=False, imap=False) as s:
        assert s.webhooks.urls == []
        req = urllib.request.Request(
            s.http_url + "/api/v2/webhooks",
            data=json.dumps({"URLs": [receiver.url]}).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            assert json.loads(r.read())["URLs"] == [receiver.url]
        _send(s.smtp_port, "via api")
        assert receiver.got.wait(10)
        assert receiver.received[0]["Subject"] == "via api"
        bad = urllib.request.Request(
            s.http_url + "/api/v2/webhooks",
            data=json.dumps({"URLs": ["ftp://x"]}).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad)
        assert err.value.code == 400
