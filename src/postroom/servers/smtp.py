"""The SMTP listener: binds the sans-IO core (:mod:`postroom.protocols.smtp`) to sockets.

:func:`start_server` binds the address and, with SMTP worker processes
(:mod:`.smtp_workers`), shares the socket with them (this process accepts until the first
worker does, and again if every worker has gone); :class:`SMTPListener` holds what the
sessions share (settings, authenticator, the connection gate, the open sessions), closes
sessions past their deadlines, and on stopping lets open sessions finish for up to
:data:`DRAIN_SECONDS`. Each connection is an :class:`~.smtp_session.SMTPSession`
(:mod:`.smtp_session`: the session protocol, the hooks and the delivery of a message);
its public names are importable from here as well.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..authlimit import AuthLimiter
from ..protocols.smtp import COMMAND_TIMEOUT, SMTPConfig
from ..store.base import Envelope
from ..store.ingest import Ingest, ingest_paths
from .auth import Authenticator
from .smtp_gate import GATE_KEY, ConnectionGate, LocalGate, SharedGate
from .smtp_hooks import SMTPHook
from .smtp_session import (
    HOOK_STAGES,
    MAX_BUFFER_WHILE_BUSY,
    Hook,
    HookDisconnect,
    SessionInfo,
    SMTPSession,
)
from .smtp_workers import WorkerPool, worker_count

if TYPE_CHECKING:
    from ..app import App
    from ..config import Settings

__all__ = [
    "HOOK_STAGES",
    "MAX_BUFFER_WHILE_BUSY",
    "Hook",
    "HookDisconnect",
    "SMTPHost",
    "SMTPListener",
    "SMTPSession",
    "SessionInfo",
    "start_server",
]

log = logging.getLogger(__name__)

# Seconds between the last SMTP worker's exit and this process accepting SMTP itself: a
# signal sent to the whole process group stops the workers a moment before this process.
TAKEOVER_GRACE = 0.5
# how long sessions may carry on once the server is stopping (a QUIT on its way gets 221)
DRAIN_SECONDS = 1.0
# after the drain, how long a closed session's pending step (a slow hook) may still run
TASK_GRACE_SECONDS = 0.5
# Seconds to wait at start for the first SMTP worker to accept connections (it usually takes
# ~0.3 s: a new interpreter importing the SMTP server); past it, this process accepts too.
WORKER_START_LIMIT = 15.0


class SMTPHost(Protocol):
    """What an SMTP listener uses of its application: :class:`~postroom.app.App`, or an SMTP
    worker process's stand-in (servers/smtp_workers.py), whose store is a journal writer."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Ingest: ...
    @property
    def ssl_context(self) -> ssl.SSLContext | None: ...
    @property
    def extras(self) -> dict[str, Any]: ...
    @property
    def smtp_hooks(self) -> list[SMTPHook]: ...
    @property
    def auth_limiter(self) -> AuthLimiter: ...


