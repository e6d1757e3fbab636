"""The ingest journal's format (store/journal.py, docs/architecture.md): whole records or
none, damaged bytes skipped with what follows recovered, no torn record left by a failed
write, a version-2 file decoded by hand as documented, and the previous (marshal) format
still replayed from checked-in samples."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store.base import Envelope
from postroom.store.journal import (
    FILE_HEADER,
    FRAME,
    Journal,
    JournalTail,
    Record,
    SegmentedJournal,
    create_segment,
    read_records,
    segment_path,
)
from postroom.store.sqlite import SQLiteStore

T = TypeVar("T")
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
MSG = b"From: a@x.org\r\nTo: b@x.org\r\nSubject: s\r\nMessage-ID: <m@x.org>\r\n\r\nbody\r\n"
ENV = Envelope(mail_from="a@x.org", rcpt_to=("b@x.org",), received_at=1.0).dumps()


def offsets(path: str) -> list[int]:
    """Where each record of a version-2 file starts (walking the frames as documented)."""
    data = Path(path).read_bytes()
    pos, out = FILE_HEADER.size, []
    while pos < len(data):
        out.append(pos)
        pos += FRAME.size + FRAME.unpack_from(data, pos)[1]
    return out


def test_a_version_2_file_decodes_by_hand_as_documented(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    j = Journal(path, 0)
    j.append("Id1", ENV, ("t",), MSG)
    j.close()
    data = Path(path).read_bytes()
    magic, version, flags, tag = struct.unpack_from(">8sHH4s", data)
    assert (magic, version, flags) == (b"\x89PRJ\r\n\x1a\n", 2, 0)
    t, size, crc, head_crc = struct.unpack_from(">4sIII", data, 16)
    assert t == tag and head_crc == zlib.crc32(data[16:28])
    payload = data[32 : 32 + size]
    assert len(data) == 32 + size and zlib.crc32(payload) == crc
    assert payload[:1] == b"M"
    (n,) = struct.unpack_from(">I", payload, 1)
    meta = json.loads(payload[5 : 5 + n].decode("ascii"))
    assert meta == {
        "seq": 1,
        "id": "Id1",
        "envelope": ENV,
        "tags": ["t"],
        "codec": "raw",
        "size": len(MSG),
        "head": None,
    }
    assert payload[5 + n :] == MSG


def test_record_metadata_is_the_compact_json_of_the_documented_object(tmp_path: Path) -> None:
    """The writers put the metadata together without json.dumps (it runs before each 250):
    the bytes are still exactly what json.dumps writes for the documented object, for
    non-ASCII envelopes, quotes, tags and a worker's header scan."""
    env = Envelope(mail_from='"o\'q"@x.org', rcpt_to=("bé@x.org", "☃@y.org"), received_at=1.5).dumps()
    head = ['Subj "é"', ["N", "a@x.org"], [["B", "b@x.org"]], [], [], 1.25e9, "m@x", "", ["r@x"], ["t1"]]
    path = str(tmp_path / "w")
    w = SegmentedJournal(path)
    w.append("Idé", env, ("a", 'b"c'), b"zz", 12345, head)
    w.append("Id2", env, (), b"zz", 0, None)
    w.close()
    j = Journal(str(tmp_path / "m"), 6)
    j.append("Id3", env, (), MSG)
    j.close()
    expected = [
        {"seq": 1, "id": "Idé", "envelope": env, "tags": ["a", 'b"c'], "codec": "stored", "size": 12345,
         "head": head},
        {"seq": 2, "id": "Id2", "envelope": env, "tags": [], "codec": "stored", "size": 2, "head": None},
        {"seq": 7, "id": "Id3", "envelope": env, "tags": [], "codec": "raw", "size": len(MSG), "head": None},
    ]  # fmt: skip
    metas = []
    for p in (segment_path(path, 0), str(tmp_path / "m")):
        data = Path(p).read_bytes()
        for at in offsets(p):
            payload = data[at + FRAME.size : at + FRAME.size + FRAME.unpack_from(data, at)[1]]
            (n,) = struct.unpack_from(">I", payload, 1)
            metas.append(payload[5 : 5 + n])
    assert metas == [json.dumps(m, separators=(",", ":")).encode("ascii") for m in expected]


