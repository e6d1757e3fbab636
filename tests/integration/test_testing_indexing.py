"""The query helpers never race the indexer (issue 20): what ``wait_for`` returns is found by
every query at once, and a query waits for the messages in scope to be indexed.

The stress test runs the issue's scenario (send with an attachment; ``wait_for(to=...)``;
``assert_received("has:attachment")``) many times while both cores are kept busy by
other processes. ``POSTROOM_STRESS_RUNS`` sets the count: 200 by default (CI), 1000 for the
documented slow run (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from postroom.testing import NoMatchingMail, Server, reader

RUNS = int(os.environ.get("POSTROOM_STRESS_RUNS", "200"))
_BUSY = "while True: pass"


def _with_attachment(to: str, subject: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "app@example.com"
    m["To"] = to
    m["Subject"] = subject
    m.set_content("Your invoice is attached.\n" + "lorem ipsum dolor sit amet\n" * 200)
    m.add_attachment(b"%PDF-1.4 " * 500, maintype="application", subtype="pdf", filename="invoice.pdf")
    return m


def _send(port: int, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.send_message(msg)


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Both cores busy (two spinning processes) while the test runs."""
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_wait_for_result_is_found_by_every_query_under_load(busy_cores: None) -> None:
    failures: list[str] = []
    server = Server(http=False, pop3=False, imap=False)
    for i in range(RUNS):
        if i % 50 == 0:  # now and then a fresh server (and a fresh indexer)
            server.stop()
            server.start()
        with server.scope() as mail:  # one test's mail, as the mail fixture gives it
            to = f"user{i}@example.com"
            _send(server.smtp_port, _with_attachment(to, f"Invoice {i}"))
            msg = mail.wait_for(to=to)
            try:
                assert mail.assert_received("has:attachment") == [msg]
                assert mail.messages("invoice lorem") == [msg]  # full-text terms
                mail.assert_not_received("has:attachment", to="other@example.com")
            except NoMatchingMail as e:
                failures.append(f"run {i}: {e}")
    server.stop()
    assert not failures, f"{len(failures)} of {RUNS} runs failed; first: {failures[0]}"


def test_query_without_wait_for_waits_for_indexing(busy_cores: None) -> None:
    """A message that arrived (250 sent) counts for a query at once, indexed or not."""
    with Server(http=False, pop3=False, imap=False) as mail:
        for i in range(20):
            _send(mail.smtp_port, _with_attachment(f"bulk{i}@example.com", f"Bulk {i}"))
        assert len(mail.assert_received("has:attachment", count=20)) == 20


# A tagging rule: a test server then indexes each message as it stores it (the rule's tags
# are the index's), not on demand.
_TAG_RULE = {"tags": [{"query": "subject:late", "tags": ["late"]}]}


def test_unindexed_error_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """When indexing does not finish in time, the error says so instead of "found 0"."""
    gate = threading.Event()
    # indexed as stored (a tagging rule), by the writer after the mail's own transaction
    with Server(http=False, pop3=False, imap=False, extra=_TAG_RULE) as mail:
        background = mail.app.store.background  # type: ignore[attr-defined]
        job = background._index_job
        # a stuck indexer: its writes wait until the test is done (and the writer's indexing
        # in the mail's own transaction did not happen, as when it fails)
        background._index_job = lambda rows: lambda conn: (gate.wait(10), job(rows)(conn))
        background.index_in_transaction = lambda conn: None
        try:
            _send(mail.smtp_port, _with_attachment("late@example.com", "Late"))
            with pytest.raises(
                NoMatchingMail, match=r"1 message received but still not indexed after 0\.3 s"
            ):
                mail.wait_for(to="late@example.com", timeout=0.3)
            monkeypatch.setattr(reader, "DEFAULT_TIMEOUT", 0.3)
            with pytest.raises(NoMatchingMail, match=r"so query 'has:attachment' cannot be checked yet"):
                mail.messages("has:attachment")
        finally:
            gate.set()
        assert mail.wait_for(to="late@example.com").subject == "Late"


def test_a_test_servers_mail_is_found_by_every_query_once_announced() -> None:
    """A message is searchable as soon as it is announced stored, even by a subscriber that
    asks on the thread that committed it (the read indexes what waits first)."""
    from postroom.events import MessageStored

    with Server(http=False, pop3=False, imap=False) as mail:
        if type(mail.app.store).__name__ != "SQLiteStore":
            pytest.skip("a throwaway SQLite store only (this run uses another backend)")
        unindexed_at_announce: list[list[str]] = []
        announced = threading.Event()

        def on_event(ev: object) -> None:
            if isinstance(ev, MessageStored):
                unindexed_at_announce.append(mail.app.store.unindexed([ev.id]))  # type: ignore[attr-defined]
                announced.set()

        mail.app.bus.subscribe(on_event)
        _send(mail.smtp_port, _with_attachment("one@example.com", "One"))
        msg = mail.wait_for(to="one@example.com")
        assert announced.wait(10)  # the reader may find the message before the event is out
        assert unindexed_at_announce == [[]]
        assert [m.id for m in mail.messages("has:attachment")] == [msg.id]


