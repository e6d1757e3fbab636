"""The query helpers never race the indexer (issue 20): what ``wait_for`` returns is found by
every query at once, and a query waits for the messages in scope to be indexed.

The stress test runs the issue's scenario (send with an attachment; ``wait_for(to=...)``;
``assert_received("has:attachment")``) many times while both cores are kept busy by
other processes. ``POSTROOM_STRESS_RUNS`` sets the count: 200 by default (CI), 1000 for the
documented slow run (docs/testing.md).
"""

from __future__ import annotations

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


def test_unindexed_error_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """When indexing does not finish in time, the error says so instead of "found 0"."""
    gate = threading.Event()
    with Server(http=False, pop3=False, imap=False) as mail:
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


def test_a_test_server_stores_and_indexes_mail_in_one_commit() -> None:
    """A throwaway store indexes new mail in the transaction that stores it: a message is
    searchable as soon as it is announced stored."""
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


def test_indexing_that_fails_in_the_mail_transaction_keeps_the_mail_and_indexes_it_after() -> None:
    import sqlite3

    with Server(http=False, pop3=False, imap=False) as mail:
        if type(mail.app.store).__name__ != "SQLiteStore":
            pytest.skip("a throwaway SQLite store only (this run uses another backend)")
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
        _send(mail.smtp_port, _with_attachment("two@example.com", "Two"))
        msg = mail.wait_for(to="two@example.com")  # stored, and indexed by the writer after
        assert failed == [True]
        assert [m.id for m in mail.messages("has:attachment")] == [msg.id]