async def start_server(app: App, host: str, port: int, *, implicit_tls: bool = False) -> SMTPListener:
    """Listen for SMTP (or SMTPS when ``implicit_tls``) on ``host:port``.

    Raises:
        OSError: the address cannot be bound.
        ValueError: implicit TLS without ``app.ssl_context``.
    """
    if implicit_tls and app.ssl_context is None:
        raise ValueError("implicit TLS needs a certificate (app.ssl_context)")
    _connection_gate(app)
    listener = SMTPListener(app, implicit_tls)
    loop = asyncio.get_running_loop()
    workers = 0 if implicit_tls else worker_count(app)
    if workers:
        # One socket, accepted from by the worker processes only (measured faster than sharing
        # it with this process, whose loop also runs HTTP, IMAP and POP3); this process starts
        # accepting itself if every worker has gone. It is bound here (a port in use is this
        # process's error); SMTPListener.ready waits for the first worker to serve it.
        sock = _bind(host, port)
        server = await loop.create_server(listener.new_session, sock=sock, backlog=1024, start_serving=False)
        listener.server = server

        def take_over() -> None:
            if listener.pool is None or listener.pool.closing:
                return  # postroom is stopping (the workers got the same signal): nothing to do
            log.error("every SMTP worker process has exited: accepting SMTP in the main process")
            listener.takeover = loop.create_task(server.start_serving())

        def all_workers_gone() -> None:  # called from a pool thread
            loop.call_soon_threadsafe(loop.call_later, TAKEOVER_GRACE, take_over)

        gate = listener.gate
        assert isinstance(gate, SharedGate)  # _connection_gate made it for these workers
        listener.pool = WorkerPool(app, on_all_gone=all_workers_gone, gate=gate)
        listener.pool.start(sock, workers)
        # Until the first worker accepts (a new interpreter: ~0.3 s), this process does, on a
        # duplicate of the socket: a restarted server greets without waiting for its workers.
        listener.early = await loop.create_server(listener.new_session, sock=sock.dup(), backlog=1024)
        listener.early_end = loop.create_task(listener.end_early(listener.pool))
    elif _numeric(host):
        # bound here, as asyncio would bind it: no address lookup (a task and two turns of
        # the loop at every test server's start)
        sock = _bind(host, port, v6only=True)
        try:
            listener.server = await loop.create_server(
                listener.new_session, sock=sock, ssl=app.ssl_context if implicit_tls else None, backlog=1024
            )
        except BaseException:
            sock.close()
            raise
    else:
        listener.server = await loop.create_server(
            listener.new_session,
            host,
            port,
            ssl=app.ssl_context if implicit_tls else None,
            reuse_address=True,
            backlog=1024,
        )
    listener.start_sweeper()
    return listener


