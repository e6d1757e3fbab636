"""``postroom.Server``: the whole postroom, in-process, on free loopback ports.

Two ways to run it::

    with Server() as mail:                  # on the process's background event-loop thread
        send_password_reset("alice@example.com", port=mail.smtp_port)
        msg = mail.wait_for(to="alice@example.com", subject="Reset")

    async with Server() as mail:            # inside the running loop (async tests)
        ...
        [msg] = await mail.wait_for_async(to="alice@example.com")

Every listener binds port 0 (the kernel picks a free port, so parallel test processes
never clash) and the store is a throwaway SQLite file in memory-backed storage. Reads go
straight to the store (no HTTP); waiting wakes on the server's event bus.

:meth:`Server.scope` gives an isolated view that sees only mail arriving after it was
made: the pytest plugin's ``mail`` fixture uses it on a shared session server.

Errors: :class:`~postroom.app.ListenerError` (a port cannot be bound) and
:class:`~postroom.config.ConfigError` (bad settings) from :meth:`Server.start`;
:class:`~postroom.testing.reader.NoMatchingMail` from waits and assertions;
``RuntimeError`` for a blocking call made on the server's own loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import Settings
from ..events import (
    Event,
    MessagesDeleted,
    MessagesIndexed,
    MessagesPruned,
    MessageStored,
    ReadChanged,
    StoreTruncated,
    TagRenamed,
    TagsChanged,
)
from ..message import take_parse
from ..runtime.models import Message
from ..store.base import IndexProgress, Summary
from ..store.conforms import conforms
from ..store.sqlite_direct import DirectCommit
from .reader import MailReader, plural

if TYPE_CHECKING:
    from ..app import App
    from ..runtime.chaos import Chaos
    from ..runtime.handlers import Handler, Handlers, RcptHandler, SMTPHandler
    from ..runtime.webhooks import Webhooks

__all__ = ["MailView", "Server"]

log = logging.getLogger("postroom")

H = TypeVar("H", bound="Handler")
R = TypeVar("R", bound="RcptHandler")

# Listeners started by default; True means "127.0.0.1:0" (a free loopback port).
_LISTENERS = ("smtp", "smtps", "http", "pop3", "pop3s", "imap", "imaps")
_DEFAULT_ON = frozenset({"smtp", "http", "pop3", "imap"})
# What Server(lazy=True) starts on first use instead of at start (SMTP always starts).
_LAZY = frozenset({"http", "pop3", "pop3s", "imap", "imaps"})
# Parsed messages kept per server (parsing costs about a millisecond each).
_CACHE_SIZE = 2000
# Largest listing fetched from the store for one read.
_FETCH_LIMIT = 100_000
# A view's queries look at mail received from this long before it was made (clock steps,
# equal timestamps); older mail it knows is not its own is left out by ID.
_VIEW_MARGIN = 2.0
# The newest messages a view takes as "already there" when it is made (events in flight).
_VIEW_RECENT = 64
# Seconds allowed for the server thread to start and stop.
_START_TIMEOUT = 30.0
# Events after which the set of messages (or their indexing) may have changed.
# what can change the answer of a MailReader query (a FolderChanged comes with one of these)
_CHANGES = (
    MessageStored,
    MessagesIndexed,
    ReadChanged,
    TagsChanged,
    TagRenamed,
    MessagesDeleted,
    MessagesPruned,
    StoreTruncated,
)


# The event loop that in-process servers started with Server.start() run on: one per
# process (made again after a fork), never closed. Each start() hands it to a new daemon
# thread (_on_new_loop_thread): on a loaded machine the scheduler made a thread that had run
# every test server of the session wait for a core at most wake-ups (whole runs of the
# fixture benchmark at 10 ms a test instead of 2.5, docs/performance.md), a new one does not.
# The new thread waits for the old one to end and runs the start itself: the starting
# thread waits for that thread's start and for the start's result, where joining the old
# thread, starting the new one, waiting for it to run the loop and then for the start had it
# wait four times for another thread.
_loop_lock = threading.Lock()
# (pid, loop, its thread's ident, its thread)
_loop_state: tuple[int, asyncio.AbstractEventLoop, int, threading.Thread] | None = None


def _loop_ident() -> int | None:
    """The ident of the thread running the process's server loop now."""
    state = _loop_state
    return state[2] if state is not None and state[0] == os.getpid() else None


