"""Contract tests of the SQLite store (real SQLite, real writer thread)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.events import Bus, Event, FolderChanged, MessagesPruned, MessageStored
from postroom.store.base import AlreadyExists, Envelope, NotFound
from postroom.store.sqlite import SQLiteStore

MSG = (
    b"From: Shop <shop@example.com>\r\nTo: Alice <alice@example.org>\r\nCc: carol@example.org\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?= order\r\nMessage-ID: <m1@example.com>\r\nX-Tags: one, two\r\n"
    b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n"
)


def env(*rcpts: str) -> Envelope:
    return Envelope(mail_from="shop@example.com", rcpt_to=rcpts, peer="127.0.0.1:5000", helo="client")


def make(tmp_path: Path, **kw: object) -> tuple[SQLiteStore, list[Event]]:
    bus = Bus()
    bus.bind(asyncio.get_running_loop())
    events: list[Event] = []
    bus.subscribe(events.append)
    store = SQLiteStore(str(tmp_path / "s.db"), Settings(**kw), bus)  # type: ignore[arg-type]
    store.start()
    return store, events


def test_deliver_files_one_copy_per_recipient_and_bcc(tmp_path: Path) -> None:
    async def main() -> None:
        store, events = make(tmp_path)
        try:
            mid = await store.deliver(env("Alice@Example.org", "carol@example.org", "dave@example.org"), MSG)
            s = store.get_summary(mid)
            assert s is not None
            assert s.subject == "Café order"
            assert s.from_ is not None and s.from_.address == "shop@example.com"
            assert [a.address for a in s.bcc] == ["dave@example.org"]
            assert s.tags == ["one", "two"]
            assert s.mailboxes == ["alice@example.org", "carol@example.org", "dave@example.org"]
            assert store.get_raw(mid) == MSG
            e = store.get_envelope(mid)
            assert e is not None and e.helo == "client" and e.peer == "127.0.0.1:5000"
            page = store.list_messages(mailbox="dave@example.org")
            assert page.total == 1 and page.messages[0].id == mid
            assert store.list_messages(mailbox="nobody@example.org").total == 0
            await asyncio.sleep(0.05)
            assert [type(ev) for ev in events if isinstance(ev, MessageStored)] == [MessageStored]
        finally:
            store.close()

    asyncio.run(main())


def test_store_survives_reopen_and_uids_grow(tmp_path: Path) -> None:
    async def first() -> str:
        store, _ = make(tmp_path)
        try:
            await store.deliver(env("a@x.org"), MSG)
            return await store.deliver(env("a@x.org"), MSG)
        finally:
            store.close()

    async def second(last: str) -> None:
        store, _ = make(tmp_path)
        try:
            assert store.list_messages().total == 2
            assert store.latest_id() == last
            await store.deliver(env("a@x.org"), MSG)
            uids = [e.uid for e in store.folder_entries("a@x.org", "INBOX")]
            assert uids == [1, 2, 3]
        finally:
            store.close()

    last = asyncio.run(first())
    asyncio.run(second(last))


def test_subaddress_and_mailbox_key(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make(tmp_path, subaddress=True, mailbox_key="address")
        try:
            mid = await store.deliver(env("bob+news@example.org"), MSG)
            s = store.get_summary(mid)
            assert s is not None and s.mailboxes == ["bob@example.org"] and "news" in s.tags
        finally:
            store.close()

    asyncio.run(main())


def test_retention_by_count(tmp_path: Path) -> None:
    async def main() -> None:
        store, events = make(tmp_path, max=3)
        try:
            ids = [await store.deliver(env("a@x.org"), MSG) for _ in range(5)]
            page = store.list_messages()
            assert page.total == 3
            assert [m.id for m in page.messages] == ids[:1:-1]
            await asyncio.sleep(0.05)
            pruned = [i for ev in events if isinstance(ev, MessagesPruned) for i in ev.ids]
            assert sorted(pruned) == sorted(ids[:2])
        finally:
            store.close()

    asyncio.run(main())


def test_read_state_flags_and_folders(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make(tmp_path)
        try:
            a = await store.deliver(env("a@x.org", "b@x.org"), MSG)
            await store.deliver(env("a@x.org"), MSG)
            # \Seen on one copy does not make the message read while the other copy is unseen
            store.update_flags("a@x.org", "INBOX", [1], frozenset({"\\Seen"}), "add")
            s = store.get_summary(a)
            assert s is not None and not s.read
            store.update_flags("b@x.org", "INBOX", [1], frozenset({"\\Seen"}), "add")
            s = store.get_summary(a)
            assert s is not None and s.read
            assert store.set_read([a], False) == [a]
            assert {e.uid: e.flags for e in store.folder_entries("a@x.org", "INBOX")}[1] == frozenset()
            info = store.create_folder("a@x.org", "Archive")
            with pytest.raises(AlreadyExists):
                store.create_folder("a@x.org", "Archive")
            validity, pairs = store.copy("a@x.org", "INBOX", [1, 2], "Archive", move=True)
            assert validity == info.uidvalidity and pairs == [(1, 1), (2, 2)]
            assert store.folder_entries("a@x.org", "INBOX") == []
            store.update_flags("a@x.org", "Archive", [2], frozenset({"\\Deleted"}), "add")
            assert store.expunge("a@x.org", "Archive") == [2]
            assert store.list_messages().total == 1  # the orphaned message went with its last copy
            uv, uid = await store.append("a@x.org", "Archive", MSG, frozenset({"\\Seen"}))
            assert (uv, uid) == (info.uidvalidity, 3)
            store.rename_folder("a@x.org", "Archive", "Old")
            renamed = store.folder_info("a@x.org", "Old")
            assert renamed is not None and renamed.uidvalidity != info.uidvalidity and renamed.exists == 2
            with pytest.raises(NotFound):
                store.delete_folder("a@x.org", "Archive")
            store.delete_folder("a@x.org", "Old")
            assert [f.name for f in store.folders("a@x.org")] == ["INBOX"]
        finally:
            store.close()

    asyncio.run(main())


def test_delete_and_tags(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make(tmp_path)
        try:
            ids = [await store.deliver(env("a@x.org"), MSG) for _ in range(3)]
            store.set_tags(ids[:1], ["Alpha"])
            store.rename_tag("Alpha", "Beta")
            s = store.get_summary(ids[0])
            assert s is not None and s.tags == ["Beta"]
            store.delete_tag("one")
            assert "one" not in store.tags()
            assert store.delete_messages([ids[1]]) == [ids[1]]
            assert store.get_raw(ids[1]) is None
            assert sorted(store.delete_messages(None)) == sorted([ids[0], ids[2]])
            assert store.list_messages().total == 0
            assert store.mailboxes()[0].total == 0
        finally:
            store.close()

    asyncio.run(main())


def test_bad_database_path_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "file"
    bad.write_text("not a database" * 100)
    store = SQLiteStore(str(bad), Settings(), Bus())
    from postroom.store.base import StoreError

    with pytest.raises(StoreError, match="file is not a database"):
        store.start()


def test_journal_replays_acknowledged_mail_that_was_not_stored(tmp_path: Path) -> None:
    """A message whose journal record was written (acknowledged) but never applied to SQLite
    (the process died in between) is stored at the next start, under the same ID; a torn
    record at the end (a write that never completed, never acknowledged) is ignored."""
    from postroom.store.journal import Journal, Record, _frame, encode_message

    async def first() -> None:
        store, _ = make(tmp_path)
        store.close()

    asyncio.run(first())
    db = tmp_path / "s.db"
    j = Journal(str(db) + "-journal-postroom", 0)
    env_json = env("late@x.org").dumps()
    j.append("ReplayedId000000000001", env_json, ("kept",), MSG)
    j.append("ReplayedId000000000002", env_json, (), MSG)
    j.close()
    with open(str(db) + "-journal-postroom", "ab") as f:  # a record whose bytes never all arrived
        f.write(_frame(j._file.tag, encode_message(Record(3, "TornId", env_json, (), MSG)))[:-9])

    async def second() -> None:
        store, _ = make(tmp_path)
        try:
            ids = [m.id for m in store.list_messages().messages]
            assert ids == ["ReplayedId000000000002", "ReplayedId000000000001"]
            s = store.get_summary("ReplayedId000000000001")
            assert s is not None and s.tags == ["kept", "one", "two"] and s.mailboxes == ["late@x.org"]
            # applied once: a second restart does not store them again
            mid = await store.deliver(env("late@x.org"), MSG)
            assert store.list_messages().messages[0].id == mid
        finally:
            store.close()

    asyncio.run(second())

    async def third() -> None:
        store, _ = make(tmp_path)
        try:
            assert store.list_messages().total == 3
        finally:
            store.close()

    asyncio.run(third())


def test_read_after_deliver_sees_the_message(tmp_path: Path) -> None:
    """deliver() returns once the journal has the message; readers wait for SQLite to catch up."""

    async def main() -> None:
        store, _ = make(tmp_path)
        try:
            for _ in range(50):
                mid = await store.deliver(env("a@x.org"), MSG)
                assert store.get_summary(mid) is not None
        finally:
            store.close()

    asyncio.run(main())


def test_fsync_mode_stores_without_journal(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make(tmp_path, fsync=True)
        try:
            mid = await store.deliver(env("a@x.org"), MSG)
            assert store.get_summary(mid) is not None
            assert not (tmp_path / "s.db-journal-postroom").exists()
        finally:
            store.close()

    asyncio.run(main())


def test_sparse_matches_page_newest_first(tmp_path: Path) -> None:
    """Few matches among many take the collect-ids path; pages must equal the plain plan's."""

    async def main() -> None:
        store, _ = make(tmp_path)
        try:
            rare = MSG.replace(b"shop@example.com>", b"rare@example.net>", 1)
            ids = []
            for i in range(60):
                mid = await store.deliver(env("a@x.org"), rare if i % 20 == 0 else MSG)
                if i % 20 == 0:
                    ids.append(mid)
            page = store.list_messages(query="from:rare@example.net", limit=2)
            assert page.messages_count == 3 and page.total == 60
            assert [m.id for m in page.messages] == ids[::-1][:2]
            page2 = store.list_messages(query="from:rare@example.net", start=2, limit=2)
            assert [m.id for m in page2.messages] == ids[:1]
            assert store.list_messages(query="from:nobody@example.net").messages == []
            assert store.list_messages(query="from:rare@example.net", start=5).messages == []
        finally:
            store.close()

    asyncio.run(main())


