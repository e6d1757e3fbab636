"""The SMTP core's states, the command -> states table, its limits and its configuration.

Which command is valid in which :class:`State` is one table, :data:`COMMANDS`, checked in
one place (``SMTPConnection._command``); a command outside its states gets the 503 that
:func:`sequence_error` words. The session that moves between the states is
:mod:`.connection`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from .replies import ALREADY_AUTHED, NEED_HELO, Reply, line_reply

__all__ = [
    "AUTH_MECHANISMS",
    "COMMANDS",
    "COMMAND_TIMEOUT",
    "MAX_AUTH_LINE",
    "MAX_COMMAND_LINE",
    "MAX_ERRORS",
    "NOT_IMPLEMENTED_COMMANDS",
    "LocalProtocolError",
    "SMTPConfig",
    "SMTPError",
    "State",
    "sequence_error",
]


# -- limits ------------------------------------------------------------------------------

#: Longest command line we accept, CRLF included. RFC 5321 4.5.3.1.4 sets 512 octets
#: and lets each extension raise it (RFC 1869 4.1.2); ESMTP parameters (SIZE, BODY,
#: SMTPUTF8, RET, ENVID, AUTH=, ORCPT=) and long addresses can pass 512, so we accept
#: 4096, twice Postfix's ``line_length_limit`` default of 2048.
MAX_COMMAND_LINE: Final = 4096
#: AUTH commands with an initial response and SASL response lines: RFC 4954 section 4
#: raises the limit for them to 12288 octets.
MAX_AUTH_LINE: Final = 12288
#: Server timeout while waiting for the next command or the next block of data:
#: at least 5 minutes (RFC 5321 4.5.3.2.7). Enforced by the I/O layer.
COMMAND_TIMEOUT: Final = 300.0
#: Errors tolerated in one session before it is closed with 421, like Postfix's
#: ``smtpd_hard_error_limit`` default of 20: binary garbage must not keep a slot forever.
MAX_ERRORS: Final = 20
#: Mechanisms we speak (RFC 4616 PLAIN, draft-murchison-sasl-login LOGIN, RFC 2195 CRAM-MD5,
#: and XOAUTH2, Google's and Microsoft's OAuth2 bearer-token mechanism, so that an application
#: written for Gmail or Microsoft 365 can be pointed at postroom unchanged; its token is
#: checked as the password).
AUTH_MECHANISMS: Final = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2")


class SMTPError(Exception):
    """Base of this module's errors."""


class LocalProtocolError(SMTPError):
    """The caller misused the API (a server bug, never a client's doing)."""


class State(enum.Enum):
    """Where a session is. Transitions happen when the caller sends a reply."""

    GREETING = "greeting"  # the 220 banner has not been sent yet
    CONNECTED = "connected"  # banner sent; waiting for HELO/EHLO
    READY = "ready"  # greeted; no mail transaction
    MAIL = "mail"  # MAIL accepted
    RCPT = "rcpt"  # at least one RCPT accepted
    CHUNKING = "chunking"  # between BDAT chunks of one message (RFC 3030)
    DATA = "data"  # reading the body after 354
    BDAT = "bdat"  # reading the octets of one BDAT chunk
    AUTH = "auth"  # in a SASL exchange, waiting for the client's response line
    CLOSED = "closed"  # after QUIT or a 421: input is ignored

    # Each command checks its state against a set (COMMANDS): Enum's own __hash__ is a
    # Python call (hash of the name). A member is only ever equal to itself, so its identity
    # hash agrees with equality, and costs no call.
    __hash__ = object.__hash__


_CMD_STATES = frozenset({State.CONNECTED, State.READY, State.MAIL, State.RCPT, State.CHUNKING})

