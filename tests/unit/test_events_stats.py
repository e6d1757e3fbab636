"""The WebSocket hub's ``stats`` event is never older than a change event it follows."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace
from typing import Any, cast

from aiohttp import web

from postroom.events import StoreTruncated
from postroom.web import events
from postroom.web.common import APP_KEY


class _Client:
    mailbox = None
    extended = False

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    def offer(self, text: str) -> None:
        self.got.append(json.loads(text))


def test_stats_read_while_a_change_commits_are_read_again(monkeypatch: Any) -> None:
    """A stats timer fires, its read of the counts sees the store before a delete-all
    commits, and the truncate event is offered to the client while that read is under way:
    the stats the client then gets are the counts after the delete (Mailpit's e2e suite
    waits for the first stats after its delete-all and expects 0). Before, the stale
    counts (1 message) were sent."""
    monkeypatch.setattr(events, "STATS_INTERVAL", 0.05)  # the stats the change schedules come later
    counts = {"n": 1}
    reading = threading.Event()
    go_on = threading.Event()

    def stats() -> SimpleNamespace:
        seen = counts["n"]
        reading.set()
        go_on.wait(5)  # the delete-all commits and its event is offered meanwhile
        return SimpleNamespace(messages=seen, unread=seen)

    async def run() -> list[dict[str, Any]]:
        app = web.Application()
        app[APP_KEY] = cast(Any, SimpleNamespace(store=SimpleNamespace(stats=stats)))
        hub = events.Hub(app)
        client = _Client()
        hub.clients.add(cast(Any, client))
        hub._schedule_stats()  # a change before the delete-all: its stats are due
        await asyncio.to_thread(reading.wait, 5)
        counts["n"] = 0  # the delete-all commits ...
        hub.on_event(StoreTruncated(mailbox=None))  # ... and its event reaches the hub
        go_on.set()
        for _ in range(200):
            if any(m["Type"] == "stats" for m in client.got):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return client.got

    got = asyncio.run(run())
    stats_frames = [m["Data"] for m in got if m["Type"] == "stats"]
    assert got and got[0]["Type"] == "truncate", got
    assert stats_frames and stats_frames[0]["Total"] == 0 and stats_frames[0]["Unread"] == 0, got
