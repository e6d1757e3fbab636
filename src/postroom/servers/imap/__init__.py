"""IMAP4rev1 server (RFC 3501) over the store: an asyncio adapter around
:mod:`postroom.protocols.imap`.

``start_server(app, host, port, implicit_tls=...)`` listens; each connection runs a
:class:`~.session.Session`. The listener tracks its sessions so that stopping the app
ends them too, and admits connections within two caps (``--imap-max-connections`` in
all, ``--imap-max-per-address`` from one client address; servers/admission.py). When a
cap is reached, the longest-idle session that has not logged in is closed to make room (it
holds nothing a client could lose, and such sessions time out within a minute anyway); only
when every session of the cap is logged in is the new connection refused, with ``* BYE``
saying why (RFC 3501 section 7.1.5 lets the server send BYE as its greeting).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..admission import admit
from .core import CACHE_KEY
from .messages import MessageCache
from .session import Session

if TYPE_CHECKING:
    from ...app import App

__all__ = ["IMAPListener", "start_server"]

log = logging.getLogger("postroom.imap")

# asyncio stream buffer limit; our own decoder enforces the protocol limits.
STREAM_LIMIT = 1024 * 1024
# At stop, how long to wait for the IMAP cache's pending writes (App.stop allows 2 s).
DRAIN_SECONDS = 1.5


async def start_server(app: App, host: str, port: int, *, implicit_tls: bool) -> IMAPListener:
    """Listen for IMAP (IMAPS when ``implicit_tls``) on ``host:port``.

    Raises:
        OSError: the address cannot be bound.
        ValueError: implicit TLS without a certificate.
    """
    if implicit_tls and app.ssl_context is None:
        raise ValueError("IMAPS needs a certificate (--tls-cert/--tls-key or --tls-self-signed)")
    listener = IMAPListener(app, implicit_tls)
    listener.server = await asyncio.start_server(
        listener.handle,
        host,
        port,
        ssl=app.ssl_context if implicit_tls else None,
        limit=STREAM_LIMIT,
    )
    return listener


class IMAPListener:
    """The listening socket plus its live sessions."""

    def __init__(self, app: App, implicit_tls: bool) -> None:
        self.app = app
        self.implicit_tls = implicit_tls
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.sessions: dict[asyncio.Task[Any], Session] = {}
        # /metrics (web/metrics.py): shared by IMAP and IMAPS, counted on the loop's thread
        self.counters: Counter[str] = app.extras.setdefault("imap_counters", Counter())

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets) if self.server is not None else ()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self.app, reader, writer, self.implicit_tls)
        refusal = self._admit(session)
        if refusal is not None:
            log.warning("imap %s: refused: %s", session.peer, refusal)
            self.counters["refused"] += 1
            writer.write(b"* BYE [UNAVAILABLE] " + refusal.encode() + b"\r\n")
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.sessions[task] = session
        self.counters["sessions"] += 1
        self.counters["open"] += 1
        try:
            await session.run()
        except asyncio.CancelledError:
            pass  # the server is stopping; the session closed its socket
        except Exception:
            log.exception("imap session crashed")
        finally:
            self.tasks.discard(task)
            self.sessions.pop(task, None)
            self.counters["open"] -= 1

    def _admit(self, new: Session) -> str | None:
        """None if ``new`` may run (after making room if needed), else why it may not."""
        settings = self.app.settings
        return admit(
            self.sessions.values(), new.address, settings.imap_max_connections, settings.imap_max_per_address
        )

    def close(self) -> None:
        """Stop listening and end every session, and the message cache's timer (a pending
        grace would keep the cache, up to RAW_CACHE_BYTES of it, alive after the server:
        postroom.testing runs one loop for a process's servers)."""
        if self.server is not None:
            self.server.close()
        for t in list(self.tasks):
            t.cancel()
        cache = self.app.extras.get(CACHE_KEY)
        if isinstance(cache, MessageCache):
            cache.dying.close()

    async def wait_closed(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        cache = self.app.extras.get(CACHE_KEY)
        if isinstance(cache, MessageCache):
            # what sessions derived is written behind them; keep it for the next start
            await asyncio.to_thread(cache.writes.drain, DRAIN_SECONDS)
        if self.server is not None:
            await self.server.wait_closed()