#: Command -> the states it is valid in. Anything else gets a 503 (bad sequence).
COMMANDS: Final[dict[bytes, frozenset[State]]] = {
    b"EHLO": _CMD_STATES,
    b"HELO": _CMD_STATES,
    b"MAIL": frozenset({State.READY}),
    b"RCPT": frozenset({State.MAIL, State.RCPT}),
    b"DATA": frozenset({State.RCPT}),
    b"BDAT": frozenset({State.RCPT, State.CHUNKING}),
    b"RSET": _CMD_STATES,
    b"NOOP": _CMD_STATES,
    b"VRFY": _CMD_STATES,
    b"HELP": _CMD_STATES,
    b"QUIT": _CMD_STATES,
    b"STARTTLS": frozenset({State.CONNECTED, State.READY}),  # not inside a transaction
    b"AUTH": frozenset({State.READY}),  # after EHLO, outside a transaction (RFC 4954 4)
}
#: Recognised but not offered (RFC 5321 4.2.4: 502 "command not implemented").
NOT_IMPLEMENTED_COMMANDS = frozenset({b"EXPN", b"ETRN", b"TURN", b"ATRN", b"SEND", b"SOML", b"SAML"})


# -- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class SMTPConfig:
    """What a session needs to know about the server."""

    hostname: str = "postroom"
    max_size: int = 50 * 1024 * 1024  # RFC 1870 SIZE
    max_recipients: int = 1000  # RFC 5321 4.5.3.1.8 requires at least 100
    tls_available: bool = False  # can STARTTLS be offered?
    require_auth: bool = False
    require_tls: bool = False
    software: str = "postroom"
    _cache: dict[bool | None, Reply] = field(default_factory=dict, init=False, repr=False, compare=False)

    def greeting_reply(self) -> Reply:
        """The 220 banner (cached per config)."""
        cached = self._cache.get(None)
        if cached is None:
            cached = self._cache[None] = Reply(220, "", (f"{self.hostname} ESMTP {self.software}",))
        return cached

    def ehlo_reply(self, tls_active: bool) -> Reply:
        """The EHLO reply for a session with or without TLS (cached per config)."""
        cached = self._cache.get(tls_active)
        if cached is None:
            ext = [self.hostname, "PIPELINING", f"SIZE {self.max_size}", "8BITMIME", "SMTPUTF8"]
            ext += ["CHUNKING", "BINARYMIME", "ENHANCEDSTATUSCODES", "DSN"]
            if self.tls_available and not tls_active:
                ext.append("STARTTLS")
            if tls_active or not self.require_tls:  # RFC 3207 4.2: AUTH after STARTTLS
                ext.append("AUTH " + " ".join(AUTH_MECHANISMS))
            ext.append("HELP")
            cached = Reply(250, "", tuple(ext))
            self._cache[tls_active] = cached
        return cached


def sequence_error(state: State, verb: bytes, authenticated: bool) -> Reply:
    """The 503 for ``verb`` in ``state``, a state :data:`COMMANDS` does not allow it in
    (RFC 5321 4.3.2 lists the sequences; ``authenticated``: AUTH has succeeded)."""
    if state is State.CONNECTED:
        return NEED_HELO
    if verb == b"MAIL":
        return line_reply(503, "5.5.1", "Error: nested MAIL command")
    if verb == b"RCPT":
        return line_reply(503, "5.5.1", "Error: need MAIL command")
    if verb == b"DATA":
        if state is State.CHUNKING:
            return line_reply(503, "5.5.1", "Error: DATA cannot follow BDAT")
        if state is State.MAIL:
            return line_reply(503, "5.5.1", "Error: need RCPT command")
        return line_reply(503, "5.5.1", "Error: need MAIL command")
    if verb == b"BDAT":
        return line_reply(
            503,
            "5.5.1",
            "Error: need RCPT command" if state is State.MAIL else "Error: need MAIL command",
        )
    if verb == b"AUTH" and authenticated:
        return ALREADY_AUTHED
    if verb in (b"AUTH", b"STARTTLS"):
        return line_reply(503, "5.5.1", "Error: not allowed during a mail transaction")
    return line_reply(503, "5.5.1", "Error: bad sequence of commands")
