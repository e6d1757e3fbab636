"""Deleted messages kept in the IMAP message cache for a grace, then forgotten.

A session whose client has not been told of an EXPUNGE yet still shows the message and may
FETCH or SEARCH it: its cached data stays ``grace`` seconds after the deletion (the store's
rows are gone at once). A timer on the event loop ends the grace, so an idle server forgets
too, and a prune of 100,000 messages is forgotten FORGET_CHUNK at a time, with the loop's
other work between two chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["FORGET_CHUNK", "Expiry"]

# Deleted messages forgotten in one callback on the event loop (ours: a prune of 100,000
# is ~50 turns of the loop of a few ms each, not one long pause).
FORGET_CHUNK = 2000


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

    def __len__(self) -> int:
        """How many messages wait to be forgotten."""
        return sum(len(ids) - done for _, ids, done in self._dying)

    def add(self, ids: tuple[str, ...]) -> None:
        self._dying.append((time.monotonic() + self.grace, ids, 0))
        if self._timer is None:
            self._expire()

    def _expire(self) -> None:
        """Forget up to ``chunk`` messages whose grace has ended, then come back: at once
        (after the loop's other callbacks) while more are due, else when the next grace ends."""
        self._timer = None
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        now = time.monotonic()
        budget = self.chunk if loop is not None else len(self)
        while self._dying and self._dying[0][0] <= now and budget > 0:
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
            self._timer = loop.call_soon(self._expire) if delay <= 0 else loop.call_later(delay, self._expire)
