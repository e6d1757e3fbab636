"""The SMTP session state machine (see the package docstring for how to drive it)."""

from __future__ import annotations

import base64
import enum
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

from .events import (
    NEED_DATA,
    AuthAttempt,
    AuthChallenge,
    ChunkReceived,
    Command,
    CommandError,
    DataStart,
    Event,
    Hello,
    MailFrom,
    MessageReceived,
    Quit,
    RcptTo,
    Sentinel,
    StartTLS,
)
from .replies import (
    ALREADY_AUTHED,
    AUTH_CANCELLED,
    AUTH_OK,
    AUTH_REQUIRED,
    AUTH_UNDECODABLE,
    AUTH_UNKNOWN_MECH,
    BYE,
    HELP_REPLY,
    IGNORED_RCPT,
    LINE_TOO_LONG,
    NEED_HELO,
    NOT_IMPLEMENTED,
    OK,
    OK_MAIL,
    OK_RCPT,
    READY_TLS,
    START_DATA,
    TLS_REQUIRED,
    TLS_UNAVAILABLE,
    TOO_BIG,
    TOO_MANY_ERRORS,
    TOO_MANY_RECIPIENTS,
    UNRECOGNIZED,
    UNSUPPORTED_PARAM,
    VRFY_REPLY,
    Reply,
    line_reply,
)
from .syntax import CTL, decode_b64, parse_path

