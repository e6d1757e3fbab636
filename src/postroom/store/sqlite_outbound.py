"""SQLite implementation of the outbound queue (:mod:`postroom.store.outbound`).

Writes go through the store's writer thread (one transaction each, committed before the
call returns); reads use the calling thread's read connection. A claim is one UPDATE
... RETURNING, so two workers of the same store never hold one row.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

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
from .rawcodec import compress, unpack

if TYPE_CHECKING:
    from .sqlite_db import SQLiteDb

__all__ = ["SQLiteOutbound"]


class SQLiteOutbound:
    """The queue of one :class:`~postroom.store.sqlite.SQLiteStore`."""

    def __init__(self, db: SQLiteDb) -> None:
        self._db = db

    def enqueue(self, items: list[NewDelivery], *, give_up_after: float) -> list[int]:
        now = time.time()

        def fn(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            for it in items:
                blocked = conn.execute(
                    "SELECT reason FROM suppression WHERE address = ?", (it.rcpt.lower(),)
                ).fetchone()
                state = "suppressed" if blocked else "queued"
                cur = conn.execute(
                    "INSERT INTO outbound (message_id, kind, mail_from, rcpt, raw, state, created, next_at, give_up_at,"
                    " last_reply) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (it.message_id, it.kind, it.mail_from, it.rcpt, compress(it.raw), state, now, now,
                     now + give_up_after, f"suppressed: {blocked[0]}" if blocked else ""),
                )  # fmt: skip
                ids.append(int(cur.lastrowid or 0))
            return ids

        return list(self._db.write(fn))

    def claim(self, node: str, limit: int, lease: float, kinds: tuple[str, ...]) -> list[Delivery]:
        now = time.time()
        marks = ",".join("?" * len(kinds))

        def fn(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                "UPDATE outbound SET state = 'sending', claimed_by = ?, lease_until = ?"
                f" WHERE id IN (SELECT id FROM outbound WHERE kind IN ({marks}) AND ((state = 'queued'"
                "   AND next_at <= ?) OR (state = 'sending' AND lease_until < ?)) ORDER BY next_at, id LIMIT ?)"
                f" RETURNING {COLUMNS}, raw",
                (node, now + lease, *kinds, now, now, limit),
            ).fetchall()
            return [
                delivery_from_row(r[:-1], unpack(r[-1])) for r in sorted(rows, key=lambda r: (r[8], r[0]))
            ]

        return list(self._db.write(fn))

    def requeue_orphans(self) -> int:
        # one process owns a SQLite store (store/owner.py), so every 'sending' row is an orphan
        def fn(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE outbound SET state = 'queued', claimed_by = '', lease_until = 0 WHERE state = 'sending'"
            ).rowcount

        return int(self._db.write(fn))

    def finish(
        self, row: int, node: str, outcome: Outcome, destination: str, reply: str, next_at: float | None
    ) -> None:
        now = time.time()

        def fn(conn: sqlite3.Connection) -> None:
            record_attempt(conn, "?", row, node, outcome, destination, reply, next_at, now)

        self._db.write(fn)

    def deliveries(self, message_id: str | None = None, *, limit: int = 200) -> list[Delivery]:
        return read_deliveries(self._db.reader(wait=False), "?", message_id, limit)

    def counts(self) -> dict[str, int]:
        conn = self._db.reader(wait=False)
        return {
            str(s): int(n) for s, n in conn.execute("SELECT state, count(*) FROM outbound GROUP BY state")
        }

    def suppress(self, address: str, reason: str) -> None:
        now = time.time()
        self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO suppression (address, reason, created) VALUES (?, ?, ?)"
                " ON CONFLICT(address) DO UPDATE SET reason = excluded.reason",
                (address.lower(), reason, now),
            )
        )

    def unsuppress(self, address: str) -> bool:
        def fn(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM suppression WHERE address = ?", (address.lower(),)).rowcount > 0

        return bool(self._db.write(fn))

    def suppressions(self) -> list[Suppression]:
        conn = self._db.reader(wait=False)
        rows = conn.execute(
            "SELECT address, reason, created FROM suppression ORDER BY created DESC"
        ).fetchall()
        return [Suppression(str(a), str(r), float(c)) for a, r, c in rows]
