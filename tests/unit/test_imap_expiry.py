"""The deleted messages' grace in the IMAP message cache (servers/imap/expiry.py): its timer
follows the loop's clock and ends with the server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from postroom.servers.imap.core import CACHE_KEY
from postroom.servers.imap.expiry import Expiry
from postroom.servers.imap.messages import MessageCache
from tests.helpers import running_server
from tests.integration.test_imap_cache import deliver, login, msg, settle


class SkewedLoop(asyncio.SelectorEventLoop):
    """A loop whose clock is not time.monotonic() (uvloop's counts whole milliseconds; this
    one runs twice as fast, so that a deadline on the wrong clock shows every time)."""

    def time(self) -> float:
        return 2 * time.monotonic()


def test_the_grace_is_measured_on_the_loop_clock() -> None:
    """The timer fires once, when the grace has ended on the clock it was set on: a deadline
    on time.monotonic() found it early and came back again and again."""
    forgot: list[str] = []
    expiry = Expiry(forgot.extend, 0.2)
    timer_calls = 0
    expire = expiry._expire

    def counted() -> None:
        nonlocal timer_calls
        timer_calls += 1
        expire()

    expiry._expire = counted  # type: ignore[method-assign]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        expiry.add(("a",))
        while not forgot:
            await asyncio.sleep(0.01)
        assert loop.time() - start >= 0.2 - 0.001

    loop = SkewedLoop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert forgot == ["a"]
    assert timer_calls == 2  # the first at add(), then the timer's


def test_close_ends_the_timer_and_forgets_what_waits() -> None:
    forgot: list[str] = []
    expiry = Expiry(forgot.extend, 60.0)

    async def run() -> None:
        expiry.add(("a", "b"))
        timer = expiry._timer
        assert timer is not None and forgot == []
        expiry.close()
        assert timer.cancelled() and expiry._timer is None
        assert forgot == ["a", "b"] and len(expiry) == 0
        expiry.add(("c",))  # after the stop: at once, no timer
        assert forgot == ["a", "b", "c"] and expiry._timer is None

    asyncio.run(run())


def test_a_stopped_imap_server_leaves_no_grace_timer(tmp_path: Path) -> None:
    """A message deleted just before the stop: its grace timer (holding the message cache)
    is cancelled with the server, not left on a loop that postroom.testing keeps running."""
    with running_server(db=str(tmp_path / "store.db")) as s:
        ids = [deliver(s, msg(f"m{i}")) for i in range(2)]
        with login(s) as w:
            w.ok("SELECT INBOX")
            w.ok("FETCH 1:* (ENVELOPE)")
        cache = s.app.extras[CACHE_KEY]
        assert isinstance(cache, MessageCache)
        settle(s)
        s.app.store.delete_messages([ids[0]])

        async def pending() -> asyncio.Handle | None:
            return cache.dying._timer  # (the event is on the loop before this runs)

        timer = s.call(pending())
        assert timer is not None and not timer.cancelled() and len(cache.dying) == 1
    assert timer.cancelled() and cache.dying._timer is None and len(cache.dying) == 0
