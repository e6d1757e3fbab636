"""SORT keys kept at the start of the ``head`` rows (servers/imap/persist.py): a SORT after
a restart reads only those bytes of each row, and orders exactly as keys computed from
the header fields do. A real server over sockets, a real SQLite file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from postroom.servers.imap.core import CACHE_KEY
from postroom.servers.imap.messages import SORT_PREFIX, MessageCache
from postroom.servers.imap.persist import HEAD, HEAD_SORT
from postroom.store.base import Envelope
from tests.helpers import running_server
from tests.integration.imap_wire import Wire
from tests.integration.test_imap_sort_orders import CRITERIA, expected, numbers

# RFC 2047 subjects and names, a decomposed "é", Re:/Fwd:/[blob] leaders, a (fwd) trailer,
# no Date:, a Date: that does not parse, and a subject too long for the keys' prefix
SUBJECTS = [
    "=?utf-8?q?Re=3A_caf=C3=A9?=",
    "cafe\u0301",
    "[list] Re: build",
    "report (fwd)",
    "=?iso-8859-1?b?UmU6IGVzcGHxb2w=?=",
    "Fwd: Report",
    "x" * 700,
    "_under",
]
NAMES = [
    "=?utf-8?q?J=C3=B6rg?= <jorg@a.example>",
    '"Adam" <adam@c.example>',
    "zoe@b.example",
    "Ärger <a@d.example>",
]


def message(i: int) -> bytes:
    date = (
        ["", "Date: not a date\r\n"][i % 2]
        if i % 5 == 3
        else f"Date: {1 + i * 7 % 13:02d} Mar 2024 10:00:00 +0100\r\n"
    )
    return (
        f"From: {NAMES[i % 4]}\r\nTo: {NAMES[(i + 1) % 4]}\r\nCc: {NAMES[(i + 2) % 4]}\r\n"
        f"Subject: {SUBJECTS[i % len(SUBJECTS)]}\r\n{date}Message-ID: <k{i}@x>\r\n\r\nbody {i}\r\n"
    ).encode()


def heads_derived(db: Path, n: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as c:
            if c.execute("SELECT count(*) FROM imap_head").fetchone()[0] >= n:
                return
        time.sleep(0.05)
    raise AssertionError("the indexer did not derive the IMAP data")


def test_sort_after_a_restart_reads_only_the_keys_at_the_start_of_the_head_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    raws = {i + 1: message(i) for i in range(24)}
    with running_server(db=str(db)) as s:
        for raw in raws.values():
            s.call(s.app.store.deliver(Envelope("x@example.org", ("bob@example.org",)), raw))
        assert s.app.store.wait_indexed(30)
        heads_derived(db, len(raws))
    with running_server(db=str(db)) as s:  # a restart: no key in memory
        reads: list[tuple[int, int | None]] = []  # (how many IDs, prefix) of each read by ID
        ranges: list[tuple[int, int]] = []  # UID ranges read
        real, real_range = s.app.store.imap_cache_get, s.app.store.imap_cache_range

        def spy(kind: str, ids: list[str], prefix: int | None = None) -> dict[str, bytes]:
            if kind == HEAD:
                reads.append((len(ids), prefix))
            return real(kind, ids, prefix)

        def spy_range(kind: str, *args: Any) -> dict[int, bytes] | None:
            assert kind == HEAD and args[-1] == SORT_PREFIX
            ranges.append(args[-2])
            return real_range(kind, *args)

        monkeypatch.setattr(s.app.store, "imap_cache_get", spy)
        monkeypatch.setattr(s.app.store, "imap_cache_range", spy_range)
        w = Wire(*s.addr("imap"))
        w.ok('LOGIN "bob@example.org" x')
        w.ok("SELECT INBOX")
        stamps = {
            u: e.internaldate
            for u, e in ((e.uid, e) for e in s.app.store.folder_entries("bob@example.org", "INBOX"))
        }
        for crit in CRITERIA:
            assert numbers(w.ok(f"UID SORT ({crit}) UTF-8 ALL")[0]) == expected(raws, stamps, crit), crit
        w.close()
        cache = s.app.extras[CACHE_KEY]
        assert isinstance(cache, MessageCache)
        # every criterion read the keys of all 24 by their UID range, and the whole rows
        # only of the 3 messages whose 700-character subject does not fit in the prefix
        assert ranges == [(1, 24)] * len(HEAD_SORT)
        assert set(reads) == {(3, None)}
        # a folder whose UIDVALIDITY is not the session's (created again): read by ID
        cache._sort_keys.clear()  # (nothing remembered: the keys are read again)
        cache._sort_key_count = 0
        got = cache.sort_keys(
            "DATE", s.app.store.folder_entries("bob@example.org", "INBOX"), ("bob@example.org", "INBOX", -1)
        )
        assert len(got) == 24 and (24, SORT_PREFIX) in reads
