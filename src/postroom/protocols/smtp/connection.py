"""The SMTP session state machine (see the package docstring for how to drive it): input
framing (command lines, DATA, BDAT), each command's handler and the state change its reply
applies. The states and the command table are :mod:`.states`; argument syntax :mod:`.syntax`."""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable
from typing import ClassVar, Literal

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
    VRFY_REPLY,
    Reply,
    line_reply,
)
from .states import (
    AUTH_MECHANISMS,
    COMMANDS,
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    MAX_ERRORS,
    NOT_IMPLEMENTED_COMMANDS,
    LocalProtocolError,
    SMTPConfig,
    State,
    sequence_error,
)
from .syntax import (
    CTL,
    bdat_arguments,
    cram_md5_response,
    decode_b64,
    mail_arguments,
    plain_response,
    rcpt_argument,
    xoauth2_response,
)

__all__ = ["SMTPConnection"]

_DOT_LINE = re.compile(rb"\n\.")

# The states as module globals: an attribute of an Enum class is looked up through its
# metaclass's __getattr__ hook (~70 ns where a global takes ~6), and a session checks its
# state ~100 times per message.
_GREETING, _CONNECTED, _READY, _MAIL, _RCPT = (
    State.GREETING,
    State.CONNECTED,
    State.READY,
    State.MAIL,
    State.RCPT,
)
_CHUNKING, _DATA, _BDAT, _AUTH, _CLOSED = State.CHUNKING, State.DATA, State.BDAT, State.AUTH, State.CLOSED
_IN_TRANSACTION = (_MAIL, _RCPT, _CHUNKING, _DATA, _BDAT)
_ENDS_WITH_RESET = (*_IN_TRANSACTION, _AUTH)  # _reset_transaction goes back to READY from these


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
        self.state = _GREETING
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
        self._bdat_resume = _READY
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
        if self.state is _CLOSED:
            return
        if self._pos and self.state is not _DATA:
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
        if state is _DATA:
            ev = self._read_data()
        elif state is _BDAT:
            ev = self._read_bdat()
        elif state is _CLOSED:
            return NEED_DATA
        elif state is _GREETING:
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
            if self.state is _GREETING:
                self.state = _CONNECTED if reply.code == 220 else _CLOSED
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
        return self.state in _IN_TRANSACTION

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
        if self.state in _ENDS_WITH_RESET:
            self.state = _READY

    def _close(self) -> None:
        self.state = _CLOSED
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
            if self.state is _AUTH:
                return self._sasl_response(line)
            return self._command(line)

    def _line_limit(self, pos: int) -> int:
        if self.state is _AUTH or self._buf[pos : pos + 5].upper() == b"AUTH ":
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
            if verb in NOT_IMPLEMENTED_COMMANDS:
                return self._error(NOT_IMPLEMENTED)
            return self._error(UNRECOGNIZED)
        if verb == b"BDAT":  # the chunk must be read even when the command is refused
            return self._bdat(arg, self.state in allowed)
        if self.state not in allowed:
            return self._error(sequence_error(self.state, verb, self.auth_user is not None))
        return self._HANDLERS[verb](self, arg)

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
        self.state = _CHUNKING
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
                self.state = _READY
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
        got = mail_arguments(arg, cfg.max_size)
        if isinstance(got, Reply):
            return self._error(got)
        address, size, body, utf8 = got.address, got.size, got.body, got.smtputf8

        def after(r: Reply) -> None:
            if r.code < 400:
                self.state = _MAIL
                self.mail_from = address
                self.rcpt_to = []
                self.smtputf8 = utf8
                self.body = body

        self._after = after
        return MailFrom(OK_MAIL, address, size, body, utf8)

    def _rcpt(self, arg: bytes) -> Event:
        address = rcpt_argument(arg)
        if isinstance(address, Reply):
            return self._error(address)
        if len(self.rcpt_to) >= self.config.max_recipients:  # RFC 5321 4.5.3.1.10
            return self._error(TOO_MANY_RECIPIENTS)

        def after(r: Reply) -> None:
            if r.code < 400:
                self.state = _RCPT
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
            self.state = _DATA
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
        got = bdat_arguments(arg)
        if isinstance(got, Reply):
            return self._error(got)
        size, last = got
        self._bdat_left = self._bdat_size = size
        self._bdat_last = last
        self._bdat_resume = self.state
        if not allowed:
            self._bdat_error = sequence_error(self.state, b"BDAT", self.auth_user is not None)
        elif len(self._chunks) + size > self.config.max_size:
            self._bdat_error = TOO_BIG
        else:
            self._bdat_error = None
        self.state = _BDAT
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
            self.state = _CONNECTED
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
            self.state = _AUTH

    def _sasl_response(self, line: bytes) -> Event:
        self.state = _READY
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
        got = cram_md5_response(text)  # "user hexdigest" (RFC 2195 2)
        if isinstance(got, Reply):
            return self._error(got)
        user, digest = got
        return self._attempt(
            AuthAttempt(AUTH_OK, "CRAM-MD5", user, challenge=self._sasl_challenge, digest=digest)
        )

    def _plain(self, initial: bytes) -> Event:
        got = plain_response(initial)
        if isinstance(got, Reply):
            return self._error(got)
        return self._attempt(AuthAttempt(AUTH_OK, "PLAIN", got[0], password=got[1]))

    def _xoauth2(self, initial: bytes) -> Event:
        got = xoauth2_response(initial)
        if isinstance(got, Reply):
            return self._error(got)
        return self._attempt(AuthAttempt(AUTH_OK, "XOAUTH2", got[0], password=got[1]))

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
