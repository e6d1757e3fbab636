"""SMTP workers' journals: the segmented file a worker writes, the tail the store reads it with,
read-your-writes across processes, replay at start, and the stored message codec."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import zstandard

from postroom.config import Settings
from postroom.events import Bus
from postroom.store import rawcodec
from postroom.store.base import Envelope, StoreError
from postroom.store.headers import scan_headers, summary_fields
from postroom.store.ingest import WorkerJournalWriter
from postroom.store.journal import FILE_HEADER, JournalTail, SegmentedJournal, create_segment, segment_path
from postroom.store.sqlite import SQLiteStore, new_id

MSG = (
    b"From: Shop <shop@example.com>\r\nTo: Alice <alice@example.org>\r\n"
    b"Subject: worker mail\r\nMessage-ID: <w1@example.com>\r\nX-Tags: w\r\n\r\nHello\r\n"
)


def record(
    rcpt: str = "alice@example.org", raw: bytes = MSG
) -> tuple[str, str, tuple[str, ...], bytes, int, object]:
    """What a worker writes for one message (servers/smtp_workers._JournalStore)."""
    env = Envelope(
        mail_from="shop@example.com", rcpt_to=(rcpt,), peer="127.0.0.1:1", helo="h", received_at=1.0
    )
    return new_id(), env.dumps(), (), rawcodec.compress(raw), len(raw), summary_fields(scan_headers(raw))


def torn(path: str) -> bytes:
    """The first part of a record for the journal file at ``path`` (a write that stopped)."""
    from postroom.store.journal import Record, _frame, encode_message

    with open(path, "rb") as f:
        tag = f.read(FILE_HEADER.size)[-4:]
    return _frame(tag, encode_message(Record(99, "torn", "{}", (), b"x" * 100)))[:-30]


def make(tmp_path: Path) -> SQLiteStore:
    bus = Bus()
    bus.bind(asyncio.get_running_loop())
    store = SQLiteStore(str(tmp_path / "s.db"), Settings(), bus)
    store.start()
    return store


def crash(store: SQLiteStore) -> None:
    """Stop the store the way kill -9 would leave it: the workers' journals not applied."""
    from postroom.store import sqlite

    store.db.queue.put(sqlite._STOP)  # no final read of the journals, unlike close()
    assert store._writer is not None
    store._writer.join(10)
    store.background.stop_indexer()
    store.db.closed = True
    store._owner.release()  # what the kernel does for a process that dies


def test_tail_reads_whole_records_and_follows_segments(tmp_path: Path) -> None:
    base = str(tmp_path / "j-w0")
    create_segment(segment_path(base, 0))
    tail = JournalTail(base, 0)
    writer = SegmentedJournal(base, rotate_at=1200)
    assert tail.read(10) == [] and tail.mark() == (0, FILE_HEADER.size)
    pids = []
    for _ in range(12):  # ~500 bytes each: a few segments
        rec = record()
        pids.append(rec[0])
        writer.append(*rec)
    assert writer.gen >= 2
    assert tail.mark() == (writer.gen, writer.size)  # newest segment, even before it is read
    got = tail.read(5)
    assert [r.pid for r in got] == pids[:5]
    got += tail.read(100)
    assert [r.pid for r in got] == pids
    assert tail.position == (writer.gen, writer.size)
    assert tail.finished == [segment_path(base, g) for g in range(writer.gen)]
    # a record being written (only part of it in the file yet) is not returned
    with open(segment_path(base, writer.gen), "ab") as f:
        f.write(torn(segment_path(base, writer.gen)))
    assert tail.read(10) == []
    writer.close()
    tail.close()


def test_store_applies_worker_mail_and_readers_wait_for_it(tmp_path: Path) -> None:
    async def main() -> None:
        store = make(tmp_path)
        try:
            tail = store.open_worker_journal(0)
            writer = SegmentedJournal(tail.base)
            ids = []
            for i in range(20):
                rec = record(f"u{i % 3}@x.org")
                writer.append(*rec)
                ids.append(rec[0])
            # no note was sent: the reader itself has the writer read the journal
            page = store.list_messages(limit=50)
            assert page.total == 20 and {m.id for m in page.messages} == set(ids)
            s = store.get_summary(ids[0])
            assert s is not None and s.subject == "worker mail" and s.tags == ["w"] and s.size == len(MSG)
            assert store.get_raw(ids[0]) == MSG
            boxes = {b.name: b.total for b in store.mailboxes()}
            assert boxes == {"u0@x.org": 7, "u1@x.org": 7, "u2@x.org": 6}
            writer.close()
        finally:
            store.close()

    asyncio.run(main())


