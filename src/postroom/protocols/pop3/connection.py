"""The POP3 session (see :mod:`postroom.protocols.pop3` for how to drive it): line
splitting, the commands of each state, and the replies; plus the helpers the server
shares with it (APOP digests, dot-stuffing, TOP)."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence

from .events import (
    NEED_DATA,
    PAUSED,
    Answer,
    AuthAccepted,
    Authenticate,
    Close,
    Event,
    MessageContent,
    Reject,
    Retrieve,
    StartTLS,
    TLSStarted,
    Update,
    UpdateDone,
    _Sentinel,
)
from .states import (
    COMMANDS,
    CRLF,
    MAX_AUTH_FAILURES,
    MAX_BAD_COMMANDS,
    MAX_COMMAND_LINE,
    MAX_RESPONSE_LINE,
    MAX_SASL_LINE,
    CommandError,
    Config,
    LocalProtocolError,
    MaildropItem,
    State,
)

__all__ = ["POP3Connection", "apop_digest", "apop_matches", "dot_stuff", "top_of"]

_TOO_LONG = _Sentinel("TOO_LONG")  # a line over the limit was dropped


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
