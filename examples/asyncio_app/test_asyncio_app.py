"""Testing an asyncio service: the `mail` fixture, and `async with postroom.Server()`."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from notifier import send_welcome, signup_many

from postroom import Server


def test_welcome_mail_carries_the_code(mail) -> None:  # type: ignore[no-untyped-def]
    code = asyncio.run(send_welcome("bob@example.com", host="127.0.0.1", port=mail.smtp_port))
    msg = mail.wait_for(to="bob@example.com")
    assert msg.code() == code
    assert msg.link("verify") == "https://service.example/verify?e=bob@example.com"


def test_concurrent_signups(mail) -> None:  # type: ignore[no-untyped-def]
    emails = [f"user{i}@example.com" for i in range(10)]
    codes = asyncio.run(signup_many(emails, host="127.0.0.1", port=mail.smtp_port))
    received = mail.wait_for(count=10)
    assert {m.recipients[0]: m.code() for m in received} == codes


@pytest.mark.postroom(chaos="rcpt:451 4.7.1 greylisted:times=2")
def test_temporary_failures_are_retried(mail) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(send_welcome("carol@example.com", host="127.0.0.1", port=mail.smtp_port))
    mail.assert_received(to="carol@example.com", count=1)
    assert mail.chaos.faults[0].fired == 2


@pytest.mark.postroom(chaos="rcpt:550 5.1.1 no such user")
def test_permanent_failures_are_not(mail) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        asyncio.run(send_welcome("dave@example.com", host="127.0.0.1", port=mail.smtp_port))
    assert mail.chaos.faults[0].fired == 1


def test_server_inside_the_running_loop() -> None:
    async def main() -> None:
        async with Server(pop3=False, imap=False) as mail:
            code = await send_welcome("erin@example.com", host="127.0.0.1", port=mail.smtp_port)
            msg = await mail.wait_for_async(to="erin@example.com")
            assert msg.code() == code

    asyncio.run(main())
