"""What the POP3 core asks of the server (events) and what the server answers; the core
pauses between the two (see :mod:`postroom.protocols.pop3`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .states import MaildropItem

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Answer",
    "AuthAccepted",
    "Authenticate",
    "Close",
    "Event",
    "MessageContent",
    "Reject",
    "Retrieve",
    "StartTLS",
    "TLSStarted",
    "Update",
    "UpdateDone",
]

# -- events (core -> server) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Check a login. Answer :class:`AuthAccepted` or :class:`Reject`.

    ``mechanism`` is "USER" (USER/PASS), "PLAIN" (AUTH PLAIN) or "APOP"; for APOP
    ``secret`` is the client's hex digest, to compare with :func:`apop_digest`.
    """

    username: str
    secret: str = field(repr=False)
    mechanism: str
    authzid: str = ""
    apop_timestamp: str = ""


@dataclass(frozen=True, slots=True)
class Retrieve:
    """RETR (``lines`` None) or TOP. Answer :class:`MessageContent` or :class:`Reject`."""

    item: MaildropItem
    lines: int | None = None


@dataclass(frozen=True, slots=True)
class StartTLS:
    """The ``+OK`` is queued: write it, run the TLS handshake, then send :class:`TLSStarted`."""


@dataclass(frozen=True, slots=True)
class Update:
    """QUIT from TRANSACTION (RFC 1939 §6): apply deletions, answer :class:`UpdateDone`.

    ``retrieved`` lists messages that RETR sent, for servers that mark them seen.
    """

    deleted: tuple[MaildropItem, ...]
    retrieved: tuple[MaildropItem, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """The session is over: write what is queued, then close the connection."""

    reason: str = ""


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")  # feed more bytes with receive_data()
PAUSED = _Sentinel("PAUSED")  # an event awaits its answer via send()

Event = Authenticate | Retrieve | StartTLS | Update | Close


# -- answers (server -> core) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthAccepted:
    """The login is good; the maildrop is locked and listed (numbers 1..n in order)."""

    mailbox: str
    maildrop: Sequence[MaildropItem]


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the pending event with ``-ERR [code] text`` (for Update: then close)."""

    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class MessageContent:
    """The raw bytes of the message a :class:`Retrieve` asked for."""

    raw: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class TLSStarted:
    """The TLS handshake after STLS succeeded."""


@dataclass(frozen=True, slots=True)
class UpdateDone:
    """Deletions applied; ``remaining`` messages are left in the maildrop."""

    remaining: int


Answer = AuthAccepted | Reject | MessageContent | TLSStarted | UpdateDone
