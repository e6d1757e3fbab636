"""What the SMTP core hands to its caller: events that each need exactly one reply."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from .replies import Reply

__all__ = [
    "NEED_DATA",
    "AuthAttempt",
    "AuthChallenge",
    "ChunkReceived",
    "Command",
    "CommandError",
    "DataStart",
    "Event",
    "Hello",
    "MailFrom",
    "MessageReceived",
    "Quit",
    "RcptTo",
    "Sentinel",
    "StartTLS",
]


class Sentinel(enum.Enum):
    NEED_DATA = "need-data"


#: Returned by :meth:`SMTPConnection.next_event` when the buffer holds no complete command.
NEED_DATA: Final = Sentinel.NEED_DATA


@dataclass(frozen=True, slots=True)
class Event:
    """Something that needs exactly one reply; ``reply`` is what the core proposes."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Hello(Event):
    """HELO or EHLO."""

    hostname: str
    esmtp: bool


@dataclass(frozen=True, slots=True)
class MailFrom(Event):
    """MAIL FROM; ``address`` is "" for the null reverse-path."""

    address: str
    size: int | None
    body: str  # "7BIT", "8BITMIME" or "BINARYMIME"
    smtputf8: bool


@dataclass(frozen=True, slots=True)
class RcptTo(Event):
    address: str


@dataclass(frozen=True, slots=True)
class DataStart(Event):
    """The DATA command; a 354 reply starts the body."""


@dataclass(frozen=True, slots=True)
class ChunkReceived(Event):
    """A BDAT chunk without LAST was read (RFC 3030)."""

    size: int


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A whole message: end of DATA, or BDAT ... LAST. The transaction is over."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes  # unstuffed, CRLF line ends (DATA) or byte-exact (BDAT)
    smtputf8: bool
    body: str


@dataclass(frozen=True, slots=True)
class StartTLS(Event):
    """STARTTLS; after a 220 the caller starts the handshake (RFC 3207)."""


@dataclass(frozen=True, slots=True)
class AuthChallenge(Event):
    """A 334 continuation in a SASL exchange (RFC 4954)."""


@dataclass(frozen=True, slots=True)
class AuthAttempt(Event):
    """Credentials to check. ``password`` for PLAIN/LOGIN; ``challenge`` and ``digest``
    (lower-case hex HMAC-MD5) for CRAM-MD5. Never log ``password``."""

    mechanism: str
    username: str
    password: str | None = field(default=None, repr=False)
    challenge: str | None = None
    digest: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Quit(Event):
    pass


@dataclass(frozen=True, slots=True)
class Command(Event):
    """RSET, NOOP, VRFY, HELP: no decision to make, but a hook may want to see them."""

    verb: str
    argument: str


@dataclass(frozen=True, slots=True)
class CommandError(Event):
    """The client did something wrong; ``reply`` says what (4xx/5xx)."""
