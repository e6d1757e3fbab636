"""postroom.Server / Client: the read API over real SMTP (smtplib, aiosmtplib) and HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

import postroom
from postroom.testing import Client, Message, NoMatchingMail, NotFoundInMessage, Server


def _email(to: str, subject: str, body: str = "hello", html: str | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "App <app@example.com>"
    m["To"] = to
    m["Subject"] = subject
    m.set_content(body)
    if html is not None:
        m.add_alternative(html, subtype="html")
    return m


def _send(port: int, msg: EmailMessage, rcpts: list[str] | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.send_message(msg, to_addrs=rcpts)


def test_public_exports() -> None:
    assert postroom.Server is Server and postroom.Client is Client


def test_ports_messages_and_rich_objects() -> None:
    with Server() as s:
        assert s.smtp_port and s.imap_port and s.pop3_port and s.http_url.startswith("http://127.0.0.1:")
        msg = _email("Alice <alice@example.com>", "Reset your password", "Code: 481516")
        msg.add_alternative(
            '<p>Go <a href="https://app.example/reset?t=abc&amp;u=1">here</a></p>', subtype="html"
        )
        msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf")
        _send(s.smtp_port, msg, ["alice@example.com", "hidden@example.com"])
        [m] = s.messages()
        assert m.subject == "Reset your password"
        assert m.from_ is not None and m.from_.address == "app@example.com" and m.from_.name == "App"
        assert [a.address for a in m.to] == ["alice@example.com"]
        assert m.envelope is not None and m.envelope.rcpt_to == ("alice@example.com", "hidden@example.com")
        assert [a.address for a in m.bcc] == ["hidden@example.com"]  # from the envelope
        assert "481516" in m.text and "reset?t=abc" in m.html
        assert m.links == ["https://app.example/reset?t=abc&u=1"]
        assert m.link("reset") == "https://app.example/reset?t=abc&u=1"
        assert m.code() == "481516"
        [att] = m.attachments
        assert att.filename == "invoice.pdf" and att.content == b"%PDF-1.4" and not att.inline
        assert m.headers["subject"] == "Reset your password" and "X-Nope" not in m.headers
        assert (
            m.raw.startswith(b"Return-Path: ")
            and b"\r\nReceived: " in m.raw
            and b"Subject: Reset your password" in m.raw
        )
        assert sorted(m.mailboxes) == ["alice@example.com", "hidden@example.com"]
        assert s.messages(mailbox="hidden@example.com")[0].id == m.id
        assert s.messages("subject:reset") == [m] and s.messages("subject:nothing") == []
        assert s.messages(lambda x: x.code() == "481516") == [m]


def test_extraction_failures_name_what_is_there() -> None:
    m = Message(b"Subject: hi\r\nFrom: a@b.c\r\n\r\nsee https://x.example/a, then go.\r\n")
    assert m.links == ["https://x.example/a"]
    with pytest.raises(NotFoundInMessage, match=r"containing '/reset'.*\n    https://x.example/a"):
        m.link("/reset")
    with pytest.raises(NotFoundInMessage, match="no code"):
        m.code()
    assert m.code(r"go") == "go"
    assert m.code(re.compile(r"x\.(example)")) == "example"


def test_wait_for_wakes_on_arrival_and_counts() -> None:
    with Server() as s:
        timer = threading.Timer(0.2, _send, (s.smtp_port, _email("bob@example.com", "later")))
        timer.start()
        m = s.wait_for(to="bob@example.com", timeout=10)
        timer.join()
        assert m.subject == "later"
        for i in range(3):
            _send(s.smtp_port, _email("carol@example.com", f"n{i}"))
        got = s.wait_for(to="carol@example.com", count=3, timeout=10)
        assert [g.subject for g in got] == ["n0", "n1", "n2"]  # oldest first
        assert s.wait_for(subject=re.compile(r"^n\d$"), count=2)[1].subject == "n1"


def test_wait_for_timeout_lists_what_arrived() -> None:
    with Server() as s:
        _send(s.smtp_port, _email("dave@example.com", "Welcome aboard"))
        with pytest.raises(NoMatchingMail) as err:
            s.wait_for(to="erin@example.com", subject="Reset", timeout=0.2)
        text = str(err.value)
        assert "to='erin@example.com'" in text and "subject='Reset'" in text
        assert "Received 1 message:" in text and "to dave@example.com: 'Welcome aboard'" in text
        assert "(to was dave@example.com; subject was 'Welcome aboard')" in text


def test_assertions() -> None:
    with Server() as s:
        s.assert_not_received()
        _send(s.smtp_port, _email("x@example.com", "one"))
        _send(s.smtp_port, _email("y@example.org", "two"))
        assert len(s.assert_received(to="@example.com")) == 1
        s.assert_received(count=2)
        with pytest.raises(
            NoMatchingMail, match=r"exactly 3 messages .* found 2\.\nReceived 2 messages:\n  1\. "
        ):
            s.assert_received(count=3)
        with pytest.raises(
            NoMatchingMail, match=r"expected no message matching subject='two'.*\n  1\. .*'two'"
        ):
            s.assert_not_received(subject="two")
        assert s.last.subject == "two" and len(s) == 2


def test_clear_and_scope_isolation() -> None:
    with Server() as s:
        _send(s.smtp_port, _email("a@example.com", "before"))
        with s.scope() as view:
            assert view.messages() == [] and view.smtp_port == s.smtp_port
            _send(s.smtp_port, _email("a@example.com", "during"))
            assert view.wait_for(timeout=5).subject == "during"
            assert [m.subject for m in view.messages()] == ["during"]
            view.clear()
            assert view.messages() == []
            assert [m.subject for m in s.messages()] == ["before"]  # the view cleared only its own
        s.clear()
        assert s.messages() == []


def test_a_blocking_wait_on_the_servers_own_loop_is_refused() -> None:
    async def main() -> None:
        async with Server() as s:
            with pytest.raises(RuntimeError, match="wait_for_async"):
                s.wait_for(timeout=0.1)
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=s.smtp_port)
            await smtp.connect()
            await smtp.send_message(_email("f@example.com", "async"))
            await smtp.quit()
            m = await s.wait_for_async(to="f@example.com", timeout=5)
            [m2] = await s.wait_for_async(to="f@example.com", count=1)
            assert m2 is m
            assert await s.messages_async(to="f@example.com", subject="async") == [m]
            assert m.subject == "async"
            assert [x.subject for x in await s.messages_async()] == ["async"]
            await s.clear_async()
            assert await s.messages_async() == []
        assert not s.running

    asyncio.run(main())


def test_async_wait_from_another_loop_on_a_thread_server() -> None:
    with Server() as s:

        async def main() -> Message:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=s.smtp_port)
            async with smtp:
                await smtp.send_message(_email("g@example.com", "cross-loop"))
            return await s.wait_for_async(subject="cross-loop", timeout=5)

        assert asyncio.run(main()).subject == "cross-loop"


def test_settings_and_listeners() -> None:
    with Server(pop3=False, imap=False, smtp_hostname="mx.test") as s:
        assert s.listeners == ["smtp", "http"]
        with pytest.raises(KeyError, match="imap listener is not running"):
            _ = s.imap_port
        with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
            assert b"mx.test" in c.ehlo()[1]
    with pytest.raises(TypeError, match="unknown postroom setting"):
        Server(no_such_setting=1)


def test_client_reads_over_http() -> None:
    with Server() as s:
        msg = _email("henry@example.com", "Your code", "Use 7391 to sign in")
        _send(s.smtp_port, msg, ["henry@example.com", "ivy@example.com"])
        client = Client(s.http_url, smtp_port=s.smtp_port)
        [m] = client.messages()
        assert m.subject == "Your code" and m.code() == "7391"
        assert m.envelope is not None and m.envelope.rcpt_to == ("henry@example.com", "ivy@example.com")
        assert client.messages(mailbox="ivy@example.com")[0].id == m.id
        assert client.messages("subject:code")[0].id == m.id
        view = client.scope()
        threading.Timer(0.2, _send, (s.smtp_port, _email("jo@example.com", "via http"))).start()
        got = view.wait_for(to="jo@example.com", timeout=10)
        assert got.subject == "via http" and [x.subject for x in view.messages()] == ["via http"]
        with pytest.raises(NoMatchingMail, match="via http"):
            view.wait_for(subject="never", timeout=0.3)
        view.clear()
        assert [x.subject for x in client.messages()] == ["Your code"]
        client.clear()
        assert client.messages() == []


def test_lazy_server_starts_listeners_on_first_use() -> None:
    """The mail fixture's server starts SMTP only; HTTP, POP3, IMAP when first asked for."""
    import urllib.request

    with Server(lazy=True) as s:
        assert s.listeners == ["smtp"]
        _send(s.smtp_port, _email("kim@example.com", "lazy"))
        with urllib.request.urlopen(s.http_url + "/api/v1/messages") as resp:
            assert b'"lazy"' in resp.read()
        assert s.imap_port and s.pop3_port
        assert sorted(s.listeners) == ["http", "imap", "pop3", "smtp"]
        with pytest.raises(KeyError, match="smtps listener is not running"):
            print(s.smtps_port)


