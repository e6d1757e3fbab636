"""Writer threads kept between throwaway stores.

A test suite starts and closes a throwaway (``:memory:``) store per test; starting the
store's writer thread and joining it at close cost ~0.15 ms on a quiet machine and several
times that on a busy one. So the writer thread of a closed throwaway store waits for the
next store's write loop instead of ending: :func:`run_writer` runs a write loop on such a
spare thread (or a new one), and the returned event is set once the loop has returned.

A spare thread is an idle daemon thread blocked on its own queue: it holds no connection
and no file. At most :data:`MAX_SPARE` are kept; after a fork the parent's spare threads do
not exist in the child (they are seen as stopped and left out).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["MAX_SPARE", "run_writer"]

# Spare writer threads kept (one per store closed and not reused yet; tests close a store
# before starting the next, so one is usually enough).
MAX_SPARE = 4

_Job = tuple[Callable[[], None], threading.Event]

_lock = threading.Lock()
_spare: list[tuple[threading.Thread, queue.SimpleQueue[_Job]]] = []


def run_writer(loop: Callable[[], None]) -> tuple[threading.Thread, threading.Event]:
    """Run ``loop`` on a spare writer thread (a new one if none is idle); returns the thread
    and an event set when ``loop`` has returned (or raised)."""
    done = threading.Event()
    with _lock:
        while _spare:
            idle, waiting = _spare.pop()
            if idle.is_alive():
                waiting.put((loop, done))
                return idle, done
    inbox: queue.SimpleQueue[_Job] = queue.SimpleQueue()
    inbox.put((loop, done))
    thread = threading.Thread(target=_serve, args=(inbox,), name="postroom-writer", daemon=True)
    thread.start()
    return thread, done


def _serve(inbox: queue.SimpleQueue[_Job]) -> None:
    me = threading.current_thread()
    while True:
        loop, done = inbox.get()
        try:
            loop()
        except BaseException:
            done.set()
            raise  # as a writer thread of its own would: the thread ends, with the error shown
        with _lock:
            keep = len(_spare) < MAX_SPARE
            if keep:  # idle before the store's close returns: the next store finds it
                _spare.append((me, inbox))
        done.set()
        if not keep:
            return
