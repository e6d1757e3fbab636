"""SORT orders kept per folder and criteria (servers/imap/sortorder.py): a warm SORT answers
from the kept order without computing keys or sorting, and answers what a fresh sort gives
for every criterion, for subsets (search keys, another session's expunges) and after new
mail. A real server over sockets; SQLite, or PostgreSQL with POSTROOM_TEST_DB=postgresql."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from postroom.protocols.imap import mime
from postroom.protocols.imap.sort import sort_key
from postroom.servers.imap.messages import MessageCache, header_fields
from postroom.store.base import Envelope
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire

NAMES = [
    "Zoe <zoe@b.example>",
    '"Adam" <adam@c.example>',
    "=?utf-8?q?J=C3=B6rg?= <jorg@a.example>",
    "bob@d.example",
]
SUBJECTS = ["Re: lunch", "[list] Build", "lunch", "Fwd: report", "alpha", "Build (fwd)", "REPORT", "zulu"]
CRITERIA = [
    "DATE",
    "REVERSE DATE",
    "ARRIVAL",
    "REVERSE ARRIVAL",
    "SIZE",
    "REVERSE SIZE",
    "SUBJECT",
    "REVERSE SUBJECT",
    "FROM",
    "TO",
    "CC",
    "DISPLAYFROM",
    "DISPLAYTO",
    "FROM REVERSE DATE",
    "SUBJECT REVERSE SIZE",
    "REVERSE FROM SUBJECT DATE",
    "CC SIZE",
]


def message(i: int) -> bytes:
    date = "" if i % 7 == 5 else f"Date: {1 + i * 5 % 13:02d} Mar 2024 1{i % 10}:00:00 +0100\r\n"
    cc = f"Cc: {NAMES[(i + 1) % 4]}\r\n" if i % 3 else ""
    return (
        f"From: {NAMES[i % 4]}\r\nTo: {NAMES[(i * 3) % 4]}\r\n{cc}Subject: {SUBJECTS[i % 8]}\r\n{date}"
        f"Message-ID: <s{i}@x>\r\n\r\n{'word ' * (i * 7 % 11)}{'okapi' if i % 2 else 'gnu'}\r\n"
    ).encode()


def expected(raws: dict[int, bytes], arrival: dict[int, int], criteria: str) -> list[int]:
    """The SORT of the UIDs in ``raws`` computed directly (RFC 5256: stable, ties in UID order)."""
    keys = criteria.split()
    order = sorted(raws)
    pairs: list[tuple[str, bool]] = []
    rev = False
    for k in keys:
        if k == "REVERSE":
            rev = True
            continue
        pairs.append((k, rev))
        rev = False
    for name, reverse in reversed(pairs):
        values = {}
        for u in order:
            fields = header_fields(mime.parse(raws[u]))
            values[u] = sort_key(
                name, lambda n, f=fields: (f.get(n) or [None])[0], len(raws[u]), float(arrival[u])
            )
        order = sorted(order, key=values.__getitem__, reverse=reverse)
    return order


def deliver(s: RunningServer, raw: bytes) -> None:
    s.call(s.app.store.deliver(Envelope("x@example.org", ("bob@example.org",)), raw))


def login(s: RunningServer) -> Wire:
    w = Wire(*s.addr("imap"))
    w.ok('LOGIN "bob@example.org" x')
    return w


def numbers(line: bytes) -> list[int]:
    assert line.startswith(b"* SORT") and line.endswith(b"\r\n"), line
    return [int(x) for x in line[6:].split()]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The criteria MessageCache.sort_keys is asked for, in order."""
    calls: list[str] = []
    real = MessageCache.sort_keys

    def spy(self: MessageCache, criterion: str, *args: Any) -> list:  # type: ignore[type-arg]
        calls.append(criterion)
        return real(self, criterion, *args)

    monkeypatch.setattr(MessageCache, "sort_keys", spy)
    yield calls


def test_kept_orders_answer_every_criterion_as_a_fresh_sort(counted: list[str]) -> None:
    with running_server() as s:
        raws: dict[int, bytes] = {}
        for i in range(24):
            deliver(s, message(i))
            raws[i + 1] = message(i)
        with login(s) as a, login(s) as b:
            a.ok("SELECT INBOX")
            b.ok("SELECT INBOX")
            # arrival follows the UID here, after every Date: written above (a message
            # without one sorts by arrival under DATE)
            stamps = {u: 2_000_000_000 + u for u in raws}
            for crit in CRITERIA:
                want = expected(raws, stamps, crit)
                counted.clear()
                assert numbers(a.ok(f"UID SORT ({crit}) UTF-8 ALL")[0]) == want, crit
                computed = len(counted)
                assert computed == len([k for k in crit.split() if k != "REVERSE"])
                counted.clear()
                # warm: the same bytes from the kept order, no keys asked for; in sequence
                # numbers too, and from another session
                assert numbers(a.ok(f"UID SORT ({crit}) UTF-8 ALL")[0]) == want, crit
                assert numbers(b.ok(f"SORT ({crit}) UTF-8 ALL")[0]) == want, crit
                # a subset: what the search keys leave, in the kept order
                odd = [u for u in want if b"okapi" in raws[u]]
                assert numbers(b.ok(f'UID SORT ({crit}) UTF-8 TEXT "okapi"')[0]) == odd, crit
                assert numbers(a.ok(f"UID SORT ({crit}) UTF-8 UID 3:9")[0]) == [
                    u for u in want if 3 <= u <= 9
                ]
                assert counted == [], crit
            # another session expunges: the kept order answers the rest, by UID and by
            # sequence number
            b.ok("UID STORE 2,5,11 +FLAGS.SILENT (\\Deleted)")
            b.ok("EXPUNGE")
            for u in (2, 5, 11):
                del raws[u]
            counted.clear()
            for crit in CRITERIA[-3:]:  # (the most recent orders are kept: ORDERS_KEPT)
                want = expected(raws, stamps, crit)
                assert numbers(a.ok(f"UID SORT ({crit}) UTF-8 ALL")[-1]) == want
                seqs = {u: i for i, u in enumerate(sorted(raws), 1)}
                assert numbers(a.ok(f"SORT ({crit}) UTF-8 ALL")[0]) == [seqs[u] for u in want]
            assert counted == []
            # new mail: sorted again once (the kept order lacks it), then kept
            for i in range(24, 30):
                deliver(s, message(i))
                raws[i + 1] = message(i)
                stamps[i + 1] = 2_000_000_000 + i + 1
            a.ok("NOOP")
            for crit in ("SUBJECT", "REVERSE DATE", "DISPLAYTO SIZE"):
                want = expected(raws, stamps, crit)
                counted.clear()
                assert numbers(a.ok(f"UID SORT ({crit}) UTF-8 ALL")[0]) == want
                assert counted
                counted.clear()
                assert numbers(a.ok(f"UID SORT ({crit}) UTF-8 ALL")[0]) == want
                assert counted == []
            # b has not heard of the new mail yet in its numbering until it syncs; after
            # its NOOP it answers from the same kept order
            b.ok("NOOP")
            want = expected(raws, stamps, "SUBJECT")
            seqs = {u: i for i, u in enumerate(sorted(raws), 1)}
            assert numbers(b.ok("SORT (SUBJECT) UTF-8 ALL")[0]) == [seqs[u] for u in want]
            assert counted == []
