"""POP3 server protocol, sans-IO (RFC 1939, RFC 2449, RFC 2595 STLS, RFC 5034 SASL).

No sockets, no asyncio, no store: bytes go in, events and bytes come out. The caller
(``postroom.servers.pop3``) owns the socket and the mailbox and drives a
:class:`POP3Connection` like this::

    conn = POP3Connection(config)          # the greeting is queued at once
    write(conn.data_to_send())
    conn.receive_data(chunk)               # b"" means the peer closed its side
    while (event := conn.next_event()) not in (NEED_DATA, PAUSED):
        ...                                # Authenticate, Retrieve, StartTLS, Update, Close
        conn.send(answer)                  # AuthAccepted, Reject, MessageContent, ...
    write(conn.data_to_send())

Everything the core can answer alone (CAPA, STAT, LIST, UIDL, DELE, RSET, NOOP, wrong
state, bad syntax) never becomes an event: its reply is queued and the next command is
parsed. A command that needs the outside world (a credential check, message bytes, the
UPDATE state's deletions, a TLS handshake) becomes an event, and the connection is
*paused* (:data:`PAUSED`) until the caller answers it with :meth:`POP3Connection.send`;
pipelined commands (RFC 2449 §6.6) wait in the buffer and are answered in order.

States are :class:`State`; which command is valid in which state is one table,
:data:`COMMANDS`, checked in one place.

Errors::

    POP3Error                 base of this module's errors
     +-- LocalProtocolError   the caller misused the API (answered nothing, or the wrong
                              event): a bug in the server, never caused by a client
     +-- CommandError         a client command cannot be honoured; internal, turned into
                              ``-ERR [CODE] text`` in exactly one place (_guard)

A client can never make this module raise: malformed input gets ``-ERR``.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "COMMANDS",
    "IDLE_TIMEOUT",
    "LOGIN_TIMEOUT",
    "MAX_BAD_COMMANDS",
    "MAX_COMMAND_LINE",
    "MAX_SASL_LINE",
    "NEED_DATA",
    "PAUSED",
    "AuthAccepted",
    "Authenticate",
    "Close",
    "CommandError",
    "Config",
    "LocalProtocolError",
    "MaildropItem",
    "MessageContent",
    "POP3Connection",
    "POP3Error",
    "Reject",
    "Retrieve",
    "StartTLS",
    "State",
    "TLSStarted",
    "Update",
    "UpdateDone",
    "apop_digest",
    "apop_matches",
    "dot_stuff",
    "top_of",
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
_TOO_LONG = _Sentinel("TOO_LONG")  # internal: a line over the limit was dropped

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


# -- helpers --------------------------------------------------------------------------


def apop_digest(timestamp: str, secret: str) -> str:
    """The RFC 1939 §7 APOP digest: hex MD5 of the greeting timestamp + shared secret."""
    return hashlib.md5((timestamp + secret).encode("utf-8"), usedforsecurity=False).hexdigest()


def apop_matches(event: Authenticate, secret: str) -> bool:
    """Whether an APOP :class:`Authenticate` proves knowledge of ``secret`` (constant time)."""
    expected = apop_digest(event.apop_timestamp, secret)
    return hmac.compare_digest(expected.encode(), event.secret.lower().encode())


_LEADING_DOT = re.compile(rb"(^|\n)\.")


def dot_stuff(raw: bytes) -> bytes:
    """Normalise line ends to CRLF and byte-stuff lines that start with "." (RFC 1939 §3).

    The result always ends in CRLF, ready for the ``.CRLF`` terminator.
    """
    data = raw.replace(CRLF, b"\n").replace(b"\n", CRLF)
    if data and not data.endswith(CRLF):
        data += CRLF
    return _LEADING_DOT.sub(rb"\1..", data)


def top_of(raw: bytes, lines: int) -> bytes:
    """The header, the blank line and the first ``lines`` body lines (RFC 1939 §7 TOP)."""
    data = raw.replace(CRLF, b"\n")
    if data.startswith(b"\n"):
        head, body, has_body = b"", data[1:], True
    else:
        head, sep, body = data.partition(b"\n\n")
        has_body = bool(sep)
        if has_body:
            head += b"\n"
    if not has_body:
        return head  # no blank line: the whole message is header
    kept = body.split(b"\n")
    if kept and kept[-1] == b"":
        kept.pop()  # the split after the final line end is not a line
    return head + b"\n" + b"".join(line + b"\n" for line in kept[:lines])


def _status(line: str) -> bytes:
    """A status line cut to RFC 2449 §4's 512 octets (at a character boundary)."""
    data = line.encode("utf-8")
    if len(data) > MAX_RESPONSE_LINE - 2:
        data = data[: MAX_RESPONSE_LINE - 2].decode("utf-8", "ignore").encode("utf-8")
    return data + CRLF


