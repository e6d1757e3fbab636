"""Message handlers: accept, reject, delay (sync and async) before the 250, over real SMTP."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
from typing import Any

import aiosmtplib
import pytest

from postroom.runtime.handlers import HandlerError, HandlerFailed, Result, SMTPHandler, decide
from postroom.testing import ACCEPT, Decision, Envelope, Message, Server, delay, reject


def _msg(subject: str, body: str = "hello") -> bytes:
    return f"From: app@example.com\r\nTo: u@example.com\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def _send(port: int, subject: str, rcpts: tuple[str, ...] = ("u@example.com",), timeout: float = 10) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as c:
        c.sendmail("app@example.com", list(rcpts), _msg(subject))


@pytest.fixture(scope="module")
def server() -> Any:
    with Server(pop3=False, imap=False) as s:
        yield s


@pytest.fixture(autouse=True)
def _reset(server: Server) -> Any:
    yield
    server.handlers.clear()
    server.handlers.take_errors()
    server.clear()


def test_handler_sees_the_message_before_it_is_stored(server: Server) -> None:
    seen: list[Message] = []

    @server.handler
    def capture(msg: Message) -> None:
        seen.append(msg)
        assert server.messages() == []  # not stored yet: called before the 250

    _send(server.smtp_port, "captured", ("u@example.com", "v@example.com"))
    [m] = seen
    assert m.id == "" and m.subject == "captured" and m.text.strip() == "hello"
    assert m.envelope is not None and m.envelope.mail_from == "app@example.com"
    assert m.envelope.rcpt_to == ("u@example.com", "v@example.com")
    assert server.wait_for(subject="captured").subject == "captured"


def test_reject_with_a_reply_and_by_returning_false(server: Server) -> None:
    server.handler(lambda m: reject("550 5.7.1 no unsubscribe link") if "unsubscribe" not in m.text else None)
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(server.smtp_port, "newsletter")
    assert (err.value.smtp_code, err.value.smtp_error) == (550, b"5.7.1 no unsubscribe link")
    server.handlers.clear()
    server.handler(lambda m: m.subject != "blocked")
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(server.smtp_port, "blocked")
    assert err.value.smtp_code == 550
    _send(server.smtp_port, "fine")
    assert [m.subject for m in server.messages()] == ["fine"]


def test_reply_text_and_sink(server: Server) -> None:
    server.handler(lambda m: "451 4.7.1 greylisted" if m.subject == "grey" else None)
    server.handler(lambda m: "250 2.0.0 swallowed" if m.subject == "sink" else ACCEPT)
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(server.smtp_port, "grey")
    assert err.value.smtp_code == 451
    _send(server.smtp_port, "sink")  # accepted, not stored
    _send(server.smtp_port, "kept")
    assert [m.subject for m in server.messages()] == ["kept"]


def test_async_handler(server: Server) -> None:
    calls: list[str] = []

    async def check(msg: Message) -> Any:
        await asyncio.sleep(0)
        calls.append(msg.subject)
        return reject(554) if msg.subject == "bad" else None

    server.handler(check)

    async def main() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.smtp_port) as c:
            with pytest.raises(aiosmtplib.SMTPDataError) as err:
                await c.sendmail("app@example.com", ["u@example.com"], _msg("bad"))
            assert err.value.code == 554
            await c.sendmail("app@example.com", ["u@example.com"], _msg("good"))

    asyncio.run(main())
    assert calls == ["bad", "good"]
    assert [m.subject for m in server.messages()] == ["good"]


def test_delay_then_accept_and_blocking_sync_handler(server: Server) -> None:
    release = threading.Event()

    def slow(msg: Message) -> Any:
        if msg.subject == "blocked-until-released":
            release.wait(10)  # sync handlers run in a thread: other sessions go on
            return None
        return delay(3.0) if msg.subject == "slow" else None

    server.handler(slow)
    with pytest.raises((socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected)):
        _send(server.smtp_port, "slow", timeout=0.5)
    t = threading.Thread(target=_send, args=(server.smtp_port, "blocked-until-released"))
    t.start()
    _send(server.smtp_port, "meanwhile")  # not held up by the blocked handler
    assert server.wait_for(subject="meanwhile").subject == "meanwhile"
    release.set()
    t.join(10)
    # the slow one is stored once its delay is over (the client had given up)
    subjects = {m.subject for m in server.wait_for(count=3, timeout=10)}
    assert subjects == {"slow", "meanwhile", "blocked-until-released"}


def test_delay_then_reply(server: Server) -> None:
    server.handler(lambda m: delay(0.1, then="452 4.2.2 mailbox full"))
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(server.smtp_port, "x")
    assert err.value.smtp_code == 452


def test_a_failing_handler_is_a_temporary_failure(server: Server) -> None:
    def broken(msg: Message) -> None:
        raise RuntimeError("bug in the test's handler")

    server.handler(broken)
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(server.smtp_port, "x")
    assert err.value.smtp_code == 451
    server.handlers.clear()
    server.handler(lambda m: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(smtplib.SMTPDataError):
        _send(server.smtp_port, "y")
    server.assert_not_received()
    # both are kept for the test that owns the server
    errors = server.handlers.errors
    assert [type(e).__name__ for e in errors] == ["RuntimeError", "HandlerError"]
    with pytest.raises(
        HandlerFailed, match=r"raised RuntimeError: bug in the test's handler \(and 1 more\)"
    ) as failed:
        server.handlers.raise_errors()
    assert isinstance(failed.value.__cause__, RuntimeError) and server.handlers.errors == []


def test_recipient_handlers_refuse_one_recipient(server: Server) -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []

    @server.rcpt_handler
    def gone(address: str, envelope: Envelope) -> Decision | None:
        seen.append((address, envelope.rcpt_to))
        return reject("550 5.1.1 no such user") if address.startswith("gone@") else None

    with smtplib.SMTP("127.0.0.1", server.smtp_port) as c:
        refused = c.sendmail(
            "app@example.com", ["a@example.com", "gone@example.com", "b@example.com"], _msg("r")
        )
    assert refused == {"gone@example.com": (550, b"5.1.1 no such user")}
    assert seen == [
        ("a@example.com", ()),
        ("gone@example.com", ("a@example.com",)),
        ("b@example.com", ("a@example.com",)),
    ]
    [msg] = server.assert_received(subject="r")
    assert msg.envelope.rcpt_to == ("a@example.com", "b@example.com")


def test_typed_stage_methods(server: Server) -> None:
    class Policy(SMTPHandler):
        def handle_RCPT(self, address: str, envelope: Envelope) -> Result:
            return "550 5.7.1 not here" if address.endswith("@blocked.example") else None

        async def handle_DATA(self, msg: Message) -> Result:
            return reject("554 5.6.0 no attachments please") if msg.attachments else None

    remove = server.handlers.add(Policy())
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _send(server.smtp_port, "blocked", ("x@blocked.example",))
    _send(server.smtp_port, "fine", ("x@fine.example",))
    server.assert_received(subject="fine", count=1)
    remove()
    assert len(server.handlers) == 0
    _send(server.smtp_port, "open", ("x@blocked.example",))
    server.assert_received(subject="open")


def test_remove_and_hook_list(server: Server) -> None:
    remove = server.handlers.add(lambda m: False)
    assert len(server.app.smtp_hooks) == 1
    remove()
    assert server.app.smtp_hooks == [] and len(server.handlers) == 0
    _send(server.smtp_port, "after removal")
    server.assert_received(subject="after removal")


def test_handler_given_at_construction() -> None:
    with (
        Server(handler=lambda m: reject("550 5.7.0 closed"), pop3=False, imap=False) as s,
        pytest.raises(smtplib.SMTPDataError),
    ):
        _send(s.smtp_port, "x")


def test_decide() -> None:
    assert decide(None) is ACCEPT and decide(True) is ACCEPT
    assert decide(False).reply is not None and decide(False).reply.code == 550  # type: ignore[union-attr]
    assert decide("550 nope").reply.lines == ("nope",)  # type: ignore[union-attr]
    for bad in ("not a reply", 3, object()):
        with pytest.raises(HandlerError):
            decide(bad)
    with pytest.raises(ValueError):
        delay(-1)
