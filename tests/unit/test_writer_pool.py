"""Writer threads kept between throwaway stores (store/writer_pool.py)."""

from __future__ import annotations

import threading

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store import sqlite_recycle as recycle
from postroom.store.sqlite import SQLiteStore
from postroom.store.writer_pool import run_writer


def test_a_closed_throwaway_store_leaves_its_writer_thread_to_the_next() -> None:
    first = SQLiteStore(":memory:", Settings(db=":memory:"), Bus())
    first.start()
    writer = first._writer
    first.close()
    assert recycle.wait_closed(30)  # the writer finishes the close itself (sqlite.SQLiteStore.close)
    assert writer is not None and writer.is_alive()  # idle, waiting for the next store
    second = SQLiteStore(":memory:", Settings(db=":memory:"), Bus())
    second.start()
    try:
        assert second._writer is writer
        assert second.stats().messages == 0  # the loop runs: reads wait for it, writes commit
    finally:
        second.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # raised on purpose
def test_the_done_event_is_set_when_the_loop_returns_or_raises() -> None:
    ran: list[str] = []
    _, done = run_writer(lambda: ran.append(threading.current_thread().name))
    assert done.wait(10) and ran == ["postroom-writer"]

    def fails() -> None:
        raise RuntimeError("boom")

    failing, done = run_writer(fails)
    assert done.wait(10)
    failing.join(10)
    assert not failing.is_alive()  # a loop that raised ends its thread; it is not reused
    again, done = run_writer(lambda: None)
    assert done.wait(10) and again is not failing