def _connection_gate(app: App) -> ConnectionGate:
    """The one connection count of ``app``'s SMTP and SMTPS listeners and SMTP worker
    processes (smtp_gate.py), made by whichever listener starts first: shared memory sized
    for the workers the plain listener will start (SMTPS is served by this process only).
    It was made by the SMTP listener, so an SMTPS listener started before it kept a count
    of its own."""
    gate: ConnectionGate | None = app.extras.get(GATE_KEY)
    if gate is None:
        limit = app.settings.smtp_max_connections
        workers = worker_count(app) if app.settings.smtp != "off" else 0
        gate = SharedGate.create(workers + 1, limit) if workers else LocalGate(limit)
        app.extras[GATE_KEY] = gate
    return gate


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _numeric(host: str) -> bool:
    """``host`` is an IPv4 or IPv6 address (no name to look up)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%", 1)[0])
            return True
        except OSError:
            pass
    return False


def _bind(host: str, port: int, *, v6only: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` and not listening yet (as socket.create_server
    would make it, without its listen(); ``v6only``: an IPv6 one accepts IPv6 only, as
    asyncio's create_server makes it)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        if os.name == "posix":  # as socket.create_server: elsewhere it lets others take the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6only and sock.family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class SMTPListener:
    """One listening socket and the sessions it accepted. Closable like a server."""

    def __init__(self, app: SMTPHost, implicit_tls: bool) -> None:
        s = app.settings
        self.app = app
        self.implicit_tls = implicit_tls
        self.ssl_context: ssl.SSLContext | None = app.ssl_context
        self.config = SMTPConfig(
            hostname=s.smtp_hostname,
            max_size=s.smtp_max_size,
            max_recipients=s.smtp_max_recipients,
            tls_available=app.ssl_context is not None,
            require_auth=s.smtp_require_auth,
            require_tls=s.smtp_require_tls,
        )
        self.authenticator = (
            Authenticator(s.smtp_auth_file)
            if s.smtp_auth_file
            else Authenticator.inline(s.smtp_auth, "--smtp-auth")
            if s.smtp_auth  # inline "user:password ..." (Mailpit's MP_SMTP_AUTH)
            else None
        )
        self.use_message_dates = s.use_message_dates
        self.limiter = app.auth_limiter  # failed AUTH per client address (authlimit.py)
        self.max_connections = s.smtp_max_connections
        # shared by the SMTP and SMTPS listeners of one app (and by its worker processes)
        self.gate: ConnectionGate = app.extras.setdefault(GATE_KEY, LocalGate(s.smtp_max_connections))
        self.timeout = float(s.smtp_timeout or COMMAND_TIMEOUT)
        # the whole-session deadline (--smtp-session-limit, 0: none)
        self.session_limit = float(s.smtp_session_limit) if s.smtp_session_limit > 0 else None
        # shared by the SMTP and SMTPS listeners of one app: the limit is per server
        self.sessions: set[SMTPSession] = app.extras.setdefault("smtp_sessions", set())
        # tallies for /metrics (sessions, refused connections, messages answered with an error)
        self.counters: Counter[str] = app.extras.setdefault("smtp_counters", Counter())
        self.server: asyncio.Server | None = None
        self.pool: WorkerPool | None = None  # worker processes sharing the socket (smtp_workers.py)
        self.takeover: asyncio.Task[None] | None = None  # this process accepting once they are gone
        self.early: asyncio.Server | None = None  # accepting here until a worker does (start_server)
        self.early_end: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()
        self._sweeper: asyncio.Task[None] | None = None
        # the sessions' async steps (deliver, hook, AUTH, TLS) not finished yet
        self.tasks: set[asyncio.Task[None]] = set()
        # How mail is committed, decided once (store/ingest.py): a store that commits at once
        # (its ingest journal) has messages stored without an asyncio task.
        self.ingest = ingest_paths(app.store)
        self.deliver_now: Callable[[Envelope, bytes], str] | None = self.ingest.deliver_now

    def new_session(self) -> SMTPSession:
        return SMTPSession(self)

    async def end_early(self, pool: WorkerPool) -> None:
        """Stop accepting on the early socket once a worker accepts (or none is left: the
        take-over or :meth:`ready` starts this process's own server)."""
        try:
            await asyncio.to_thread(pool.ready.wait, WORKER_START_LIMIT)
        finally:
            if self.early is not None:
                self.early.close()

    async def ready(self) -> None:
        """Return once SMTP is answered: at once, or when the first worker process serves the
        socket (App waits for this after starting every listener, before it says it is up)."""
        pool, server = self.pool, self.server
        if pool is None or server is None:
            return
        if not await asyncio.to_thread(pool.ready.wait, WORKER_START_LIMIT):
            log.error(
                "no SMTP worker process started within %.0f s: accepting SMTP here too", WORKER_START_LIMIT
            )
            await server.start_serving()

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets) if self.server is not None else ()

    def start_sweeper(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Close sessions past a deadline (one task, not a timer per read): a command (or a
        message) not finished within the timeout of the last reply or progress, or a session
        older than the session limit."""
        interval = min(max(self.timeout / 4, 0.05), 5.0)
        if self.session_limit is not None:
            interval = min(interval, max(self.session_limit / 4, 0.05))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            limit = self.session_limit
            for session in list(self.sessions):
                if session.listener is not self or session.busy:
                    continue
                if now - session.last > self.timeout:
                    session.timed_out()
                elif limit is not None and now - session.started > limit:
                    session.expired()

    def close(self) -> None:
        """Stop listening; :meth:`wait_closed` lets open sessions finish for up to
        :data:`DRAIN_SECONDS`, then says goodbye to the idle ones (421, RFC 5321 3.8)."""
        if self.server is not None:
            self.server.close()
        if self.early is not None:
            self.early.close()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self._sweeper is not None:
            self._sweeper.cancel()
        # Open sessions carry on for a moment (wait_closed): a client that has just had its
        # 250 sends QUIT, and gets 221 rather than 421.

    async def _end_tasks(self) -> None:
        """Let the sessions' async steps finish for up to :data:`TASK_GRACE_SECONDS` (a
        message being stored is stored), then cancel the rest and await them: none is left
        pending on a loop that closes ('Task was destroyed but it is pending')."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=TASK_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def wait_closed(self) -> None:
        if self._sweeper is not None:
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and any(s.listener is self for s in self.sessions):
            await asyncio.sleep(0.01)
        for session in list(self.sessions):
            if session.listener is self:
                session.shutdown()
        await self._end_tasks()
        if self.early_end is not None:
            await asyncio.gather(self.early_end, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