def test_worker_mail_not_applied_before_a_crash_is_stored_at_the_next_start(tmp_path: Path) -> None:
    async def first() -> list[str]:
        store = make(tmp_path)
        tail = store.open_worker_journal(1)
        writer = SegmentedJournal(tail.base, rotate_at=1500)
        applied = record("early@x.org")
        writer.append(*applied)
        assert store.list_messages().total == 1  # applied (and its position recorded)
        later = []
        for _ in range(6):  # acknowledged, then the process "dies" before storing them
            rec = record("late@x.org")
            writer.append(*rec)
            later.append(rec[0])
        writer.close()
        crash(store)
        return later

    later = asyncio.run(first())
    assert any(p.name.startswith("s.db-journal-postroom-w1.") for p in tmp_path.iterdir())

    async def second() -> None:
        store = make(tmp_path)
        try:
            ids = [m.id for m in store.list_messages(limit=50).messages]
            assert len(ids) == 7 and set(later) <= set(ids)  # the early one was not stored twice
            assert not any(p.name.startswith("s.db-journal-postroom-w") for p in tmp_path.iterdir())
        finally:
            store.close()

    asyncio.run(second())

    async def third() -> None:
        store = make(tmp_path)
        try:
            assert store.list_messages().total == 7
        finally:
            store.close()

    asyncio.run(third())


def test_codec_reads_lz4_and_zstd_frames() -> None:
    big = MSG + b"x" * 50_000
    for stored in (rawcodec.compress(big), zstandard.ZstdCompressor(level=1).compress(big)):
        assert rawcodec.unpack(stored) == big
        assert rawcodec.header_prefix(stored, 100_000).startswith(MSG.split(b"\r\n\r\n")[0])
    assert rawcodec.compress(big)[:4] == rawcodec.LZ4_MAGIC


def test_segment_files_are_private(tmp_path: Path) -> None:
    async def main() -> None:
        store = make(tmp_path)
        try:
            tail = store.open_worker_journal(0)
            assert os.stat(segment_path(tail.base, 0)).st_mode & 0o077 == 0
        finally:
            store.close()

    asyncio.run(main())


def test_a_worker_that_died_mid_record_does_not_hold_readers_up(tmp_path: Path) -> None:
    """A worker killed while writing leaves half a record that will never be completed:
    once the store knows the worker is gone and has read its journal to the end, readers
    stop waiting for those bytes (read-your-writes covers only acknowledged mail)."""

    async def main() -> None:
        store = make(tmp_path)
        try:
            tail = store.open_worker_journal(0)
            writer = SegmentedJournal(tail.base)
            whole = [record("a@x.org"), record("b@x.org")]
            for rec in whole:
                writer.append(*rec)
            with open(segment_path(tail.base, 0), "ab") as f:
                f.write(torn(segment_path(tail.base, 0)))
            assert tail.mark() > tail.applied  # the torn bytes count until the worker is known gone
            tail.gone = True  # what servers/smtp_workers does when the worker's socket closes
            store.poke_journals()
            assert {m.id for m in store.list_messages().messages} == {rec[0] for rec in whole}
            assert tail.drained and tail.mark() == tail.applied  # nothing left to wait for
            writer.close()
        finally:
            store.close()

    asyncio.run(main())


def test_worker_refuses_mail_while_the_store_cannot_write(tmp_path: Path) -> None:
    """The main process sends REFUSE when it cannot store journaled mail: the worker then
    answers 451 (its sessions map the error to TEMP_FAILURE) instead of piling mail up,
    until ACCEPT says the store writes again."""
    import socket

    from postroom.servers import smtp_workers

    async def main() -> None:
        mine, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=theirs)
        store = smtp_workers._JournalStore(WorkerJournalWriter(str(tmp_path / "j")), writer)
        listening = asyncio.ensure_future(smtp_workers._listen_to_main(reader, store))
        env = Envelope(mail_from="a@x.org", rcpt_to=("b@x.org",), received_at=1.0)
        assert len(store.deliver_journaled(env, MSG)) == 22
        assert mine.recv(16) == b"+"  # armed at start: the first message is noted
        mine.sendall(smtp_workers.REFUSE)
        for _ in range(100):
            if store.refusing:
                break
            await asyncio.sleep(0.01)
        try:
            store.deliver_journaled(env, MSG)
            raise AssertionError("a refusing worker stored mail")
        except StoreError as e:
            assert "cannot write" in str(e)
        mine.sendall(smtp_workers.ACCEPT)
        for _ in range(100):
            if not store.refusing:
                break
            await asyncio.sleep(0.01)
        assert len(store.deliver_journaled(env, MSG)) == 22
        mine.close()
        await asyncio.wait_for(listening, 5)  # the main process is gone: the listener ends
        writer.close()

    asyncio.run(main())


