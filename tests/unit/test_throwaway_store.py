"""What a throwaway (``:memory:``) SQLite store, every test server's, leaves out until needed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from contextlib import closing

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store import sqlite_recycle as recycle
from postroom.store.base import Envelope
from postroom.store.sqlite import SQLiteStore
from postroom.store.sqlite_schema import schema_template

RAW = b"From: a@x\r\nTo: b@y\r\nSubject: hello\r\n\r\nbody\r\n"


def test_imap_data_is_derived_by_the_writer_only_once_imap_reads_the_cache() -> None:
    settings = Settings(db=":memory:", indexer="thread")
    settings.validate()
    st = SQLiteStore(":memory:", settings, Bus())
    st.start()
    try:
        assert st.background.index_inline
        first = asyncio.run(st.deliver(Envelope("a@x", ("b@y",)), RAW))
        assert st.wait_indexed(30)
        for _ in range(2):  # writer barriers: the indexing run the delivery queued is over
            st.write(lambda conn: None)
        assert st.imap_cache_get("meta", [first]) == {}  # IMAP never asked: nothing derived
        # IMAP has read the cache (above): the writer now derives for new mail, older included
        second = asyncio.run(st.deliver(Envelope("a@x", ("b@y",)), RAW))
        deadline = time.monotonic() + 30
        while len(st.imap_cache_get("meta", [first, second])) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert st.imap_cache_get("meta", [first, second]).keys() == {first, second}
    finally:
        st.close()


def _dump(path: str) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows (FTS5's own tables and the sequence table included)."""
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        return {
            n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr)
            for n in names
            if n != "fts"  # contentless: its rows are in fts_data/fts_idx/fts_docsize
        }
    finally:
        conn.close()


def _throwaway() -> SQLiteStore:
    settings = Settings(db=":memory:", indexer="thread")
    settings.validate()
    st = SQLiteStore(":memory:", settings, Bus())
    st.start()
    return st


def test_a_closed_throwaway_database_is_emptied_and_taken_by_the_next_store() -> None:
    first = _throwaway()
    try:
        ids = [
            asyncio.run(first.deliver(Envelope("a@x", ("b@y",)), raw))
            for raw in (
                RAW,
                b"From: c@x\r\nTo: b@y\r\nSubject: Re: hello\r\nMessage-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\n\r\nzebra\r\n",
                b"Message-ID: <1@x>\r\nFrom: a@x\r\nTo: b@y\r\nSubject: hello\r\n\r\nzebra\r\n",
            )
        ]
        assert first.wait_indexed(30)
        first.set_tags(ids[:2], ["keep", "old"])
        first.set_read(ids[:1], True)
        first.create_folder("b@y", "Archive")
        first.imap_cache_get("meta", ids)  # the writer derives the IMAP cache from now on
        asyncio.run(first.deliver(Envelope("a@x", ("b@y",)), RAW))
        assert first.wait_indexed(30)
        assert (
            first.list_messages(query="zebra").total == 4
            and first.list_messages(query="zebra").messages_count == 2
        )
        path = first.path
    finally:
        first.close()
    assert recycle.wait_closed(30)  # its writer empties and keeps the database after close()
    second = _throwaway()
    try:
        assert second.path == path  # the same file, emptied: no copy of the template
        assert _dump(path) == _dump(schema_template(second._connect_file))
        assert second.list_messages().total == 0
        assert second.list_messages(query="zebra").messages_count == 0
        assert second.list_messages(query="tag:old").messages_count == 0
        new = asyncio.run(second.deliver(Envelope("a@x", ("b@y",)), RAW))
        assert second.wait_indexed(30)
        assert [s.id for s in second.list_messages(query="hello").messages] == [new]
        conn = sqlite3.connect(path)
        try:  # numbering starts again (IMAP UIDs, message rowids), as in a fresh store
            assert conn.execute("SELECT id FROM message").fetchall() == [(1,)]
            assert conn.execute("SELECT uid FROM delivery").fetchall() == [(1,)]
        finally:
            conn.close()
    finally:
        second.close()


def test_a_throwaway_store_that_grew_is_deleted_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recycle, "MAX_MESSAGES", 1)
    first = _throwaway()
    try:
        for _ in range(2):
            asyncio.run(first.deliver(Envelope("a@x", ("b@y",)), RAW))
        assert first.list_messages().total == 2
        path = first.path
    finally:
        first.close()  # finished by its writer thread
    assert recycle.wait_closed(30)
    assert not os.path.exists(path)
    second = _throwaway()
    try:
        assert second.path != path and second.list_messages().total == 0
    finally:
        second.close()


def _wal_size(path: str) -> int:
    return os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0


def test_a_throwaway_store_that_stored_nothing_is_kept_without_a_write() -> None:
    """Emptying rewrites only what differs from the template: ``DELETE FROM`` an empty table
    writes its pages and its indexes' all the same (42 WAL frames for a store that held nothing)."""
    first = _throwaway()
    try:
        asyncio.run(first.deliver(Envelope("a@x", ("b@y",)), RAW))
        assert first.wait_indexed(30)
    finally:
        first.close()
    assert recycle.wait_closed(30)
    second = _throwaway()  # takes the database the first emptied: it holds nothing now
    path = second.path
    before = _wal_size(path)
    second.close()
    assert recycle.wait_closed(30)
    assert _wal_size(path) == before
    third = _throwaway()
    try:
        assert third.path == path and _dump(path) == _dump(schema_template(third._connect_file))
    finally:
        third.close()


def test_a_throwaway_store_whose_mail_was_deleted_has_its_index_emptied_too() -> None:
    """No message row is left, but the full-text index still holds what was indexed (and
    numbering would go on): the database is emptied back to the template all the same."""
    first = _throwaway()
    try:
        for _ in range(2):
            asyncio.run(first.deliver(Envelope("a@x", ("b@y",)), RAW))
        assert first.wait_indexed(30)
        first.delete_messages(None)
        assert first.list_messages().total == 0
        path = first.path
    finally:
        first.close()
    assert recycle.wait_closed(30)
    second = _throwaway()
    try:
        assert second.path == path
        assert _dump(path) == _dump(schema_template(second._connect_file))
        assert second.list_messages(query="hello").messages_count == 0
    finally:
        second.close()


def test_throwaway_databases_have_small_pages_and_a_file_store_sqlites_default(tmp_path: object) -> None:
    """A test's message and the emptying after it write a page per table and index they
    touch, nearly all holding a row or two: 2 KB pages (sqlite_schema.TEMPLATE_PAGE_SIZE)
    write half as much as SQLite's 4 KB. A store on disk keeps SQLite's default."""
    from pathlib import Path

    st = _throwaway()
    try:
        with closing(sqlite3.connect(st.path)) as conn:
            assert conn.execute("PRAGMA page_size").fetchone() == (2048,)
    finally:
        st.close()
    settings = Settings(db=str(Path(str(tmp_path)) / "mail.db"), indexer="thread")
    settings.validate()
    disk = SQLiteStore(settings.db, settings, Bus())
    disk.start()
    try:
        with closing(sqlite3.connect(disk.path)) as conn:
            assert conn.execute("PRAGMA page_size").fetchone() == (4096,)
    finally:
        disk.close()
