"""``postroom fetch`` from a server with Gmail's X-GM-EXT-1 (docs/fetch.md, "Gmail").

The "Gmail" here is a second postroom: its IMAP server offers X-GM-MSGID, X-GM-THRID and
X-GM-LABELS (labels are its tags, docs/imap.md) as Gmail's does. Labels must arrive as
tags, a message shown in two folders must be stored once (X-GM-MSGID), re-runs add
nothing, and label changes are mirrored. A server without X-GM-EXT-1 (Dovecot) fetches as
before: the same message in two folders is two stored messages, no tags.
"""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.helpers import RunningServer, running_dovecot, running_server
from tests.interop.test_fetch_dovecot import put, remote

from postroom.fetch.accounts import Account, State
from postroom.fetch.imap_sync import LocalTarget, sync_account

pytestmark = pytest.mark.interop
ME = "me@example.org"


def gmail_account(port: int, folders: tuple[str, ...], user: str = "gm@example.org") -> Account:
    return Account(
        name="gm", protocol="imap", host="127.0.0.1", port=port, tls="none", user=user,
        password="secret", oauth2_token="", folders=folders, mailbox=ME, delete=False,
        cafile="", verify=True, provider=None,
    )  # fmt: skip


def mail(mid: str, subject: str) -> bytes:
    return (
        f"From: a@example.net\r\nTo: {ME}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
        f"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\nbody of {subject}\r\n"
    ).encode()


def ok(conn: imaplib.IMAP4, *command: str) -> list[object]:
    typ, data = conn._simple_command(*command)  # (imaplib has no method for X-GM-LABELS STORE)
    assert typ == "OK", data
    return list(conn._untagged_response(typ, data, command[0])[1])


@pytest.fixture
def two() -> Iterator[tuple[RunningServer, RunningServer]]:
    with (
        running_server(smtp="off", http="off", pop3="off") as gmail,
        running_server(smtp="off", http="off", pop3="off") as here,
    ):
        yield gmail, here


def by_subject(
    server: RunningServer, folder: str, mailbox: str = ME
) -> dict[str, tuple[str, frozenset[str]]]:
    """subject -> (public id, flags) of each message of a folder of ``mailbox``."""
    store = server.app.store
    out = {}
    for e in store.folder_entries(mailbox, folder):
        s = store.get_summary(e.id)
        assert s is not None
        out[s.subject] = (e.id, frozenset(e.flags) - {"\\Recent"})
    return out


@contextmanager
def fetching(
    two: tuple[RunningServer, RunningServer], tmp_path: Path, user: str
) -> Iterator[tuple[imaplib.IMAP4, LocalTarget, State]]:
    """A session on the "Gmail" postroom as ``user``, the local target and a fresh state file."""
    gmail, here = two
    g = imaplib.IMAP4("127.0.0.1", gmail.addr("imap")[1], timeout=30)
    g.login(user, "x")
    state = State(tmp_path / "state.sqlite")
    try:
        yield g, LocalTarget("127.0.0.1", here.addr("imap")[1]), state
    finally:
        g.logout()
        state.close()


def thread_ids(conn: imaplib.IMAP4, messages: str) -> list[int]:
    """The X-GM-THRID of ``messages`` in the selected folder, in order."""
    typ, data = conn.fetch(messages, "(X-GM-THRID)")
    assert typ == "OK"
    return [int(d.split(b"X-GM-THRID ")[1].rstrip(b")")) for d in data if isinstance(d, bytes)]


