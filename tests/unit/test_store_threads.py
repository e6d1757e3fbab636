"""Conversations in the SQLite store across restarts: the indexer rebuilds its index from the
database and thread ids stay what they were (real SQLite, real writer, both indexer modes)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store.base import Envelope
from postroom.store.sqlite import SQLiteStore

BASE = 1_790_000_000
ENV = Envelope(mail_from="a@example.com", rcpt_to=("b@example.org",))


def mail(n: int, msgid: str, subject: str, refs: str = "") -> bytes:
    head = f"From: a@example.com\r\nTo: b@example.org\r\nMessage-ID: <{msgid}>\r\nSubject: {subject}\r\n"
    head += f"Date: {formatdate(BASE + 3600 * n)}\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    return (head + "\r\nbody\r\n").encode()


def thread_ids(store: SQLiteStore, ids: list[str], timeout: float = 30) -> list[str]:
    """The thread ids of ``ids`` once the indexer has given every one of them an id."""
    assert store.wait_indexed(timeout)
    deadline = time.monotonic() + timeout
    while True:
        got = [s.thread_id if (s := store.get_summary(i)) else "?" for i in ids]
        if all(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def run(path: Path, mode: str, mails: list[bytes], **kw: object) -> tuple[list[str], SQLiteStore]:
    store = SQLiteStore(str(path), Settings(indexer=mode, max=0, **kw), Bus())  # type: ignore[arg-type]
    store.start()

    async def send() -> list[str]:
        return [await store.deliver(ENV, m) for m in mails]

    return asyncio.run(send()), store


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_thread_ids_survive_restarts(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "s.db"
    first = [
        mail(0, "r1@x", "Re: Plan", "<p@x>"),  # a reply before its parent
        mail(1, "u@x", "Unrelated"),
        mail(2, "s@x", "Status"),
    ]
    ids, store = run(db, mode, first)
    try:
        before = thread_ids(store, ids)
    finally:
        store.close()
    assert [int(t) for t in before] == sorted(int(t) for t in set(before))  # three row ids, as text

    second = [
        mail(3, "p@x", "Plan"),  # the parent, after a restart: found through r1's References
        mail(4, "s2@x", "Re: Status", "<s@x>"),
        mail(5, "k@x", "AW: Unrelated"),  # subject only, localized prefix
    ]
    more, store = run(db, mode, second)
    try:
        assert thread_ids(store, ids + more) == [*before, before[0], before[2], before[1]]
        store.delete_messages([ids[2]])  # the first message of the "Status" conversation
    finally:
        store.close()

    late, store = run(db, mode, [mail(6, "s3@x", "Re: Status", "<s@x>")])
    try:
        assert thread_ids(store, late) == [before[2]]  # pruned first message, same conversation id
        assert store.list_messages(query=f"thread:{before[2]}").messages_count == 2
    finally:
        store.close()


def test_legacy_rows_get_thread_ids_at_start(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    mails = [mail(0, "a@x", "Hello"), mail(1, "b@x", "Re: Hello", "<a@x>"), mail(2, "c@x", "Other")]
    ids, store = run(db, "thread", mails)
    try:
        want = thread_ids(store, ids)
    finally:
        store.close()
    with sqlite3.connect(db) as conn:  # as if written before conversations existed
        conn.execute("UPDATE message SET thread_id = ''")
    conn.close()
    _, store = run(db, "thread", [])
    try:
        assert thread_ids(store, ids) == want
        page = store.list_threads()
        assert page.total == 2 and [t.messages for t in page.threads] == [1, 2]
        assert [s.id for s in store.thread_messages(want[0])] == ids[:2]
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_text_written_by_a_helper_without_its_conversation(tmp_path: Path, mode: str) -> None:
    """A helper process wrote a message's text (indexed = TEXT_ONLY) and postroom stopped before
    the indexer wrote its conversation: the message is not indexed yet for wait_indexed, and
    the next start gives it its conversation, without a second full-text row."""
    from postroom.store.index_worker import TEXT_ONLY

    db = tmp_path / "s.db"
    mails = [mail(0, "a@x", "Hello"), mail(1, "b@x", "Re: Hello", "<a@x>")]
    ids, store = run(db, mode, mails)
    try:
        want = thread_ids(store, ids)
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE message SET thread_id = '', indexed = ? WHERE pid = ?", (TEXT_ONLY, ids[1]))
        conn.close()
        assert not store.wait_indexed(0.3)
    finally:
        store.close()
    _, store = run(db, mode, [])
    try:
        assert thread_ids(store, ids) == want
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM fts WHERE fts MATCH 'hello'").fetchone()[0] == 2
            assert conn.execute("SELECT count(*) FROM message WHERE indexed != 1").fetchone()[0] == 0
        conn.close()
    finally:
        store.close()


def test_threading_switched_off(tmp_path: Path) -> None:
    ids, store = run(tmp_path / "s.db", "thread", [mail(0, "a@x", "Hi")], extra={"threading": False})
    try:
        assert store.wait_indexed(30)
        s = store.get_summary(ids[0])
        assert s is not None and s.thread_id == "" and s.snippet == "body"
        assert store.list_threads().total == 0
    finally:
        store.close()


def test_index_rebuilt_once_pruned_messages_dominate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from postroom.store import index_worker
    from postroom.store.indexer import extract
    from postroom.threads import ThreadingOptions, ThreadMessage

    db = tmp_path / "s.db"
    ids, store = run(db, "thread", [mail(n, f"m{n}@x", f"Subject {n}") for n in range(12)])
    try:
        want = thread_ids(store, ids)
        monkeypatch.setattr(index_worker, "COMPACT_SLACK", 4)
        conn = index_worker.connect_readonly(str(db))
        indexer = index_worker.Indexer(conn, extract, ThreadingOptions())
        assert indexer.start() == [] and indexer.threads is not None and indexer.threads.messages == 12
        assert indexer.idle() == []  # 12 entries for 12 stored messages: nothing to drop
        store.delete_messages(ids[:10])
        indexer._check_at = 0  # look now, not after COMPACT_SLACK / 2 more messages
        assert indexer.idle() == []  # rebuilt: the stored ids were consistent
        assert indexer.threads.messages == 2
        a = indexer.threads.add(ThreadMessage(99, "late@x", references=("m11@x",)))
        assert str(a.thread_id) == want[11]
        conn.close()
    finally:
        store.close()


def test_burst_detection_defers_only_a_real_burst(tmp_path: Path) -> None:
    """The indexer process defers work only while a burst of SMTP is arriving: BURST_SPAN
    messages within BURST_WINDOW seconds, the newest under QUIET_AFTER seconds old."""
    from postroom.store import index_worker
    from postroom.store.indexer import extract

    db = tmp_path / "s.db"
    span = index_worker.BURST_SPAN
    store = SQLiteStore(str(db), Settings(indexer="thread", max=0), Bus())  # type: ignore[arg-type]
    store.start()
    conn = index_worker.connect_readonly(str(db))
    indexer = index_worker.Indexer(conn, extract, None)

    def deliver(ages: list[float]) -> None:
        async def send() -> None:
            now = time.time()
            for age in ages:
                env = Envelope(mail_from="a@example.com", rcpt_to=("b@example.org",), received_at=now - age)
                await store.deliver(env, mail(0, f"{age}@x", "s"))

        asyncio.run(send())
        store.write(lambda conn: None)  # queued after them: they are committed when it returns

    try:
        assert not indexer.mail_arriving()  # no mail at all
        deliver([0.0] * (span - 1))
        assert not indexer.mail_arriving()  # a few messages, however fast, are indexed at once
        deliver([0.0])
        assert indexer.mail_arriving()  # BURST_SPAN within the window: a burst
        time.sleep(index_worker.QUIET_AFTER + 0.05)
        assert not indexer.mail_arriving()  # the burst is over
        # a steady trickle: the newest is fresh, but the span back is older than the window
        deliver([index_worker.BURST_WINDOW + 1.0 - k * 0.01 for k in range(span - 1)] + [0.0])
        assert not indexer.mail_arriving()
    finally:
        conn.close()
        store.close()


def test_indexer_batches_are_bounded_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large messages are fetched for indexing a few at a time (BATCH_BYTES), small ones BATCH
    at a time, and every pending message is taken in order, one batch after another."""
    from postroom.store import index_worker

    db = tmp_path / "s.db"
    store = SQLiteStore(str(db), Settings(indexer="thread", max=0), Bus())  # type: ignore[arg-type]
    store.start()

    async def send(sizes: list[int]) -> None:
        for n, size in enumerate(sizes):
            env = Envelope(mail_from="a@example.com", rcpt_to=("b@example.org",))
            await store.deliver(env, mail(n, f"{n}.{size}@x", "s") + b"y" * size + b"\r\n")

    asyncio.run(send([100_000] * 10 + [100] * 5))
    store.close()
    with sqlite3.connect(db) as c:  # pending again, whatever the store's indexer did meanwhile
        c.execute("UPDATE message SET indexed = 0")
    monkeypatch.setattr(index_worker, "BATCH_BYTES", 250_000)
    conn = index_worker.connect_readonly(str(db))
    try:
        taken: list[int] = []
        after = 0
        while batch := index_worker._fetch(conn, after, index_worker.BATCH, None, None, 0).rows:
            taken.append(len(batch))
            after = batch[-1][0]
        # three ~100 KB messages reach 250 KB; the last batch holds the last big one and the small
        assert taken == [3, 3, 3, 6]
        one = index_worker._fetch(conn, 0, index_worker.BATCH, None, None, 0).rows
        assert len(one) == 3 and [r[0] for r in one] == sorted(r[0] for r in one)
    finally:
        conn.close()


