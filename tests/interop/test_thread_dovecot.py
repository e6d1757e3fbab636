"""postroom's threading against Dovecot's IMAP THREAD, for the same messages.

Every vector in tests/vectors/threads/ (and a few hundred seeded random mailboxes full of
loops, duplicates, missing ids and look-alike subjects) is APPENDed into a private Dovecot;
its ``UID THREAD REFERENCES`` and ``THREAD ORDEREDSUBJECT`` answers must equal what
:mod:`postroom.threads` computes (RFC mode, ``localized=False``). Where Dovecot deviates on
purpose the vector says so (``dovecot_references``) and docs/threads.md explains it.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import random
from collections.abc import Iterator
from email.utils import formatdate

import pytest
from tests.helpers import running_dovecot
from tests.thread_vectors import Vector, load_all

from postroom.threads import (
    ThreadMessage,
    format_thread_response,
    thread_orderedsubject,
    thread_references,
)

pytestmark = pytest.mark.interop

VECTORS = load_all()
_BIG = {v.name for v in VECTORS if len(v.messages) > 100}
_box_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def dovecot_imap() -> Iterator[int]:
    """A private Dovecot on a free loopback port; yields its IMAP port."""
    with running_dovecot("postroom-thread-dovecot-") as (imap_port, _):
        yield imap_port


@pytest.fixture
def imap(dovecot_imap: int) -> Iterator[imaplib.IMAP4]:
    client = imaplib.IMAP4("127.0.0.1", dovecot_imap)
    client.login("alice@example.org", "secret")
    try:
        yield client
    finally:
        client.logout()


def dovecot_threads(imap: imaplib.IMAP4, messages: list[tuple[bytes, int]]) -> dict[str, str]:
    """APPEND ``(raw, internaldate)`` pairs to a new mailbox; return Dovecot's THREAD answers."""
    box = f"threads-{os.getpid()}-{next(_box_numbers)}"
    assert imap.create(box)[0] == "OK"
    for raw, internaldate in messages:
        typ, data = imap.append(box, "", imaplib.Time2Internaldate(internaldate), raw)
        assert typ == "OK", data
    assert imap.select(box)[0] == "OK"
    answers = {}
    for name, args in {
        "references": ("UID", "THREAD", "REFERENCES"),
        "orderedsubject": ("THREAD", "ORDEREDSUBJECT"),
        "uid_orderedsubject": ("UID", "THREAD", "ORDEREDSUBJECT"),
    }.items():
        if args[0] == "UID":
            typ, data = imap.uid(args[1], args[2], "UTF-8", "ALL")
        else:
            typ, data = imap.thread(args[1], "UTF-8", "ALL")
        assert typ == "OK", data
        answers[name] = (data[0] or b"").decode("ascii")
    imap.close()
    return answers


def ours(records: list[ThreadMessage]) -> dict[str, str]:
    refs = format_thread_response(thread_references(records)).decode()
    ordered = format_thread_response(thread_orderedsubject(records)).decode()
    return {"references": refs, "orderedsubject": ordered, "uid_orderedsubject": ordered}


@pytest.mark.parametrize(
    "vector",
    [pytest.param(v, id=v.name, marks=[pytest.mark.slow] if v.name in _BIG else []) for v in VECTORS],
)
def test_vector_equals_dovecot(imap: imaplib.IMAP4, vector: Vector) -> None:
    n = len(vector.messages)
    theirs = dovecot_threads(imap, [(vector.eml(u), vector.internaldate(u)) for u in range(1, n + 1)])
    mine = ours(vector.records())
    # the vector's own expectation is the RFC answer, and ours is that answer ...
    assert mine["references"] == vector.expect["references"]
    # ... which is Dovecot's, except where the vector documents a Dovecot deviation
    want = dict(mine, references=vector.expect.get("dovecot_references", mine["references"]))
    assert theirs == want


# -- seeded random mailboxes ---------------------------------------------------------------------

_SUBJECTS = [
    "",
    "Hi",
    "hi",
    "Re: Hi",
    "RE: re: hi",
    "Fwd: Hi",
    "Hi (fwd)",
    "[list] Hi",
    "[list] Re: Hi",
    "[Fwd: Hi]",
    "Other",
    "Re: Other",
    "ＲＥ：Other",
    "AW: Other",
    "Re:",
    "[x]",
]


def random_mailbox(seed: int) -> list[tuple[dict[str, str], int]]:
    """Headers and internal dates for 3-16 messages that share a small pool of Message-IDs."""
    rnd = random.Random(seed)
    pool = [f"<m{i}.{seed}@example.org>" for i in range(rnd.randint(2, 10))]
    out = []
    for _ in range(rnd.randint(3, 16)):
        headers: dict[str, str] = {}
        if rnd.random() < 0.9:
            headers["Message-ID"] = rnd.choice(pool)
        if rnd.random() < 0.6:
            headers["References"] = " ".join(rnd.choices(pool, k=rnd.randint(0, 5)))
        if rnd.random() < 0.4:
            headers["In-Reply-To"] = rnd.choice(pool)
        subject = rnd.choice(_SUBJECTS)
        if subject or rnd.random() < 0.5:
            headers["Subject"] = subject
        if rnd.random() < 0.85:
            # few distinct dates, so that ties (broken by UID) are common
            headers["Date"] = formatdate(1_704_067_200 + 3600 * rnd.randint(0, 6))
        out.append((headers, 1_704_067_200 + 1800 * rnd.randint(0, 12)))
    return out


def _raw(headers: dict[str, str]) -> bytes:
    lines = ["From: a@example.org", "To: b@example.org", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode("utf-8")


@pytest.mark.parametrize("seed", range(60))
def test_random_mailbox_equals_dovecot(imap: imaplib.IMAP4, seed: int) -> None:
    box = random_mailbox(seed)
    theirs = dovecot_threads(imap, [(_raw(h), when) for h, when in box])
    records = [
        ThreadMessage.from_headers(
            uid,
            message_id=h.get("Message-ID"),
            in_reply_to=h.get("In-Reply-To"),
            references=h.get("References"),
            subject=h.get("Subject"),
            date=h.get("Date"),
            internaldate=when,
        )
        for uid, (h, when) in enumerate(box, start=1)
    ]
    assert ours(records) == theirs, box