def test_throwaway_stores_are_independent_copies() -> None:
    """Each throwaway store starts as a copy of one migrated template, never shared."""
    with Server(http=False, pop3=False, imap=False) as a, Server(http=False, pop3=False, imap=False) as b:
        _send(a.smtp_port, _email("one@example.com", "in a"))
        a.wait_for(subject="in a")
        assert b.messages() == [] and len(a) == 1
        from postroom.store.sqlite import SQLiteStore

        if isinstance(a.app.store, SQLiteStore) and isinstance(b.app.store, SQLiteStore):
            assert a.app.store.path != b.app.store.path  # two files (on PostgreSQL: two schemas)


def test_a_server_stopped_without_waiting_leaves_the_next_one_nothing_of_its_mail() -> None:
    """The mail fixture's teardown: stop(wait=False) returns at once and the next start stops
    the old server (its port is closed once the next one has started); the next server
    (which may take an earlier store's emptied database: a throwaway SQLite store's) starts
    empty: no message, no search hit."""
    from postroom.store.sqlite import SQLiteStore

    paths = []
    old_port = None
    for i in range(6):
        s = Server(lazy=True).start()
        if old_port is not None:
            with pytest.raises(OSError):
                smtplib.SMTP("127.0.0.1", old_port, timeout=5).quit()
        old_port = s.smtp_port
        try:
            assert s.messages() == [] and s.messages("zebra") == []
            _send(s.smtp_port, _email(f"u{i}@example.com", f"zebra {i}"))
            assert s.wait_for(to=f"u{i}@example.com").subject == f"zebra {i}"
            assert [m.subject for m in s.messages("zebra")] == [f"zebra {i}"]
            if isinstance(s.app.store, SQLiteStore):
                paths.append(s.app.store.path)
        finally:
            s.stop(wait=False)
        assert not s.running
    if paths:  # SQLite: the servers took emptied databases the earlier ones left
        assert len(set(paths)) < len(paths)


