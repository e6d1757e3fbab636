"""Free-text listings read from the index (sqlite_search.fulltext_listing) match the plain plan.

The store answers a query of free text alone (optionally in one mailbox) from the FTS5
index: the page newest first from the index, the counts from the index's own count
when message ids are contiguous, else by merging sorted id lists or by one join. Every
way must give exactly what the plain plan (``compile_query`` over the message table)
gives: the same matches, unread matches and page, with read messages and with deleted
ones (whose rows the contentless index keeps), at the oldest end and in the middle.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store import sqlite_search
from postroom.store.base import Envelope, InvalidQuery
from postroom.store.sqlite import SQLiteStore
from postroom.store.sqlite_search import compile_query, fulltext_listing, register_functions

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
BOXES = ["one@example.org", "two@example.org", "three@example.org"]
QUERIES = [
    "alpha",
    "alp",
    "alpha bravo",
    '"alpha bravo"',
    "alpha -bravo",
    "alpha OR zulu",
    "(alpha OR bravo) -charlie",
    "zulu",
    "alpha -(bravo OR charlie)",
    "hotel golf -echo -delta",
]


def _message(rng: random.Random, i: int) -> bytes:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
    if i % 37 == 0:
        body += " zulu"
    return f"From: a{i % 5}@example.com\r\nTo: {BOXES[i % 3]}\r\nSubject: m{i}\r\n\r\n{body}\r\n".encode()


def reference(conn: sqlite3.Connection, query: str, mailbox: str | None, start: int, limit: int) -> Any:
    sql, params = compile_query(query)
    where = f"({sql})"
    if mailbox:
        where += (
            " AND m.id IN (SELECT d.message FROM delivery d JOIN folder f ON f.id = d.folder_id "
            "JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = ?)"
        )
        params.append(mailbox)
    count, unread = conn.execute(
        f"SELECT count(*), coalesce(sum(m.read = 0), 0) FROM message m WHERE {where}", params
    ).fetchone()
    pids = [
        r[0]
        for r in conn.execute(
            f"SELECT m.pid FROM message m WHERE {where} ORDER BY m.id DESC LIMIT ? OFFSET ?",
            [*params, limit, start],
        )
    ]
    return count, unread, pids


def compare(store: SQLiteStore, conn: sqlite3.Connection) -> int:
    checked = 0
    for q in QUERIES:
        assert fulltext_listing(conn, q, columns="m.id", start=0, limit=1) is not None, q  # the index path
        for mailbox in (None, *BOXES[:2]):
            for start, limit in ((0, 10), (7, 5), (55, 50), (400, 10)):
                page = store.list_messages(query=q, mailbox=mailbox, start=start, limit=limit)
                got = (page.messages_count, page.messages_unread, [s.id for s in page.messages])
                assert got == reference(conn, q, mailbox, start, limit), (q, mailbox, start)
                checked += 1
    return checked


@pytest.mark.parametrize("join_limit", [20_000, 0])
def test_fulltext_listing_equals_plain_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, join_limit: int
) -> None:
    monkeypatch.setattr(sqlite_search, "JOIN_LIMIT", join_limit)  # 0: merge whenever not exact

    async def main() -> None:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread", max=0), bus)
        store.start()
        rng = random.Random(7)
        try:
            pids = []
            for i in range(300):
                pids.append(await store.deliver(Envelope("s@example.com", (BOXES[i % 3],)), _message(rng, i)))
            assert await asyncio.to_thread(store.wait_indexed, 60)
            conn = sqlite3.connect(store.path)
            register_functions(conn)
            try:
                assert compare(store, conn) > 0  # contiguous ids, nothing read
                store.set_read(pids[::4], True)
                compare(store, conn)  # some read
                store.delete_messages(pids[:20])  # the oldest: ids stay contiguous
                compare(store, conn)
                store.delete_messages(pids[100:140:3])  # holes in the middle
                compare(store, conn)
                store.set_read(None, True)  # everything read
                compare(store, conn)
            finally:
                conn.close()
        finally:
            store.close()

    asyncio.run(main())


def test_other_terms_take_the_plain_plan(tmp_path: Path) -> None:
    conn = sqlite3.connect(":memory:")
    kw: dict[str, Any] = {"columns": "m.id", "start": 0, "limit": 10}
    for q in ("from:a@", "-alpha", "alpha from:a@", "alpha OR from:a@", "is:read", "   "):
        assert fulltext_listing(conn, q, **kw) is None, q
    with pytest.raises(InvalidQuery):
        fulltext_listing(conn, '"unclosed', **kw)


def test_fts_expression_folds_groups() -> None:
    from postroom import search

    def expr(q: str) -> str | None:
        node = search.parse(q)
        assert node is not None
        return sqlite_search.fts_expression(node)

    assert expr("alpha") == '"alpha"*'
    assert expr('"a b"') == '"a b"'
    assert expr("alpha -bravo") == '("alpha"*) NOT "bravo"*'
    assert expr("alpha OR bravo") == '("alpha"* OR "bravo"*)'
    assert expr("(alpha OR bravo) -(charlie OR delta) echo") == (
        '(("alpha"* OR "bravo"*) AND "echo"*) NOT ("charlie"* OR "delta"*)'
    )
    assert expr("-alpha") is None and expr("alpha from:x") is None and expr("%") is None
