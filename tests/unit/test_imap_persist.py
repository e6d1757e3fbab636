"""The IMAP cache's blob formats and its write-behind thread (servers/imap/persist.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.protocols.imap import mime
from postroom.servers.imap import persist
from postroom.servers.imap.messages import Derived, derive
from postroom.servers.imap.persist import (
    FORMAT,
    WriteBehind,
    dump_head,
    dump_meta,
    dump_text,
    head_sort_keys,
    load_head,
    load_sort_keys,
    load_text,
    meta_layout,
)
from postroom.servers.imap.searchtext import search_text
from postroom.store.base import Envelope
from postroom.store.sqlite import SQLiteStore

RAW = (
    b"From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\r\nTo: a@x, b@y\r\nSubject: caf\xc3\xa9\r\n"
    b"Date: Wed, 03 Jan 2024 10:00:00 +0100\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n"
)


def test_meta_and_head_round_trip() -> None:
    d = derive(mime.parse(RAW))
    again = Derived.load(d.blob) or pytest.fail("unreadable")
    assert d.blob.startswith(FORMAT)
    assert (again.envelope, again.bodystructure, again.body) == (d.envelope, d.bodystructure, d.body)
    assert again.envelope.startswith(b'("Wed, 03 Jan 2024 10:00:00 +0100" {5}\r\ncaf\xc3\xa9 (("=?utf-8?')
    assert again.sent_date == d.sent_date == (2024, 1, 3)
    assert again.headers is None  # header fields live in their own blob
    assert d.headers is not None
    assert load_head(dump_head(d.headers)) == d.headers
    assert d.headers["subject"] == ["café"]


def test_head_blob_starts_with_the_sort_keys_of_its_fields() -> None:
    """The SORT keys of HEAD_SORT, as sort_key computes them from the same fields (the DATE
    key None without a Date: that parses); readable from a prefix that holds them."""
    from postroom.protocols.imap.sort import sort_key

    fields = {
        "subject": ["=?utf-8?q?Re=3A_cafe=CC=81?= (fwd)"],
        "from": ["=?utf-8?q?J=C3=B6rg?= <jorg@a.example>"],
        "to": ['"Adam" <adam@c.example>, b@x'],
        "date": ["Wed, 03 Jan 2024 10:00:00 +0100"],
    }
    blob = dump_head(fields)
    keys = load_sort_keys(blob[:200]) or pytest.fail("no keys")
    for name, key in zip(persist.HEAD_SORT, keys, strict=True):
        assert key == sort_key(name, lambda n: (fields.get(n) or [None])[0], 0, -1.0), name
    assert keys[1] == "CAFE\u0301" and keys[2] == "JORG"
    assert load_head(blob) == fields
    assert head_sort_keys({"date": ["not a date"]})[0] is None and head_sort_keys({})[0] is None
    assert load_sort_keys(blob[: persist.HEAD_START + 5]) is None  # the prefix cuts the keys
    assert load_sort_keys(b"\0" * 8 + blob[8:]) is None  # another format
    # keys too long for the blob's length field: none kept, the fields still are
    huge = {"subject": ["s" * 70_000]}
    assert load_sort_keys(dump_head(huge)) is None and load_head(dump_head(huge)) == huge
    # a key holding a NUL (an encoded word can decode to one): none kept either
    nul = {"subject": ["=?utf-8?q?a=00b?="], "date": ["Wed, 03 Jan 2024 10:00:00 +0100"]}
    assert load_sort_keys(dump_head(nul)) is None and load_head(dump_head(nul)) == nul


def test_meta_without_a_date_and_damaged_blobs() -> None:
    blob = dump_meta(b"(e)", b"(s)", b"(b)", None)
    d = Derived.load(blob) or pytest.fail("unreadable")
    assert (d.envelope, d.bodystructure, d.body, d.sent_date) == (b"(e)", b"(s)", b"(b)", None)
    assert meta_layout(blob[:-1]) is None  # truncated
    assert meta_layout(b"\0" * 8 + blob[8:]) is None  # another format
    assert meta_layout(b"") is None
    assert load_head(b"\0" * 8 + dump_head({})[8:]) is None
    assert load_head(FORMAT + b"[1, 2]") is None
    assert load_head(FORMAT + b"{not json") is None


@pytest.mark.parametrize("body", ["short body", "long body " * 30, "long body " * 1000])
def test_text_round_trip_short_and_compressed(body: str) -> None:
    head = "from: rené\nsubject: café"
    text = head + "\n" + body
    blob = dump_text(text, len(head))
    assert (len(blob) < len(text)) == (len(text.encode()) >= persist.TEXT_PACK_MIN)
    assert load_text(blob) == (text, body)
    assert load_text(b"\0" * 8 + blob[8:]) is None


def test_damaged_compressed_text_reads_as_a_miss() -> None:
    text = "x\n" + "word " * 2000
    blob = dump_text(text, 1)
    assert load_text(blob[:-10]) is None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    settings = Settings(db=str(tmp_path / "s.db"))
    settings.validate()
    st = SQLiteStore(str(tmp_path / "s.db"), settings, Bus())
    st.start()
    yield st
    st.close()


def test_write_behind_batches_by_kind_and_drains(store: SQLiteStore) -> None:
    ids = [asyncio.run(store.deliver(Envelope("a@x", ("b@y",)), RAW)) for _ in range(2)]
    wb = WriteBehind(store)
    wb.add("meta", ids[0], b"1")
    wb.add("text", ids[0], b"2")
    wb.add("meta", ids[1], b"3")
    wb.add("meta", "no-such-message", b"4")
    assert store.imap_cache_get("meta", ids) == {}  # nothing leaves before kick (or drain)
    assert wb.drain(30)
    assert store.imap_cache_get("meta", [*ids, "no-such-message"]) == {ids[0]: b"1", ids[1]: b"3"}
    assert store.imap_cache_get("text", ids) == {ids[0]: b"2"}


def test_write_behind_outlives_a_closed_store(store: SQLiteStore) -> None:
    wb = WriteBehind(store)
    store.close()
    wb.add("meta", "a", b"1")
    assert wb.drain(30)  # dropped (StoreClosed), not stuck
    wb.add("meta", "b", b"2")
    assert wb.drain(30)
    assert wb._thread is not None and wb._thread.is_alive()


def test_unknown_kind(store: SQLiteStore) -> None:
    with pytest.raises(ValueError):
        store.imap_cache_get("thumbnail", ["x"])


MULTIPART = (
    b"From: a@x\r\nTo: b@y\r\nSubject: parts\r\nDate: Thu, 04 Jan 2024 09:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
    b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
    b"--zz\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@z\r\nSubject: inner\r\n\r\ninner body\r\n"
    b"--zz--\r\n"
)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_the_indexer_stores_what_imap_derives(tmp_path: Path, mode: str) -> None:
    """Once a message is indexed, the indexer stores its meta and head blobs, byte for byte
    what the IMAP server would derive itself; they go with the message."""
    settings = Settings(db=str(tmp_path / "s.db"), indexer=mode)
    settings.validate()
    st = SQLiteStore(str(tmp_path / "s.db"), settings, Bus())
    st.start()
    try:
        ids = [asyncio.run(st.deliver(Envelope("a@x", ("b@y",)), raw)) for raw in (RAW, MULTIPART)]
        assert st.wait_indexed(30)
        deadline = time.monotonic() + 30  # the IMAP data follows the text index
        while len(metas := st.imap_cache_get("meta", ids)) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        heads = st.imap_cache_get("head", ids)
        for id, raw in zip(ids, (RAW, MULTIPART), strict=True):
            d = derive(mime.parse(raw))
            assert d.headers is not None
            assert metas[id] == d.blob
            assert heads[id] == dump_head(d.headers)
        st.delete_messages([ids[0]])
        assert st.imap_cache_get("meta", ids).keys() == {ids[1]}
        assert st.imap_cache_get("head", ids).keys() == {ids[1]}
    finally:
        st.close()


def test_search_text_is_bounded_by_bytes_and_keeps_no_raw(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text cache holds at most TEXT_CACHE_BYTES (in bytes of the strings, non-ASCII text
    included); deriving search text keeps neither the message's bytes nor its header fields."""
    from postroom.servers.imap import messages

    body = "Grüße aus Köln " * 400  # non-ASCII: 2 bytes a character in CPython
    raws = [RAW.replace(b"body\r\n", f"{body} {i}\r\n".encode()) for i in range(12)]
    ids = [asyncio.run(store.deliver(Envelope("a@x", ("b@y",)), raw)) for raw in raws]
    monkeypatch.setattr(messages, "TEXT_CACHE_BYTES", 40_000)
    cache = messages.MessageCache(store)
    got = cache.texts_many(ids)
    assert [t[1].split()[-1] for t in (got[id] for id in ids)] == [str(i) for i in range(12)]
    assert "grüsse aus köln" in got[ids[0]][1]  # case-folded (ß: ss)
    assert 0 < cache._text_bytes <= 40_000
    assert cache._text_bytes == sum(messages._size(k) for k in cache._texts.values())
    assert all(full[start:].startswith("grüsse") for full, start in cache._texts.values())
    assert len(cache._texts) < 12  # the oldest went
    assert list(cache._texts)[-1] == ids[-1]
    assert cache._raws == {} and cache._derived == {}
    assert cache.writes.drain(30)
    assert store.imap_cache_get("text", ids).keys() == set(ids)  # read back next time
    assert cache.text(ids[0]) == got[ids[0]]


