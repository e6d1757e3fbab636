"""An in-process test server commits a message before its 250 (store/sqlite_direct.py).

When its writer is idle, the SMTP session's thread stores and commits the message itself
(indexed by the first read that needs the index, or there too with tagging rules): no
hand-off to the writer between the 250 and the test's read. When the writer is busy the
message takes the ingest journal, and mail is still stored in the order it was acknowledged.
"""

from __future__ import annotations

import smtplib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from postroom.store import sqlite_writes
from postroom.testing import Server


def _send(port: int, to: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.sendmail("app@example.com", [to], f"Subject: {subject}\r\n\r\nhello\r\n".encode())


@pytest.fixture
def mail() -> Iterator[Server]:
    with Server(http=False, pop3=False, imap=False) as server:
        if type(server.app.store).__name__ != "SQLiteStore":
            pytest.skip("a throwaway SQLite store only (this run uses another backend)")
        yield server


def test_the_250_comes_after_the_message_is_committed(mail: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest = sqlite_writes.Writes.ingest

    def slow_ingest(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)  # a writer that applies journaled mail after the 250 is caught here
        return ingest(self, *args, **kwargs)

    monkeypatch.setattr(sqlite_writes.Writes, "ingest", slow_ingest)
    _send(mail.smtp_port, "now@example.com", "Now")
    # another connection, as a kill -9 right after the 250 would leave the file: no
    # waiting for the writer, no journal to replay
    with closing(sqlite3.connect(mail.app.store.path)) as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT subject, indexed FROM message").fetchall()
    # indexed by the first read that needs the index (test_testing_indexing.py)
    assert rows == [("Now", 0)]


def test_a_busy_writer_journals_the_message_and_order_is_kept(mail: Server) -> None:
    store: Any = mail.app.store
    with store.direct.lock:  # the writer is at work: the session does not wait for it
        _send(mail.smtp_port, "a@example.com", "first")
        assert not store.direct.ready(store)  # journaled, not stored yet: nothing may overtake it
    _send(mail.smtp_port, "b@example.com", "second")
    assert [m.subject for m in mail.wait_for(count=2)] == ["first", "second"]
    assert [m.subject for m in mail.messages("hello")] == ["first", "second"]  # both indexed


def test_a_thread_that_holds_the_writers_lock_does_not_find_the_writer_idle(mail: Server) -> None:
    """The writer's lock is reentrant (a subscriber told of a commit reads on the writer's
    thread): taken again by its holder, it must not pass for "the writer is idle", or that
    thread would commit mail, or close the store, in the middle of the writer's work."""
    from postroom.store.base import Envelope

    store: Any = mail.app.store
    raw = b"Subject: nested\r\n\r\nhello\r\n"
    with store.direct.lock:  # as the writer at work, on this thread
        pid = store.deliver_journaled(Envelope("app@example.com", ("n@example.com",)), raw)
        assert not store.direct.ready(store)  # journaled for the writer, not committed here
        assert not store.direct.close_now(store)  # nor closed under the writer's feet
        assert store.direct.conn is not None
    assert [m.id for m in mail.wait_for(count=1)] == [pid]


def test_mail_indexed_in_its_transaction_costs_the_writer_no_second_look(mail: Server) -> None:
    store: Any = mail.app.store
    looks: list[int] = []
    index_now = store.background.index_now
    store.background.index_now = lambda conn: (looks.append(1), index_now(conn))
    for i in range(3):
        _send(mail.smtp_port, f"u{i}@example.com", f"n{i}")
    mail.wait_for(count=3)
    store.write(lambda conn: None)  # a writer turn: anything queued before it is done
    assert looks == []


def test_an_idle_writer_is_not_woken_to_close_a_test_servers_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next test's start closes the old store: its writer, woken for that, would compete
    with the start for the interpreter lock. The closing thread empties the database itself."""
    import threading

    from postroom.store import sqlite_recycle

    where: list[str] = []
    reset = sqlite_recycle.reset

    def tracking_reset(conn: sqlite3.Connection, template: str) -> bool:
        where.append(threading.current_thread().name)
        return reset(conn, template)

    monkeypatch.setattr(sqlite_recycle, "reset", tracking_reset)
    server = Server(http=False, pop3=False, imap=False).start()
    try:
        if type(server.app.store).__name__ != "SQLiteStore":
            pytest.skip("a throwaway SQLite store only (this run uses another backend)")
        _send(server.smtp_port, "x@example.com", "x")
        server.wait_for(to="x@example.com")
    finally:
        server.stop()
    assert where == ["postroom-servers"]  # the loop thread that stopped it, not its writer


def test_a_test_servers_writer_thread_starts_with_its_first_job(mail: Server) -> None:
    store: Any = mail.app.store
    _send(mail.smtp_port, "y@example.com", "y")
    assert mail.wait_for(to="y@example.com").subject == "y"
    assert store._writer is None  # committed by the session: no thread started, or woken
    mail.clear()  # a change only the writer makes
    assert store._writer is not None
    assert mail.messages() == []


def test_each_start_runs_the_servers_loop_on_a_new_thread() -> None:
    """A thread that ran every test server of a session waited for a core at most wake-ups
    on a loaded machine (docs/performance.md): each start hands the one loop to a new thread,
    and servers started before carry on there."""
    import threading

    from postroom.testing import server as server_module

    def loop_thread() -> threading.Thread:
        state = server_module._loop_state
        assert state is not None
        return state[3]

    first = Server(http=False, pop3=False, imap=False).start()
    try:
        before = loop_thread()
        second = Server(http=False, pop3=False, imap=False).start()
        try:
            assert loop_thread() is not before  # (idents are reused once a thread has ended)
            assert not before.is_alive()
            _send(first.smtp_port, "old@example.com", "still served")
            assert first.wait_for(to="old@example.com").subject == "still served"
            refused: list[BaseException] = []
            done = threading.Event()

            def on_loop() -> None:  # a blocking wait on the loop's (new) thread is refused
                try:
                    first.wait_for(to="old@example.com", timeout=0.1)
                except BaseException as e:
                    refused.append(e)
                done.set()

            first.loop.call_soon_threadsafe(on_loop)
            assert done.wait(10)
            assert [type(e) for e in refused] == [RuntimeError]
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_new_loop_thread_waits_for_the_old_one_not_the_starting_thread() -> None:
    """The hand-over costs the starting thread two waits (the new thread's start, the start's
    result): the old loop thread is joined by the new one, which then runs the start."""
    import threading

    from postroom.testing import server as server_module

    first = Server(http=False, pop3=False, imap=False).start()
    try:
        state = server_module._loop_state
        assert state is not None
        old = state[3]
        joined_by: list[str] = []
        join = old.join

        def tracking_join(timeout: float | None = None) -> None:
            joined_by.append(threading.current_thread().name)
            join(timeout)

        old.join = tracking_join  # type: ignore[method-assign]
        second = Server(http=False, pop3=False, imap=False).start()
        try:
            assert joined_by == ["postroom-servers"]
            assert not old.is_alive()
            _send(second.smtp_port, "new@example.com", "new")
            assert second.wait_for(to="new@example.com").subject == "new"
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_reader_takes_the_parse_the_indexer_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the store indexed inline it parsed already: the test's thread, waiting for the
    message, does not parse the same bytes again. A message with an attachment (the indexer
    leaves attachment payloads out) is parsed whole by the reader. (A store indexes inline,
    not on demand, with tagging rules.)"""
    from postroom.runtime import models

    parses: list[bytes] = []
    parse = models.parse_message

    def counting(raw: bytes, **kw: Any) -> Any:
        parses.append(raw)
        return parse(raw, **kw)

    monkeypatch.setattr(models, "parse_message", counting)
    rules = {"tags": [{"query": "subject:plain", "tags": ["plain"]}]}
    with Server(http=False, pop3=False, imap=False, extra=rules) as mail:
        _parses_shared(mail, parses)


def _parses_shared(mail: Server, parses: list[bytes]) -> None:
    from email.message import EmailMessage

    _send(mail.smtp_port, "plain@example.com", "plain")
    msg = mail.wait_for(to="plain@example.com")
    assert (msg.subject, msg.text.strip(), msg.recipients) == ("plain", "hello", ["plain@example.com"])
    assert parses == []
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "app@example.com", "att@example.com", "with a file"
    m.set_content("see attached")
    m.add_attachment(b"PDF-BYTES", maintype="application", subtype="pdf", filename="a.pdf")
    with smtplib.SMTP("127.0.0.1", mail.smtp_port) as c:
        c.send_message(m)
    got = mail.wait_for(to="att@example.com")
    assert [(a.filename, a.content) for a in got.attachments] == [("a.pdf", b"PDF-BYTES")]
    assert len(parses) == 1