def test_damaged_records_are_skipped_and_the_rest_recovered(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    j = Journal(path, 0)
    for n in range(6):
        j.append(f"Id{n}", ENV, (), MSG + b"x" * n)
    j.close()
    starts = offsets(path)
    data = bytearray(Path(path).read_bytes())
    data[starts[1] + FRAME.size + 10] ^= 0xFF  # a payload byte of record 1
    data[starts[3] + 5] ^= 0xFF  # the length of record 3 (its header CRC fails)
    Path(path).write_bytes(bytes(data))
    assert [r.pid for r in read_records(path)] == ["Id0", "Id2", "Id4", "Id5"]


def test_a_torn_record_in_the_middle_does_not_hide_what_follows(tmp_path: Path) -> None:
    """What a full disk did (issue 14 item 2): half a record, then whole ones written later."""
    path = str(tmp_path / "j")
    j = Journal(path, 0)
    j.append("Before", ENV, (), MSG)
    j.append("Torn", ENV, (), MSG * 50)
    j.append("After1", ENV, (), MSG)
    j.append("After2", ENV, (), MSG)
    j.close()
    starts = offsets(path)
    data = Path(path).read_bytes()
    torn = data[: starts[1] + 200] + data[starts[2] :]  # record "Torn" lost its end
    Path(path).write_bytes(torn)
    assert [r.pid for r in read_records(path)] == ["Before", "After1", "After2"]


def test_a_live_tail_skips_damage_and_waits_for_a_record_being_written(tmp_path: Path) -> None:
    base = str(tmp_path / "w0")
    create_segment(segment_path(base, 0))
    tail = JournalTail(base, 0)
    writer = SegmentedJournal(base)
    writer.append("A", ENV, (), b"zz", 2, None)
    writer.append("B", ENV, (), b"zz", 2, None)
    writer.close()
    path = segment_path(base, 0)
    starts = offsets(path)
    data = bytearray(Path(path).read_bytes())
    data[starts[0] + FRAME.size + 3] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    assert [r.pid for r in tail.read(10)] == ["B"]
    whole = Path(path).read_bytes()[starts[1] :]
    with open(path, "ab") as f:
        f.write(whole[:-4])  # a record being written: not returned, not skipped
    assert tail.read(10) == []
    with open(path, "ab") as f:
        f.write(whole[-4:])
    assert [r.pid for r in tail.read(10)] == ["B"]  # the same record again, now whole
    tail.close()


def test_a_failed_write_leaves_no_part_of_its_record(tmp_path: Path) -> None:
    """A write cut short (here by RLIMIT_FSIZE, as ENOSPC cuts it on a full disk) is taken
    back out, so the records appended once there is room again are readable."""
    path = str(tmp_path / "j")
    script = textwrap.dedent(
        f"""
        import os, resource, signal
        from postroom.store.journal import Journal, JournalError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        j = Journal({path!r}, 0)
        j.append("First", "{{}}", (), b"a" * 100)
        size = os.path.getsize({path!r})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 5000, hard))
        try:
            j.append("TooBig", "{{}}", (), os.urandom(20000))
            raise SystemExit("the write should have failed")
        except JournalError:
            pass
        assert os.path.getsize({path!r}) == size, "the torn record is still there"
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        j.append("Second", "{{}}", (), b"b" * 100)
        j.close()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert [(r.pid, r.seq) for r in read_records(path)] == [("First", 1), ("Second", 2)]


def test_a_message_cannot_pass_for_a_frame(tmp_path: Path) -> None:
    """A message carrying a well-formed frame (with a sync tag it had to guess) is not read
    as a record when resynchronising after damage in front of it."""
    path = str(tmp_path / "j")
    forged = Record(7, "Forged", ENV, (), MSG)
    from postroom.store.journal import _frame, encode_message

    inner = _frame(b"\x00\x00\x00\x00", encode_message(forged))
    j = Journal(path, 0)
    j.append("Carrier", ENV, (), MSG + inner)
    j.append("Next", ENV, (), MSG)
    j.close()
    data = bytearray(Path(path).read_bytes())
    data[FILE_HEADER.size + 1] ^= 0xFF  # the carrier's frame header
    Path(path).write_bytes(bytes(data))
    assert [r.pid for r in read_records(path)] == ["Next"]


def damage_record_1(path: str) -> bytes:
    """Flip a payload byte of the second record of the journal file at ``path``; returns
    the file's new bytes."""
    data = bytearray(Path(path).read_bytes())
    data[offsets(path)[1] + FRAME.size + 7] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    return bytes(data)


def message_ids(store: SQLiteStore) -> list[str]:
    return sorted(m.id for m in store.list_messages().messages)


def with_store(db: str, read: Callable[[SQLiteStore], T]) -> T:
    """Start a store on ``db`` (replaying its journals), ``read`` it, close it."""

    async def run() -> T:
        bus = Bus()
        bus.bind(asyncio.get_running_loop())
        store = SQLiteStore(db, Settings(indexer="thread"), bus)
        store.start()
        try:
            return read(store)
        finally:
            store.close()

    return asyncio.run(run())


def test_a_journal_of_the_previous_format_is_replayed_at_start(tmp_path: Path) -> None:
    """tests/vectors/journal-v1: files written by postroom before version 2 (``PRJ1``
    frames of ``marshal`` dumps): the main journal's two messages and an SMTP worker's two,
    over two segments. An upgrade stores them all, once."""
    for f in (VECTORS / "journal-v1").iterdir():
        shutil.copy(f, tmp_path / f.name)
    db = str(tmp_path / "store.db")

    def read(store: SQLiteStore) -> list[str]:
        s = store.get_summary("LegacyMain00000000000001")
        assert s is not None and s.subject == "legacy 1" and "legacy" in s.tags
        raw = store.get_raw("LegacyWork00000000000004")
        assert raw is not None and raw.endswith(b"Legacy body 4\r\n")
        return message_ids(store)

    ids = with_store(db, read)
    assert ids == [
        "LegacyMain00000000000001",
        "LegacyMain00000000000002",
        "LegacyWork00000000000003",
        "LegacyWork00000000000004",
    ]
    assert not [n for n in os.listdir(tmp_path) if "-w0." in n]  # worker files applied, removed
    assert with_store(db, read) == ids  # applied once: a second start adds nothing


def test_a_damaged_worker_segment_is_replayed_around_the_damage_and_kept(tmp_path: Path) -> None:
    """At start, a worker's segment with a damaged record in the middle: the records after
    it are stored too, and the file is kept as ``*.damaged`` rather than deleted."""
    from postroom.store import rawcodec
    from postroom.store.headers import scan_headers, summary_fields

    db = str(tmp_path / "store.db")
    base = db + "-journal-postroom-w0"
    create_segment(segment_path(base, 0))
    writer = SegmentedJournal(base)
    for n in range(3):
        raw = MSG.replace(b"<m@x.org>", f"<w{n}@x.org>".encode())
        writer.append(
            f"WorkerId{n}", ENV, (), rawcodec.compress(raw), len(raw), summary_fields(scan_headers(raw))
        )
    writer.close()
    path = segment_path(base, 0)
    damage_record_1(path)
    assert with_store(db, message_ids) == ["WorkerId0", "WorkerId2"]
    assert os.path.exists(path + ".damaged") and not os.path.exists(path)


def test_a_damaged_main_journal_is_replayed_around_the_damage_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At start, the main process's journal with a damaged record in the middle: the records
    around it are stored, and the file is kept as ``*.damaged`` (it was emptied in place),
    said in one warning."""
    db = str(tmp_path / "store.db")
    path = db + "-journal-postroom"
    j = Journal(path, 0)
    for n in range(3):
        j.append(f"MainId{n}", ENV, (), MSG.replace(b"<m@x.org>", f"<j{n}@x.org>".encode()))
    j.close()
    data = damage_record_1(path)

    with caplog.at_level(logging.WARNING, logger="postroom.store.journal"):
        assert with_store(db, message_ids) == ["MainId0", "MainId2"]
    assert Path(path + ".damaged").read_bytes() == data  # as it was, for a person to read
    said = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(said) == 1 and "2 records recovered" in said[0] and path + ".damaged" in said[0]
    assert with_store(db, message_ids) == ["MainId0", "MainId2"]  # the next start replays nothing twice
    assert not os.path.exists(path + ".damaged.2")


def test_a_record_whose_checked_payload_does_not_decode_is_skipped(tmp_path: Path) -> None:
    """A payload whose CRC checks out but whose metadata is not one JSON object (data after
    it, a length past the record) is damage: skipped, and what follows recovered; whitespace
    around it is JSON as ``json.loads`` reads it. The writer reads the metadata in place with
    ``json_text``."""
    path = str(tmp_path / "j")
    j = Journal(path, 0)
    j.append("Id0", ENV, (), MSG)
    j.close()
    data = Path(path).read_bytes()
    tag = data[12:16]
    meta = {
        "seq": 9,
        "id": "Id9",
        "envelope": ENV,
        "tags": [],
        "codec": "raw",
        "size": len(MSG),
        "head": None,
    }
    good = json.dumps(meta, separators=(",", ":")).encode()

    def frame(meta_bytes: bytes, declared: int | None = None) -> bytes:
        n = len(meta_bytes) if declared is None else declared
        payload = b"M" + struct.pack(">I", n) + meta_bytes + MSG
        head = struct.pack(">4sII", tag, len(payload), zlib.crc32(payload))
        return head + struct.pack(">I", zlib.crc32(head)) + payload

    bad = [frame(good + b" {}"), frame(good, declared=len(good) + len(MSG) + 1), frame(good[:-1])]
    meta["id"], meta["seq"] = "Id10", 10
    spaced = frame(b" " + json.dumps(meta).encode() + b"\n")
    Path(path).write_bytes(data + b"".join(bad) + spaced)
    records = read_records(path)
    assert [(r.pid, r.body) for r in records] == [("Id0", MSG), ("Id10", MSG)]