def test_the_imap_pass_takes_what_lacks_data_and_moves_on(store: SQLiteStore, tmp_path: Path) -> None:
    """Indexer.imap_batch derives only what has no search text stored yet, the text alone
    for a message whose other IMAP data is stored (the IMAP server derives that of APPENDed
    mail, not its text), and once it has seen every indexed message it starts after them
    (no rescan of the whole table at each wake-up)."""
    import sqlite3

    from postroom.store.index_worker import Indexer, connect_readonly
    from postroom.store.indexer import extract

    ids = [
        asyncio.run(store.deliver(Envelope("a@x", ("b@y",)), raw)) for raw in (RAW, MULTIPART, MULTIPART, RAW)
    ]
    assert store.wait_indexed(30)
    deadline = time.monotonic() + 30
    while len(store.imap_cache_get("meta", ids)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    db = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    mids = [r[0] for r in db.execute("SELECT id FROM message ORDER BY id")]
    db.execute("DELETE FROM imap_text WHERE id IN (?, ?)", (mids[0], mids[2]))
    db.execute("DELETE FROM imap_meta WHERE id = ?", (mids[2],))
    db.close()
    conn = connect_readonly(str(tmp_path / "s.db"))
    try:
        ix = Indexer(conn, extract, None)
        [(first, text_only), (third, full)] = ix.imap_batch()
        assert (first, third) == (mids[0], mids[2]) and text_only is not None and full is not None
        part = mime.parse(MULTIPART)
        d = derive(part)
        assert d.headers is not None
        assert full == (d.blob, dump_head(d.headers), dump_text(*search_text(part)))
        assert text_only == (None, None, dump_text(*search_text(mime.parse(RAW))))
        text = load_text(text_only[2])
        assert text is not None and text[1].strip() == "body"
        assert ix.imap_after == mids[-1]  # it saw the others have theirs
        assert ix.imap_batch() == []
    finally:
        conn.close()


def test_the_imap_pass_gives_way_to_new_mail(store: SQLiteStore, tmp_path: Path) -> None:
    """imap_batch(interrupted) stops before the next message once ``interrupted()`` is true (the
    store woke the indexer: new mail's text index goes first) and later goes on from there."""
    import sqlite3

    from postroom.store.index_worker import Indexer, connect_readonly
    from postroom.store.indexer import extract

    ids = [asyncio.run(store.deliver(Envelope("a@x", ("b@y",)), raw)) for raw in (RAW, MULTIPART, RAW)]
    assert store.wait_indexed(30)
    deadline = time.monotonic() + 30
    while len(store.imap_cache_get("meta", ids)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    db = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    mids = [r[0] for r in db.execute("SELECT id FROM message ORDER BY id")]
    db.execute("DELETE FROM imap_text")
    db.close()
    conn = connect_readonly(str(tmp_path / "s.db"))
    try:
        ix = Indexer(conn, extract, None)
        asked: list[int] = []

        def after_one() -> bool:
            asked.append(1)
            return len(asked) > 1

        assert [mid for mid, _ in ix.imap_batch(after_one)] == mids[:1]
        assert ix.imap_batch(lambda: True) == []
        assert [mid for mid, blobs in ix.imap_batch(lambda: False) if blobs is not None] == mids[1:]
        assert ix.imap_batch() == []
    finally:
        conn.close()


def test_kept_gmail_message_ids_are_bounded(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """X-GM-MSGIDs kept for inline FETCH (servers/imap/gmail.py): past MSGID_ITEMS the
    oldest quarter goes, the newest stay."""
    from postroom.servers.imap import messages

    monkeypatch.setattr(messages, "MSGID_ITEMS", 100)
    cache = messages.MessageCache(store)
    for i in range(0, 300, 10):
        cache.keep_msgids({f"id{j}": j for j in range(i, i + 10)})
        assert len(cache._msgids) <= 100
    assert cache.peek_msgid("id299") == 299 and cache.peek_msgid("id0") is None
    assert len(cache._msgids) >= 75


def test_write_behind_lets_blobs_gather_and_skips_what_was_forgotten_meanwhile(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blobs are written WRITE_DELAY after they are handed over (or at once by drain), so a
    message deleted within that time (imaptest's APPEND ... EXPUNGE) is never written. (The
    store's indexer may write meta rows of its own: only ours are looked for.)"""
    monkeypatch.setattr(persist, "WRITE_DELAY", 60.0)
    ids = [asyncio.run(store.deliver(Envelope("a@x", ("b@y",)), RAW)) for _ in range(3)]
    ours = {pid: b"ours %d" % i for i, pid in enumerate(ids)}

    def written() -> set[str]:
        return {pid for pid, blob in store.imap_cache_get("meta", ids).items() if blob == ours[pid]}

    wb = WriteBehind(store)
    for pid in ids:
        wb.add("meta", pid, ours[pid])
        wb.kick()
    time.sleep(0.5)
    assert written() == set()  # gathering
    wb.forget([ids[1]])
    assert wb.drain(30)
    assert written() == {ids[0], ids[2]}
    monkeypatch.setattr(persist, "WRITE_DELAY", 0.2)
    ours[ids[1]] = b"later"
    wb.add("meta", ids[1], b"later")
    wb.kick()
    deadline = time.monotonic() + 30
    while ids[1] not in written() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ids[1] in written()  # written without a drain


def test_write_behind_writes_search_text_at_once(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Search text does not wait: a SEARCH TEXT derives it a chunk at a time, and what waits
    is memory the command holds."""
    monkeypatch.setattr(persist, "WRITE_DELAY", 60.0)
    pid = asyncio.run(store.deliver(Envelope("a@x", ("b@y",)), RAW))
    wb = WriteBehind(store)
    wb.add("text", pid, b"t")
    wb.kick()
    deadline = time.monotonic() + 30
    while not store.imap_cache_get("text", [pid]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.imap_cache_get("text", [pid]) == {pid: b"t"}


@pytest.mark.parametrize(
    "module",
    ["protocols/imap/search.py", "charsets.py", "servers/imap/searchtext.py", "protocols/imap/mime.py"],
)
def test_format_changes_with_the_code_that_shapes_the_search_text(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FORMAT digests the modules whose output the blobs hold, the search text's folding
    (search.fold) and decoding (charsets.decode_text, decode_words) included: a postroom
    whose folding changed reads an older text row as a miss."""
    assert persist._fingerprint() == FORMAT
    read = Path.read_bytes
    changed = str(Path(persist.__file__).parents[2] / module)

    def edited(self: Path) -> bytes:
        data = read(self)
        return data + b"\n# changed\n" if str(self) == changed else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert persist._fingerprint() != FORMAT
