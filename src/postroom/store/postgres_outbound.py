"""PostgreSQL implementation of the outbound queue (:mod:`postroom.store.outbound`).

Claims use ``FOR UPDATE SKIP LOCKED``: each node of a shared database takes rows no other
node holds, without waiting on the others' locks.
"""

from __future__ import annotations

import time
from typing import Any

from .outbound import (
    COLUMNS,
    Delivery,
    NewDelivery,
    Outcome,
    Suppression,
    delivery_from_row,
    read_deliveries,
    record_attempt,
)
from .postgres_db import Conn, Db
from .rawcodec import compress, unpack

__all__ = ["PostgresOutbound"]


class PostgresOutbound:
    """The queue kept in one PostgreSQL database (shared by every node on it)."""

    def __init__(self, db: Db) -> None:
        self._db = db

    def enqueue(self, items: list[NewDelivery], *, give_up_after: float) -> list[int]:
        now = time.time()

        def fn(conn: Conn, events: list[Any]) -> list[int]:
            ids: list[int] = []
            for it in items:
                blocked = conn.execute(
                    "SELECT reason FROM suppression WHERE address = %s", (it.rcpt.lower(),)
                ).fetchone()
                row = conn.execute(
                    "INSERT INTO outbound (message_id, kind, mail_from, rcpt, raw, state, created, next_at, give_up_at,"
                    " last_reply) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (it.message_id, it.kind, it.mail_from, it.rcpt, compress(it.raw),
                     "suppressed" if blocked else "queued", now, now, now + give_up_after,
                     f"suppressed: {blocked[0]}" if blocked else ""),
                ).fetchone()  # fmt: skip
                ids.append(int(row[0]) if row else 0)
            return ids

        return self._db.write(fn)

    def claim(self, node: str, limit: int, lease: float, kinds: tuple[str, ...]) -> list[Delivery]:
        now = time.time()

        def fn(conn: Conn, events: list[Any]) -> list[Delivery]:
            rows = conn.execute(
                "UPDATE outbound SET state = 'sending', claimed_by = %s, lease_until = %s"
                " WHERE id IN (SELECT id FROM outbound WHERE kind = ANY(%s) AND ((state = 'queued' AND next_at <= %s)"
                "   OR (state = 'sending' AND lease_until < %s)) ORDER BY next_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                f" RETURNING {COLUMNS}, raw",
                (node, now + lease, list(kinds), now, now, limit),
            ).fetchall()
            return [
                delivery_from_row(r[:-1], unpack(bytes(r[-1])))
                for r in sorted(rows, key=lambda r: (r[8], r[0]))
            ]

        return self._db.write(fn)

    def requeue_orphans(self) -> int:
        return 0  # other nodes may be sending them: the lease decides (claim takes expired rows)

    def finish(
        self, row: int, node: str, outcome: Outcome, destination: str, reply: str, next_at: float | None
    ) -> None:
        now = time.time()

        def fn(conn: Conn, events: list[Any]) -> None:
            record_attempt(conn, "%s", row, node, outcome, destination, reply, next_at, now)

        self._db.write(fn)

    def deliveries(self, message_id: str | None = None, *, limit: int = 200) -> list[Delivery]:
        with self._db.read() as conn:
            return read_deliveries(conn, "%s", message_id, limit)

    def counts(self) -> dict[str, int]:
        with self._db.read() as conn:
            return {
                str(s): int(n) for s, n in conn.execute("SELECT state, count(*) FROM outbound GROUP BY state")
            }

    def suppress(self, address: str, reason: str) -> None:
        now = time.time()
        self._db.write(
            lambda conn, events: conn.execute(
                "INSERT INTO suppression (address, reason, created) VALUES (%s, %s, %s)"
                " ON CONFLICT (address) DO UPDATE SET reason = excluded.reason",
                (address.lower(), reason, now),
            )
        )

    def unsuppress(self, address: str) -> bool:
        def fn(conn: Conn, events: list[Any]) -> bool:
            return conn.execute("DELETE FROM suppression WHERE address = %s", (address.lower(),)).rowcount > 0

        return self._db.write(fn)

    def suppressions(self) -> list[Suppression]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT address, reason, created FROM suppression ORDER BY created DESC"
            ).fetchall()
        return [Suppression(str(a), str(r), float(c)) for a, r, c in rows]
