"""Composition root: builds the store, the event bus and the servers, runs them on one loop.

Each listener module exposes ``async def start_server(app, host, port, *, implicit_tls)``
returning an ``asyncio.Server`` (or an object with ``close()`` and ``wait_closed()``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .authlimit import AuthLimiter
from .config import Settings, parse_hostport
from .events import Bus
from .store import open_store
from .store.base import Store

if TYPE_CHECKING:
    from .outbound.service import Outbound
    from .runtime.chaos import Chaos
    from .runtime.handlers import Handlers
    from .runtime.webhooks import Webhooks
    from .servers.smtp_hooks import SMTPHook

__all__ = ["App", "ListenerError"]

log = logging.getLogger("postroom")


class ListenerError(RuntimeError):
    """A listener could not start (port in use, permission denied...)."""


class Closable(Protocol):
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...


@dataclass
class App:
    settings: Settings
    store: Store = field(init=False)  # set by start(); store_open says whether it is set
    store_open: bool = field(default=False, init=False)
    bus: Bus = field(default_factory=Bus)
    ssl_context: ssl.SSLContext | None = None
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # per-listener state (POP3 locks, stats...)
    # runtime features (postroom.runtime, built by runtime.install at start)
    smtp_hooks: list[SMTPHook] = field(default_factory=list)  # called by the SMTP listener
    chaos: Chaos = field(init=False)
    handlers: Handlers = field(init=False)
    webhooks: Webhooks = field(init=False)
    request_stop: Callable[[], None] | None = None  # stops `postroom serve` (--exit-after)
    # failed logins per client address, shared by HTTP, SMTP, POP3 and IMAP (authlimit.py)
    auth_limiter: AuthLimiter = field(init=False)
    outbound: Outbound | None = None  # release, relay and forward (docs/relay.md)
    _servers: list[Closable] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.auth_limiter = AuthLimiter.from_settings(self.settings)

    async def start(self, *, defer: frozenset[str] = frozenset(), blocking: bool = False) -> None:
        """Open the store and start every listener that is not 'off'.

        Args:
            defer: listeners to start later, on first use (:meth:`start_listener`): what
                postroom's pytest fixture does with everything but SMTP.
            blocking: open the store on the loop's own thread, which is free to block
                because nothing else runs on it yet (an in-process server's own loop): no
                worker thread is started for it, a few milliseconds per test server.
        """
        loop = asyncio.get_running_loop()
        self.bus.bind(loop)
        if self.settings.tls_enabled:
            from .servers.tls import make_server_context

            self.ssl_context = make_server_context(self.settings)
        self.store = open_store(self.settings, self.bus)
        self.store_open = True  # stop() closes it, also when start() fails
        if blocking:
            self.store.start()
        else:
            await asyncio.to_thread(self.store.start)
        try:
            from .runtime.install import install  # chaos, handlers, webhooks, --print

            install(self)
            s = self.settings
            if s.smtp_relay_config or s.smtp_relay_keys or s.smtp_forward_config or s.smtp_forward_keys:
                # (imported only then: its MX lookups bring DNS modules, before the greeting)
                from .outbound.service import build as build_outbound

                self.outbound = build_outbound(self.settings, self.store)
                if self.outbound is not None:
                    self.outbound.start(self.bus, self.spawn)
            for name in self._plan():
                if name not in defer:
                    await self.start_listener(name)
            await self._wait_ready()
            if self.settings.fetch_config:
                await self._start_fetch()
        except BaseException:
            await self.stop()
            raise

    async def _start_fetch(self) -> None:
        """Fetch the accounts of --fetch-config into this server (docs/fetch.md)."""
        from .fetch.service import build as build_fetch

        s = self.settings
        service = build_fetch(s.fetch_config, s.fetch_state, s.fetch_interval)
        addr = await self.start_listener("imap")
        assert addr is not None  # validate() requires the IMAP listener
        service.start(*addr)
        self.extras["fetch"] = service

    def _plan(self) -> dict[str, tuple[str, str, bool]]:
        """Listener name -> (address setting, module, implicit TLS), for those not 'off'."""
        s = self.settings
        plan = {
            "smtp": (s.smtp, "smtp", False),
            "smtps": (s.smtps, "smtp", True),
            "http": (s.http, "http", s.http_tls),
            "pop3": (s.pop3, "pop3", False),
            "pop3s": (s.pop3s, "pop3", True),
            "imap": (s.imap, "imap", False),
            "imaps": (s.imaps, "imap", True),
        }
        return {name: p for name, p in plan.items() if p[0] != "off"}

    async def start_listener(self, name: str) -> tuple[str, int] | None:
        """Start the listener ``name`` now (once); returns its bound address, None when
        it is 'off'.

        Raises:
            ListenerError: the port cannot be bound.
        """
        if name in self.addresses:
            return self.addresses[name]
        planned = self._plan().get(name)
        if planned is None:
            return None
        addr, module, implicit = planned
        starter = await _starter(module)
        host, port = parse_hostport(addr, name)
        try:
            server = await starter(self, host, port, implicit_tls=implicit)
        except OSError as e:
            reason = e.strerror or str(e)
            raise ListenerError(f"cannot listen for {name} on {host}:{port}: {reason}") from None
        self._servers.append(server)
        self.addresses[name] = _bound_address(server, host, port)
        return self.addresses[name]

    async def _wait_ready(self) -> None:
        for server in self._servers:  # listeners served by other processes: wait until they are
            ready = getattr(server, "ready", None)
            if ready is not None:
                await ready()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run a background task that is cancelled at stop."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        return task

    async def stop(self, *, blocking: bool = False) -> None:
        """Stop the listeners and background tasks, then close the store (``blocking``: on
        this thread, for a loop that serves nothing else any more; see :meth:`start`)."""
        fetch = self.extras.pop("fetch", None)
        if fetch is not None:
            await asyncio.to_thread(fetch.stop)
        for server in reversed(self._servers):
            server.close()
        for task in self._tasks:
            task.cancel()
        for server in reversed(self._servers):
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except (TimeoutError, Exception):
                pass
        self._servers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        if self.store_open:
            self.store_open = False
            if blocking:
                self.store.close()
            else:
                await asyncio.to_thread(self.store.close)

    def banner(self) -> str:
        parts = []
        for name, (host, port) in self.addresses.items():
            scheme = {"http": "https" if self.settings.http_tls else "http"}.get(name, name)
            shown = f"[{host}]" if ":" in host else host
            parts.append(f"{name} {scheme}://{shown}:{port}" if name == "http" else f"{name} {shown}:{port}")
        return "postroom ready: " + ", ".join(parts) + f" (store {self.settings.db_target})"


async def _starter(module: str) -> Any:
    """``start_server`` of ``postroom.servers.<module>``, imported on first use (a test server
    that only speaks SMTP never loads IMAP) and, the first time, on a worker thread: the
    listeners started before it (SMTP first) answer while the web app (a quarter of a
    second of imports) loads."""
    import importlib

    name = f"postroom.servers.{module}"
    loaded = sys.modules.get(name)
    # (a module another thread is importing is in sys.modules already, half made: the
    # store's indexer imports servers.imap's modules; import_module waits for it)
    if loaded is None or getattr(getattr(loaded, "__spec__", None), "_initializing", False):
        loaded = await asyncio.to_thread(importlib.import_module, name)
    return loaded.start_server


def _bound_address(server: Any, host: str, port: int) -> tuple[str, int]:
    sockets = getattr(server, "sockets", None) or ()
    for sock in sockets:
        name = sock.getsockname()
        return str(name[0]), int(name[1])
    bound = getattr(server, "bound_port", None)
    return host, int(bound) if bound else port
