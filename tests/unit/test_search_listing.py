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
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def filled_store(
    tmp_path: Path, n: int, seed: int
) -> AsyncIterator[tuple[SQLiteStore, list[str], sqlite3.Connection]]:
    """A store holding ``n`` indexed messages in BOXES, their IDs, and a plain connection."""
    bus = Bus()
    bus.bind(asyncio.get_running_loop())
    store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread", max=0), bus)
    store.start()
    rng = random.Random(seed)
    try:
        pids = []
        for i in range(n):
            pids.append(await store.deliver(Envelope("s@example.com", (BOXES[i % 3],)), _message(rng, i)))
        assert await asyncio.to_thread(store.wait_indexed, 60)
        conn = sqlite3.connect(store.path)
        register_functions(conn)
        try:
            yield store, pids, conn
        finally:
            conn.close()
    finally:
        store.close()


@pytest.mark.parametrize("join_limit", [20_000, 0])
def test_fulltext_listing_equals_plain_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, join_limit: int
) -> None:
    monkeypatch.setattr(sqlite_search, "JOIN_LIMIT", join_limit)  # 0: merge whenever not exact

    async def main() -> None:
        async with filled_store(tmp_path, 300, 7) as (store, pids, conn):
            assert compare(store, conn) > 0  # contiguous ids, nothing read
            store.set_read(pids[::4], True)
            compare(store, conn)  # some read
            store.delete_messages(pids[:20])  # the oldest: ids stay contiguous
            compare(store, conn)
            store.delete_messages(pids[100:140:3])  # holes in the middle
            compare(store, conn)
            store.set_read(None, True)  # everything read
            compare(store, conn)

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


FIELD_QUERIES = [
    "from:a1@",
    "from:a1@ is:unread",
    "subject:m1",
    "subject:m1 is:read",
    "is:unread",
    "to:two@",
    "subject:nothing-like-this",
    "alpha from:a2@",
    "from:a3@ OR subject:m7",
    # header: terms: one scan collects every match, however many (sqlite_reading)
    "header:From=a1@",
    "header:To=two@ is:unread",
    "-header:From=a1@",
    "header:Subject=m1 OR from:a3@",
    "header:x-none",
]


@pytest.mark.parametrize(("sparse_matches", "sparse_density"), [(20_000, 20), (0, 20), (10**9, 1), (15, 2)])
def test_field_listings_equal_plain_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sparse_matches: int, sparse_density: int
) -> None:
    """Queries the index cannot answer: the one-scan path for few matches (ids and read flags,
    stopping once there are too many; all of them with a header: term) and the count-then-page
    path give the plain plan's answer."""
    from postroom.store import sqlite_reading

    monkeypatch.setattr(sqlite_reading, "SPARSE_MATCHES", sparse_matches)
    monkeypatch.setattr(sqlite_reading, "SPARSE_DENSITY", sparse_density)

    async def main() -> None:
        async with filled_store(tmp_path, 240, 11) as (store, pids, conn):
            store.set_read(pids[::3], True)
            store.delete_messages(pids[50:90:4])
            for q in FIELD_QUERIES:
                for mailbox in (None, BOXES[1]):
                    for start, limit in ((0, 10), (3, 4), (60, 50), (500, 10)):
                        page = store.list_messages(query=q, mailbox=mailbox, start=start, limit=limit)
                        got = (page.messages_count, page.messages_unread, [s.id for s in page.messages])
                        assert got == reference(conn, q, mailbox, start, limit), (q, mailbox, start)

    asyncio.run(main())


