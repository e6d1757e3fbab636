"""The POP3 core's limits, errors, states and command table, and what a session is
configured with (:class:`Config`) and sees of the mailbox (:class:`MaildropItem`)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

__all__ = [
    "COMMANDS",
    "CRLF",
    "IDLE_TIMEOUT",
    "LOGIN_TIMEOUT",
    "MAX_ARGUMENT",
    "MAX_AUTH_FAILURES",
    "MAX_BAD_COMMANDS",
    "MAX_COMMAND_LINE",
    "MAX_RESPONSE_LINE",
    "MAX_SASL_LINE",
    "CommandError",
    "Config",
    "LocalProtocolError",
    "MaildropItem",
    "POP3Error",
    "State",
]

# -- limits ---------------------------------------------------------------------------

# RFC 2449 §4: "the maximum length of a command is increased from 47 characters ... to
# 255 octets, including the terminating CRLF".
MAX_COMMAND_LINE = 255
# RFC 5034 §4 keeps the AUTH *command* within RFC 2449's 255 octets; the client's answers
# to challenges are SASL data lines, not commands. PLAIN needs little; 8 KiB is our cap.
MAX_SASL_LINE = 8192
# RFC 2449 §4: "Responses may be up to 512 characters long, including the terminating
# CRLF" (applies to status lines, not to message content).
MAX_RESPONSE_LINE = 512
# RFC 2449 §4: each argument "may be up to 40 characters long". We enforce only the
# line limit, since login names are addresses that can be longer; kept for reference.
MAX_ARGUMENT = 40
# Dovecot closes a session after 20 unknown/invalid commands (CLIENT_MAX_BAD_COMMANDS).
MAX_BAD_COMMANDS = 20
# Failed logins before we hang up; RFC 1939 §4 lets the server close after a failed
# authentication. Three tries is what most servers allow a mistyping human.
MAX_AUTH_FAILURES = 3
# RFC 1939 §3: an inactivity autologout timer "MUST be of at least 10 minutes". Seconds,
# counted from the last response (--pop3-timeout); Dovecot's CLIENT_IDLE_TIMEOUT is the same.
IDLE_TIMEOUT = 600
# Seconds a client gets to log in (--pop3-login-timeout): before login there is no session
# to autologout, so the 10 minutes of RFC 1939 §3 need not apply, and a stranger holding a
# connection open should not get them. Dovecot's pre-login limit (CLIENT_LOGIN_TIMEOUT_MSECS)
# is 3 minutes; so is ours.
LOGIN_TIMEOUT = 180

CRLF = b"\r\n"


# -- errors ---------------------------------------------------------------------------


class POP3Error(Exception):
    """Base of this module's errors."""


class LocalProtocolError(POP3Error):
    """The caller used the API wrongly (a server bug, never a client's doing)."""


class CommandError(POP3Error):
    """A command that cannot be honoured; becomes ``-ERR [code] text``."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


# -- states and the command table -------------------------------------------------------


class State(enum.Enum):
    """RFC 1939 §3 session states, plus CLOSED once the session is over."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


_A = frozenset({State.AUTHORIZATION})
_T = frozenset({State.TRANSACTION})
_AT = _A | _T

# Which command is valid in which state (RFC 1939 §4-7, RFC 2449 §5, RFC 2595 §4,
# RFC 5034 §4). Anything else is unknown; a known command outside its states is refused.
COMMANDS: dict[str, frozenset[State]] = {
    "CAPA": _AT,
    "QUIT": _AT,
    "USER": _A,
    "PASS": _A,
    "APOP": _A,
    "AUTH": _A,
    "STLS": _A,
    "STAT": _T,
    "LIST": _T,
    "UIDL": _T,
    "RETR": _T,
    "TOP": _T,
    "DELE": _T,
    "RSET": _T,
    "NOOP": _T,
}


# -- configuration and maildrop -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """How one session behaves; the server builds it per connection.

    Attributes:
        hostname: shown in the greeting and the sign-off.
        apop_timestamp: the RFC 1939 §7 greeting timestamp (``<...@host>``); APOP is
            offered only when given (the server needs plaintext secrets to check it).
        tls_active: the connection is already encrypted (implicit TLS).
        stls_available: STLS can be offered (a certificate is configured).
        require_tls_login: refuse USER/PASS/AUTH/APOP until TLS is active.
        implementation: RFC 2449 §6.9 IMPLEMENTATION capability text.
    """

    hostname: str = "postroom"
    apop_timestamp: str | None = None
    tls_active: bool = False
    stls_available: bool = False
    require_tls_login: bool = False
    implementation: str = "postroom"

    def __post_init__(self) -> None:
        ts = self.apop_timestamp
        if ts is not None and not re.fullmatch(r"<[\x21-\x7e]+>", ts):
            raise ValueError("apop_timestamp must look like <token@host> (RFC 1939 §7)")


_UIDL_RE = re.compile(r"[\x21-\x7e]{1,70}")


@dataclass(frozen=True, slots=True)
class MaildropItem:
    """One message of the maildrop as the session sees it.

    Attributes:
        number: the message-number, 1-based, fixed for the session (RFC 1939 §5).
        uidl: unique-id, 1-70 characters 0x21-0x7E, stable across sessions (RFC 1939 §7).
        size: exact size in octets (RFC 1939 §5, LIST).
        ref: opaque handle the server uses to find the message again.
    """

    number: int
    uidl: str
    size: int
    ref: object = field(compare=False, default=None)

    def __post_init__(self) -> None:
        if self.number < 1 or self.size < 0:
            raise ValueError("message numbers start at 1 and sizes are not negative")
        if not _UIDL_RE.fullmatch(self.uidl):
            raise ValueError("a unique-id is 1-70 characters in 0x21-0x7E (RFC 1939 §7)")
