"""A thread publishing on the bus while its loop closes (a store's writer or indexer thread
at the end of a test's ``asyncio.run``) gets no exception: an unhandled exception in such a
thread is a failed test under ``filterwarnings = error``, and a dead writer thread in a
server. The loop closing between the bus's ``is_closed()`` test and its hand-off is made
certain here: the bus is given a closed loop that it sees as still open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from postroom.events import Bus, MessagesIndexed


class _SeenOpen:
    """A closed loop as a publishing thread saw it a moment before it closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def is_closed(self) -> bool:
        return False

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._loop.call_soon_threadsafe(fn, *args)  # raises: the loop is closed


def test_publishing_while_the_loop_closes_raises_nothing() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    bus = Bus()
    bus.bind(cast(asyncio.AbstractEventLoop, _SeenOpen(loop)))
    got: list[object] = []
    bus.subscribe(got.append)
    bus.publish(MessagesIndexed(("a",)))  # dropped, as on a loop seen closed
    bus.publish_many([MessagesIndexed(("b",))])  # delivered here, as on a loop seen closed
    assert got == [MessagesIndexed(("b",))]