def test_marking_many_read_is_one_modseq_and_one_event_per_folder(tmp_path: Path) -> None:
    """Mark all read on more messages than one write chunk (500): each folder takes one new
    MODSEQ shared by every delivery it changed (RFC 7162 3.1.2), and is announced once."""

    async def main() -> None:
        store, events = make(tmp_path)
        try:
            await asyncio.gather(
                *(store.deliver(env("a@example.org", "b@example.org"), MSG) for _ in range(620))
            )
            before = store.folder_info("a@example.org", "INBOX")
            assert before is not None
            events.clear()
            assert len(await asyncio.to_thread(store.set_read, None, True)) == 620
            after = store.folder_info("a@example.org", "INBOX")
            assert after is not None and after.highestmodseq == before.highestmodseq + 1
            entries = store.folder_entries("a@example.org", "INBOX")
            assert {e.modseq for e in entries} == {after.highestmodseq}
            assert all("\\Seen" in e.flags for e in entries)
            await asyncio.sleep(0.05)
            folders = [
                (ev.mailbox, ev.folder)
                for ev in events
                if isinstance(ev, FolderChanged) and ev.change == "flags"
            ]
            assert sorted(folders) == [("a@example.org", "INBOX"), ("b@example.org", "INBOX")]
        finally:
            store.close()

    asyncio.run(main())