def _fail_the_next_index_write(mail: Server) -> list[bool]:
    """Make the store's next index write raise (once); the list it returns gets True then."""
    import sqlite3

    background = mail.app.store.background  # type: ignore[attr-defined]
    job = background._index_job
    failed: list[bool] = []

    def flaky(rows: list[object]) -> object:
        def fn(conn: sqlite3.Connection) -> None:
            if not failed:
                failed.append(True)
                raise sqlite3.OperationalError("simulated failure")
            job(rows)(conn)

        return fn

    background._index_job = flaky
    return failed


def test_indexing_that_fails_in_the_mail_transaction_keeps_the_mail_and_indexes_it_after() -> None:
    # indexed as stored (a tagging rule): in the mail's transaction, which fails here
    with Server(http=False, pop3=False, imap=False, extra=_TAG_RULE) as mail:
        if type(mail.app.store).__name__ != "SQLiteStore":
            pytest.skip("a throwaway SQLite store only (this run uses another backend)")
        failed = _fail_the_next_index_write(mail)
        _send(mail.smtp_port, _with_attachment("two@example.com", "Two"))
        msg = mail.wait_for(to="two@example.com")  # stored, and indexed by the writer after
        assert failed == [True]
        assert [m.id for m in mail.messages("has:attachment")] == [msg.id]


def test_indexing_on_demand_that_fails_keeps_the_mail_and_indexes_it_after() -> None:
    with Server(http=False, pop3=False, imap=False) as mail:
        _sqlite_test_server(mail)
        failed = _fail_the_next_index_write(mail)
        _send(mail.smtp_port, _with_attachment("three@example.com", "Three"))
        msg = mail.wait_for(to="three@example.com")
        assert failed == [] and _indexed(mail) == [0]
        # the query's index write fails: the writer indexes it after, and the query waits
        assert [m.id for m in mail.messages("has:attachment")] == [msg.id]
        assert failed == [True] and _indexed(mail) == [1]


def _indexed(mail: Server) -> list[int]:
    """The ``indexed`` column of every stored message, read past the store's own readers."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(mail.app.store.path)) as conn:  # type: ignore[attr-defined]
        return [r[0] for r in conn.execute("SELECT indexed FROM message ORDER BY id")]


def _sqlite_test_server(mail: Server) -> None:
    if type(mail.app.store).__name__ != "SQLiteStore":
        pytest.skip("a throwaway SQLite store only (this run uses another backend)")


def test_a_test_server_indexes_mail_on_the_first_read_that_needs_it() -> None:
    """Stored before the 250, indexed only when a read needs the index: ``wait_for`` without
    a query (the reader parses the message itself) writes no index; a query finds it."""
    with Server(http=False, pop3=False, imap=False) as mail:
        _sqlite_test_server(mail)
        _send(mail.smtp_port, _with_attachment("lazy@example.com", "Lazy"))
        msg = mail.wait_for(to="lazy@example.com")
        assert msg.attachments[0].filename == "invoice.pdf" and "invoice" in msg.text
        assert len(mail) == 1 and mail.last == msg
        assert _indexed(mail) == [0]
        assert mail.assert_received("has:attachment") == [msg]
        assert _indexed(mail) == [1]
        # and the next message, found by a query through wait_for
        _send(mail.smtp_port, _with_attachment("lazy2@example.com", "Second"))
        assert mail.wait_for("subject:second has:attachment").subject == "Second"
        assert _indexed(mail) == [1, 1]


def test_a_test_servers_http_and_imap_see_mail_indexed() -> None:
    """HTTP and IMAP started on first use read the index: the mail waiting for it is
    indexed before they read (a listing has its snippet and attachments, a search finds it)."""
    import json
    import urllib.request

    with Server(lazy=True) as mail:
        _sqlite_test_server(mail)
        _send(mail.smtp_port, _with_attachment("web@example.com", "Web"))
        msg = mail.wait_for(to="web@example.com")
        assert _indexed(mail) == [0]
        with urllib.request.urlopen(f"{mail.http_url}/api/v1/messages") as r:
            listed = json.load(r)["messages"]
        assert [(m["ID"], m["Attachments"]) for m in listed] == [(msg.id, 1)]
        assert listed[0]["Snippet"].startswith("Your invoice is attached.")
        assert _indexed(mail) == [1]
        _send(mail.smtp_port, _with_attachment("web2@example.com", "Second"))
        second = mail.wait_for(to="web2@example.com")
        assert _indexed(mail) == [1, 0]
        with urllib.request.urlopen(f"{mail.http_url}/api/v1/search?query=has%3Aattachment") as r:
            assert {m["ID"] for m in json.load(r)["messages"]} == {msg.id, second.id}
        _send(mail.smtp_port, _with_attachment("imap@example.com", "Third"))
        third = mail.wait_for(to="imap@example.com")
        with imaplib.IMAP4("127.0.0.1", mail.imap_port) as imap:
            imap.login("imap@example.com", "any")
            imap.select("INBOX")
            typ, data = imap.search(None, "TEXT", "lorem")
            assert typ == "OK" and len(data[0].split()) == 1
        assert _indexed(mail) == [1, 1, 1] and third.subject == "Third"


def test_tagging_rules_tag_what_wait_for_returns() -> None:
    """With tagging rules (applied when a message is indexed) a test server indexes as it
    stores: what ``wait_for`` returns has the rules' tags."""
    with Server(http=False, pop3=False, imap=False, extra=_TAG_RULE) as mail:
        _send(mail.smtp_port, _with_attachment("tag@example.com", "Late again"))
        assert mail.wait_for(to="tag@example.com").tags == ["late"]
