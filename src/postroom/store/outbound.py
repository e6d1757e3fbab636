"""The outbound queue's seam: what the delivery worker, the API and the UI need of storage.

A backend that keeps an outbound queue offers :class:`HasOutbound` (checked once at start);
postroom's relay, release and forwarding are enabled only on such a backend.

Row states::

    queued --claim--> sending --250--> sent
      ^                  |--4xx / connection error, before give-up--> queued (next_at later)
      |                  |--5xx, or 4xx past give-up---------------> failed
      +--lease expired---+  (the node died mid-send: another claim takes it)
    queued --recipient on the suppression list--> suppressed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "COLUMNS",
    "Attempt",
    "Delivery",
    "HasOutbound",
    "NewDelivery",
    "OutboundQueue",
    "Outcome",
    "SQLConnection",
    "Suppression",
    "delivery_from_row",
    "read_deliveries",
    "record_attempt",
]

Outcome = Literal["sent", "retry", "failed", "suppressed"]


@dataclass(frozen=True)
class NewDelivery:
    """One recipient's copy of a message to send."""

    message_id: str  # the store's message ID (for the delivery log)
    kind: str  # release, relay, forward, send
    mail_from: str
    rcpt: str
    raw: bytes


@dataclass(frozen=True)
class Attempt:
    at: float
    destination: str
    reply: str
    outcome: Outcome
    next_at: float | None


@dataclass(frozen=True)
class Delivery:
    """A queue row as the worker and the delivery log see it (``raw`` only when claimed)."""

    id: int
    message_id: str
    kind: str
    mail_from: str
    rcpt: str
    state: str
    attempts: int
    created: float
    next_at: float
    give_up_at: float
    last_reply: str
    raw: bytes = b""
    history: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    created: float


class OutboundQueue(Protocol):
    def enqueue(self, items: list[NewDelivery], *, give_up_after: float) -> list[int]:
        """Add rows (committed when this returns); recipients on the suppression list are
        recorded as ``suppressed`` at once. Returns the row IDs."""
        ...

    def claim(self, node: str, limit: int, lease: float, kinds: tuple[str, ...]) -> list[Delivery]:
        """Take up to ``limit`` due rows of ``kinds`` for this node for ``lease`` seconds
        (oldest first). Two nodes never hold the same row."""
        ...

    def requeue_orphans(self) -> int:
        """At start: give back rows left ``sending`` by a process that died, when no other
        process can hold them (a single-owner store); a shared store leaves them to their
        lease. Returns how many were given back."""
        ...

    def finish(
        self, row: int, node: str, outcome: Outcome, destination: str, reply: str, next_at: float | None
    ) -> None:
        """Record an attempt: sent, retry (queued again for ``next_at``), failed or suppressed."""
        ...

    def deliveries(self, message_id: str | None = None, *, limit: int = 200) -> list[Delivery]:
        """Rows with their attempts, newest first (of one message, or all)."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per state."""
        ...

    def suppress(self, address: str, reason: str) -> None: ...
    def unsuppress(self, address: str) -> bool: ...
    def suppressions(self) -> list[Suppression]: ...


#: The queue table's columns in the order :func:`delivery_from_row` reads them (both backends).
COLUMNS = "id, message_id, kind, mail_from, rcpt, state, attempts, created, next_at, give_up_at, last_reply"


def delivery_from_row(r: Any, raw: bytes = b"", history: tuple[Attempt, ...] = ()) -> Delivery:
    """A :class:`Delivery` from a row selected as :data:`COLUMNS` (any backend)."""
    return Delivery(
        id=int(r[0]), message_id=str(r[1]), kind=str(r[2]), mail_from=str(r[3]), rcpt=str(r[4]),
        state=str(r[5]), attempts=int(r[6]), created=float(r[7]), next_at=float(r[8]),
        give_up_at=float(r[9]), last_reply=str(r[10]), raw=raw, history=history,
    )  # fmt: skip


class SQLConnection(Protocol):
    """A database connection of either backend, as the shared queries below use it."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


def _sql(query: str, mark: str) -> str:
    # the queries are written with "?" (SQLite's placeholder); PostgreSQL's is "%s"
    return query.replace("?", mark) if mark != "?" else query


def record_attempt(
    conn: SQLConnection, mark: str, row: int, node: str, outcome: Outcome, destination: str,
    reply: str, next_at: float | None, now: float,
) -> None:  # fmt: skip
    """In a write transaction: the claimed ``row`` (``node``'s) leaves 'sending' for what
    ``outcome`` says, and the attempt is added to its history (``mark``: the placeholder)."""
    state = "queued" if outcome == "retry" else outcome
    conn.execute(
        _sql(
            "UPDATE outbound SET state = ?, attempts = attempts + 1, next_at = ?, last_reply = ?,"
            " claimed_by = '', lease_until = 0 WHERE id = ? AND claimed_by = ?",
            mark,
        ),
        (state, next_at if next_at is not None else now, reply, row, node),
    )
    conn.execute(
        _sql(
            "INSERT INTO outbound_attempt (outbound_id, at, destination, reply, outcome, next_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            mark,
        ),
        (row, now, destination, reply, outcome, next_at),
    )


def read_deliveries(conn: SQLConnection, mark: str, message_id: str | None, limit: int) -> list[Delivery]:
    """The delivery log (:meth:`OutboundQueue.deliveries`) read on ``conn``: the newest rows
    (of ``message_id``, or all), each with its attempts (``mark``: the placeholder)."""
    if message_id is None:
        rows = conn.execute(_sql(f"SELECT {COLUMNS} FROM outbound ORDER BY id DESC LIMIT ?", mark), (limit,))
    else:
        rows = conn.execute(
            _sql(f"SELECT {COLUMNS} FROM outbound WHERE message_id = ? ORDER BY id DESC LIMIT ?", mark),
            (message_id, limit),
        )
    out: list[Delivery] = []
    for r in rows.fetchall():
        hist = conn.execute(
            _sql(
                "SELECT at, destination, reply, outcome, next_at FROM outbound_attempt"
                " WHERE outbound_id = ? ORDER BY id",
                mark,
            ),
            (r[0],),
        ).fetchall()
        history = tuple(Attempt(float(a), str(d), str(rp), o, n) for a, d, rp, o, n in hist)
        out.append(delivery_from_row(r, history=history))
    return out


@runtime_checkable
class HasOutbound(Protocol):
    """A store that keeps an outbound queue."""

    @property
    def outbound(self) -> OutboundQueue: ...