def test_flag_changes_arriving_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    """Group commit for IMAP STORE/EXPUNGE (issue 19, imaptest logout=0): changes that come
    while the writer is busy all go into its next transaction, hold no thread meanwhile,
    and are answered together once it is committed, never before."""

    async def main() -> None:
        store, events = make(tmp_path)
        try:
            await asyncio.gather(*(store.deliver(env("a@example.org"), MSG) for _ in range(40)))
            busy, release = threading.Event(), threading.Event()

            def hold(conn: object) -> None:  # the writer's current transaction, still going
                busy.set()
                release.wait(10)

            held = asyncio.get_running_loop().run_in_executor(None, store.write, hold)
            assert await asyncio.to_thread(busy.wait, 10)
            flag = frozenset({"\\Flagged"})
            stores = [
                asyncio.ensure_future(store.update_flags_async("a@example.org", "INBOX", [u], flag, "add"))
                for u in range(1, 41)
            ]
            await asyncio.sleep(0.05)
            assert not any(t.done() for t in stores)  # nothing answered before its commit
            assert store.db.queue.qsize() == 40  # all queued, no worker thread taken
            release.set()
            await held
            _, pending = await asyncio.wait(stores, return_when=asyncio.FIRST_COMPLETED)
            assert not pending  # one commit for all forty: answered together
            # other sessions heard of the changes before the answers (FETCH to them first)
            heard = [
                u for ev in events if isinstance(ev, FolderChanged) and ev.change == "flags" for u in ev.uids
            ]
            assert sorted(heard) == list(range(1, 41))
            assert all("\\Flagged" in t.result()[0].flags for t in stores)
            assert all("\\Flagged" in e.flags for e in store.folder_entries("a@example.org", "INBOX"))
        finally:
            store.close()

    asyncio.run(main())


