"""The contract suite's harness: one fixture, parametrised over every storage backend.

Each backend is opened the way the composition root opens it (``open_store`` with a
:class:`~postroom.config.Settings`), on a fresh store, with a :class:`~postroom.events.Bus`
bound to an event loop of the test's own. Tests call the synchronous seam directly and run
the async parts (``deliver``, ``append``) on that loop with :meth:`Backend.run`; events
published after a commit are collected by :meth:`Backend.events`.

Backends: ``sqlite`` (a file in the test's temporary directory, indexer in a thread so a
test does not fork a process) and ``postgresql`` (the server at 127.0.0.1:5432, started if
it is down; one database per run, created with ``createdb`` and dropped at the end, emptied
before each test). A new backend adds its name to ``BACKENDS`` and a branch in
:func:`_settings`, and must pass everything here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from postroom.config import Settings
from postroom.events import Bus, Event
from postroom.store import open_store
from postroom.store.base import Envelope, Store

from .. import pg

T = TypeVar("T")
E = TypeVar("E")

BACKENDS = ["sqlite", "postgresql"]


class Backend:
    """A started store of one backend, its bus, and the loop its async calls run on."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.bus = Bus()
        self.bus.bind(self.loop)
        self._events: list[Event] = []
        self.bus.subscribe(self._events.append)
        self.store: Store = open_store(settings, self.bus)
        self.store.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def deliver(self, raw: bytes, *rcpts: str, tags: tuple[str, ...] = ()) -> str:
        envelope = Envelope(mail_from="sender@example.com", rcpt_to=rcpts or ("alice@example.org",))
        return self.run(self.store.deliver(envelope, raw, tags=tags))

    def events(self, kind: type[E] | None = None) -> list[E]:
        """Events published so far (of ``kind`` when given), after letting the loop run."""
        self.run(asyncio.sleep(0.02))
        return [e for e in self._events if kind is None or isinstance(e, kind)]  # type: ignore[misc]

    def clear_events(self) -> None:
        self.run(asyncio.sleep(0.02))
        self._events.clear()

    def reopen(self) -> None:
        """Close the store and open the same database again (a restart)."""
        self.store.close()
        self.store = open_store(self.settings, self.bus)
        self.store.start()

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            self.loop.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One PostgreSQL database for the run (emptied before each test that uses it)."""
    name, url = pg.fresh_database("postroom_contract")
    try:
        yield url
    finally:
        pg.drop_database(name)


def _settings(name: str, tmp_path: Path, options: dict[str, Any], request: pytest.FixtureRequest) -> Settings:
    if name == "sqlite":
        return Settings(db=str(tmp_path / "contract.db"), indexer="thread", **options)
    if name == "postgresql":
        url = request.getfixturevalue("pg_database")
        pg.reset_schema(url)
        return Settings(db=url, **options)
    raise AssertionError(f"unknown backend {name}")


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A fresh store of each backend; ``@pytest.mark.store_options(max=3)`` sets options."""
    marker = request.node.get_closest_marker("store_options")
    options = dict(marker.kwargs) if marker else {}
    b = Backend(backend_name, _settings(backend_name, tmp_path, options, request))
    try:
        yield b
    finally:
        b.close()


def message(
    subject: str = "Hello",
    *,
    sender: str = "Shop <shop@example.com>",
    to: str = "Alice <alice@example.org>",
    message_id: str = "",
    in_reply_to: str = "",
    body: str = "Hello there",
    extra: str = "",
) -> bytes:
    """A small RFC 5322 message."""
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    if in_reply_to:
        head += f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n"
    head += extra
    return (head + "\r\n" + body + "\r\n").encode()
