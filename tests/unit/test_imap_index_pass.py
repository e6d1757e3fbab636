"""The indexer's IMAP pass (Indexer.imap_batch): which stored IMAP rows it derives again.

A message is taken when any of its ``meta``, ``head`` and ``text`` rows is missing or of
another FORMAT (an older postroom's: the IMAP server reads it as a miss), and it gets
what it lacks only."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.protocols.imap import mime
from postroom.servers.imap.messages import derive
from postroom.servers.imap.persist import FORMAT, dump_head, dump_text
from postroom.servers.imap.searchtext import search_text
from postroom.store.base import Envelope
from postroom.store.index_worker import Indexer, connect_readonly
from postroom.store.index_write import store_imap_rows
from postroom.store.indexer import extract
from postroom.store.sqlite import SQLiteStore

RAW = (
    b"From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\r\nTo: a@x, b@y\r\nSubject: caf\xc3\xa9\r\n"
    b"Date: Wed, 03 Jan 2024 10:00:00 +0100\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n"
)
OLD = bytes(b ^ 0xFF for b in FORMAT)  # another postroom's FORMAT
KINDS = ("meta", "head", "text")


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """A store of six indexed messages with all their IMAP rows (the indexer's), closed
    again (so that nothing but the test writes them): its path and the message row ids."""
    path = str(tmp_path / "s.db")
    settings = Settings(db=path)
    settings.validate()
    st = SQLiteStore(path, settings, Bus())
    st.start()
    try:
        ids = [asyncio.run(st.deliver(Envelope("a@x", ("b@y",)), RAW)) for _ in range(6)]
        assert st.wait_indexed(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(len(st.imap_cache_get(k, ids)) == 6 for k in KINDS):
            time.sleep(0.05)
        assert all(len(st.imap_cache_get(k, ids)) == 6 for k in KINDS)
    finally:
        st.close()
    db = sqlite3.connect(path, isolation_level=None)
    mids = [r[0] for r in db.execute("SELECT id FROM message ORDER BY id")]
    db.close()
    yield path, mids


def _age(db: sqlite3.Connection, kind: str, mid: int) -> None:
    """Give a row an older FORMAT (the rest of the blob as it is)."""
    (data,) = db.execute(f"SELECT data FROM imap_{kind} WHERE id = ?", (mid,)).fetchone()
    assert data[: len(FORMAT)] == FORMAT
    db.execute(f"UPDATE imap_{kind} SET data = ? WHERE id = ?", (OLD + data[len(FORMAT) :], mid))


def _expected() -> tuple[bytes, bytes, bytes]:
    part = mime.parse(RAW)
    d = derive(part)
    assert d.headers is not None
    return d.blob, dump_head(d.headers), dump_text(*search_text(part))


def _rows(path: str) -> dict[str, dict[int, bytes]]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        return {k: dict(db.execute(f"SELECT id, data FROM imap_{k}").fetchall()) for k in KINDS}
    finally:
        db.close()


def test_rows_of_an_older_format_are_derived_again_and_only_those(stored: tuple[str, list[int]]) -> None:
    """After an upgrade: an old text row gets the text alone, an old meta or head row the
    meta and head alone, all old rows all three; a message whose rows are current is not
    taken. Stored, every row is of the current format."""
    path, mids = stored
    db = sqlite3.connect(path, isolation_level=None)
    _age(db, "text", mids[0])
    _age(db, "meta", mids[1])
    _age(db, "head", mids[2])
    for kind in KINDS:
        _age(db, kind, mids[3])
    _age(db, "meta", mids[5])  # an old meta row and no text row: all three
    db.execute("DELETE FROM imap_text WHERE id = ?", (mids[5],))
    db.close()
    meta, head, text = _expected()
    conn = connect_readonly(path)
    try:
        ix = Indexer(conn, extract, None)
        got = ix.imap_batch()
        assert got == [
            (mids[0], (None, None, text)),
            (mids[1], (meta, head, None)),
            (mids[2], (meta, head, None)),
            (mids[3], (meta, head, text)),
            (mids[5], (meta, head, text)),
        ]
        assert ix.imap_batch() == []
    finally:
        conn.close()
    wconn = sqlite3.connect(path, isolation_level=None)
    try:
        store_imap_rows(wconn, got)
    finally:
        wconn.close()
    rows = _rows(path)
    assert rows == {
        "meta": dict.fromkeys(mids, meta),
        "head": dict.fromkeys(mids, head),
        "text": dict.fromkeys(mids, text),
    }
    conn = connect_readonly(path)
    try:
        assert Indexer(conn, extract, None).imap_batch() == []  # a fresh pass finds nothing to do
    finally:
        conn.close()


def test_a_message_searched_early_or_half_written_gets_what_it_lacks(stored: tuple[str, list[int]]) -> None:
    """A message with a text row alone (SEARCH TEXT before the indexer got to it) gets its
    meta and head rows; one with meta but no head row (the IMAP server's write-behind stores
    them in separate transactions: an exit between) gets them too; one with meta and head
    but no text row (APPENDed, FETCHed early) gets its text alone."""
    path, mids = stored
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM imap_meta WHERE id = ?", (mids[1],))
    db.execute("DELETE FROM imap_head WHERE id IN (?, ?)", (mids[1], mids[3]))
    db.execute("DELETE FROM imap_text WHERE id = ?", (mids[4],))
    db.close()
    meta, head, text = _expected()
    conn = connect_readonly(path)
    try:
        ix = Indexer(conn, extract, None)
        assert ix.imap_batch() == [
            (mids[1], (meta, head, None)),
            (mids[3], (meta, head, None)),
            (mids[4], (None, None, text)),
        ]
        assert ix.imap_after == mids[-1]
    finally:
        conn.close()


def test_the_pass_checks_a_window_at_a_time_and_gives_way_between(
    stored: tuple[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages whose rows are all current are checked IMAP_SCAN at a time, and
    ``interrupted()`` is asked between windows (new mail is not kept waiting by a long
    scan after a start); the next call goes on from there."""
    from postroom.store import index_worker

    path, mids = stored
    monkeypatch.setattr(index_worker, "IMAP_SCAN", 2)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM imap_text WHERE id = ?", (mids[4],))
    db.close()
    text = _expected()[2]
    conn = connect_readonly(path)
    try:
        ix = Indexer(conn, extract, None)
        assert ix.imap_batch(lambda: True) == []
        assert ix.imap_after == mids[1]  # one window seen
        assert ix.imap_batch(lambda: True) == []
        assert ix.imap_after == mids[3]
        assert ix.imap_batch(lambda: False) == [(mids[4], (None, None, text))]
        assert ix.imap_batch(lambda: False) == []
        assert ix.imap_after == mids[-1]
        ix.imap_after = 0
        assert ix.imap_batch() == [(mids[4], (None, None, text))]  # no interruptions: to the end
    finally:
        conn.close()