__all__ = [
    "AUTH_MECHANISMS",
    "COMMANDS",
    "COMMAND_TIMEOUT",
    "MAX_AUTH_LINE",
    "MAX_COMMAND_LINE",
    "MAX_ERRORS",
    "LocalProtocolError",
    "SMTPConfig",
    "SMTPConnection",
    "SMTPError",
    "State",
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

_DOT_LINE = re.compile(rb"\n\.")


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
_NOT_IMPLEMENTED = frozenset({b"EXPN", b"ETRN", b"TURN", b"ATRN", b"SEND", b"SOML", b"SAML"})


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


def _default_nonce() -> str:
    return f"{int.from_bytes(os.urandom(8), 'big')}.{int(time.time())}"


# -- the connection -----------------------------------------------------------------------


class SMTPConnection:
    """One SMTP session on the server side. See the module docstring for the protocol."""

    _HANDLERS: ClassVar[dict[bytes, Callable[[SMTPConnection, bytes], Event]]]

    __slots__ = (
        "_after",
        "_bdat_error",
        "_bdat_last",
        "_bdat_left",
        "_bdat_resume",
        "_bdat_size",
        "_buf",
        "_chunks",
        "_dots",
        "_nonce",
        "_pending",
        "_pos",
        "_sasl",
        "_sasl_challenge",
        "_sasl_user",
        "_scan",
        "_skip_line",
        "_too_big",
        "auth_user",
        "body",
        "config",
        "errors",
        "esmtp",
        "helo",
        "mail_from",
        "rcpt_to",
        "smtputf8",
        "state",
        "tls",
    )

    def __init__(
        self, config: SMTPConfig, *, tls: bool = False, nonce: Callable[[], str] = _default_nonce
    ) -> None:
        self.config = config
        self.tls = tls  # is the session encrypted (implicit TLS or after STARTTLS)?
        self.state = State.GREETING
        self.helo = ""
        self.esmtp = False
        self.auth_user: str | None = None
        self.mail_from = ""
        self.rcpt_to: list[str] = []
        self.smtputf8 = False
        self.body = "7BIT"
        self.errors = 0
        self._nonce = nonce
        self._buf = bytearray()
        self._pos = 0  # start of unread input in _buf
        self._pending: Event | None = None  # event waiting for its reply
        self._after: Callable[[Reply], None] | None = None  # applied when that reply is sent
        self._skip_line = False  # discarding the rest of an over-long line
        # DATA
        self._scan = 0  # where to look next for "\n." in _buf
        self._dots: list[int] = []  # offsets of stuffed dots (they do not count toward the size)
        self._too_big = False
        # BDAT
        self._chunks = bytearray()
        self._bdat_left = 0
        self._bdat_last = False
        self._bdat_error: Reply | None = None
        self._bdat_size = 0
        self._bdat_resume = State.READY
        # SASL
        self._sasl: str = ""  # "PLAIN", "LOGIN-USER", "LOGIN-PASS", "CRAM-MD5", "XOAUTH2"
        self._sasl_user = ""
        self._sasl_challenge = ""

    # -- public API ---------------------------------------------------------------------

    def greeting(self) -> Reply:
        """The 220 banner (RFC 5321 4.2: no enhanced code before EHLO)."""
        return self.config.greeting_reply()

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the client. Nothing is parsed until :meth:`next_event`."""
        if self.state is State.CLOSED:
            return
        if self._pos and self.state is not State.DATA:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | Literal[Sentinel.NEED_DATA]:
        """The next thing that needs a reply, or :data:`NEED_DATA`.

        Raises:
            LocalProtocolError: the previous event has not been answered with :meth:`send`.
        """
        if self._pending is not None:
            raise LocalProtocolError("send() a reply to the previous event first")
        state = self.state
        if state is State.DATA:
            ev = self._read_data()
        elif state is State.BDAT:
            ev = self._read_bdat()
        elif state is State.CLOSED:
            return NEED_DATA
        elif state is State.GREETING:
            raise LocalProtocolError("send the greeting first")
        else:
            ev = self._read_line()
        if ev is not NEED_DATA:
            self._pending = ev
        return ev

    def send(self, reply: Reply) -> bytes:
        """Reply to the pending event (or send the greeting / an unsolicited 421).

        Applies the state change the reply implies and returns the bytes to write.
        """
        pending = self._pending
        self._pending = None
        after = self._after
        self._after = None
        if reply.code == 421:  # RFC 5321 3.8: the server closes after a 421
            self._close()
        elif pending is None:
            if self.state is State.GREETING:
                self.state = State.CONNECTED if reply.code == 220 else State.CLOSED
        else:
            if pending.__class__ is CommandError and reply.code >= 400:
                self.errors += 1
            if after is not None:
                after(reply)
        return reply.data

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet."""
        return len(self._buf) - self._pos

    @property
    def in_transaction(self) -> bool:
        return self.state in (State.MAIL, State.RCPT, State.CHUNKING, State.DATA, State.BDAT)

    def timeout_reply(self) -> Reply:
        """The 421 to send when the client has been idle too long (RFC 5321 4.5.3.2.7)."""
        return Reply(421, "4.4.2", (f"{self.config.hostname} Error: timeout exceeded",))

    def ehlo_reply(self) -> Reply:
        """The EHLO reply this session would get now."""
        return self.config.ehlo_reply(self.tls)

    # -- state changes --------------------------------------------------------------------

    def _reset_transaction(self) -> None:
        self.mail_from = ""
        self.rcpt_to = []
        self.smtputf8 = False
        self.body = "7BIT"
        self._chunks = bytearray()
        if self.state in (State.MAIL, State.RCPT, State.CHUNKING, State.DATA, State.BDAT, State.AUTH):
            self.state = State.READY

    def _close(self) -> None:
        self.state = State.CLOSED
        self._buf = bytearray()
        self._pos = 0

    def _error(self, reply: Reply) -> Event:
        if self.errors + 1 >= MAX_ERRORS:
            return CommandError(TOO_MANY_ERRORS)
        return CommandError(reply)

    # -- reading ------------------------------------------------------------------------

    def _read_line(self) -> Event | Literal[Sentinel.NEED_DATA]:
        buf = self._buf
        while True:
            pos = self._pos
            eol = buf.find(b"\n", pos)
            if self._skip_line:
                if eol < 0:
                    self._pos = len(buf)
                    return NEED_DATA
                self._pos = eol + 1
                self._skip_line = False
                continue
            if eol < 0:
                if len(buf) - pos > MAX_COMMAND_LINE and len(buf) - pos > self._line_limit(pos):
                    self._skip_line = True
                    self._pos = len(buf)
                    return self._error(LINE_TOO_LONG)
                return NEED_DATA
            if eol + 1 - pos > MAX_COMMAND_LINE and eol + 1 - pos > self._line_limit(pos):
                self._pos = eol + 1
                return self._error(LINE_TOO_LONG)
            end = eol - 1 if eol > pos and buf[eol - 1] == 13 else eol
            line = bytes(buf[pos:end])
            self._pos = eol + 1
            if self.state is State.AUTH:
                return self._sasl_response(line)
            return self._command(line)

    def _line_limit(self, pos: int) -> int:
        if self.state is State.AUTH or self._buf[pos : pos + 5].upper() == b"AUTH ":
            return MAX_AUTH_LINE
        return MAX_COMMAND_LINE

    def _command(self, line: bytes) -> Event | Literal[Sentinel.NEED_DATA]:
        sp = line.find(b" ")
        if sp < 0:
            verb, arg = line.upper(), b""
        else:
            verb, arg = line[:sp].upper(), line[sp + 1 :].strip()
        allowed = COMMANDS.get(verb)
        if allowed is None:
            if verb in _NOT_IMPLEMENTED:
                return self._error(NOT_IMPLEMENTED)
            return self._error(UNRECOGNIZED)
        if verb == b"BDAT":  # the chunk must be read even when the command is refused
            return self._bdat(arg, self.state in allowed)
        if self.state not in allowed:
            return self._error(self._sequence_error(verb))
        return self._HANDLERS[verb](self, arg)

    def _sequence_error(self, verb: bytes) -> Reply:
        state = self.state
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
        if verb == b"AUTH" and self.auth_user is not None:
            return ALREADY_AUTHED
        if verb in (b"AUTH", b"STARTTLS"):
            return line_reply(503, "5.5.1", "Error: not allowed during a mail transaction")
        return line_reply(503, "5.5.1", "Error: bad sequence of commands")

    def _read_data(self) -> Event | Literal[Sentinel.NEED_DATA]:
        buf = self._buf
        n = len(buf)
        i = self._scan
        search = _DOT_LINE.search  # a regex finds "\n." ~3x faster than bytearray.find
        while True:
            m = search(buf, i)
            if m is None:
                i = -1
                break
            i = m.start()
            j = i + 2
            if j + 1 < n:
                c = buf[j]
                if c == 13 and buf[j + 1] == 10:
                    return self._end_data(i + 1, j + 2)
                if c == 10:
                    return self._end_data(i + 1, j + 1)
            elif j < n:  # one byte after the dot so far
                c = buf[j]
                if c == 10:
                    return self._end_data(i + 1, j + 1)
                if c == 13:
                    break  # "\n.\r" + ? : wait for the next byte
            else:
                break  # "\n." at the very end: wait
            if not self._too_big:
                self._dots.append(i + 1)  # a stuffed dot (RFC 5321 4.5.2)
            i = j
        # no end yet: resume from the last "\n." seen, or the last byte
        self._scan = i if i >= 0 else max(self._scan, n - 1)
        # bytes from _scan on may still turn out to be the end-of-data line: not counted
        if self._too_big or min(n, self._scan + 1) - self._pos - len(self._dots) > self.config.max_size:
            # throw away what we have, keep only what the end-of-data search still needs
            self._too_big = True
            self._dots = []
            del buf[: self._scan]
            self._scan = self._pos = 0
        return NEED_DATA

    def _end_data(self, body_end: int, consumed: int) -> Event:
        buf = self._buf
        start = self._pos
        too_big = self._too_big
        dots = self._dots
        self._pos = consumed
        self._too_big = False
        self._dots = []
        mail_from, rcpt_to, smtputf8, body_type = (
            self.mail_from,
            tuple(self.rcpt_to),
            self.smtputf8,
            self.body,
        )
        self._reset_transaction()
        if too_big or body_end - start - len(dots) > self.config.max_size:
            return self._error(TOO_BIG)
        if dots:
            # drop each stuffed dot by joining the slices between them (RFC 5321 4.5.2);
            # the first may sit at start - 1 + 1 == start (the body's first line)
            parts = []
            prev = start
            for d in dots:
                parts.append(buf[prev:d])
                prev = d + 1
            parts.append(buf[prev:body_end])
            data = b"".join(parts)
        else:
            data = bytes(buf[start:body_end])
        # bare LFs: store CRLF (RFC 5322 2.3). Two one-byte counts are much cheaper than
        # counting CRLF pairs; equal counts mean clean CRLF unless stray CRs and bare LFs
        # happen to balance, and such a message is then stored as it was sent.
        if data.count(b"\n") != data.count(b"\r"):
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self._after = None
        return MessageReceived(OK, mail_from, rcpt_to, data, smtputf8, body_type)

    def _read_bdat(self) -> Event | Literal[Sentinel.NEED_DATA]:
        buf = self._buf
        pos = self._pos
        take = min(len(buf) - pos, self._bdat_left)
        if take:
            if self._bdat_error is None:
                self._chunks += buf[pos : pos + take]
            self._pos = pos + take
            self._bdat_left -= take
        if self._bdat_left:
            return NEED_DATA
        error = self._bdat_error
        self._bdat_error = None
        if error is not None:
            if error is TOO_BIG:
                self._reset_transaction()
            else:
                self.state = self._bdat_resume
            return self._error(error)
        if self._bdat_last:
            data = bytes(self._chunks)
            ev = MessageReceived(OK, self.mail_from, tuple(self.rcpt_to), data, self.smtputf8, self.body)
            self._reset_transaction()
            return ev
        self.state = State.CHUNKING
        size = self._bdat_size
        return ChunkReceived(line_reply(250, "2.0.0", f"{size} octets received"), size)

    # -- commands -------------------------------------------------------------------------

    def _hello(self, arg: bytes, esmtp: bool) -> Event:
        if not arg or CTL.search(arg):
            return self._error(line_reply(501, "5.5.4", f"Syntax: {'EHLO' if esmtp else 'HELO'} hostname"))
        name = arg.decode("utf-8", "replace")
        reply = self.config.ehlo_reply(self.tls) if esmtp else Reply(250, "", (self.config.hostname,))

        def after(r: Reply) -> None:
            if r.code < 400:
                self._reset_transaction()
                self.state = State.READY
                self.helo = name
                self.esmtp = esmtp

        self._after = after
        return Hello(reply, name, esmtp)

    def _ehlo(self, arg: bytes) -> Event:
        return self._hello(arg, True)

    def _helo(self, arg: bytes) -> Event:
        return self._hello(arg, False)

    def _mail(self, arg: bytes) -> Event:
        cfg = self.config
        if cfg.require_tls and not self.tls:
            return self._error(TLS_REQUIRED)
        if cfg.require_auth and self.auth_user is None:
            return self._error(AUTH_REQUIRED)
        if arg[:5].upper() != b"FROM:":
            return self._error(line_reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"))
        parsed = parse_path(arg[5:])
        if parsed is None:
            return self._error(line_reply(501, "5.1.7", "Bad sender address syntax"))
        address, params = parsed
        size: int | None = None
        body = "7BIT"
        utf8 = False
        for key, value in params:
            if key == "SIZE":
                if value is None or not value.isdigit():
                    return self._error(line_reply(501, "5.5.4", "Bad SIZE parameter"))
                size = int(value)
                if size > cfg.max_size:  # RFC 1870 6.1: refuse before the data is sent
                    return self._error(
                        line_reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
                    )
            elif key == "BODY":
                body = (value or "").upper()
                if body not in ("7BIT", "8BITMIME", "BINARYMIME"):
                    return self._error(line_reply(501, "5.5.4", "Bad BODY parameter"))
            elif key == "SMTPUTF8":
                if value is not None:
                    return self._error(line_reply(501, "5.5.4", "SMTPUTF8 takes no value"))
                utf8 = True
            elif key == "RET":
                if (value or "").upper() not in ("FULL", "HDRS"):
                    return self._error(line_reply(501, "5.5.4", "Bad RET parameter"))
            elif key in ("ENVID", "AUTH"):  # RFC 3461 4.4, RFC 4954 5: accepted, not used
                if not value:
                    return self._error(line_reply(501, "5.5.4", f"Bad {key} parameter"))
            else:
                return self._error(UNSUPPORTED_PARAM)

        def after(r: Reply) -> None:
            if r.code < 400:
                self.state = State.MAIL
                self.mail_from = address
                self.rcpt_to = []
                self.smtputf8 = utf8
                self.body = body

        self._after = after
        return MailFrom(OK_MAIL, address, size, body, utf8)

    def _rcpt(self, arg: bytes) -> Event:
        if arg[:3].upper() != b"TO:":
            return self._error(line_reply(501, "5.5.4", "Syntax: RCPT TO:<address>"))
        parsed = parse_path(arg[3:])
        if parsed is None or not parsed[0]:
            return self._error(line_reply(501, "5.1.3", "Bad recipient address syntax"))
        address, params = parsed
        for key, value in params:
            if key not in ("NOTIFY", "ORCPT"):  # RFC 3461 4.1, 4.2: accepted, not used
                return self._error(UNSUPPORTED_PARAM)
            if not value:
                return self._error(line_reply(501, "5.5.4", f"Bad {key} parameter"))
        if len(self.rcpt_to) >= self.config.max_recipients:  # RFC 5321 4.5.3.1.10
            return self._error(TOO_MANY_RECIPIENTS)

        def after(r: Reply) -> None:
            if r.code < 400:
                self.state = State.RCPT
                if r is not IGNORED_RCPT:  # a recipient a hook ignores stays out of the envelope
                    self.rcpt_to.append(address)

        self._after = after
        return RcptTo(OK_RCPT, address)

    def _data(self, arg: bytes) -> Event:
        if arg:
            return self._error(line_reply(501, "5.5.4", "Syntax: DATA"))
        if self.body == "BINARYMIME":  # RFC 3030 3: BINARYMIME needs BDAT
            return self._error(line_reply(503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT"))
        self._after = self._after_data
        return DataStart(START_DATA)

    def _after_data(self, r: Reply) -> None:
        if r.code == 354:
            self.state = State.DATA
            # keep one byte before the body: the LF that ended the DATA line, so that a
            # first line beginning with "." is found by the same "\n." search
            if self._pos:
                del self._buf[: self._pos - 1]
            else:
                self._buf[0:0] = b"\n"
            self._pos = 1
            self._scan = 0
            self._dots = []
            self._too_big = False

    def _bdat(self, arg: bytes, allowed: bool) -> Event | Literal[Sentinel.NEED_DATA]:
        parts = arg.split()
        if not parts or len(parts) > 2 or not parts[0].isdigit():
            return self._error(line_reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
        if len(parts) == 2 and parts[1].upper() != b"LAST":
            return self._error(line_reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
        size = int(parts[0])
        self._bdat_left = self._bdat_size = size
        self._bdat_last = len(parts) == 2
        self._bdat_resume = self.state
        if not allowed:
            self._bdat_error = self._sequence_error(b"BDAT")
        elif len(self._chunks) + size > self.config.max_size:
            self._bdat_error = TOO_BIG
        else:
            self._bdat_error = None
        self.state = State.BDAT
        return self._read_bdat()

    def _rset(self, arg: bytes) -> Event:
        self._after = self._after_rset
        return Command(OK, "RSET", "")

    def _after_rset(self, r: Reply) -> None:
        if r.code < 400:
            self._reset_transaction()

    def _noop(self, arg: bytes) -> Event:
        return Command(OK, "NOOP", arg.decode("utf-8", "replace"))

    def _vrfy(self, arg: bytes) -> Event:
        if not arg:
            return self._error(line_reply(501, "5.5.4", "Syntax: VRFY address"))
        return Command(VRFY_REPLY, "VRFY", arg.decode("utf-8", "replace"))

    def _help(self, arg: bytes) -> Event:
        return Command(HELP_REPLY, "HELP", arg.decode("utf-8", "replace"))

    def _quit(self, arg: bytes) -> Event:
        self._after = self._after_quit
        return Quit(BYE)

    def _after_quit(self, r: Reply) -> None:
        self._close()

    def _starttls(self, arg: bytes) -> Event:
        if arg:
            return self._error(line_reply(501, "5.5.4", "Syntax: STARTTLS"))
        if self.tls or not self.config.tls_available:
            return self._error(
                TLS_UNAVAILABLE if not self.tls else line_reply(503, "5.5.1", "Error: TLS already active")
            )
        self._after = self._after_starttls
        return StartTLS(READY_TLS)

    def _after_starttls(self, r: Reply) -> None:
        if r.code == 220:
            # RFC 3207 4.2: forget everything learnt before TLS, and drop any input that
            # arrived with the command (it was not protected: CVE-2011-0411)
            self.tls = True
            self._reset_transaction()
            self.state = State.CONNECTED
            self.helo = ""
            self.esmtp = False
            self.auth_user = None
            self._buf = bytearray()
            self._pos = 0

    # -- AUTH (RFC 4954) ------------------------------------------------------------------

    def _auth(self, arg: bytes) -> Event:
        if self.config.require_tls and not self.tls:
            return self._error(TLS_REQUIRED)
        if self.auth_user is not None:
            return self._error(ALREADY_AUTHED)
        mech_b, _, initial = arg.partition(b" ")
        mech = mech_b.upper().decode("ascii", "replace")
        initial = initial.strip()
        if mech not in AUTH_MECHANISMS:
            return self._error(AUTH_UNKNOWN_MECH)
        if mech == "CRAM-MD5":
            if initial:
                return self._error(line_reply(501, "5.5.4", "CRAM-MD5 takes no initial response"))
            self._sasl_challenge = f"<{self._nonce()}@{self.config.hostname}>"
            return self._challenge("CRAM-MD5", self._sasl_challenge)
        if mech == "PLAIN":
            if initial:
                return self._plain(initial)
            return self._challenge("PLAIN", "")
        if mech == "XOAUTH2":
            if initial:
                return self._xoauth2(initial)
            return self._challenge("XOAUTH2", "")
        if initial:  # LOGIN with the user name as initial response
            user = decode_b64(initial)
            if user is None:
                return self._error(AUTH_UNDECODABLE)
            self._sasl_user = user
            return self._challenge("LOGIN-PASS", "Password:")
        return self._challenge("LOGIN-USER", "Username:")

    def _challenge(self, step: str, text: str) -> Event:
        self._sasl = step
        encoded = base64.b64encode(text.encode()).decode() if text else ""
        self._after = self._after_challenge
        return AuthChallenge(Reply(334, "", (encoded,)))

    def _after_challenge(self, r: Reply) -> None:
        if r.code == 334:
            self.state = State.AUTH

    def _sasl_response(self, line: bytes) -> Event:
        self.state = State.READY
        step = self._sasl
        self._sasl = ""
        if line.strip() == b"*":  # RFC 4954 4: the client cancels
            return self._error(AUTH_CANCELLED)
        if step == "PLAIN":
            return self._plain(line)
        if step == "XOAUTH2":
            return self._xoauth2(line)
        text = decode_b64(line)
        if text is None:
            return self._error(AUTH_UNDECODABLE)
        if step == "LOGIN-USER":
            self._sasl_user = text
            return self._challenge("LOGIN-PASS", "Password:")
        if step == "LOGIN-PASS":
            return self._attempt(AuthAttempt(AUTH_OK, "LOGIN", self._sasl_user, password=text))
        # CRAM-MD5: "user hexdigest" (RFC 2195 2)
        user, _, digest = text.rpartition(" ")
        if not user or not re.fullmatch(r"[0-9a-fA-F]{32}", digest):
            return self._error(line_reply(501, "5.5.4", "Bad CRAM-MD5 response"))
        return self._attempt(
            AuthAttempt(AUTH_OK, "CRAM-MD5", user, challenge=self._sasl_challenge, digest=digest.lower())
        )

    def _plain(self, initial: bytes) -> Event:
        text = decode_b64(initial)
        if text is None:
            return self._error(AUTH_UNDECODABLE)
        parts = text.split("\0")
        if len(parts) != 3 or not parts[1]:  # RFC 4616 2: [authzid] NUL authcid NUL passwd
            return self._error(line_reply(501, "5.5.2", "Bad PLAIN response"))
        return self._attempt(AuthAttempt(AUTH_OK, "PLAIN", parts[1], password=parts[2]))

    def _xoauth2(self, initial: bytes) -> Event:
        # "user=" USER ^A "auth=Bearer " TOKEN ^A ^A (the XOAUTH2 client response)
        text = decode_b64(initial)
        if text is None:
            return self._error(AUTH_UNDECODABLE)
        fields = dict(f.partition("=")[::2] for f in text.split("\x01") if f)
        user = fields.get("user", "")
        kind, _, token = fields.get("auth", "").partition(" ")
        if not user or kind.lower() != "bearer" or not token:
            return self._error(line_reply(501, "5.5.2", "Bad XOAUTH2 response"))
        return self._attempt(AuthAttempt(AUTH_OK, "XOAUTH2", user, password=token))

    def _attempt(self, ev: AuthAttempt) -> Event:
        user = ev.username

        def after(r: Reply) -> None:
            if r.code < 400:
                self.auth_user = user

        self._after = after
        return ev


SMTPConnection._HANDLERS = {
    b"EHLO": SMTPConnection._ehlo,
    b"HELO": SMTPConnection._helo,
    b"MAIL": SMTPConnection._mail,
    b"RCPT": SMTPConnection._rcpt,
    b"DATA": SMTPConnection._data,
    b"RSET": SMTPConnection._rset,
    b"NOOP": SMTPConnection._noop,
    b"VRFY": SMTPConnection._vrfy,
    b"HELP": SMTPConnection._help,
    b"QUIT": SMTPConnection._quit,
    b"STARTTLS": SMTPConnection._starttls,
    b"AUTH": SMTPConnection._auth,
}
