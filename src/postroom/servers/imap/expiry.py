"""Deleted messages kept in the IMAP message cache for a grace, then forgotten.

A session whose client has not been told of an EXPUNGE yet still shows the message and may
FETCH or SEARCH it: its cached data stays ``grace`` seconds after the deletion (the store's
rows are gone at once). A timer on the event loop ends the grace, so an idle server forgets
too, and a prune of 100,000 messages is forgotten FORGET_CHUNK at a time, with the loop's
other work between two chunks. Graces are measured on the loop's clock (``loop.time()``,
which its timers follow; uvloop's counts whole milliseconds), and :meth:`Expiry.close`
ends the timer when the IMAP server stops (its handle would keep the message cache
alive until it fires).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["EARLY", "FORGET_CHUNK", "Expiry"]

# Deleted messages forgotten in one callback on the event loop (ours: a prune of 100,000
# is ~50 turns of the loop of a few ms each, not one long pause).
FORGET_CHUNK = 2000
# A grace ending this close after ``now`` counts as ended: a timer may fire up to its
# loop clock's resolution early (uvloop rounds delays to whole milliseconds), and would
# otherwise come back at once, again and again, until the grace has ended.
EARLY = 0.001


class Expiry:
    """Calls ``forget`` with the IDs given to :meth:`add`, ``grace`` seconds later.

    Runs on the event loop's thread (a bus subscriber). Without a running loop (a bus bound
    to none), what is due is forgotten at the next :meth:`add`.
    """

    def __init__(self, forget: Callable[[tuple[str, ...]], None], grace: float) -> None:
        self.forget = forget
        self.grace = grace  # (tests set a shorter one)
        self.chunk = FORGET_CHUNK
        # (grace ends, IDs, how many of them are forgotten already)
        self._dying: deque[tuple[float, tuple[str, ...], int]] = deque()
        self._timer: asyncio.Handle | None = None
        self._closed = False

    def __len__(self) -> int:
        """How many messages wait to be forgotten."""
        return sum(len(ids) - done for _, ids, done in self._dying)

    def add(self, ids: tuple[str, ...]) -> None:
        if self._closed:  # the server stopped: nobody sees the message any more
            self.forget(ids)
            return
        self._dying.append((_clock() + self.grace, ids, 0))
        if self._timer is None:
            self._expire()

    def close(self) -> None:
        """End the timer and forget what waits (the server stopped: no session will ask);
        what is added afterwards is forgotten at once."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._dying:
            _, ids, done = self._dying.popleft()
            self.forget(ids[done:])

    def _expire(self) -> None:
        """Forget up to ``chunk`` messages whose grace has ended, then come back: at once
        (after the loop's other callbacks) while more are due, else when the next grace ends."""
        self._timer = None
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        now = loop.time() if loop is not None else time.monotonic()
        budget = self.chunk if loop is not None else len(self)
        while self._dying and self._dying[0][0] <= now + EARLY and budget > 0:
            when, ids, done = self._dying[0]
            end = min(len(ids), done + budget)
            self.forget(ids[done:end])
            budget -= end - done
            if end < len(ids):
                self._dying[0] = (when, ids, end)
            else:
                self._dying.popleft()
        if self._dying and loop is not None:
            delay = self._dying[0][0] - now
            self._timer = (
                loop.call_soon(self._expire) if delay <= EARLY else loop.call_later(delay, self._expire)
            )


def _clock() -> float:
    """The running loop's time (its timers' clock), else time.monotonic() (the same clock
    on Linux for asyncio's loop and uvloop's, which rounds it to milliseconds)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