def test_planner_statistics_are_gathered_and_readers_use_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ANALYZE_FROM messages the background thread runs ANALYZE; a reader connection opened
    before that reloads the statistics, so `subject:... is:unread` scans the covering index
    instead of looking up every unread row."""
    from postroom.store import sqlite_background

    monkeypatch.setattr(sqlite_background, "ANALYZE_FROM", 50)
    monkeypatch.setattr(sqlite_background, "CHECKPOINT_INTERVAL", 0.05)

    async def main() -> None:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread", max=0), bus)
        store.start()
        rng = random.Random(3)
        try:
            plan_sql = (
                "EXPLAIN QUERY PLAN SELECT count(*) FROM message m WHERE m.subject LIKE '%m1%' AND m.read = 0"
            )

            def plan() -> str:
                conn = store.db.reader()
                return " ".join(str(r[-1]) for r in conn.execute(plan_sql))

            await asyncio.to_thread(plan)  # this worker thread's reader exists before the statistics
            assert store.db.stats_gen == 0
            for i in range(120):
                await store.deliver(Envelope("s@example.com", (BOXES[i % 3],)), _message(rng, i))
            for _ in range(400):
                if store.db.stats_gen:
                    break
                await asyncio.sleep(0.05)
            assert store.db.stats_gen >= 1 and store.background.analyzed_rows >= 50
            # the same (default executor) threads: their readers reload the statistics
            plans = {await asyncio.to_thread(plan) for _ in range(4)}
            assert all("COVERING INDEX message_subject_cover" in p for p in plans), plans
            # statistics taken while the indexer lagged are taken again once it caught up
            assert await asyncio.to_thread(store.wait_indexed, 30)
            for _ in range(400):
                if not store.background.analyzed_lagging:
                    break
                await asyncio.sleep(0.05)
            assert not store.background.analyzed_lagging
            gen = store.db.stats_gen
            await asyncio.sleep(0.3)
            assert store.db.stats_gen == gen  # no growth, no new ANALYZE
        finally:
            store.close()

    asyncio.run(main())


def test_statistics_wait_for_the_indexer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ANALYZE does not replace statistics while messages wait for the indexer (their thread id
    is still empty), and statistics gathered while it lagged (there were none) are gathered
    again once it has caught up, even though the store has not grown."""
    from postroom.store import sqlite_background

    monkeypatch.setattr(sqlite_background, "ANALYZE_FROM", 50)
    monkeypatch.setattr(sqlite_background, "CHECKPOINT_INTERVAL", 3600.0)  # only this test analyzes
    monkeypatch.setattr(sqlite_background, "_extractor", lambda: None)  # no indexer: mail stays pending

    async def main() -> None:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread", max=0), bus)
        store.start()
        rng = random.Random(5)
        conn = sqlite3.connect(store.path, isolation_level=None)
        bg = store.background
        try:
            for i in range(60):
                await store.deliver(Envelope("s@example.com", (BOXES[i % 3],)), _message(rng, i))
            assert store.list_messages(limit=0).total == 60  # stored (read-your-writes)
            bg.maybe_analyze(conn)  # none yet: gathered although the indexer lags
            assert store.db.stats_gen == 1 and bg.analyzed_lagging
            bg.maybe_analyze(conn)
            assert store.db.stats_gen == 1  # still lagging: kept
            store.write(lambda c: c.execute("UPDATE message SET indexed = 1"))  # caught up
            bg.maybe_analyze(conn)
            assert store.db.stats_gen == 2 and not bg.analyzed_lagging
            for i in range(60, 200):  # grown past twofold, not indexed yet
                await store.deliver(Envelope("s@example.com", (BOXES[i % 3],)), _message(rng, i))
            assert store.list_messages(limit=0).total == 200
            bg.maybe_analyze(conn)
            assert store.db.stats_gen == 2  # kept while the new mail waits
            store.write(lambda c: c.execute("UPDATE message SET indexed = 1"))
            bg.maybe_analyze(conn)
            assert store.db.stats_gen == 3 and bg.analyzed_rows >= 150
            bg.maybe_analyze(conn)
            assert store.db.stats_gen == 3
        finally:
            conn.close()
            store.close()

    asyncio.run(main())