def test_tail_read_stops_at_its_byte_budget_but_always_returns_a_record(tmp_path: Path) -> None:
    base = str(tmp_path / "j-w0")
    create_segment(segment_path(base, 0))
    tail = JournalTail(base, 0)
    writer = SegmentedJournal(base)
    big = MSG + b"x" * 50_000  # x runs compress to nothing: random pieces keep each record ~20 KB
    pids = []
    for i in range(6):
        rec = record(raw=big.replace(b"x" * 100, os.urandom(50), 400 + i))
        pids.append(rec[0])
        writer.append(*rec)
    one = tail.read(100, max_bytes=1)  # a budget smaller than any record: still one
    assert [r.pid for r in one] == pids[:1] and tail.last_read_bytes > 1
    size = tail.last_read_bytes
    two = tail.read(100, max_bytes=2 * size - 10)  # the second record crosses the budget: stop after it
    assert [r.pid for r in two] == pids[1:3]
    rest = tail.read(100)
    assert [r.pid for r in rest] == pids[3:]
    assert tail.position == (0, writer.size)
    writer.close()
    tail.close()


def test_store_applies_a_burst_of_large_messages_in_bounded_batches(tmp_path: Path) -> None:
    from postroom.store import sqlite

    async def main() -> None:
        store = make(tmp_path)
        batches: list[int] = []
        run_batch = store._run_batch

        def counting(conn: object, jobs: list[object]) -> None:
            batches.append(len(jobs))
            run_batch(conn, jobs)  # type: ignore[arg-type]

        store._run_batch = counting  # type: ignore[method-assign]
        try:
            tail = store.open_worker_journal(0)
            writer = SegmentedJournal(tail.base)
            ids = []
            raw = MSG + os.urandom(300_000).hex().encode()[:400_000]  # ~400 KB, ~200 KB compressed
            for _ in range(60):  # ~12 MB of records: more than one batch's budget
                rec = record(raw=raw)
                writer.append(*rec)
                ids.append(rec[0])
            page = store.list_messages(limit=100)
            assert page.total == 60 and {m.id for m in page.messages} == set(ids)
            assert len(batches) >= 2 and max(batches) < 60
            assert store.get_raw(ids[-1]) == raw
            writer.close()
        finally:
            store.close()

    assert sqlite.TAIL_BYTES < 60 * 200_000
    asyncio.run(main())


def test_a_worker_with_large_mail_does_not_hold_back_another(tmp_path: Path) -> None:
    """Both journals full of messages larger than a batch's byte budget: each batch starts with
    the other journal, so neither waits for the first to run dry."""
    from postroom.store import sqlite

    async def main() -> None:
        store = make(tmp_path)
        order: list[set[str]] = []
        run_batch = store._run_batch

        def recording(conn: object, jobs: list[object]) -> None:
            order.append({j.tail.base[-2:] for j in jobs if getattr(j, "tail", None) is not None})  # type: ignore[attr-defined]
            run_batch(conn, jobs)  # type: ignore[arg-type]

        store._run_batch = recording  # type: ignore[method-assign]
        try:
            tails = [store.open_worker_journal(n) for n in range(2)]
            writers = [SegmentedJournal(t.base) for t in tails]
            raw = MSG + os.urandom(3_000_000).hex().encode()  # ~6 MB, ~3.5 MB compressed
            for _ in range(6):  # more than two batches' worth in the first journal
                writers[0].append(*record(raw=raw))
            writers[1].append(*record(raw=raw))
            assert store.list_messages(limit=10).total == 7
            # the second journal's message is in the first or the second batch, not the last
            assert len(order) >= 3 and "w1" in order[0] | order[1], order
            for w in writers:
                w.close()
        finally:
            store.close()

    assert sqlite.TAIL_BYTES < 3 * 3_000_000
    asyncio.run(main())


def test_folder_rows_are_read_at_once_only_when_no_acknowledged_mail_waits(tmp_path: Path) -> None:
    """IMAP's STATUS and LIST read the folder rows on the event loop (folder_info_now,
    folders_now): a folder's counts are answered at once only with nothing journaled waiting
    to be stored, else None (the caller waits on a worker thread, read-your-writes)."""

    async def main() -> None:
        store = make(tmp_path)
        try:
            alice = "alice@example.org"
            assert store.folders_now(alice) is None  # no INBOX yet: the writer makes it
            assert [f.name for f in store.folders(alice)] == ["INBOX"]
            now = store.folder_info_now(alice, "inbox")
            assert now is not None and now.exists == 0
            assert store.folder_info_now(alice, "Nope") is None
            writer = SegmentedJournal(store.open_worker_journal(0).base)
            writer.append(*record(alice))  # acknowledged (no note sent): not yet stored
            assert store.folder_info_now(alice, "INBOX") is None
            assert store.count_above_now(alice, "INBOX", 0) is None
            listed = store.folders_now(alice)  # names do not wait for mail
            assert listed is not None and [f.name for f in listed] == ["INBOX"]
            info = store.folder_info(alice, "INBOX")  # waits for it
            assert info is not None and info.exists == 1
            assert store.folder_info_now(alice, "INBOX") == info
            assert (store.count_above_now(alice, "INBOX", 0), store.count_above_now(alice, "INBOX", 1)) == (
                1,
                0,
            )
            writer.close()
        finally:
            store.close()

    asyncio.run(main())