def test_append_to_a_known_folder_needs_no_worker_thread(tmp_path: Path) -> None:
    """IMAP APPEND (and STORE, EXPUNGE) go to the writer without a worker thread: with every
    thread of the loop's pool taken (slow SEARCHes elsewhere), they still complete. An
    unknown folder is still refused."""

    async def main() -> None:
        store, _ = make(tmp_path)
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(1)
        loop.set_default_executor(pool)
        try:
            await store.deliver(env("a@example.org"), MSG)
            assert store.folder_view.folder_validity("a@example.org", "INBOX") is not None
            taken = threading.Event()
            busy = loop.run_in_executor(None, taken.wait, 10)
            validity, uid = await asyncio.wait_for(store.append("a@example.org", "INBOX", MSG), 5)
            assert (validity, uid) == (store.folder_view.folder_validity("a@example.org", "INBOX"), 2)
            flag = frozenset({"\\Deleted"})
            (e,) = await asyncio.wait_for(
                store.update_flags_async("a@example.org", "INBOX", [1], flag, "add"), 5
            )
            assert e.flags == flag
            assert await asyncio.wait_for(store.expunge_async("a@example.org", "INBOX", None), 5) == [1]
            taken.set()
            await busy
            with pytest.raises(NotFound):
                await store.append("a@example.org", "Nope", MSG)
        finally:
            store.close()
            pool.shutdown()

    asyncio.run(main())


def test_closing_ends_the_indexer_process_and_closes_both_its_pipes(tmp_path: Path) -> None:
    """The receiver read the worker's stdout to its end and left it open: an unclosed file
    (ResourceWarning) per store with the process indexer."""

    async def main() -> None:
        store, _ = make(tmp_path, indexer="process")
        try:
            await store.deliver(env("alice@example.org"), MSG)
            assert await asyncio.to_thread(store.wait_indexed, 30)
            proc = store.background._index_proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
        finally:
            store.close()
        assert proc.returncode is not None
        assert proc.stdin.closed and proc.stdout.closed

    asyncio.run(main())