def _on_new_loop_thread(coro: Any) -> concurrent.futures.Future[Any]:
    """Run ``coro`` on the process's server loop (made on first use), handed to a new thread
    first (its servers, tasks and callbacks carry on there); its result as
    :func:`asyncio.run_coroutine_threadsafe` gives it."""
    global _loop_state
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def work() -> None:
        if not done.set_running_or_notify_cancel():
            coro.close()
            return
        task = asyncio.ensure_future(coro)

        def finished(t: asyncio.Future[Any]) -> None:
            if t.cancelled():
                done.set_exception(concurrent.futures.CancelledError())
            elif (e := t.exception()) is not None:
                done.set_exception(e)
            else:
                done.set_result(t.result())

        task.add_done_callback(finished)

    with _loop_lock:
        state = _loop_state
        old: threading.Thread | None = None
        if state is not None and state[0] == os.getpid():
            loop, old = state[1], state[3]
            loop.call_soon_threadsafe(loop.stop)  # run_forever returns between two callbacks
        else:
            loop = asyncio.new_event_loop()

        def run() -> None:
            if old is not None:
                old.join()  # the loop runs on one thread at a time
            asyncio.set_event_loop(loop)
            loop.call_soon(work)
            loop.run_forever()

        thread = threading.Thread(target=run, name="postroom-servers", daemon=True)
        thread.start()
        assert thread.ident is not None
        _loop_state = (os.getpid(), loop, thread.ident, thread)
    return done


# Servers stopped with Server.stop(wait=False) (the mail fixture's teardown): they are
# stopped on the loop thread by the next Server.start() of the process, in the same hand-off
# as that start, or at the interpreter's exit. Waking the loop thread at teardown would have
# it take the interpreter lock from pytest for the whole stop.
_stopping_lock = threading.Lock()
_stopping: list[tuple[int, App]] = []  # (pid, app): after a fork the parent's are not ours
_exit_hook = False  # _stop_deferred is an exit hook


async def _stop_all(apps: list[App]) -> None:
    for app in apps:
        try:
            await app.stop(blocking=True)
        except Exception:
            log.exception("postroom server stop failed")


def _take_deferred() -> list[App]:
    with _stopping_lock:
        apps = [app for pid, app in _stopping if pid == os.getpid()]
        _stopping.clear()
    return apps


def _stop_deferred(timeout: float = _START_TIMEOUT) -> None:
    """Stop the servers left by stop(wait=False) now (at exit)."""
    apps = _take_deferred()
    state = _loop_state
    if apps and state is not None and state[0] == os.getpid():
        try:
            asyncio.run_coroutine_threadsafe(_stop_all(apps), state[1]).result(timeout)
        except Exception:
            log.exception("postroom servers did not stop at exit")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


_setting_names: frozenset[str] | None = None  # every Settings field
_default_valid = False  # build_settings(None, {}) passed validate() once


