"""One IMAP connection: the read loop, command dispatch, login, STARTTLS and IDLE.

Every command goes through :meth:`Session.execute`, the one place where errors become
replies: protocol errors are tagged BAD, failures tagged NO with their response code,
store errors NO, and anything unexpected is logged and answered ``NO [SERVERBUG]``; the
connection is never dropped without a reply.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
from collections import Counter
from typing import TYPE_CHECKING

from ... import __version__
from ...authlimit import FAILURES_PER_CONNECTION, client_address
from ...protocols.imap.args import Args
from ...protocols.imap.commands import UID_COMMANDS, State, capabilities, check
from ...protocols.imap.decoder import (
    MAX_COMMAND_SIZE,
    MAX_LINE,
    MAX_LITERAL,
    NEED_DATA,
    Command,
    Continue,
    Decoder,
    Rejected,
)
from ...protocols.imap.encoder import continuation, encode, tagged
from ...protocols.imap.errors import ImapError, LimitError, No, ParseError, StateError
from ...store.base import AlreadyExists, NotFound, StoreClosed, StoreError
from ..auth import Authenticator
from .account import Account
from .core import SessionBase
from .mailboxes import MailboxCommands
from .thread_cmd import ThreadCommands

if TYPE_CHECKING:
    from ...app import App

__all__ = [
    "AUTOLOGOUT",
    "IDLE_TIMEOUT",
    "PREAUTH_MAX_LINE",
    "PREAUTH_MAX_LITERAL",
    "PREAUTH_TIMEOUT",
    "Session",
]

log = logging.getLogger("postroom.imap")

# RFC 3501 section 5.4: an idle client may be logged out after at least 30 minutes;
# IDLE clients re-issue the command every 29 minutes (RFC 2177).
AUTH_KEY = "imap_authenticator"  # app.extras: the Authenticator for --auth-file
AUTOLOGOUT = 30 * 60
IDLE_TIMEOUT = 31 * 60
READ_CHUNK = 256 * 1024
# Before login a client has nothing to keep alive: RFC 3501 section 5.4's 30-minute minimum
# applies to idle *authenticated* clients, and Dovecot's imap-login drops an idle client
# after 60 s of pre-login inactivity too. A client that connects and says nothing holds a
# connection slot for this long at most.
PREAUTH_TIMEOUT = 60
# Before login the only literals a client needs are a user name and a password (LOGIN,
# RFC 3501 section 6.2.3); 4 KiB, as Dovecot's imap-login input buffer (LOGIN_MAX_INBUF_SIZE).
# Anything larger is refused before the client sends it (BAD [TOOBIG] instead of "+"),
# so an unauthenticated client can never make the server buffer a message (issue 14 item 4).
PREAUTH_MAX_LITERAL = 4 * 1024
# Longest command line before login: RFC 2971 bounds ID at 30 pairs of a 30-octet field
# and a 1024-octet value (~32 KiB with quotes and spaces), which clients may send first.
PREAUTH_MAX_LINE = 40 * 1024
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only

Reply = tuple[str, str | None]


def check_password(app: App, user: str, password: str) -> bool:
    """Check against ``--auth-file`` (the shared :class:`~postroom.servers.auth.Authenticator`)."""
    path = app.settings.auth_file
    auth = app.extras.get(AUTH_KEY)
    if not isinstance(auth, Authenticator) or auth.path != path:
        auth = Authenticator(path)
        app.extras[AUTH_KEY] = auth
    return auth.check_password(user, password)


class Session(MailboxCommands, ThreadCommands, SessionBase):
    """A client connection (see the module docstring)."""

    def __init__(
        self, app: App, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: bool
    ) -> None:
        self.init_base(app)
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.tag = "*"
        self.append_limit = min(MAX_LITERAL, max(app.settings.smtp_max_size, 1))
        self.decoder = self._preauth_decoder()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
        self.address = client_address(peer if isinstance(peer, tuple) else None)  # authlimit.py
        self.auth_failures = 0
        self.last_active = asyncio.get_running_loop().time()
        # --imap-login-timeout: an absolute deadline for logging in, from the connect; a byte
        # now and then restarts the idle clock (PREAUTH_TIMEOUT) but never moves this one
        self.login_deadline = self.last_active + app.settings.imap_login_timeout
        self.closing = False  # evicted or ending: no longer counts against the caps
        self._sock = writer.get_extra_info("socket")
        self._read_task: asyncio.Task[bytes] | None = None
        # AUTOLOGOUT of a logged-in session: one timer checks the time of the read under
        # way and moves itself on (an asyncio.timeout per read cost ~10 us a command)
        self._reading = False
        self._idle_at = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_expired = False
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _preauth_decoder() -> Decoder:
        # literals and the whole command's literal budget: PREAUTH_MAX_LITERAL each
        return Decoder(
            max_line=PREAUTH_MAX_LINE, max_command=PREAUTH_MAX_LITERAL, max_literal=PREAUTH_MAX_LITERAL
        )

    @property
    def authenticated(self) -> bool:
        return self.state in (State.AUTHENTICATED, State.SELECTED)

    def evict(self) -> None:
        """Close this (not logged-in) connection to make room for another (see the listener)."""
        self.closing = True
        if not self.writer.is_closing():
            self.writer.write(b"* BYE [UNAVAILABLE] connection limit reached; closing idle connections\r\n")
            self.writer.close()

    # -- the loop -------------------------------------------------------------------------------------
    async def run(self) -> None:
        self._task = asyncio.current_task()  # type: ignore[assignment]
        self._unsubscribe = self.app.bus.subscribe(self.on_event)
        try:
            self.write(
                tagged(
                    "*",
                    "OK",
                    f"postroom IMAP4rev1 {__version__} ready",
                    "CAPABILITY " + " ".join(self.caps()),
                )
            )
            await self.flush()
            while self.state is not State.LOGOUT:
                if not await self._read_more(self._timeout()):
                    break
                await self._process()
                if not self.authenticated and self.decoder.skipping:
                    # a non-synchronizing literal (or a line) over the pre-login limit: a
                    # stranger gets no reading of megabytes to discard
                    self.write(b"* BYE [TOOBIG] command too large before login\r\n")
                    await self.flush()
                    break
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self.closing = True
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            self._unsubscribe()
            self.decoder = self._preauth_decoder()  # drop whatever was buffered now
            if self._read_task is not None:
                self._read_task.cancel()
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (OSError, TimeoutError, asyncio.CancelledError):
                pass

    async def _read_more(self, timeout: float) -> bool:
        """Feed the decoder with the next chunk; False at EOF or timeout."""
        if not self.authenticated and asyncio.get_running_loop().time() >= self.login_deadline:
            return await self._logout_unauthenticated()
        try:
            if self._read_task is None and self.authenticated:
                # the common case: read in this task (no task or wait() per command)
                data = await self._read_watched(timeout)
            elif self._read_task is None:
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(READ_CHUNK)
            else:  # a read IDLE started and left pending
                done, _ = await asyncio.wait({self._read_task}, timeout=timeout)
                if not done:
                    raise TimeoutError
                task, self._read_task = self._read_task, None
                data = task.result()
        except TimeoutError:
            if not self.authenticated and asyncio.get_running_loop().time() >= self.login_deadline:
                return await self._logout_unauthenticated()
            self.write(b"* BYE Autologout; idle for too long\r\n")
            await self.flush()
            return False
        if not data:
            return False
        self._received(data)
        return True

    async def _read_watched(self, timeout: float) -> bytes:
        """The next chunk, or TimeoutError after ``timeout`` seconds without one: the idle
        timer (:meth:`_check_idle`) ends the read as an end of stream would."""
        loop = asyncio.get_running_loop()
        self._idle_at = loop.time() + timeout
        if self._idle_timer is None:
            self._idle_timer = loop.call_at(self._idle_at, self._check_idle)
        self._reading = True
        try:
            return await self.reader.read(READ_CHUNK)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._idle_expired or task is None or task.uncancel():
                raise  # cancelled from outside (the server stops)
            raise TimeoutError from None
        finally:
            self._reading = False

    def _check_idle(self) -> None:
        """The idle timer: end a read that has waited past its deadline, else come back at
        the deadline of the read under way (or, between reads, a whole timeout later)."""
        self._idle_timer = None
        if self.closing:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._reading and self._task is not None and now >= self._idle_at:
            self._idle_expired = True
            self._task.cancel()  # the read (the only await while _reading) raises TimeoutError
            return
        self._idle_at = max(self._idle_at, now) if self._reading else now + AUTOLOGOUT
        self._idle_timer = loop.call_at(self._idle_at, self._check_idle)

    async def _logout_unauthenticated(self) -> bool:
        """The login deadline has passed (a trickle of bytes, or commands but no login)."""
        log.info("imap %s: not logged in within --imap-login-timeout, closing", self.peer)
        self.write(b"* BYE Autologout; login time limit reached\r\n")
        await self.flush()
        return False

    def _timeout(self) -> float:
        if self.authenticated:
            return AUTOLOGOUT
        left = self.login_deadline - asyncio.get_running_loop().time()
        return max(0.0, min(PREAUTH_TIMEOUT, left))

    def _received(self, data: bytes) -> None:
        """Feed the decoder; acknowledge a partial command at once.

        A client whose command arrives in two segments (imaplib sends an APPEND literal and
        its CRLF separately) holds the second one back (Nagle, RFC 896) until the first is
        acknowledged, and the kernel delays that ACK (up to 40 ms on Linux) hoping to
        piggyback it on a reply that cannot come before the rest of the command: ~44 ms per
        such command. TCP_QUICKACK sends the ACK now (issue 19).
        """
        self.last_active = asyncio.get_running_loop().time()
        self.decoder.receive_data(data)
        if _TCP_QUICKACK is not None and self._sock is not None and not data.endswith(b"\n"):
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:
                pass  # not a TCP socket (or already closed)

    async def _process(self) -> None:
        while self.state is not State.LOGOUT:
            ev = self.decoder.next_event()
            if ev is NEED_DATA:
                break
            if isinstance(ev, Continue):
                self.write(continuation("Ready for literal data"))
                await self.flush()
            elif isinstance(ev, Rejected):
                self.write(tagged(ev.tag, "BAD", ev.text))
            elif isinstance(ev, Command):
                await self.execute(ev)
                await self.maybe_flush()
        await self.flush()

    def caps(self) -> list[str]:
        return capabilities(
            tls_available=self.app.ssl_context is not None,
            tls_active=self.tls,
            authenticated=self.state in (State.AUTHENTICATED, State.SELECTED),
            login_disabled=self._login_disabled(),
            append_limit=self.append_limit,
            thread=self.thread_available(),
        )

    def _login_disabled(self) -> bool:
        return self.app.settings.require_tls_login and not self.tls

    # -- dispatch: the one place where errors become replies ----------------------------------------
    async def execute(self, cmd: Command) -> None:
        self.tag = cmd.tag
        name = cmd.name
        args = Args(cmd.args)
        uid = False
        status, text, code = "OK", "", None
        try:
            check(name, self.state)
            if name == "UID":
                name = args.atom("UID command").upper()
                if name not in UID_COMMANDS:
                    raise ParseError(f"UID {name[:20]} is not a command")
                uid = True
            handler = getattr(self, "cmd_" + name.lower(), None)
            if handler is None:
                raise ParseError(f"{name} is not implemented")
            reply: Reply | None = await handler(args, uid)
            if reply is None:
                return  # the handler answered (LOGOUT, STARTTLS, IDLE)
            text, code = reply
            await self.sync_selected(
                allow_expunge=uid or name not in ("FETCH", "STORE", "SEARCH", "SORT", "THREAD"),
                with_uid=uid,
                check=name == "NOOP",
            )
        except (ParseError, LimitError, StateError) as e:
            status, text, code = "BAD", str(e), e.code
        except No as e:
            status, text, code = "NO", str(e), e.code
        except NotFound as e:
            status, text, code = "NO", str(e) or "no such mailbox", "NONEXISTENT"
        except AlreadyExists as e:
            status, text, code = "NO", str(e) or "mailbox exists", "ALREADYEXISTS"
        except StoreClosed:
            self.write(b"* BYE server shutting down\r\n")
            status, text, code = "NO", "server shutting down", "UNAVAILABLE"
            self.state = State.LOGOUT
        except StoreError as e:
            status, text, code = "NO", str(e) or "cannot do that", "CANNOT"
        except ImapError as e:
            status, text, code = "BAD", str(e), e.code
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("imap %s: %s failed", self.peer, name)
            status, text, code = "NO", "internal server error", "SERVERBUG"
        self.write(tagged(cmd.tag, status, text or f"{name} completed", code))

    # -- any state --------------------------------------------------------------------------------------
    async def cmd_capability(self, args: Args, uid: bool) -> Reply:
        args.end()
        self.untagged("CAPABILITY", " ".join(self.caps()))
        return "CAPABILITY completed", None

    async def cmd_noop(self, args: Args, uid: bool) -> Reply:
        args.end()
        return "NOOP completed", None

    async def cmd_logout(self, args: Args, uid: bool) -> Reply | None:
        args.end()
        self.write(b"* BYE postroom logging out\r\n")
        self.write(tagged(self.tag, "OK", "LOGOUT completed"))
        self.state = State.LOGOUT
        await self.flush()
        return None

    async def cmd_id(self, args: Args, uid: bool) -> Reply:
        args.next("ID parameters")  # a list or NIL; we do not act on the client's ID (RFC 2971)
        args.end()
        self.untagged("ID", encode([b"name", b"postroom", b"version", __version__.encode()]))
        return "ID completed", None

    # -- not authenticated ------------------------------------------------------------------------------
    async def cmd_starttls(self, args: Args, uid: bool) -> Reply | None:
        args.end()
        if self.tls:
            raise No("TLS is already active")
        context = self.app.ssl_context
        if context is None:
            raise No("TLS is not available (no certificate configured)")
        # RFC 3501 6.2.1 / RFC 2595 3.1: anything pipelined after STARTTLS is discarded
        self.decoder = self._preauth_decoder()
        self.write(tagged(self.tag, "OK", "Begin TLS negotiation now"))
        await self.flush()
        try:
            await self.writer.start_tls(context)
        except OSError as e:
            log.info("imap %s: TLS handshake failed: %s", self.peer, e)
            raise ConnectionError("TLS handshake failed") from e
        self.tls = True
        return None

    async def cmd_login(self, args: Args, uid: bool) -> Reply:
        user = args.text("user name")
        password = args.text("password")
        args.end()
        return await self._login(user, password)

    async def _login(self, user: str, password: str) -> Reply:
        if self._login_disabled():
            raise No("plaintext login needs TLS; use STARTTLS", "PRIVACYREQUIRED")
        if self.app.settings.auth_file:
            limiter = self.app.auth_limiter
            if limiter.retry_after(self.address) > 0:  # RFC 5530 UNAVAILABLE: try again later
                raise No("too many failed logins from your address, try again later", "UNAVAILABLE")
            if not await self.blocking(check_password, self.app, user, password):
                self.auth_failures += 1
                self.app.extras.setdefault("imap_counters", Counter())["login_failures"] += 1
                await limiter.failed(self.address)  # waits --auth-failure-delay
                if self.auth_failures >= FAILURES_PER_CONNECTION:
                    self.write(b"* BYE too many failed logins\r\n")
                    self.state = State.LOGOUT
                raise No("invalid user name or password", "AUTHENTICATIONFAILED")
        if not user.strip():
            raise No("empty user name", "AUTHENTICATIONFAILED")
        self.account = Account.for_login(self.store, user)
        self.state = State.AUTHENTICATED
        # the full limits from here on (the pre-login ones guard memory of strangers)
        self.decoder.max_line = MAX_LINE
        self.decoder.max_command = MAX_COMMAND_SIZE
        self.decoder.max_literal = self.append_limit
        self.app.extras.setdefault("imap_counters", Counter())["logins"] += 1
        log.info("imap %s: %s logged in", self.peer, self.account.user)
        return "Logged in", "CAPABILITY " + " ".join(self.caps())

    async def cmd_authenticate(self, args: Args, uid: bool) -> Reply:
        mech = args.atom("mechanism").upper()
        initial: bytes | None = None
        if args.more():
            initial = args.astring("initial response")
        args.end()
        if mech != "PLAIN":
            raise No(f"unsupported mechanism {mech[:20]}")
        if self._login_disabled():
            raise No("plaintext authentication needs TLS; use STARTTLS", "PRIVACYREQUIRED")
        if initial is None:
            self.write(continuation(""))
            await self.flush()
            line = await self._read_line()
            if line is None:
                raise ConnectionError("client went away during AUTHENTICATE")
            initial = line
        if initial.strip() == b"*":
            raise ParseError("AUTHENTICATE cancelled")
        try:
            decoded = base64.b64decode(initial.strip(), validate=True) if initial.strip() != b"=" else b""
        except (binascii.Error, ValueError):
            raise ParseError("invalid base64 in AUTHENTICATE") from None
        parts = decoded.split(b"\0")
        if len(parts) != 3:
            raise No("malformed PLAIN response", "AUTHENTICATIONFAILED")
        authz, authc, password = (p.decode("utf-8", "replace") for p in parts)
        if authz and authz.lower() != authc.lower():
            raise No("cannot authorize as another user", "AUTHORIZATIONFAILED")
        return await self._login(authc, password)

    async def _read_line(self) -> bytes | None:
        while True:
            line = self.decoder.next_line()
            if line is not None:
                return line
            if not await self._read_more(self._timeout()):
                return None

    # -- IDLE (RFC 2177) ------------------------------------------------------------------------------
    async def cmd_idle(self, args: Args, uid: bool) -> Reply:
        args.end()
        self.write(continuation("idling"))
        await self.sync_selected(allow_expunge=True, with_uid=False)
        await self.flush()
        while True:
            line = self.decoder.next_line()
            if line is not None:
                if line.strip().upper() != b"DONE":
                    raise ParseError("expected DONE")
                return "IDLE terminated", None
            if self._read_task is None:
                self._read_task = asyncio.ensure_future(self.reader.read(READ_CHUNK))
            waker = asyncio.ensure_future(self.wake.wait())
            try:
                done, _ = await asyncio.wait(
                    {self._read_task, waker}, timeout=IDLE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waker.cancel()
            if not done:
                raise ConnectionError("IDLE timed out")
            if self._read_task.done():
                task, self._read_task = self._read_task, None
                data = task.result()
                if not data:
                    raise ConnectionError("client went away during IDLE")
                self._received(data)
            if self.wake.is_set():
                await self.sync_selected(allow_expunge=True, with_uid=False)
                await self.flush()
