"""What the PostgreSQL backend's collaborators share: the pool, transactions, events.

:class:`Db` runs a change in one transaction (:meth:`Db.write`), retrying it when
PostgreSQL reports a deadlock or a serialization failure (two nodes, or two threads,
touching the same folders in another order), then publishes the change's events on the
local bus. The events also go to the other nodes: ``pg_notify`` inside the same
transaction (``postgres_events.py``), so they are sent exactly when the change commits.

Migrations (``store/migrations/postgres/NNNN_name.sql``) are applied at start in one
transaction under an advisory lock, so nodes starting together apply each file once; the
applied versions are in ``schema_version``, one row each, and every file whose version is
not there is applied in order (a file numbered below the newest applied one, as when two
branches each took a number, is applied too, not skipped).

Errors: psycopg's ``OperationalError`` for a database that cannot be reached becomes
:class:`~postroom.store.base.StoreError` with one line naming the cause.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from ..events import Bus, Event
from .base import StoreClosed, StoreError
from .postgres_events import CHANNEL, CROSS_NODE, encode, split_ids

__all__ = ["ADVISORY_INDEXER", "ADVISORY_MIGRATE", "ADVISORY_RETENTION", "Conn", "Db", "chunks"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

# Advisory lock keys (one 64-bit key space per database): "postroom" in ASCII plus a role.
ADVISORY_MIGRATE = 0x706F7374726F0001
ADVISORY_RETENTION = 0x706F7374726F0002
ADVISORY_INDEXER = 0x706F7374726F0003

POOL_SIZE = 8  # connections per node: the reader threads of the web/IMAP layers and the writers
CONNECT_TIMEOUT = 10  # seconds to reach the server at start
WRITE_ATTEMPTS = 10  # a transaction that deadlocks is retried this many times
_RETRY = (errors.DeadlockDetected, errors.SerializationFailure, errors.UniqueViolation)


def chunks(items: list[Any], size: int = 1000) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Db:
    """The pool of one node, its node ID, and the bus its events go to."""

    def __init__(self, url: str, bus: Bus, node: str) -> None:
        self.url = url
        self.bus = bus
        self.node = node
        self.closed = False
        self.pool = ConnectionPool(
            url, min_size=1, max_size=POOL_SIZE, kwargs={"autocommit": True}, open=False, name="postroom"
        )

    def open(self) -> None:
        try:
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT).close()  # its error is the clear one
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except psycopg.OperationalError as e:
            raise StoreError(f"cannot open database: {_first_line(e)}") from None
        except Exception as e:  # psycopg_pool.PoolTimeout: the server did not answer
            raise StoreError(f"cannot open database: {_first_line(e)}") from None
        self.migrate()

    def close(self) -> None:
        self.closed = True
        self.pool.close(timeout=5)

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """A connection for reads (autocommit: each statement sees everything committed)."""
        if self.closed:
            raise StoreClosed("store is closed")
        with self.pool.connection() as conn:
            yield conn

    def write(self, fn: Callable[[Conn, list[Event]], T]) -> T:
        """Run ``fn(conn, events)`` in one transaction; publish ``events`` after the commit."""
        if self.closed:
            raise StoreClosed("store is closed")
        for attempt in range(WRITE_ATTEMPTS):
            events: list[Event] = []
            try:
                with self.pool.connection() as conn, conn.transaction():
                    result = fn(conn, events)
                    self.notify(conn, events)
            except _RETRY as e:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise StoreError(f"database busy: {_first_line(e)}") from None
                time.sleep(random.uniform(0.001, 0.005) * (attempt + 1))
                continue
            if events:
                self.bus.publish_many(events)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def notify(self, conn: Conn, events: list[Event]) -> None:
        payloads = [
            encode(p, self.node) for ev in events if isinstance(ev, CROSS_NODE) for p in split_ids(ev)
        ]
        if payloads:
            with conn.cursor() as cur:
                cur.executemany("SELECT pg_notify(%s, %s)", [(CHANNEL, p) for p in payloads])

    def migrate(self) -> None:
        files = sorted(
            (
                f
                for f in resources.files("postroom.store").joinpath("migrations/postgres").iterdir()
                if f.name.endswith(".sql")
            ),
            key=lambda f: f.name,
        )
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_MIGRATE,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            applied = {int(v) for (v,) in conn.execute("SELECT version FROM schema_version")}
            newest = max(int(f.name.split("_", 1)[0]) for f in files)
            if applied and max(applied) > newest:
                raise StoreError(
                    f"the database's schema is version {max(applied)}, newer than this postroom "
                    f"knows ({newest}): it was written by a newer postroom; run that one"
                )
            for f in files:
                version = int(f.name.split("_", 1)[0])
                if version in applied:
                    continue
                conn.execute(f.read_text("utf-8").encode())
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