def test_an_exit_right_after_stop_without_waiting_leaves_no_store_behind(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(
        "import smtplib\n"
        "from postroom.testing import Server\n"
        "s = Server(lazy=True).start()\n"
        "with smtplib.SMTP(s.host, s.smtp_port) as c:\n"
        "    c.sendmail('a@example.com', ['b@example.com'], b'Subject: x\\r\\n\\r\\nx\\r\\n')\n"
        "s.wait_for(to='b@example.com')\n"
        "print(s.app.store.path, flush=True)\n"  # type: ignore[attr-defined]
        "s.stop(wait=False)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    path = out.stdout.strip()
    assert path.endswith("store.db")
    assert not os.path.exists(os.path.dirname(path)), os.listdir(os.path.dirname(path))


@pytest.mark.sqlite_only
def test_test_servers_share_one_loop_thread_and_start_no_store_threads_but_the_writer() -> None:
    """Issue 20's per-test cost: servers of one process share an event-loop thread; a test
    server's store indexes on its writer (no indexer thread) and starts its checkpoint
    thread only once it holds many messages."""
    from postroom.store.base import Envelope
    from postroom.store.sqlite_background import ANALYZE_FROM, WRITER_CHECKPOINT_PAGES

    with Server(lazy=True) as a, Server(lazy=True) as b:
        assert a.loop is b.loop
        if a.settings.db_target != ":memory:" or type(a.app.store).__name__ != "SQLiteStore":
            pytest.skip("a throwaway SQLite store only (this run uses another backend)")
        names = {t.name for t in threading.enumerate()}
        assert "postroom-index" not in names and "postroom-checkpoint" not in names
        bg = a.app.store.background  # type: ignore[attr-defined]
        assert bg.index_inline and bg.checkpointer is None

        def autocheckpoint() -> int:  # the writer's: SQLite's own until the thread does it
            return int(a.app.store.write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]))  # type: ignore[attr-defined]

        assert autocheckpoint() == 1000

        async def fill() -> None:
            raw = b"From: s@example.com\r\nSubject: bulk\r\n\r\nx\r\n"
            env = Envelope("s@example.com", ("bulk@example.com",))
            await asyncio.gather(*(a.app.store.deliver(env, raw) for _ in range(ANALYZE_FROM)))

        a.call(fill(), timeout=120)
        assert len(a.wait_for(to="bulk@example.com", count=ANALYZE_FROM, timeout=60)) == ANALYZE_FROM
        assert len(a.messages("bulk")) == ANALYZE_FROM  # full text: every one indexed
        deadline = time.monotonic() + 10
        while bg.checkpointer is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the writer starts it after its next batch
        assert bg.checkpointer is not None and bg.checkpointer.is_alive()
        assert autocheckpoint() == WRITER_CHECKPOINT_PAGES
        assert b.messages() == []
