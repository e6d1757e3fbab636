"""``postroom.testing.Mail``: the one typed shape of the ``mail`` fixture.

Whatever the fixture is for a test -- a fresh :class:`~postroom.Server`, a view of the
session server (:class:`~postroom.testing.MailView`), a :class:`~postroom.Client` of a
running postroom or its view -- it has these members, with the same signatures sync and
async. Annotate with it::

    from postroom.testing import Mail

    def test_welcome(mail: Mail) -> None:
        send_welcome("alice@example.com", port=mail.smtp_port)
        msg = mail.wait_for(to="alice@example.com")
        assert msg.from_.address == "app@example.com"

The protocol is checked against all four classes by the type checker
(``tests/typing/sample_test.py`` is run through ``mypy --strict`` by the test suite).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar, overload

from ..protocols.smtp import Reply
from ..runtime.models import Message
from ..runtime.webhooks import Delivery
from .reader import Predicate, Text

__all__ = ["ChaosControl", "FaultHandle", "Mail", "WebhookControl"]

if TYPE_CHECKING:
    from ..runtime.handlers import Handler, RcptHandler

HandlerT = TypeVar("HandlerT", bound="Handler")
RcptHandlerT = TypeVar("RcptHandlerT", bound="RcptHandler")


class FaultHandle(Protocol):
    """A fault that was set: how often it acted so far."""

    @property
    def fired(self) -> int: ...


class ChaosControl(Protocol):
    """Fault injection (``mail.chaos``), in-process or over HTTP."""

    def reject(
        self,
        stage: str,
        reply: str | int | Reply = 451,
        *,
        probability: float = 1.0,
        times: int | None = None,
        recipients: str | None = None,
        sender: str | None = None,
    ) -> FaultHandle: ...

    def delay(
        self,
        stage: str,
        seconds: float,
        *,
        reply: str | int | Reply | None = None,
        probability: float = 1.0,
        times: int | None = None,
        recipients: str | None = None,
        sender: str | None = None,
    ) -> FaultHandle: ...

    def disconnect(
        self,
        stage: str,
        *,
        probability: float = 1.0,
        times: int | None = None,
        recipients: str | None = None,
        sender: str | None = None,
    ) -> FaultHandle: ...

    def load(self, spec: str) -> Sequence[FaultHandle]: ...

    def clear(self) -> None: ...


class WebhookControl(Protocol):
    """The webhooks of the server (``mail.webhooks``)."""

    @property
    def urls(self) -> list[str]: ...

    def set_urls(self, urls: list[str]) -> None: ...

    def add(self, url: str) -> None: ...

    def deliveries(self) -> list[Delivery]: ...


class Mail(Protocol):
    """What every ``mail`` fixture value offers (see the module docstring)."""

    @property
    def host(self) -> str:
        """Where the code under test sends (the SMTP host)."""
        ...

    @property
    def smtp_port(self) -> int: ...

    @property
    def http_url(self) -> str:
        """Base URL of the web UI and API."""
        ...

    @property
    def chaos(self) -> ChaosControl: ...

    @property
    def webhooks(self) -> WebhookControl: ...

    def handler(self, fn: HandlerT) -> HandlerT:
        """Add a message handler (a decorator); a remote server raises RemoteUnsupported."""
        ...

    def rcpt_handler(self, fn: RcptHandlerT) -> RcptHandlerT:
        """Add a recipient handler, run at each RCPT TO (in-process servers only)."""
        ...

    def unique_address(self, local: str = "user", domain: str = "example.com") -> str: ...

    def messages(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]: ...

    async def messages_async(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]: ...

    @overload
    def wait_for(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = ...,
        count: None = None,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> Message: ...

    @overload
    def wait_for(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = ...,
        count: int,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]: ...

    @overload
    async def wait_for_async(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = ...,
        count: None = None,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> Message: ...

    @overload
    async def wait_for_async(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = ...,
        count: int,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]: ...

    def assert_received(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        count: int | None = None,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]: ...

    def assert_not_received(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> None: ...

    @property
    def last(self) -> Message: ...

    def __len__(self) -> int: ...

    def clear(self) -> None: ...

    async def clear_async(self) -> None: ...