def test_header_index_backfill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages stored before the header index existed (no header_field rows, hdr = 0) are
    found by header: searches from their header blocks, and the background pass writes their
    rows; the answers are the same before and after."""
    from postroom.store import sqlite_background

    monkeypatch.setattr(sqlite_background, "CHECKPOINT_INTERVAL", 3600.0)  # only this test backfills
    monkeypatch.setattr(sqlite_background, "HEADER_BACKFILL", 7)

    async def main() -> None:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread", max=0), bus)
        store.start()
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            for i in range(20):
                raw = (
                    f"From: a@example.com\r\nTo: b@example.org\r\nSubject: m{i}\r\n"
                    f"X-Campaign: =?utf-8?q?Fr=C3=BChling-{i % 3}?=\r\n\r\nbody\r\n"
                ).encode()
                await store.deliver(Envelope("s@example.com", ("b@example.org",)), raw)
            assert await asyncio.to_thread(store.wait_indexed, 30)
            queries = ["header:X-Campaign=frühling-1", "header:x-campaign", "header:X-Campaign=nope"]

            def answers() -> list[list[str]]:
                return [
                    sorted(s.subject for s in store.list_messages(query=q, limit=100).messages)
                    for q in queries
                ]

            indexed = answers()
            assert [len(a) for a in indexed] == [7, 20, 0]
            assert conn.execute("SELECT count(DISTINCT message) FROM header_field").fetchone()[0] == 20
            # as a store from before the index: no rows, every message to be read back
            store.write(
                lambda c: (c.execute("DELETE FROM header_field"), c.execute("UPDATE message SET hdr = 0"))
            )
            assert answers() == indexed
            done = [store.background.backfill_headers(conn) for _ in range(4)]
            assert done == [7, 7, 6, 0]
            assert conn.execute("SELECT count(*) FROM message WHERE hdr = 0").fetchone()[0] == 0
            assert conn.execute("SELECT count(DISTINCT message) FROM header_field").fetchone()[0] == 20
            assert answers() == indexed
            # deleting a message deletes its rows
            victim = store.list_messages(query="header:X-Campaign=frühling-1", limit=1).messages[0].id
            store.delete_messages([victim])
            assert conn.execute("SELECT count(DISTINCT message) FROM header_field").fetchone()[0] == 19
        finally:
            conn.close()
            store.close()

    asyncio.run(main())


HEADER_QUERIES = [
    "header:List-Id=list3",
    "header:List-Id=LIST",
    "header:X-Tag=t2",  # some messages have X-Tag twice, both matching: counted once
    "header:x-tag",
    "header:X-Tag=",
    "header:List-Id=nonesuch",
    "header:X-Absent",
    "header:Subject=100%_",  # LIKE's wildcards are plain characters
]


def _listed(i: int) -> bytes:
    tags = f"X-Tag: t{i % 4}\r\n" + (f"X-Tag: T{i % 4}-again\r\n" if i % 5 == 0 else "")
    subject = "100%_ off" if i % 11 == 0 else f"m{i}"
    return (
        f"From: a{i % 5}@example.com\r\nTo: {BOXES[i % 3]}\r\nSubject: {subject}\r\n"
        f"List-Id: <List{i % 7}.example.com>\r\n{tags}\r\nbody {i}\r\n"
    ).encode()


def test_header_listing_equals_plain_plan(tmp_path: Path) -> None:
    """A listing whose query is one header: term is answered from the header index alone
    (sqlite_search.header_listing: ids from header_field, plus the messages whose rows are
    not written yet, no lookup of each match in the message table), with exactly the plain
    plan's counts and page: nothing read, some read, everything read, deleted messages,
    headers present twice, messages without header rows, in a mailbox and not."""

    async def main() -> None:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(str(tmp_path / "s.db"), Settings(indexer="thread", max=0), bus)
        store.start()
        conn = sqlite3.connect(store.path)
        register_functions(conn)
        try:
            pids = [
                await store.deliver(Envelope("s@example.com", (BOXES[i % 3],)), _listed(i))
                for i in range(150)
            ]
            assert await asyncio.to_thread(store.wait_indexed, 60)

            def check() -> None:
                for q in HEADER_QUERIES:
                    found = sqlite_search.header_listing(conn, q, columns="m.id", start=0, limit=1)
                    assert found is not None, q  # the index path
                    for mailbox in (None, BOXES[1]):
                        for start, limit in ((0, 10), (3, 4), (40, 50), (500, 10)):
                            page = store.list_messages(query=q, mailbox=mailbox, start=start, limit=limit)
                            got = (page.messages_count, page.messages_unread, [s.id for s in page.messages])
                            assert got == reference(conn, q, mailbox, start, limit), (q, mailbox, start)

            check()  # nothing read
            store.set_read(pids[::3], True)
            check()
            store.delete_messages(pids[20:60:4])
            check()
            # messages without header rows yet (as before the index or the indexer): read back
            store.write(
                lambda c: (
                    c.execute("DELETE FROM header_field WHERE message % 4 = 1"),
                    c.execute("UPDATE message SET hdr = 0 WHERE id % 4 = 1"),
                )
            )
            check()
            store.set_read(None, True)
            check()
        finally:
            conn.close()
            store.close()

    asyncio.run(main())


def test_header_listing_takes_one_header_term_only() -> None:
    conn = sqlite3.connect(":memory:")
    kw: dict[str, Any] = {"columns": "m.id", "start": 0, "limit": 10}
    for q in ("-header:a=b", "header:a=b is:read", "header:a=b OR header:c", "alpha", "from:x", "  "):
        assert sqlite_search.header_listing(conn, q, **kw) is None, q
    with pytest.raises(InvalidQuery):
        sqlite_search.header_listing(conn, "header:", **kw)
