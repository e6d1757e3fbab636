"""A test file as a user writes it, using every helper docs/testing.md documents.

Not collected by pytest (the name does not start with ``test_``): tests/unit/test_typing.py
runs ``mypy --strict`` on it, so the public API stays fully typed (issue 20).
"""

from __future__ import annotations

import re
import smtplib

import pytest

from postroom import Client, Server
from postroom.runtime.handlers import Result, SMTPHandler
from postroom.testing import (
    Address,
    Attachment,
    Decision,
    Envelope,
    FaultHandle,
    Mail,
    Message,
    NoMatchingMail,
    NotFoundInMessage,
    accept,
    delay,
    extract_code,
    extract_links,
    reject,
)


def send(mail: Mail, to: str) -> None:
    with smtplib.SMTP(mail.host, mail.smtp_port) as smtp:
        smtp.sendmail("app@example.com", [to], b"Subject: hi\r\n\r\nhello\r\n")


def test_reading(mail: Mail) -> None:
    to = mail.unique_address("alice")
    send(mail, to)
    msg: Message = mail.wait_for(to=to, subject="hi", timeout=5)
    first: list[Message] = mail.wait_for(to=to, count=1)
    assert first == [msg]
    assert msg.from_.address == "app@example.com" and msg.from_.name == ""
    sender: Address = msg.from_
    envelope: Envelope = msg.envelope
    assert envelope.mail_from == sender.address and envelope.rcpt_to == (to,)
    assert envelope.helo is not None and isinstance(envelope.tls, bool) and envelope.auth_user is None
    assert msg.id and msg.subject == "hi" and msg.text.strip() == "hello" and msg.html == ""
    print([a.address for a in (*msg.to, *msg.cc, *msg.bcc, *msg.reply_to)])
    assert msg.received > 0 and (msg.date is None or msg.date > 0)
    assert msg.headers["Subject"] == "hi" and msg.headers.get_all("Received")
    assert msg.header("X-Missing", "none") == "none"
    assert msg.raw.startswith(b"Return-Path:") and msg.mailboxes and isinstance(msg.tags, list)
    assert msg.recipients == [to] and msg.sender == "app@example.com"
    attachments: list[Attachment] = msg.attachments
    for a in attachments:
        print(a.filename, a.content_type, a.content, a.text, a.inline, a.size)
    links: list[str] = msg.links
    if links:
        print(msg.link("/reset/"), msg.link(pattern=re.compile(r"token=\w+")))
    with pytest.raises(NotFoundInMessage):
        msg.code()
    assert msg.code(r"(hello)") == "hello"
    assert mail.messages("subject:hi", mailbox=to, to=to, from_="@example.com", subject="hi", text="hello")
    assert mail.messages(lambda m: m.subject == "hi") == [msg]
    assert mail.assert_received(to=to, count=1) == [msg]
    mail.assert_not_received(subject=re.compile("^Reset"))
    assert mail.last == msg and len(mail) == 1
    with pytest.raises(NoMatchingMail):
        mail.wait_for(to="nobody@example.com", timeout=0.1)
    mail.clear()
    print(mail.http_url)
    assert extract_links("see https://x.example/a", "") == ["https://x.example/a"]
    code: str | None = extract_code("code 123456")
    assert code == "123456"


async def test_async(mail: Mail) -> None:
    msg: Message = await mail.wait_for_async(subject="hi", timeout=1)
    msgs: list[Message] = await mail.wait_for_async(subject="hi", count=2)
    found: list[Message] = await mail.messages_async("hi", to="alice@example.com", subject="hi")
    print(msg, msgs, found)
    await mail.clear_async()


def test_failure_paths(mail: Mail) -> None:
    fault: FaultHandle = mail.chaos.reject("rcpt", "550 5.1.1 no such user", recipients="*@bounce.example")
    mail.chaos.delay("data", 0.5, reply="421 4.4.2 timeout", times=1)
    mail.chaos.disconnect("message", probability=0.5)
    loaded: list[int] = [f.fired for f in mail.chaos.load("mail:451:times=1")]
    print(fault.fired, loaded)
    mail.chaos.clear()
    hooks = mail.webhooks
    hooks.add("http://127.0.0.1:9/hook")
    hooks.set_urls([*hooks.urls])
    print([(d.url, d.status, d.attempts, d.status_code) for d in hooks.deliveries()])


@pytest.mark.postroom(smtp_require_auth=False)
@pytest.mark.postroom_local
def test_handlers(mail: Mail) -> None:
    @mail.handler
    def policy(msg: Message) -> Decision:
        if "unsubscribe" not in msg.text:
            return reject("550 5.7.1 missing unsubscribe link")
        if msg.envelope.rcpt_to[0].endswith("@slow.example"):
            return delay(5)
        return accept()

    @mail.handler
    async def audit(msg: Message) -> None:
        print(msg.subject)

    @mail.rcpt_handler
    def gone(address: str, envelope: Envelope) -> Decision | None:
        return reject("550 5.1.1 no such user") if address.startswith("gone@") else None

    class Policy(SMTPHandler):
        def handle_RCPT(self, address: str, envelope: Envelope) -> Result:
            return None

    print(policy, audit, gone, Policy())


def test_servers_and_clients() -> None:
    with Server(pop3=False) as server:
        local: Mail = server
        print(local.smtp_port, server.imap_port, server.http_url, server.app, server.listeners)
        view: Mail = server.scope()
        print(view)
        server.handlers.add(lambda m: None)
        server.handlers.clear()
    remote = Client("http://127.0.0.1:8025", smtp_port=1025)
    shared: Mail = remote.scope()
    whole: Mail = remote
    print(shared, whole, remote.mailpit_chaos())


async def test_async_server() -> None:
    async with Server() as server:
        msg = await server.wait_for_async(to="alice@example.com", timeout=0.1)
        print(msg.subject)
