"""ENVELOPE/BODYSTRUCTURE of just APPENDed messages, derived on a background thread before
anyone asks: a client FETCHes them of what it APPENDed at once (issue 19: the first FETCH 1:*
(ENVELOPE BODYSTRUCTURE) of 1,000 new messages), and the indexer stores them only after the
text index. What is not done by then is derived by the FETCH as before.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .messages import MessageCache

__all__ = ["DERIVE_SOON_BYTES", "DERIVE_SOON_GATHER", "DERIVE_SOON_ITEMS", "DERIVE_SOON_MAX", "DeriveSoon"]

# messages waiting at most (our choice; past it a FETCH derives them), of at most
# DERIVE_SOON_MAX bytes each (a larger one is parsed by the FETCH on a worker thread) and
# DERIVE_SOON_BYTES together (the queue holds their bytes; one the raw cache let go of
# meanwhile is skipped, its bytes counted until then)
DERIVE_SOON_ITEMS = 10_000
DERIVE_SOON_MAX = 1024 * 1024
DERIVE_SOON_BYTES = 32 * 1024 * 1024
# once woken, the thread lets further messages gather this long (seconds) before it derives
# them: an APPEND meanwhile only queues its messages (waking a waiting thread costs the
# APPENDing command a futex wake and a GIL hand-over: ~3% of the server's GIL time under
# imaptest's ~450 APPENDs/s), and a message expunged meanwhile is skipped
DERIVE_SOON_GATHER = 0.01


class DeriveSoon:
    """One daemon thread deriving new messages' data into ``cache`` (as
    :meth:`MessageCache.derive_kept`: kept in memory and written behind). Thread-safe."""

    def __init__(self, cache: MessageCache) -> None:
        self.cache = cache
        self._queue: deque[tuple[str, bytes]] = deque()
        self._bytes = 0  # of the messages in the queue
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.wakes = 0  # times the thread was woken with work (statistics, tests)

    def add(self, items: list[tuple[str, bytes]]) -> None:
        """Derive the data of the messages ``items`` (ID, bytes as stored, kept in the cache)."""
        with self._cond:
            for id, data in items:
                size = len(data)
                if size > DERIVE_SOON_MAX or len(self._queue) >= DERIVE_SOON_ITEMS:
                    continue
                if self._bytes + size > DERIVE_SOON_BYTES:
                    continue
                self._queue.append((id, data))
                self._bytes += size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="postroom-imap-derive", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        cache = self.cache
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                self.wakes += 1
            time.sleep(DERIVE_SOON_GATHER)  # not waiting: an add() meanwhile wakes nobody
            while True:
                with self._cond:
                    if not self._queue:
                        break
                    id, data = self._queue.popleft()
                    self._bytes -= len(data)
                self._derive(cache, id, data)

    @staticmethod
    def _derive(cache: MessageCache, id: str, data: bytes) -> None:
        # done already (a FETCH came first), or deleted meanwhile (its bytes are gone)
        if cache.peek_derived(id) is not None or cache.peek_raw(id) is not data:
            return
        try:
            cache.derive_kept(id, data)
        except Exception:  # a FETCH derives it again, and reports what fails
            return