def _ok(text: str = "") -> bytes:
    return _status("+OK " + text if text else "+OK")


def _err(text: str, code: str | None = None) -> bytes:
    return _status("-ERR " + (f"[{code}] " if code else "") + text)


def _multiline(first: bytes, lines: Sequence[str]) -> bytes:
    body = b"".join(line.encode("utf-8") + CRLF for line in lines)
    return first + body + b"." + CRLF


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- the connection -----------------------------------------------------------------------

_Handler = Callable[["POP3Connection", str], "Event | None"]


class POP3Connection:
    """One POP3 server session. See the module docstring for the calling pattern."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.state = State.AUTHORIZATION
        self.tls_active = self.config.tls_active
        self.mailbox: str | None = None
        self._buffer = bytearray()
        self._discarding = False  # dropping the rest of an overlong line
        self._eof = False
        self._out = bytearray()
        self._pending: Event | None = None
        self._close_sent = False
        self._user: str | None = None  # from USER, waiting for PASS
        self._sasl: str | None = None  # mechanism waiting for a continuation line
        self._bad_commands = 0
        self._auth_failures = 0
        self._maildrop: list[MaildropItem] = []
        self._deleted: set[int] = set()
        self._retrieved: set[int] = set()
        greeting = f"{self.config.hostname} POP3 server ready"
        if self.config.apop_timestamp:
            greeting += " " + self.config.apop_timestamp
        self._out += _ok(greeting)

    # -- byte plumbing ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means end of stream."""
        if not data:
            self._eof = True
            return
        if self.state is State.CLOSED:
            return
        self._buffer += data

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed (for the server's flow control)."""
        return len(self._buffer)

    @property
    def maildrop(self) -> tuple[MaildropItem, ...]:
        """The maildrop listed at login (empty before)."""
        return tuple(self._maildrop)

    def next_event(self) -> Event | _Sentinel:
        """Parse queued input, answer what needs no help, and return the next event.

        Returns :data:`NEED_DATA` when more bytes are needed, :data:`PAUSED` while an
        event waits for :meth:`send`, or an event. :class:`Close` is returned once.
        """
        if self._pending is not None:
            return PAUSED
        while True:
            if self.state is State.CLOSED:
                if self._close_sent:
                    return NEED_DATA
                self._close_sent = True
                return Close("session over")
            line = self._next_line()
            if line is None:
                if self._eof:
                    self.state = State.CLOSED
                    continue
                return NEED_DATA
            event = self._handle_line(line)
            if event is not None:
                if not isinstance(event, Close):
                    self._pending = event
                return event

    def send(self, answer: Answer) -> None:
        """Answer the pending event; the reply is queued for :meth:`data_to_send`.

        Raises:
            LocalProtocolError: nothing is pending, or the answer does not fit the event.
        """
        pending = self._pending
        if pending is None:
            raise LocalProtocolError("no event is waiting for an answer")
        if isinstance(pending, Authenticate) and isinstance(answer, AuthAccepted | Reject):
            self._pending = None
            self._finish_auth(answer)
        elif isinstance(pending, Retrieve) and isinstance(answer, MessageContent | Reject):
            self._pending = None
            self._finish_retrieve(pending, answer)
        elif isinstance(pending, StartTLS) and isinstance(answer, TLSStarted):
            self._pending = None
            self.tls_active = True
            self._user = None  # RFC 2595 §4: forget what was said in the clear
        elif isinstance(pending, Update) and isinstance(answer, UpdateDone | Reject):
            self._pending = None
            if isinstance(answer, UpdateDone):
                left = "maildrop empty" if answer.remaining == 0 else _plural(answer.remaining, "message")
                self._out += _ok(f"{self.config.hostname} POP3 server signing off ({left})")
            else:
                # RFC 1939 §6: "-ERR some deleted messages not removed"
                self._out += _err(answer.text, answer.code)
            self.state = State.CLOSED
        else:
            raise LocalProtocolError(f"{type(answer).__name__} does not answer {type(pending).__name__}")

    def abort(self, reason: str, code: str | None = "SYS/TEMP") -> None:
        """Refuse whatever is pending with ``-ERR`` (after an unexpected server error)."""
        pending = self._pending
        if pending is None:
            return
        if isinstance(pending, StartTLS):
            self._pending = None
            self.state = State.CLOSED  # the stream is in an unknown state: hang up
        elif isinstance(pending, Authenticate | Retrieve | Update):
            self.send(Reject(reason, code))

    # -- line splitting ----------------------------------------------------------------------

    def _next_line(self) -> bytes | _Sentinel | None:
        limit = MAX_SASL_LINE if self._sasl else MAX_COMMAND_LINE
        while True:
            nl = self._buffer.find(b"\n")
            if self._discarding:
                if nl < 0:
                    self._buffer.clear()
                    return None
                del self._buffer[: nl + 1]
                self._discarding = False
                continue
            if nl < 0:
                if len(self._buffer) >= limit:
                    self._buffer.clear()
                    self._discarding = True
                    return _TOO_LONG
                return None
            line = bytes(self._buffer[:nl])
            del self._buffer[: nl + 1]
            if len(line) + 1 > limit:  # +1 for the LF; a CR is inside ``line``
                return _TOO_LONG
            return line[:-1] if line.endswith(b"\r") else line

    # -- dispatch -----------------------------------------------------------------------------

    def _handle_line(self, raw: bytes | _Sentinel) -> Event | None:
        if self._sasl is not None:
            return self._guard(lambda: self._sasl_continue(raw))
        if not isinstance(raw, bytes):
            return self._bad(CommandError(f"line too long (max {MAX_COMMAND_LINE} octets with CRLF)"))
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._bad(CommandError("commands must be ASCII or UTF-8"))
        if any(c in line for c in "\x00\r\n"):
            return self._bad(CommandError("control characters in command"))
        verb, _, arg = line.partition(" ")
        verb = verb.upper() if verb.isascii() else ""
        states = COMMANDS.get(verb)
        if states is None:
            self._user = None
            return self._bad(CommandError("unknown command" if line.strip() else "empty command"))
        if self.state not in states:
            return self._bad(CommandError(f"{verb} is not valid in the {self.state.value} state"))
        if verb != "PASS":
            self._user = None  # RFC 1939 §7: PASS must come immediately after USER
        handler = _HANDLERS[verb]
        return self._guard(lambda: handler(self, arg))

    def _guard(self, call: Callable[[], Event | None]) -> Event | None:
        """The one place where a refused command becomes ``-ERR``."""
        try:
            return call()
        except CommandError as e:
            return self._bad(e)

    def _bad(self, error: CommandError) -> Event | None:
        self._out += _err(error.text, error.code)
        self._bad_commands += 1
        if self._bad_commands >= MAX_BAD_COMMANDS:
            self._out += _err("too many bad commands, closing")
            self.state = State.CLOSED
        return None

    # -- AUTHORIZATION ------------------------------------------------------------------------

    def _check_plaintext_allowed(self) -> None:
        if self.config.require_tls_login and not self.tls_active:
            how = "use STLS first" if self.config.stls_available else "connect to the POP3S port"
            raise CommandError(f"plaintext authentication is disabled without TLS: {how}", "AUTH")

    def _cmd_user(self, arg: str) -> Event | None:
        self._check_plaintext_allowed()
        name = arg.strip()
        if not name:
            raise CommandError("USER needs a name")
        self._user = name
        self._out += _ok(f"send PASS for {name}")
        return None

    def _cmd_pass(self, arg: str) -> Event | None:
        self._check_plaintext_allowed()
        user, self._user = self._user, None
        if user is None:
            raise CommandError("PASS must follow USER")
        # RFC 1939 §7 lets the server treat spaces as part of the password.
        return Authenticate(username=user, secret=arg, mechanism="USER")

    def _cmd_apop(self, arg: str) -> Event | None:
        ts = self.config.apop_timestamp
        if ts is None:
            raise CommandError("APOP is not available")
        self._check_plaintext_allowed()
        name, _, digest = arg.strip().rpartition(" ")
        if not name or not re.fullmatch(r"[0-9a-fA-F]{32}", digest):
            raise CommandError("usage: APOP name digest (32 hex digits)")
        return Authenticate(username=name.strip(), secret=digest.lower(), mechanism="APOP", apop_timestamp=ts)

    def _cmd_auth(self, arg: str) -> Event | None:
        parts = arg.split()
        if not parts:
            # Before RFC 5034, a bare AUTH listed the mechanisms (RFC 1734 practice).
            self._out += _multiline(_ok("SASL mechanisms follow"), self._mechanisms())
            return None
        if len(parts) > 2:
            raise CommandError("usage: AUTH mechanism [initial-response]")
        mechanism = parts[0].upper()
        if mechanism != "PLAIN":
            raise CommandError(f"unsupported SASL mechanism {parts[0][:20]}")
        self._check_plaintext_allowed()
        if len(parts) == 1:
            self._sasl = mechanism
            self._out += b"+ " + CRLF  # RFC 5034 §4: an empty challenge
            return None
        return self._sasl_plain(parts[1])

    def _sasl_continue(self, raw: bytes | _Sentinel) -> Event | None:
        self._sasl = None
        if not isinstance(raw, bytes):
            raise CommandError("authentication response too long", "AUTH")
        if raw.strip() == b"*":
            raise CommandError("authentication cancelled")  # RFC 5034 §4
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise CommandError("authentication response is not base64", "AUTH") from None
        return self._sasl_plain(text.strip())

    def _sasl_plain(self, b64: str) -> Event | None:
        try:
            decoded = b"" if b64 == "=" else binascii.a2b_base64(b64.encode("ascii"), strict_mode=True)
            authzid, authcid, password = decoded.decode("utf-8").split("\x00")
        except (binascii.Error, UnicodeError, ValueError):
            raise CommandError("malformed PLAIN response (RFC 4616)", "AUTH") from None
        if not authcid or not password:
            raise CommandError("malformed PLAIN response (RFC 4616)", "AUTH")
        return Authenticate(username=authcid, secret=password, mechanism="PLAIN", authzid=authzid)

    def _mechanisms(self) -> list[str]:
        if self.config.require_tls_login and not self.tls_active:
            return []
        return ["PLAIN"]

    def _cmd_stls(self, arg: str) -> Event | None:
        if arg.strip():
            raise CommandError("STLS takes no argument")
        if self.tls_active:
            raise CommandError("TLS is already active")
        if not self.config.stls_available:
            raise CommandError("STLS is not available (no certificate configured)")
        self._out += _ok("begin TLS negotiation")
        # Anything pipelined after STLS was sent in the clear: drop it (RFC 2595 §4,
        # CVE-2011-0411 "STARTTLS command injection").
        self._buffer.clear()
        self._discarding = False
        return StartTLS()

    def _cmd_capa(self, arg: str) -> Event | None:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            caps.append("USER")
            caps.append(" ".join(["SASL", *self._mechanisms()]))
            if self.config.stls_available and not self.tls_active:
                caps.append("STLS")
        caps.append(f"IMPLEMENTATION {self.config.implementation}")
        self._out += _multiline(_ok("capability list follows"), caps)
        return None

    def _cmd_quit(self, arg: str) -> Event | None:
        if self.state is State.AUTHORIZATION:
            self._out += _ok(f"{self.config.hostname} POP3 server signing off")
            self.state = State.CLOSED
            return None
        self.state = State.UPDATE
        deleted = tuple(m for m in self._maildrop if m.number in self._deleted)
        retrieved = tuple(
            m for m in self._maildrop if m.number in self._retrieved and m.number not in self._deleted
        )
        return Update(deleted=deleted, retrieved=retrieved)

    def _finish_auth(self, answer: AuthAccepted | Reject) -> None:
        if isinstance(answer, Reject):
            self._auth_failures += 1
            self._out += _err(answer.text, answer.code)
            if self._auth_failures >= MAX_AUTH_FAILURES:
                self._out += _err("too many failed logins, closing")
                self.state = State.CLOSED
            return
        numbers = [m.number for m in answer.maildrop]
        if numbers != list(range(1, len(numbers) + 1)):
            raise LocalProtocolError("maildrop items must be numbered 1..n in order")
        self._maildrop = list(answer.maildrop)
        self.mailbox = answer.mailbox
        self.state = State.TRANSACTION
        count, octets = self._stat()
        self._out += _ok(f"{answer.mailbox} has {_plural(count, 'message')} ({octets} octets)")

    # -- TRANSACTION --------------------------------------------------------------------------

    def _stat(self) -> tuple[int, int]:
        live = [m for m in self._maildrop if m.number not in self._deleted]
        return len(live), sum(m.size for m in live)

    def _message(self, text: str) -> MaildropItem:
        """The live message named by ``text`` (RFC 1939 §5: deleted ones don't count)."""
        if not text.isdigit() or not text.isascii() or len(text) > 10:
            raise CommandError("message number must be a positive integer")
        n = int(text)
        if n < 1 or n > len(self._maildrop):
            raise CommandError("no such message")
        if n in self._deleted:
            raise CommandError(f"message {n} already deleted")
        return self._maildrop[n - 1]

    @staticmethod
    def _args(arg: str, least: int, most: int, usage: str) -> list[str]:
        parts = arg.split()
        if not least <= len(parts) <= most:
            raise CommandError(f"usage: {usage}")
        return parts

    def _cmd_stat(self, arg: str) -> Event | None:
        self._args(arg, 0, 0, "STAT")
        count, octets = self._stat()
        self._out += _ok(f"{count} {octets}")
        return None

    def _cmd_list(self, arg: str) -> Event | None:
        parts = self._args(arg, 0, 1, "LIST [msg]")
        if parts:
            m = self._message(parts[0])
            self._out += _ok(f"{m.number} {m.size}")
            return None
        count, octets = self._stat()
        lines = [f"{m.number} {m.size}" for m in self._maildrop if m.number not in self._deleted]
        self._out += _multiline(_ok(f"{_plural(count, 'message')} ({octets} octets)"), lines)
        return None

    def _cmd_uidl(self, arg: str) -> Event | None:
        parts = self._args(arg, 0, 1, "UIDL [msg]")
        if parts:
            m = self._message(parts[0])
            self._out += _ok(f"{m.number} {m.uidl}")
            return None
        lines = [f"{m.number} {m.uidl}" for m in self._maildrop if m.number not in self._deleted]
        self._out += _multiline(_ok("unique-id listing follows"), lines)
        return None

    def _cmd_retr(self, arg: str) -> Event | None:
        (number,) = self._args(arg, 1, 1, "RETR msg")
        return Retrieve(self._message(number))

    def _cmd_top(self, arg: str) -> Event | None:
        number, count = self._args(arg, 2, 2, "TOP msg n")
        item = self._message(number)
        if not count.isdigit() or not count.isascii() or len(count) > 10:
            raise CommandError("line count must be a non-negative integer")
        return Retrieve(item, int(count))

    def _finish_retrieve(self, event: Retrieve, answer: MessageContent | Reject) -> None:
        if isinstance(answer, Reject):
            self._out += _err(answer.text, answer.code)
            return
        if event.lines is None:
            self._retrieved.add(event.item.number)
            self._out += _ok(f"{event.item.size} octets")
            self._out += dot_stuff(answer.raw)
        else:
            self._out += _ok("top of message follows")
            self._out += dot_stuff(top_of(answer.raw, event.lines))
        self._out += b"." + CRLF

    def _cmd_dele(self, arg: str) -> Event | None:
        (number,) = self._args(arg, 1, 1, "DELE msg")
        m = self._message(number)
        self._deleted.add(m.number)
        self._out += _ok(f"message {m.number} deleted")
        return None

    def _cmd_rset(self, arg: str) -> Event | None:
        self._args(arg, 0, 0, "RSET")
        self._deleted.clear()
        count, octets = self._stat()
        self._out += _ok(f"maildrop has {_plural(count, 'message')} ({octets} octets)")
        return None

    def _cmd_noop(self, arg: str) -> Event | None:
        self._args(arg, 0, 0, "NOOP")
        self._out += _ok()
        return None


_HANDLERS: dict[str, _Handler] = {
    "CAPA": POP3Connection._cmd_capa,
    "QUIT": POP3Connection._cmd_quit,
    "USER": POP3Connection._cmd_user,
    "PASS": POP3Connection._cmd_pass,
    "APOP": POP3Connection._cmd_apop,
    "AUTH": POP3Connection._cmd_auth,
    "STLS": POP3Connection._cmd_stls,
    "STAT": POP3Connection._cmd_stat,
    "LIST": POP3Connection._cmd_list,
    "UIDL": POP3Connection._cmd_uidl,
    "RETR": POP3Connection._cmd_retr,
    "TOP": POP3Connection._cmd_top,
    "DELE": POP3Connection._cmd_dele,
    "RSET": POP3Connection._cmd_rset,
    "NOOP": POP3Connection._cmd_noop,
}
assert set(_HANDLERS) == set(COMMANDS), "every command in the state table has a handler"
