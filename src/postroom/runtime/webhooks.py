"""Webhooks: POST a JSON summary of each new message to configured URLs.

The body is the message's summary as Mailpit's webhook sends it (``MessageSummary``:
``ID``, ``MessageID``, ``From``, ``To``, ``Subject``, ``Created``, ...) plus postroom's
``Mailboxes``. Delivery never delays SMTP: the event bus hands each new message to a
bounded queue and returns; a background task posts, with up to ``retries`` retries after
a connection error, a timeout or an answer of 408, 429 or 5xx, waiting ``backoff``,
then twice that, and so on (capped at :data:`MAX_BACKOFF`). Other 4xx answers are final.

Each attempt's outcome goes to a delivery log (the last :data:`LOG_SIZE` deliveries),
which ``GET /api/v2/webhooks`` shows (:mod:`postroom.web.api_webhooks`).

Errors: none escape; failures are recorded in the log and logged at warning level
(with the URL and status, never the message content).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event, MessageStored

if TYPE_CHECKING:
    import aiohttp

    from ..app import App

__all__ = ["LOG_SIZE", "MAX_BACKOFF", "Delivery", "Webhooks", "checked_urls"]

log = logging.getLogger(__name__)


def checked_urls(urls: list[str]) -> list[str]:
    """The non-empty ``urls``, stripped.

    Raises:
        ValueError: a URL that is not http:// or https://.
    """
    clean = [u.strip() for u in urls if u.strip()]
    for u in clean:
        if not u.lower().startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL must start with http:// or https://, not {u!r}")
    return clean


#: Deliveries kept in the log (oldest dropped first).
LOG_SIZE = 500
#: Longest wait between two attempts (seconds).
MAX_BACKOFF = 60.0
#: Messages waiting to be posted; past this, new ones are dropped (and logged) rather
#: than letting memory grow without bound while a receiver is down.
QUEUE_SIZE = 10_000
#: Deliveries in flight at once (across URLs).
CONCURRENCY = 8
#: Time allowed for one POST (seconds).
REQUEST_TIMEOUT = 10.0
# Answers that are worth another try (RFC 9110 15.5.9 408, RFC 6585 4 429, and 5xx).
_RETRYABLE = frozenset({408, 429})


@dataclass
class Delivery:
    """One message posted to one URL: its attempts and outcome."""

    id: int
    url: str
    message_id: str
    status: str = "pending"  # pending, retrying, delivered, failed
    attempts: int = 0
    status_code: int | None = None
    error: str = ""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "URL": self.url,
            "MessageID": self.message_id,
            "Status": self.status,
            "Attempts": self.attempts,
            "StatusCode": self.status_code,
            "Error": self.error,
            "Created": self.created,
            "Updated": self.updated,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Delivery:
        """A delivery as ``GET /api/v2/webhooks`` lists it (what a remote client reads)."""
        code = d.get("StatusCode")
        return cls(
            id=int(d.get("ID", 0)),
            url=str(d.get("URL", "")),
            message_id=str(d.get("MessageID", "")),
            status=str(d.get("Status", "pending")),
            attempts=int(d.get("Attempts", 0)),
            status_code=int(code) if code is not None else None,
            error=str(d.get("Error", "")),
            created=float(d.get("Created", 0.0)),
            updated=float(d.get("Updated", 0.0)),
        )


class Webhooks:
    """The webhooks of one server (``app.webhooks``).

    Args:
        app: the running app (its bus and ``spawn``).
        urls: where to POST.
        retries: retries after the first attempt.
        backoff: wait before the first retry (seconds); doubles each time.
    """

    def __init__(self, app: App, urls: list[str], *, retries: int = 5, backoff: float = 1.0) -> None:
        self.app = app
        self.retries = retries
        self.backoff = backoff
        self._urls: list[str] = []
        self._lock = threading.Lock()
        self._log: deque[Delivery] = deque(maxlen=LOG_SIZE)
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[Any] | None = None
        self._unsubscribe: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.set_urls(urls)

    # -- configuration ----------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        with self._lock:
            return list(self._urls)

    def set_urls(self, urls: list[str]) -> None:
        """Replace the URLs (an empty list turns webhooks off).

        Raises:
            ValueError: a URL that is not http:// or https://.
        """
        clean = checked_urls(urls)
        with self._lock:
            self._urls = clean
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._sync)

    def add(self, url: str) -> None:
        """Add one URL."""
        self.set_urls([*self.urls, url])

    def deliveries(self) -> list[Delivery]:
        """The delivery log, oldest first."""
        with self._lock:
            return list(self._log)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Begin listening (call on the app's loop)."""
        self._loop = asyncio.get_running_loop()
        self._sync()

    def _sync(self) -> None:
        """Subscribe to the bus only while there are URLs (no cost otherwise)."""
        if self.urls and self._unsubscribe is None:
            self._queue = asyncio.Queue(QUEUE_SIZE)
            self._sem = asyncio.Semaphore(CONCURRENCY)
            self._unsubscribe = self.app.bus.subscribe(self._on_event)
            self.app.spawn(self._run())

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, MessageStored) or self._queue is None:
            return
        summary = event.summary
        try:
            self._queue.put_nowait(summary)
        except asyncio.QueueFull:
            log.warning("webhook queue full (%d): dropping message %s", QUEUE_SIZE, summary.id)

    async def _run(self) -> None:
        import aiohttp

        from ..web.common import summary_json

        assert self._queue is not None and self._sem is not None
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            while True:
                summary = await self._queue.get()
                body = summary_json(summary)
                for url in self.urls:
                    with self._lock:
                        d = Delivery(next(self._ids), url, summary.id)
                        self._log.append(d)
                    await self._sem.acquire()
                    task = asyncio.get_running_loop().create_task(self._deliver(d, body))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
        finally:
            for task in list(self._inflight):
                task.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._session.close()
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    async def _deliver(self, d: Delivery, body: dict[str, Any]) -> None:
        assert self._session is not None and self._sem is not None
        try:
            wait = self.backoff
            while True:
                d.attempts += 1
                retry = await self._attempt(d, body)
                d.updated = time.time()
                if not retry:
                    return
                if d.attempts > self.retries:
                    d.status = "failed"
                    log.warning(
                        "webhook %s: giving up on %s after %d attempts", d.url, d.message_id, d.attempts
                    )
                    return
                d.status = "retrying"
                await asyncio.sleep(wait)
                wait = min(wait * 2, MAX_BACKOFF)
        finally:
            self._sem.release()

    async def _attempt(self, d: Delivery, body: dict[str, Any]) -> bool:
        """Post once; returns whether another attempt may succeed."""
        import aiohttp

        assert self._session is not None
        try:
            async with self._session.post(d.url, json=body) as resp:
                d.status_code = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            d.error = f"{type(e).__name__}: {e}"[:200]
            return True
        if resp.status < 300:
            d.status, d.error = "delivered", ""
            return False
        d.error = f"HTTP {resp.status}"
        if resp.status in _RETRYABLE or resp.status >= 500:
            return True
        d.status = "failed"
        log.warning("webhook %s answered %d for %s", d.url, resp.status, d.message_id)
        return False

    def to_json(self) -> dict[str, Any]:
        """What ``GET /api/v2/webhooks`` answers."""
        return {
            "URLs": self.urls,
            "Retries": self.retries,
            "Deliveries": [d.to_json() for d in self.deliveries()],
        }