def build_settings(base: Settings | None, options: dict[str, Any]) -> Settings:
    """Settings for an in-process server: free ports, a throwaway store, indexer thread.

    Raises:
        TypeError: an option that is not a setting.
        ConfigError: a value that cannot work.
    """
    global _setting_names, _default_valid
    if _setting_names is None:
        _setting_names = frozenset(f.name for f in fields(Settings))
    unknown = sorted(set(options) - _setting_names)
    if unknown:
        raise TypeError(f"unknown postroom setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {} if base is None else {f.name: getattr(base, f.name) for f in fields(base)}
    if base is None:
        values.update(db=":memory:", indexer="thread", quiet=True, enable_chaos=True)
        for name in _LISTENERS:
            values[name] = "127.0.0.1:0" if name in _DEFAULT_ON else "off"
    for name, value in options.items():
        if name in _LISTENERS and isinstance(value, bool):
            value = "127.0.0.1:0" if value else "off"
        values[name] = value
    if values.get("indexer") == "process":
        values["indexer"] = "thread"  # a process per test server would cost 100+ ms
    settings = Settings(**values)
    if base is None and not options:
        if not _default_valid:  # the same values every time (the mail fixture's): checked once
            settings.validate()
            _default_valid = True
    else:
        settings.validate()
    return settings


class _Base(MailReader):
    """What a server and its views share: the address properties and the store reads."""

    _server: Server

    # -- addresses ------------------------------------------------------------------------

    def address(self, name: str) -> tuple[str, int]:
        """(host, port) of a listener: "smtp", "http", "imap", "pop3", "smtps", ...

        Raises:
            KeyError: that listener is not running.
        """
        server = self._server
        try:
            return server.app.addresses[name]
        except KeyError:
            if name in server._deferred and server._owns_loop:
                # started on first use (Server(lazy=True), the mail fixture)
                bound = server.call(server.app.start_listener(name))
                if bound is not None:
                    return tuple(bound)  # type: ignore[return-value]
            raise KeyError(
                f"the {name} listener is not running (started: {self._server.listeners})"
            ) from None

    addr = address  # the name tests/helpers.RunningServer used

    @property
    def host(self) -> str:
        return self.address("smtp")[0]

    @property
    def smtp_port(self) -> int:
        return self.address("smtp")[1]

    @property
    def smtps_port(self) -> int:
        return self.address("smtps")[1]

    @property
    def imap_port(self) -> int:
        return self.address("imap")[1]

    @property
    def imaps_port(self) -> int:
        return self.address("imaps")[1]

    @property
    def pop3_port(self) -> int:
        return self.address("pop3")[1]

    @property
    def pop3s_port(self) -> int:
        return self.address("pop3s")[1]

    @property
    def http_url(self) -> str:
        """Base URL of the web UI and API (ends without a slash)."""
        host, port = self.address("http")
        scheme = "https" if self._server.app.settings.http_tls else "http"
        shown = f"[{host}]" if ":" in host else host
        root = self._server.app.settings.webroot.strip("/")
        return f"{scheme}://{shown}:{port}" + (f"/{root}" if root else "")

    @property
    def chaos(self) -> Chaos:
        """Fault injection for this server (see :mod:`postroom.runtime.chaos`)."""
        return self._server.app.chaos

    @property
    def handlers(self) -> Handlers:
        """Message handlers of this server (see :mod:`postroom.runtime.handlers`)."""
        return self._server.app.handlers

    @property
    def webhooks(self) -> Webhooks:
        return self._server.app.webhooks

    def handler(self, fn: H) -> H:
        """Add a message handler (usable as a decorator); ``handlers.clear()`` removes it."""
        self.handlers.add(fn)
        return fn

    def rcpt_handler(self, fn: R) -> R:
        """Add a recipient handler ``(address, envelope) -> decision``, run at each RCPT TO
        (usable as a decorator)."""
        self.handlers.add_rcpt(fn)
        return fn

    # -- MailReader backend -----------------------------------------------------------------

    def _listing(self, mailbox: str | None, query: str | None) -> list[Summary]:
        """Summaries of the matching messages, oldest first."""
        page = self._server.app.store.list_messages(mailbox=mailbox, query=query, limit=_FETCH_LIMIT)
        return list(reversed(page.messages))

    def _ids(self, mailbox: str | None, query: str | None) -> list[str]:
        return [s.id for s in self._listing(mailbox, query)]

    def _scope_ids(self) -> list[str]:
        """Every message ID in scope (the whole store for a server)."""
        return self._ids(None, None)

    def _unindexed(self, ids: list[str] | None) -> list[str]:
        store = self._server.app.store
        if not conforms(store, IndexProgress):
            return []  # a backend that indexes as it stores
        direct = getattr(store, "direct", None)
        if ids is not None and isinstance(direct, DirectCommit) and direct.indexed_before_reads(store):  # type: ignore[arg-type]
            # what wait_for returns: a query's reads index it first (store/sqlite_direct.py),
            # and a query waits (ids None) for what that fails to index
            return []
        return store.unindexed(self._scope_ids() if ids is None else ids)

    def _subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        def on_event(ev: Event) -> None:
            if isinstance(ev, _CHANGES):
                wake()

        return self._server.app.bus.subscribe(on_event)

    def _check_blocking_allowed(self) -> None:
        server = self._server
        ident = _loop_ident() if server._owns_loop else server._loop_thread
        if server._loop is not None and threading.get_ident() == ident:
            raise RuntimeError(
                "this call would block the server's own event loop; "
                "use `await ....wait_for_async(...)` in async code"
            )


class Server(_Base):
    """The whole postroom app in this process. See the module docstring.

    Args:
        settings: a full :class:`~postroom.config.Settings` to start from (default: free
            loopback ports, a throwaway store).
        handler: a message handler to install at start.
        chaos: a ``--chaos`` spec to load at start.
        lazy: start SMTP only, and each other listener the first time its address is
            asked for (``http_url``, ``imap_port``...): what the ``mail`` fixture does, so a
            test pays for what it uses. Ignored by :meth:`start_async`.
        **options: any setting by name (``smtp_require_auth=True``, ``smtp_auth_file=...``);
            a listener given as True/False is started on a free port / not started.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        handler: Handler | SMTPHandler | None = None,
        chaos: str | None = None,
        lazy: bool = False,
        **options: Any,
    ) -> None:
        if chaos:
            options["chaos"] = chaos
        self.settings = build_settings(settings, options)
        self._handler = handler
        # listeners other than SMTP that start on first use (lazy=True, in a thread only)
        self._lazy = lazy
        self._deferred: frozenset[str] = frozenset()
        self._app: App | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._owns_loop = False
        self._cache: OrderedDict[str, Message] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._server = self

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def app(self) -> App:
        if self._app is None:
            raise RuntimeError("the server is not running; call start() or use `with Server() as s:`")
        return self._app

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on."""
        if self._loop is None:
            raise RuntimeError("the server is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._app is not None

    @property
    def listeners(self) -> list[str]:
        return list(self._app.addresses) if self._app is not None else []

    def start(self) -> Server:
        """Start on the process's background event-loop thread; returns self.

        Every in-process server started this way shares one loop thread (started with the
        first): a test server costs no thread of its own to start and to join.

        Raises:
            ListenerError, ConfigError, StoreError: the server could not start.
        """
        if self._app is not None:
            raise RuntimeError("the server is already running")
        from ..app import App

        if threading.get_ident() == _loop_ident():
            raise RuntimeError("start() would block postroom's event loop: use `await server.start_async()`")
        app = App(self.settings)
        try:
            # first stop the servers left by stop(wait=False): one hand-off for both
            start = self._start_app(app, self._lazy, blocking=True, stop_first=_take_deferred())
            _on_new_loop_thread(start).result(_START_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise RuntimeError(f"postroom did not start within {_START_TIMEOUT:g} s") from None
        state = _loop_state
        assert state is not None
        loop, self._loop_thread = state[1], state[2]
        self._app, self._loop, self._owns_loop = app, loop, True
        return self

    async def _start_app(
        self, app: App, lazy: bool = False, *, blocking: bool = False, stop_first: list[App] | None = None
    ) -> None:
        if stop_first:
            await _stop_all(stop_first)
        self._deferred = _LAZY if lazy else frozenset()
        await app.start(defer=self._deferred, blocking=blocking)
        if self._handler is not None:
            app.handlers.add(self._handler)

    def stop(self, *, wait: bool = True) -> None:
        """Stop the server and delete its throwaway store. Idempotent.

        Args:
            wait: False returns at once and leaves the stop to the next :meth:`start` of a
                server in this process (in the same hand-off to the loop thread) or to the
                interpreter's exit: the ``mail`` fixture's teardown. Until then the server's
                listeners stay open; a failure to stop is logged, not raised.
        """
        app, loop = self._app, self._loop
        if app is None or loop is None:
            return
        if not self._owns_loop:
            raise RuntimeError("this server runs in your event loop: use `await server.stop_async()`")
        self._app = None
        self._loop = self._loop_thread = None
        self._cache.clear()
        if not wait:
            global _exit_hook
            with _stopping_lock:
                _stopping.append((os.getpid(), app))
                if not _exit_hook:  # registered after the store's own exit hooks: runs before them
                    atexit.register(_stop_deferred)
                    _exit_hook = True
            return
        asyncio.run_coroutine_threadsafe(app.stop(blocking=True), loop).result(_START_TIMEOUT)

    async def start_async(self) -> Server:
        """Start inside the running event loop; returns self.

        Raises:
            ListenerError, ConfigError, StoreError: the server could not start.
        """
        if self._app is not None:
            raise RuntimeError("the server is already running")
        from ..app import App

        app = App(self.settings)
        await self._start_app(app)
        self._app, self._loop, self._owns_loop = app, asyncio.get_running_loop(), False
        self._loop_thread = threading.get_ident()
        return self

    async def stop_async(self) -> None:
        """Stop a server started with :meth:`start_async` (or from another loop). Idempotent."""
        app = self._app
        if app is None:
            return
        if self._owns_loop:
            await asyncio.to_thread(self.stop)
            return
        self._app = None
        try:
            await app.stop()
        finally:
            self._loop = None
            self._loop_thread = None
            self._cache.clear()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Server:
        return await self.start_async()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def scope(self) -> MailView:
        """An isolated view: it sees (and clears) only mail arriving from now on."""
        return MailView(self)

    # -- MailReader backend -----------------------------------------------------------------

    def load(self, ids: list[str], listed: dict[str, Summary] | None = None) -> list[Message]:
        """Messages by ID (skipping deleted ones), parsed once and cached; ``listed``: their
        summaries when a listing gave them already (not read again)."""
        store = self.app.store
        out = []
        for mid in ids:
            with self._cache_lock:
                msg = self._cache.get(mid)
            if msg is None:
                summary = listed.get(mid) if listed is not None else None
                if summary is None:
                    summary = store.get_summary(mid)
                raw = store.get_raw(mid)
                if summary is None or raw is None:
                    continue
                # (parsed by the indexer of this server's store, when it indexed it first)
                msg = Message(raw, summary=summary, envelope=store.get_envelope(mid), parsed=take_parse(raw))
                with self._cache_lock:
                    self._cache[mid] = msg
                    while len(self._cache) > _CACHE_SIZE:
                        self._cache.popitem(last=False)
            out.append(msg)
        return out

    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        with self._unindexed_reads(query):
            found = self._listing(mailbox, query)
            return self.load([s.id for s in found], {s.id: s for s in found})

    def _unindexed_reads(self, query: str | None) -> contextlib.AbstractContextManager[None]:
        """Reads without a query need nothing of the index (the messages are parsed here):
        mail waiting for it (store/sqlite_direct.py) is not indexed for them."""
        store = self.app.store
        direct = getattr(store, "direct", None)
        if query is not None or not isinstance(direct, DirectCommit):
            return contextlib.nullcontext()
        return direct.unindexed_reads(store)  # type: ignore[arg-type]

    def _delete(self, ids: list[str] | None) -> None:
        self.app.store.delete_messages(ids)
        with self._cache_lock:
            if ids is None:
                self._cache.clear()
            else:
                for mid in ids:
                    self._cache.pop(mid, None)

    def __repr__(self) -> str:
        if self._app is None:
            return "<postroom.Server (stopped)>"
        where = ", ".join(f"{n}={h}:{p}" for n, (h, p) in self._app.addresses.items())
        return f"<postroom.Server {where}>"


class MailView(_Base):
    """The mail of one server that arrived after the view was made (one test's mail).

    Reads, waits and clears see only those messages, so tests sharing one server do not
    see each other's mail as long as they run one after another (as in one pytest or
    pytest-xdist worker). Call :meth:`close` (or use it as a context manager) when done.
    """

    def __init__(self, server: Server) -> None:
        self._server = server
        self._mine: dict[str, tuple[str, ...]] = {}  # ID -> To/Cc/Bcc addresses, in arrival order
        self._lock = threading.Lock()
        self._before: frozenset[str] = frozenset()
        self._unsubscribe: Callable[[], None] | None = server.app.bus.subscribe(self._on_event)
        # Queries are narrowed to mail received since then (the store's own clock).
        self._after = _iso(time.time() - _VIEW_MARGIN)
        # A message acknowledged just before the view was made may have its event still on
        # its way to the loop; it is among the newest few in the store: not this view's.
        page = server.app.store.list_messages(limit=_VIEW_RECENT)
        self._before = frozenset(s.id for s in page.messages)

    @property
    def server(self) -> Server:
        return self._server

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, MessageStored):
            s = ev.summary
            rcpts = tuple(a.address.lower() for a in (*s.to, *s.cc, *s.bcc))
            with self._lock:
                self._mine[ev.id] = rcpts

    def close(self) -> None:
        """Stop tracking new mail (the messages stay on the server)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def __enter__(self) -> MailView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _owned(self) -> list[str]:
        mark = f"+{self._token}@" if self._namespaced else ""
        with self._lock:
            return [
                i
                for i, rcpts in self._mine.items()
                if i not in self._before and (not mark or any(mark in r for r in rcpts))
            ]

    def _scope_ids(self) -> list[str]:
        return self._owned()

    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        mine = self._owned()
        if not mine:
            return []
        if mailbox is None and query is None:
            with self._server._unindexed_reads(None):
                return self._server.load(mine)
        # only what arrived since the view was made: the cost does not grow with the store
        narrowed = f"after:{self._after}" + (f" ({query})" if query else "")
        listed = {s.id: s for s in self._listing(mailbox, narrowed)}
        return self._server.load([i for i in mine if i in listed], listed)

    def _delete(self, ids: list[str] | None) -> None:
        owned = self._owned()
        targets = owned if ids is None else [i for i in ids if i in set(owned)]
        if targets:
            self._server._delete(targets)
        with self._lock:
            for i in targets:
                self._mine.pop(i, None)

    def __repr__(self) -> str:
        return f"<postroom.MailView of {self._server!r}: {plural(len(self._owned()))}>"
