"""Conversations end to end: real mail over SMTP, the indexer process threads it, the API shows it.

Covers ThreadID on summaries, ``GET /api/v2/threads``, ``GET /api/v2/thread/{ThreadID}`` and
``thread:`` in search, with replies that arrive before their parents, conversations that a
late message merges, and replies that only carry the subject (localized prefixes).
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from tests.helpers import running_server
from tests.integration._api_client import Api, q, smtp_send

BASE = 1_790_000_000  # a fixed Date: origin; every message is an hour after the previous one


def mail(n: int, msgid: str, subject: str, *, refs: str = "", to: str = "bob@example.org") -> bytes:
    head = [
        f"From: Sender {n} <s{n}@example.com>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        f"Date: {formatdate(BASE + 3600 * n)}",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if refs:
        head += [f"References: {refs}", f"In-Reply-To: {refs.split()[-1]}"]
    return ("\r\n".join(head) + f"\r\n\r\nmessage {n}\r\n").encode()


# Arrival order. The launch conversation arrives backwards (grandchild, child, root); the
# merge conversation starts as two replies to different unknown parents that "m2" joins;
# the quarterly replies carry no References, only a reply prefix (German, Chinese);
# the password mails share a subject but are not replies, so they stay apart.
MAILS: list[tuple[str, str, str, str]] = [
    (
        "launch-c",
        "launch-c@example.com",
        "Re: Re: Launch plan",
        "<launch-a@example.com> <launch-b@example.com>",
    ),
    ("weekly", "weekly@example.com", "Weekly report", ""),
    ("launch-b", "launch-b@example.com", "Re: Launch plan", "<launch-a@example.com>"),
    ("merge-x1", "x1@example.com", "Re: Budget", "<m1@example.com>"),
    ("merge-x2", "x2@example.com", "Re: Budget", "<m2@example.com>"),
    ("quarterly", "q0@example.com", "Quarterly numbers", ""),
    ("reset-1", "reset1@example.com", "Reset your password", ""),
    ("launch-a", "launch-a@example.com", "Launch plan", ""),
    ("quarterly-aw", "q1@example.com", "AW: Quarterly numbers", ""),
    ("reset-2", "reset2@example.com", "Reset your password", ""),
    ("merge-m2", "m2@example.com", "Re: Budget", "<m1@example.com>"),
    ("quarterly-zh", "q2@example.com", "回复: Quarterly numbers", ""),
]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Api, dict[str, dict[str, Any]]]]:
    with running_server() as s:  # the default indexer: its own process
        api = Api(s)
        for n, (_, msgid, subject, refs) in enumerate(MAILS):
            to = "carol@example.org" if subject.endswith("Quarterly numbers") else "bob@example.org"
            smtp_send(s, mail(n, msgid, subject, refs=refs, to=to), [to])
        api.wait_indexed()
        listing = api.get("/api/v2/messages?limit=100").json()["messages"]
        by_msgid = {m["MessageID"]: m for m in listing}
        yield api, {name: by_msgid[msgid] for name, msgid, _, _ in MAILS}


def tid(world: tuple[Api, dict[str, dict[str, Any]]], name: str) -> str:
    return str(world[1][name]["ThreadID"])


def test_thread_ids_group_conversations(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    groups: dict[str, set[str]] = {}
    for name in world[1]:
        groups.setdefault(tid(world, name), set()).add(name)
    assert sorted(map(sorted, groups.values())) == sorted(
        [
            ["launch-a", "launch-b", "launch-c"],
            ["merge-m2", "merge-x1", "merge-x2"],
            ["quarterly", "quarterly-aw", "quarterly-zh"],
            ["reset-1"],
            ["reset-2"],
            ["weekly"],
        ]
    )
    assert all(t.isdigit() for t in groups)


def test_the_oldest_message_names_the_conversation(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    # launch-c arrived first, before its parents; x1 is older than x2, whose thread merged into x1's
    assert int(tid(world, "launch-c")) < int(tid(world, "weekly"))
    assert tid(world, "merge-x2") == tid(world, "merge-x1")
    assert int(tid(world, "merge-x1")) < int(tid(world, "reset-1"))


def test_thread_list_is_newest_activity_first(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    api = world[0]
    page = api.get("/api/v2/threads").json()
    assert page["total"] == 6
    order = [t["ThreadID"] for t in page["threads"]]
    # last arrivals: quarterly-zh, merge-m2, reset-2, quarterly-aw (same thread), launch-a, ...
    assert order == [
        tid(world, "quarterly"),
        tid(world, "merge-m2"),
        tid(world, "reset-2"),
        tid(world, "launch-a"),
        tid(world, "reset-1"),
        tid(world, "weekly"),
    ]
    launch = next(t for t in page["threads"] if t["ThreadID"] == tid(world, "launch-a"))
    assert launch["MessagesCount"] == 3 and launch["Unread"] == 3
    assert launch["Subject"] == "Re: Re: Launch plan"  # its first message (the first to arrive)
    assert launch["LastActivity"] == world[1]["launch-a"]["Created"]
    senders = [p["Address"] for p in launch["Participants"]]
    assert senders == ["s0@example.com", "bob@example.org", "s2@example.com", "s7@example.com"]
    paged = api.get("/api/v2/threads?start=4&limit=1").json()
    assert paged["total"] == 6 and [t["ThreadID"] for t in paged["threads"]] == [tid(world, "reset-1")]


def test_thread_list_by_mailbox(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    page = world[0].get("/api/v2/threads?mailbox=Carol@Example.org").json()
    assert page["total"] == 1
    (only,) = page["threads"]
    assert only["ThreadID"] == tid(world, "quarterly") and only["MessagesCount"] == 3
    assert world[0].get("/api/v2/threads?mailbox=nobody@example.org").json() == {
        "total": 0,
        "start": 0,
        "threads": [],
    }
    assert world[0].get("/api/v2/threads?limit=x").status == 400


def test_thread_tree_re_links_parents_that_came_late(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    api, msgs = world
    r = api.get(f"/api/v2/thread/{tid(world, 'launch-b')}")
    assert r.status == 200
    t = r.json()
    assert t["ThreadID"] == tid(world, "launch-a") and t["MessagesCount"] == 3
    shape = [(m["ID"], m["Depth"], m["Parent"], m["Children"]) for m in t["Messages"]]
    a, b, c = (msgs[n]["ID"] for n in ("launch-a", "launch-b", "launch-c"))
    assert shape == [(a, 0, "", [b]), (b, 1, a, [c]), (c, 2, b, [])]
    assert t["Messages"][0]["Subject"] == "Launch plan" and t["Messages"][0]["ThreadID"] == t["ThreadID"]
    assert all(m["Date"] != m["Created"] for m in t["Messages"])  # the Date header, not the arrival


def test_thread_tree_of_subject_only_replies(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    api, msgs = world
    t = api.get(f"/api/v2/thread/{tid(world, 'quarterly')}").json()
    root, aw, zh = (msgs[n]["ID"] for n in ("quarterly", "quarterly-aw", "quarterly-zh"))
    assert [(m["ID"], m["Depth"], m["Parent"]) for m in t["Messages"]] == [
        (root, 0, ""),
        (aw, 1, root),
        (zh, 1, root),
    ]


def test_thread_tree_without_the_common_parent(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    api, msgs = world
    t = api.get(f"/api/v2/thread/{tid(world, 'merge-x1')}").json()
    x1, x2, m2 = (msgs[n]["ID"] for n in ("merge-x1", "merge-x2", "merge-m2"))
    # m1 never arrived: x1 and m2 answer it (a dummy, left out); x2 answers m2
    assert [(m["ID"], m["Depth"], m["Parent"]) for m in t["Messages"]] == [
        (x1, 0, ""),
        (m2, 0, ""),
        (x2, 1, m2),
    ]


def test_thread_search(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    api, msgs = world
    found = api.get("/api/v1/search?query=" + q(f"thread:{tid(world, 'merge-x2')}")).json()
    assert sorted(m["ID"] for m in found["messages"]) == sorted(
        msgs[n]["ID"] for n in ("merge-x1", "merge-x2", "merge-m2")
    )
    assert found["messages_count"] == 3
    none = api.get("/api/v1/search?query=" + q("thread:999999")).json()
    assert none["messages_count"] == 0


def test_unknown_thread_is_404(world: tuple[Api, dict[str, dict[str, Any]]]) -> None:
    r = world[0].get("/api/v2/thread/999999")
    assert r.status == 404 and "not found" in r.text