def test_a_batch_fetched_during_a_burst_is_shared_with_the_helpers_after_it(tmp_path: Path) -> None:
    """The batch the indexer fetched ahead while mail was arriving (for itself alone) gets its
    helper processes' share handed out once the burst is over, not parsed here whole."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from postroom.store import index_worker
    from postroom.store.indexer import extract

    db = tmp_path / "s.db"
    store = SQLiteStore(str(db), Settings(indexer="thread", max=0), Bus())  # type: ignore[arg-type]
    store.start()
    n = index_worker.PARALLEL_MIN + 8

    async def send() -> None:
        for k in range(n):
            await store.deliver(Envelope("a@example.com", ("b@example.org",)), mail(k, f"{k}@x", "s"))

    asyncio.run(send())
    store.close()
    with sqlite3.connect(db) as c:  # pending again, arriving now
        c.execute("UPDATE message SET indexed = 0, hdr = 0, created = ?", (time.time(),))
        c.execute("INSERT INTO fts(fts) VALUES ('delete-all')")
        c.execute("DELETE FROM header_field")
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    conn = index_worker.connect_readonly(str(db))
    try:
        indexer = index_worker.Indexer(conn, extract, None, pool, 1, str(db))
        assert indexer.mail_arriving()
        indexer._ahead = indexer._fetch()
        assert len(indexer._ahead.rows) == n and indexer._ahead.parts == []  # a burst: none handed out
        with sqlite3.connect(db) as c:
            c.execute("UPDATE message SET created = ?", (time.time() - 60,))
        assert not indexer.mail_arriving()
        rows = indexer.next_batch()
        helped = [row for row in rows if len(row) == 3]  # only the conversation left to write
        assert helped and len(indexer.announce) == len(helped)
        assert len(rows) == n
    finally:
        conn.close()
        pool.shutdown(wait=True)
