"""Gmail's X-GM-LABELS on postroom's IMAP server (docs/imap.md): a message's labels are its
tags. FETCH, STORE (set, add, remove, .SILENT) and SEARCH byte for byte over a real socket,
with the tags compared to what the store (and so the API) holds. Runs on PostgreSQL too
(POSTROOM_TEST_DB=postgresql).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire, login


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(smtp="off", http="off", pop3="off") as s:
        yield s


def mail(mid: str) -> bytes:
    return (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {mid}\r\nMessage-ID: <{mid}>\r\n"
        "Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n"
    ).encode()


def ids(w: Wire) -> dict[int, str]:
    out = {}
    for line in w.ok("FETCH 1:* (X-POSTROOM-ID)"):
        seq, _, rest = line.removeprefix(b"* ").partition(b" FETCH (X-POSTROOM-ID ")
        out[int(seq)] = rest.removesuffix(b")\r\n").strip(b'"').decode()
    return out


def test_fetch_and_store_labels_are_the_messages_tags(srv: RunningServer) -> None:
    store = srv.app.store
    with login(srv, "labels@example.org") as w:
        for n in range(3):
            w.append("INBOX", mail(f"l{n}@x"))
        w.ok("SELECT INBOX")
        pid = ids(w)
        assert w.ok("FETCH 1 (X-GM-LABELS)") == [b"* 1 FETCH (X-GM-LABELS ())\r\n"]
        # set: atoms, a quoted label with a space, and one outside ASCII in modified UTF-7
        got = w.ok('STORE 1 X-GM-LABELS (work "2026 plans" &AMQ-lter)')
        assert got == [b'* 1 FETCH (X-GM-LABELS ("2026 plans" work &AMQ-lter))\r\n']
        assert store.message_tags([pid[1]]) == {pid[1]: ["2026 plans", "work", "Älter"]}
        # add (the same label in another case is the same label, and an existing tag keeps
        # its spelling) and UID STORE
        got = w.ok("UID STORE 1:2 +X-GM-LABELS (WORK urgent)")
        assert got == [
            b'* 1 FETCH (UID 1 X-GM-LABELS ("2026 plans" urgent work &AMQ-lter))\r\n',
            b"* 2 FETCH (UID 2 X-GM-LABELS (urgent work))\r\n",
        ]
        # remove, silently: no untagged answer, the store changed
        assert w.ok("STORE 1:3 -X-GM-LABELS.SILENT (Urgent)") == []
        assert store.message_tags([pid[1], pid[2], pid[3]]) == {
            pid[1]: ["2026 plans", "work", "Älter"],
            pid[2]: ["work"],
            pid[3]: [],
        }
        # in a FETCH with other items, in the order asked; the API's tags are the labels
        assert w.ok("FETCH 2 (UID X-GM-LABELS FLAGS)") == [
            b"* 2 FETCH (UID 2 X-GM-LABELS (work) FLAGS (\\Recent))\r\n"
        ]
        summary = store.get_summary(pid[2])
        assert summary is not None and summary.tags == ["work"]
        # a tag set through the API shows at the next FETCH (read from the store each time)
        store.set_tags([pid[3]], ["from-api"])
        assert w.ok("FETCH 3 (X-GM-LABELS)") == [b"* 3 FETCH (X-GM-LABELS (from-api))\r\n"]


def test_search_by_label(srv: RunningServer) -> None:
    with login(srv, "labsearch@example.org") as w:
        for n in range(4):
            w.append("INBOX", mail(f"s{n}@x"))
        w.ok("SELECT INBOX")
        w.ok("STORE 1,3 X-GM-LABELS (receipts)")
        w.ok('STORE 3:4 +X-GM-LABELS ("tax 2026")')
        assert w.ok("SEARCH X-GM-LABELS receipts") == [b"* SEARCH 1 3\r\n"]
        assert w.ok("SEARCH X-GM-LABELS RECEIPTS") == [b"* SEARCH 1 3\r\n"]  # case-insensitive
        assert w.ok('UID SEARCH X-GM-LABELS "tax 2026" NOT X-GM-LABELS receipts') == [b"* SEARCH 4\r\n"]
        assert w.ok("SEARCH OR X-GM-LABELS receipts UID 2") == [b"* SEARCH 1 2 3\r\n"]
        assert w.ok("SEARCH X-GM-LABELS nothing") == [b"* SEARCH\r\n"]
        assert w.ok("SEARCH RETURN (COUNT) X-GM-LABELS receipts") == [b'* ESEARCH (TAG "t14") COUNT 2\r\n']


def test_a_copy_shows_the_same_labels(srv: RunningServer) -> None:
    # labels belong to the message, not to the folder (as Gmail's): the copy has them too
    with login(srv, "labcopy@example.org") as w:
        w.append("INBOX", mail("c@x"))
        w.ok("SELECT INBOX")
        w.ok("STORE 1 X-GM-LABELS (kept)")
        w.ok("CREATE Archive")
        w.ok("COPY 1 Archive")
        w.ok("SELECT Archive")
        assert w.ok("FETCH 1 (X-GM-LABELS)") == [b"* 1 FETCH (X-GM-LABELS (kept))\r\n"]
        w.ok("STORE 1 X-GM-LABELS ()")
        w.ok("SELECT INBOX")
        assert w.ok("FETCH 1 (X-GM-LABELS)") == [b"* 1 FETCH (X-GM-LABELS ())\r\n"]


@pytest.mark.parametrize(
    "command",
    [
        "STORE 1 +X-GM-LABELS (\\Starred)",  # a system label is not a tag
        "STORE 1 X-GM-LABELS (\\Inbox work)",
        'STORE 1 X-GM-LABELS (" padded")',
        'STORE 1 X-GM-LABELS ("")',
        "STORE 1 X-GM-LABELS ((nested))",
        "STORE 1 (UNCHANGEDSINCE 5) +X-GM-LABELS (x)",
        "STORE 1 X-GM-LABELS",
        "SEARCH X-GM-LABELS",
        "SEARCH X-GM-LABELS (a b)",
        "STORE 1 X-GM-LABELS (" + " ".join(f"l{n}" for n in range(101)) + ")",
    ],
)
def test_bad_label_commands_are_bad_and_change_nothing(srv: RunningServer, command: str) -> None:
    with login(srv, "labbad@example.org") as w:
        if not w.ok("SELECT INBOX")[0].startswith(b"* 1 EXISTS"):
            w.append("INBOX", mail("b@x"))
            w.ok("SELECT INBOX")
            w.ok("STORE 1 X-GM-LABELS (before)")
        assert w.cmd(command)[-1].split(b" ", 2)[1] == b"BAD"
        assert w.ok("FETCH 1 (X-GM-LABELS)") == [b"* 1 FETCH (X-GM-LABELS (before))\r\n"]


def test_read_only_folder_refuses_a_label_store(srv: RunningServer) -> None:
    with login(srv, "labro@example.org") as w:
        w.append("INBOX", mail("r@x"))
        w.ok("EXAMINE INBOX")
        last = w.cmd("STORE 1 +X-GM-LABELS (x)")[-1]
        assert last.split(b" ", 3)[1:3] == [b"NO", b"[READ-ONLY]"]
        assert w.ok("FETCH 1 (X-GM-LABELS)") == [b"* 1 FETCH (X-GM-LABELS ())\r\n"]
