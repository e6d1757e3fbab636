"""A shared server (``--postroom-url``, ``shared=True``): per-test cursor and unique addresses,
Client parity with Server (chaos, webhooks, indexing waits), and a suite under ``-n 2``."""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage

import pytest

from postroom.testing import Client, ClientError, NoMatchingMail, RemoteUnsupported, Server

pytest_plugins = ["pytester"]


def _send(port: int, to: str, subject: str, *, attach: bool = False) -> None:
    m = EmailMessage()
    m["From"] = "app@example.com"
    m["To"] = to
    m["Subject"] = subject
    m.set_content("hello there")
    if attach:
        m.add_attachment(b"x" * 100, maintype="application", subtype="octet-stream", filename="a.bin")
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.send_message(m)


@pytest.fixture(scope="module")
def server() -> Server:
    with Server(pop3=False, imap=False) as s:
        yield s  # type: ignore[misc]


def test_views_never_list_old_mail_and_unique_addresses_isolate(server: Server) -> None:
    client = Client(server.http_url, smtp_port=server.smtp_port)
    for i in range(30):
        _send(server.smtp_port, "old@example.com", f"old {i}")
    client.wait_for(subject="old 29")
    for make in (client.scope, server.scope):  # over HTTP and in-process: the same rules
        view = make()
        assert view.messages() == [] and len(view) == 0
        mine = view.unique_address("alice")
        assert mine.startswith("alice+") and mine.endswith("@example.com")
        # a test running at the same time, and plain addresses: not in a view that uses unique ones
        _send(server.smtp_port, "alice@example.com", "someone else's")
        _send(server.smtp_port, mine, "mine")
        msg = view.wait_for(to=mine)
        assert [m.subject for m in view.messages()] == ["mine"] == [view.last.subject]
        assert view.assert_received(count=1) == [msg]
        view.assert_not_received(subject="someone")
        view.clear()  # deletes this view's mail only
        assert client.messages(subject="someone else's")


def test_late_background_mail_does_not_reach_the_next_test(server: Server) -> None:
    client = Client(server.http_url, smtp_port=server.smtp_port)
    first = client.scope()
    late_to = first.unique_address()
    first.close()  # the test ended; its background job sends a moment later
    second = client.scope()
    own = second.unique_address()
    timer = threading.Timer(0.1, _send, (server.smtp_port, late_to, "late"))
    timer.start()
    timer.join()
    _send(server.smtp_port, own, "second's")
    assert second.wait_for(to=own).subject == "second's"
    client.wait_for(subject="late")
    assert [m.subject for m in second.messages()] == ["second's"]


def test_client_waits_for_indexing_like_the_server(server: Server) -> None:
    view = Client(server.http_url, smtp_port=server.smtp_port).scope()
    to = view.unique_address()
    _send(server.smtp_port, to, "with a file", attach=True)
    msg = view.wait_for(to=to)
    assert view.assert_received("has:attachment") == [msg]
    assert view.messages("hello there") == [msg]


def test_client_chaos_webhooks_and_handlers(server: Server) -> None:
    client = Client(server.http_url, smtp_port=server.smtp_port)
    other = server.chaos.reject("helo", "421 4.3.2 someone else's fault", sender="*@nowhere.example")
    with client.scope() as view:
        target = view.unique_address(domain="bounce.example")
        fault = view.chaos.reject("rcpt", "550 5.1.1 no such user", recipients="*@bounce.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            _send(server.smtp_port, target, "refused")
        assert fault.fired == 1
        assert [f.fired for f in view.chaos.load("mail:451 4.3.0 later:times=1")] == [0]
        with pytest.raises(smtplib.SMTPSenderRefused):
            _send(server.smtp_port, view.unique_address(), "later")
    # the view removed its own faults, not the other one
    assert [f.id for f in server.chaos.faults] == [other.id]
    server.chaos.clear()
    _send(server.smtp_port, "x@bounce.example", "accepted again")

    hooks = client.webhooks
    hooks.set_urls(["http://127.0.0.1:9/hook"])
    assert hooks.urls == ["http://127.0.0.1:9/hook"] == server.webhooks.urls
    hooks.set_urls([])
    assert isinstance(hooks.deliveries(), list)

    with pytest.raises(RemoteUnsupported, match=r"in-process postroom\.Server"):
        client.handler(lambda m: None)
    with pytest.raises(ClientError, match="HTTP 400"):
        client.request("POST", "/api/v2/chaos", body={"Spec": "nowhere:451"})


def test_a_wait_timeout_over_http_names_near_misses(server: Server) -> None:
    view = Client(server.http_url, smtp_port=server.smtp_port).scope()
    to = view.unique_address()
    _send(server.smtp_port, to, "Welcome aboard")
    with pytest.raises(NoMatchingMail, match=r"to matched; subject was 'Welcome aboard'"):
        view.wait_for(to=to, subject="Reset", timeout=0.3)


SUITE = """
import smtplib
import pytest

@pytest.mark.parametrize("i", range(40))
def test_one(mail, i):
    to = mail.unique_address(f"user{i}")
    with smtplib.SMTP(mail.host, mail.smtp_port) as c:
        c.sendmail("app@example.com", [to], f"Subject: n{i}\\r\\n\\r\\nx\\r\\n".encode())
    msg = mail.wait_for(to=to)
    assert msg.subject == f"n{i}"
    mail.assert_received(count=1)
    assert len(mail) == 1

@pytest.mark.postroom(handler=lambda m: None)
def test_needs_local(mail):
    pass
"""


def test_suite_under_xdist_against_a_shared_server(server: Server, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", f"--postroom-url={server.http_url}",
        f"--postroom-smtp-port={server.smtp_port}", "-rs",
    )  # fmt: skip
    result.assert_outcomes(passed=40, skipped=1)
    result.stdout.fnmatch_lines(
        ["*needs an in-process postroom.Server (handler= runs Python inside the server)*"]
    )