def test_labels_become_tags_and_a_message_in_two_folders_is_stored_once(
    two: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    gmail, here = two
    with fetching(two, tmp_path, "gm@example.org") as (g, target, state):
        assert "X-GM-EXT-1" in g.capabilities
        for n, subject in enumerate(("plans", "lunch", "news")):
            assert g.append("INBOX", None, None, mail(f"m{n}@x", subject))[0] == "OK"
        g.create("Work")
        g.select("INBOX")
        ok(g, "STORE", "1", "X-GM-LABELS", '(Work "2026 plans" &AMQ-lter)')
        ok(g, "STORE", "2", "+X-GM-LABELS", "(receipts)")
        g.store("2", "+FLAGS", "(\\Flagged)")
        g.copy("1", "Work")  # Gmail's label folder: the same message (same X-GM-MSGID) in Work
        assert g.append("Work", None, None, mail("w@x", "only in work"))[0] == "OK"
        source_raw = {
            s: gmail.app.store.get_raw(pid)
            for s, (pid, _) in by_subject(gmail, "INBOX", "gm@example.org").items()
        }

        acc = gmail_account(gmail.addr("imap")[1], ("INBOX", "Work"))
        r = sync_account(acc, target, state)
        assert (r.fetched, r.folders) == (5, ["INBOX", "Work"])
        store = here.app.store
        inbox, work = by_subject(here, "INBOX"), by_subject(here, "Work")
        assert set(inbox) == {"plans", "lunch", "news"} and set(work) == {"plans", "only in work"}
        # "plans" is one stored message with a delivery in each folder; 4 messages, not 5
        assert work["plans"][0] == inbox["plans"][0]
        assert store.list_messages(mailbox=ME).total == 4
        # the bytes are the source's
        assert {s: store.get_raw(pid) for s, (pid, _) in inbox.items()} == source_raw
        # labels are tags (the API's Tags), on the message whichever folder shows it
        tags = store.message_tags([inbox["plans"][0], inbox["lunch"][0], inbox["news"][0]])
        assert tags == {
            inbox["plans"][0]: ["2026 plans", "Work", "Älter"],
            inbox["lunch"][0]: ["receipts"],
            inbox["news"][0]: [],
        }
        summary = store.get_summary(inbox["plans"][0])
        assert summary is not None and summary.tags == ["2026 plans", "Work", "Älter"]
        assert inbox["lunch"][1] == {"\\Flagged"}

        # a re-run adds nothing and changes nothing
        r = sync_account(acc, target, state)
        assert (r.fetched, r.labels_mirrored) == (0, 0)
        assert store.list_messages(mailbox=ME).total == 4
        assert by_subject(here, "INBOX") == inbox and by_subject(here, "Work") == work

        # label changes on the server are mirrored where flags are. Gmail raises a message's
        # MODSEQ when its labels change; postroom's own server does not (docs/imap.md), so the
        # message's flags change with them here, for CONDSTORE to report it
        g.select("INBOX")
        ok(g, "STORE", "2", "X-GM-LABELS", "(paid)")
        ok(g, "STORE", "1", "-X-GM-LABELS", "(Work)")
        g.store("1:2", "+FLAGS", "(\\Seen)")
        r = sync_account(acc, target, state)
        assert (r.fetched, r.labels_mirrored, r.flags_mirrored) == (0, 2, 2)
        assert store.message_tags([inbox["plans"][0], inbox["lunch"][0]]) == {
            inbox["plans"][0]: ["2026 plans", "Älter"],
            inbox["lunch"][0]: ["paid"],
        }
        r = sync_account(acc, target, state)
        assert (r.fetched, r.labels_mirrored, r.flags_mirrored) == (0, 0, 0)


def append_keyed(conn: imaplib.IMAP4, raw: bytes, key: str) -> None:
    """APPEND with the source postroom's X-POSTROOM-THREAD: there, messages with one key
    are one conversation whatever their headers say (as Gmail's threads are its own)."""
    conn.literal = raw  # type: ignore[attr-defined]
    typ, data = conn._simple_command("APPEND", "INBOX", "X-POSTROOM-THREAD", f'"{key}"')  # type: ignore[attr-defined]
    assert typ == "OK", data


def test_gmail_threads_become_conversations_without_linking_headers(
    two: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    # On the source, "plans", "budget" and "minutes" are one thread (one X-GM-THRID) though
    # no header links them and their subjects differ; "lunch" is another. Header threading
    # alone would make four conversations here; X-GM-THRID must make two.
    gmail, here = two
    with fetching(two, tmp_path, "gm3@example.org") as (g, target, state):
        append_keyed(g, mail("t1@x", "plans"), "project")
        append_keyed(g, mail("t2@x", "lunch"), "food")
        append_keyed(g, mail("t3@x", "budget"), "project")
        g.create("Archive")
        g.select("INBOX")
        g.copy("3", "Archive")  # one of them also in a second folder: stored once, same thread
        append_keyed(g, mail("t4@x", "minutes"), "project")
        source = thread_ids(g, "1:4")
        assert source[0] == source[2] == source[3] != source[1]  # the source's own threads

        acc = gmail_account(gmail.addr("imap")[1], ("INBOX", "Archive"), "gm3@example.org")
        assert sync_account(acc, target, state).fetched == 5
        store = here.app.store
        assert store.wait_indexed(30)  # type: ignore[attr-defined]
        inbox = by_subject(here, "INBOX")

        def thread(subject: str) -> str:
            s = store.get_summary(inbox[subject][0])
            assert s is not None
            return s.thread_id

        assert thread("plans") == thread("budget") == thread("minutes") != thread("lunch")
        # the API's conversation listing (GET /api/v2/threads) and its messages
        listing = {t.thread_id: t.messages for t in store.list_threads(mailbox=ME).threads}
        assert listing == {thread("plans"): 3, thread("lunch"): 1}
        assert {m.subject for m in store.thread_messages(thread("plans"))} == {"plans", "budget", "minutes"}
        # postroom's own IMAP: one X-GM-THRID, and THREAD-free SEARCH by it
        c = imaplib.IMAP4("127.0.0.1", here.addr("imap")[1], timeout=30)
        c.login(ME, "x")
        c.select("INBOX")
        local = thread_ids(c, "1:4")
        assert local[0] == local[2] == local[3] != local[1]
        assert c.search(None, f"X-GM-THRID {local[0]}")[1] == [b"1 3 4"]
        c.logout()
        # a later message of the thread, fetched by a later run, joins it
        append_keyed(g, mail("t5@x", "follow-up"), "project")
        assert sync_account(acc, target, state).fetched == 1
        assert store.wait_indexed(30)  # type: ignore[attr-defined]
        new = by_subject(here, "INBOX")["follow-up"][0]
        summary = store.get_summary(new)
        assert summary is not None and summary.thread_id == thread("plans")


def test_a_copy_expunged_locally_is_fetched_again_not_lost(
    two: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    # the second folder's message is COPY-ed from the first folder's local copy; when that
    # copy is gone, the message itself is copied (not skipped)
    gmail, here = two
    with fetching(two, tmp_path, "gm2@example.org") as (g, target, state):
        assert g.append("INBOX", None, None, mail("x@x", "both"))[0] == "OK"
        g.create("Later")
        assert (
            sync_account(
                gmail_account(gmail.addr("imap")[1], ("INBOX",), "gm2@example.org"), target, state
            ).fetched
            == 1
        )
        (only,) = here.app.store.folder_entries(ME, "INBOX")
        here.app.store.update_flags(ME, "INBOX", [only.uid], frozenset({"\\Deleted"}), "add")
        here.app.store.expunge(ME, "INBOX", [only.uid])
        g.select("INBOX")
        g.copy("1", "Later")
        acc = gmail_account(gmail.addr("imap")[1], ("INBOX", "Later"), "gm2@example.org")
        assert sync_account(acc, target, state).fetched == 1
        assert set(by_subject(here, "Later")) == {"both"}


def test_a_local_copy_made_but_not_recorded_is_found_not_duplicated(
    two: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    # kill -9 between the local COPY (X-GM-MSGID seen before) and the state file's record:
    # the re-run finds the delivery it made (the state file noted it first) instead of
    # adding a second one
    gmail, here = two
    with fetching(two, tmp_path, "gm4@example.org") as (g, target, state):
        assert g.append("INBOX", None, None, mail("k@x", "kept"))[0] == "OK"
        g.create("Work")
        g.select("INBOX")
        g.copy("1", "Work")
        acc = gmail_account(gmail.addr("imap")[1], ("INBOX", "Work"), "gm4@example.org")
        assert sync_account(acc, target, state).fetched == 2
        # as if the run had died after the COPY of Work's message: not recorded, but pending
        for table in ("message", "gmail"):
            state.db.execute(f"DELETE FROM {table} WHERE folder = 'Work'")
        state.db.execute("UPDATE folder SET last_uid = 0 WHERE folder = 'Work'")
        state.appending("gm", "Work", 1, 1)
        assert sync_account(acc, target, state).fetched == 1
        assert state.pending("gm", "Work") is None
        assert len(here.app.store.folder_entries(ME, "Work")) == 1
        assert here.app.store.list_messages(mailbox=ME).total == 1
        assert sync_account(acc, target, state).fetched == 0


def test_without_x_gm_ext_1_the_same_message_in_two_folders_is_two_messages(tmp_path: Path) -> None:
    # Dovecot offers no X-GM-EXT-1: nothing Gmail's is asked (Dovecot would answer BAD),
    # a copy in another folder is another message as before, and no tags appear
    with running_dovecot() as (imap_port, _), running_server(smtp="off", http="off", pop3="off") as here:
        a = remote(imap_port, "alice@example.org")
        assert b"X-GM-EXT-1" not in a.capability()[1][-1]
        put(a, "INBOX", "one")
        a.create("Copies")
        a.select("INBOX")
        a.copy("1", "Copies")
        acc = gmail_account(imap_port, ("INBOX", "Copies"), "alice@example.org")
        state = State(tmp_path / "state.sqlite")
        r = sync_account(acc, LocalTarget("127.0.0.1", here.addr("imap")[1]), state)
        assert (r.fetched, r.labels_mirrored) == (2, 0)
        inbox, copies = by_subject(here, "INBOX"), by_subject(here, "Copies")
        assert inbox["one"][0] != copies["one"][0]
        assert here.app.store.list_messages(mailbox=ME).total == 2
        assert state.gmail_labels("gm", "INBOX") == {}
        tags = here.app.store.message_tags([inbox["one"][0], copies["one"][0]])
        assert tags == {inbox["one"][0]: [], copies["one"][0]: []}
        a.logout()
        state.close()
