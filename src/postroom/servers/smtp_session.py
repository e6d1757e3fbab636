"""An SMTP session: one client connection, driving the sans-IO core
(:mod:`postroom.protocols.smtp`) over an asyncio transport.

One :class:`SMTPSession` (an :class:`asyncio.Protocol`, not streams: fewer objects and
no per-line awaits) per connection. The hot path per message is: feed the bytes to the
core, answer the events it returns, and write every reply of a pipelined batch with one
``transport.write``. At the end of a message the session prepends a ``Received:`` trace
header, hands the message to ``app.store.deliver`` and replies ``250`` only once the
store says the message is committed; meanwhile input keeps being buffered but no further
command of that session is answered, so replies stay in order. The listener that accepts
the connections, starts the worker processes and stops the sessions is in
:mod:`postroom.servers.smtp`.

Extension point: each :class:`~postroom.servers.smtp_hooks.SMTPHook` in ``app.smtp_hooks``
has its typed stage method (``on_rcpt(info)``, ``on_message(info)``...) called at each stage
of :data:`HOOK_STAGES` with a :class:`SessionInfo`; a hook that returns a reply has it sent
instead of the normal answer (and, at stage "message", instead of storing the message). With
no hooks this costs one truth test per event. A hook that raises :class:`HookDisconnect` has
the connection closed with no reply (fault injection, :mod:`postroom.runtime.chaos`).

Errors: nothing here raises to the event loop. A failed ``deliver`` becomes
``451 4.3.0`` (logged); an unexpected exception in a session is logged and answered with
``451 4.3.0`` as well, or closes the connection with ``421`` when no reply is possible.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import ssl
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..authlimit import FAILURES_PER_CONNECTION, client_address
from ..protocols.smtp import (
    AUTH_FAILED,
    NEED_DATA,
    TEMP_FAILURE,
    AuthAttempt,
    DataStart,
    Event,
    Hello,
    MailFrom,
    MessageReceived,
    RcptTo,
    Reply,
    SMTPConnection,
    StartTLS,
    State,
)
from ..store.base import Envelope
from .smtp_hooks import SMTPHook, call_stage
from .smtp_trace import delivery_headers, message_date

if TYPE_CHECKING:
    from .smtp import SMTPListener

__all__ = [
    "HOOK_STAGES",
    "MAX_BUFFER_WHILE_BUSY",
    "PROGRESS_BYTES",
    "Hook",
    "HookDisconnect",
    "SMTPSession",
    "SessionInfo",
]

_CLOSED = State.CLOSED  # a global: an Enum class's attributes cost a __getattr__ hook each
log = logging.getLogger("postroom.servers.smtp")  # one logger for the listener and its sessions

#: Where hooks are called: on connect (instead of the greeting), then for each command.
HOOK_STAGES = ("connect", "helo", "auth", "mail", "rcpt", "data", "message")

_STAGE_OF: dict[type[Event], str] = {
    Hello: "helo",
    AuthAttempt: "auth",
    MailFrom: "mail",
    RcptTo: "rcpt",
    DataStart: "data",
    MessageReceived: "message",
}

#: Input kept while a session waits for the store or a hook; past it, reading pauses
#: (pipelining, RFC 2920, lets a client send ahead, but not without bound).
MAX_BUFFER_WHILE_BUSY = 1 << 20
TOO_MANY_CONNECTIONS = Reply(421, "4.3.2", ("Error: too many connections, try again later",))
# Bytes a client must send to count as progress within one command or message (issue 14
# item 7). The command timeout (--smtp-timeout, RFC 5321 4.5.3.2.7) runs from the last reply:
# a byte now and then does not restart it, as it did, so a client trickling one byte every
# few seconds is cut off once the timeout passes. A message being sent restarts it every
# PROGRESS_BYTES, so a large message on a slow link is not (at the default 300 s that is
# ~220 bytes/s; RFC 5321 4.5.3.2.6 gives a data block 3 minutes).
PROGRESS_BYTES = 64 * 1024


# RFC 4954 section 6: 454 4.7.0 is a temporary authentication failure.
AUTH_LOCKED_OUT = Reply(
    454, "4.7.0", ("Error: too many failed authentications from your address, try later",)
)
AUTH_TOO_MANY = Reply(421, "4.7.0", ("Error: too many failed authentications, closing connection",))


class HookDisconnect(Exception):
    """Raised by a hook: close the connection now, without a reply."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What a hook sees of a session."""

    peer: str  # "ip:port"
    helo: str
    tls: bool
    auth_user: str | None
    mail_from: str | None  # None outside a transaction
    rcpt_to: tuple[str, ...]  # accepted so far
    argument: str = ""  # the HELO name, auth user, MAIL or RCPT address of this stage
    size: int = 0  # message size at stage "message"
    data: bytes = field(default=b"", repr=False)  # the message at stage "message"


Hook = SMTPHook  # what app.smtp_hooks holds (servers/smtp_hooks.py)


_ids = itertools.count(1)
NOTHING_TO_STORE = Reply(250, "2.0.0", ("Ok: no recipient to store it for, ignored",))
_ID_PREFIX = os.urandom(3).hex().upper()
_date_cache: list[Any] = [0, ""]
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc5322_date(now: float) -> str:
    """RFC 5322 3.3 date in UTC, cached per second (locale-independent)."""
    sec = int(now)
    if _date_cache[0] != sec:
        t = time.gmtime(sec)
        _date_cache[0] = sec
        _date_cache[1] = (
            f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
        )
    return str(_date_cache[1])


class SMTPSession(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "auth_failures",
        "busy",
        "conn",
        "held",
        "hooks",
        "ip",
        "last",
        "listener",
        "loop",
        "output_full",
        "peer",
        "progress",
        "started",
        "task",
        "tls_pending",
        "transport",
    )

    def __init__(self, listener: SMTPListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.conn: SMTPConnection | None = None
        self.busy = False  # an async step (deliver, hook, TLS) is pending
        self.hooks: list[Hook] | None = None
        self.started = self.last = time.monotonic()  # last: the last reply, or progress (PROGRESS_BYTES)
        self.progress = 0  # bytes received since ``last``
        self.peer = ""
        self.ip = ""
        self.auth_failures = 0
        self.task: asyncio.Task[None] | None = None
        self.tls_pending = False  # STARTTLS accepted, handshake not done
        self.held = False  # reading paused: too much input buffered while busy
        self.output_full = False  # reading paused: the client does not read our replies
        self.loop = listener.loop

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # uvloop's transport is not a subclass of asyncio.Transport (typing.cast is a call)
        transport: asyncio.Transport = base  # type: ignore[assignment]
        self.transport = transport
        listener = self.listener
        if not listener.gate.admit():
            listener.counters["refused"] += 1
            transport.write(TOO_MANY_CONNECTIONS.data)
            transport.close()
            log.info("SMTP connection refused: %d connections open", listener.gate.count)
            return
        listener.sessions.add(self)
        listener.counters["sessions"] += 1
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.ip = str(peer[0])
            self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in self.ip else f"{peer[0]}:{peer[1]}"
        self.conn = conn = SMTPConnection(listener.config, tls=listener.implicit_tls)
        self.hooks = listener.app.smtp_hooks or None
        if self.hooks:
            self._run(self._greet_with_hooks())
        else:
            transport.write(conn.send(conn.greeting()))

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        self.progress += len(data)
        if self.progress >= PROGRESS_BYTES:  # a message on its way: not idle
            self.progress = 0
            self.last = time.monotonic()
        # During a STARTTLS handshake, data can only come from the TLS side: reading in
        # clear stopped with the 220, and the core dropped what came with the command.
        # It may arrive before start_tls() returns, so it is buffered like any input
        # while busy, and answered once self.transport is the TLS transport.
        conn.receive_data(data)
        if not self.busy:
            self._process()
        elif (
            not self.held
            and not self.tls_pending
            and conn.buffered > MAX_BUFFER_WHILE_BUSY
            and self.transport is not None
        ):
            self.held = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        # the client sends commands but does not read the replies: stop reading them
        self.output_full = True
        if not self.held and not self.tls_pending and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.output_full = False
        if not self.held and not self.tls_pending and self.transport is not None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.listener.sessions:
            self.listener.sessions.discard(self)
            self.listener.gate.release()
        self.transport = None

    # -- the loop -------------------------------------------------------------------------

    def _process(self) -> None:
        """Answer every complete command in the buffer; stop at the first async step."""
        conn = self.conn
        transport = self.transport
        if conn is None or transport is None:
            return
        out: list[bytes] = []
        hooks = self.hooks
        try:
            while True:
                ev = conn.next_event()
                if ev is NEED_DATA:
                    break
                cls = ev.__class__
                if cls is MessageReceived and not hooks and self.listener.deliver_now is not None:
                    assert isinstance(ev, MessageReceived)
                    reply = self._deliver_now(ev)
                    if reply.code >= 400:
                        self.listener.counters["rejected"] += 1
                    out.append(conn.send(reply))
                    continue
                if cls is MessageReceived or (hooks and cls in _STAGE_OF):
                    self._run(self._answer_async(ev))
                    break
                if cls is AuthAttempt and self.listener.authenticator is not None:
                    self._run(self._answer_async(ev))  # a failure waits (authlimit.py)
                    break
                out.append(conn.send(ev.reply))
                if cls is StartTLS and ev.reply.code == 220:
                    transport.write(b"".join(out))
                    out = []
                    # nothing the client sends in clear after STARTTLS may be read
                    self.tls_pending = True
                    transport.pause_reading()
                    self._run(self._start_tls())
                    break
                if conn.state is _CLOSED:
                    transport.write(b"".join(out))
                    out = []
                    transport.close()
                    break
        except Exception:
            log.exception("SMTP session %s failed", self.peer)
            out.append(conn.send(Reply(421, "4.3.0", ("Error: internal server error",))))
            transport.write(b"".join(out))
            transport.close()
            return
        if out:
            transport.write(b"".join(out) if len(out) > 1 else out[0])
            self.progress = 0
            self.last = time.monotonic()  # a command answered: the next one has its own timeout

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        self.busy = True
        self.task = task = self.loop.create_task(coro)
        # the listener awaits (or cancels) what is left when it stops, also for a session
        # whose connection is already gone (SMTPListener.wait_closed)
        tasks = self.listener.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _resume(self, data: bytes) -> None:
        """Write the reply of an async step and carry on with buffered input."""
        self.busy = False
        self.task = None
        transport = self.transport
        conn = self.conn
        if transport is None or conn is None or transport.is_closing():
            return
        transport.write(data)
        if conn.state is _CLOSED:
            transport.close()
            return
        if self.held:
            self.held = False
            if not self.output_full:
                transport.resume_reading()
        self.last = time.monotonic()
        self._process()

    async def _answer_async(self, ev: Event) -> None:
        conn = self.conn
        assert conn is not None
        try:
            reply = await self._hook(ev) if self.hooks else None
            if reply is None:
                if ev.__class__ is MessageReceived:
                    assert isinstance(ev, MessageReceived)
                    # every recipient ignored by a hook (IGNORED_RCPT): accepted, not stored
                    reply = await self._deliver(ev) if ev.rcpt_to else NOTHING_TO_STORE
                elif ev.__class__ is AuthAttempt and self.listener.authenticator is not None:
                    assert isinstance(ev, AuthAttempt)
                    reply = await self._limited_auth(ev)
                else:
                    reply = ev.reply
        except HookDisconnect:
            self._drop()
            return
        except Exception:
            log.exception("SMTP session %s: error while answering %s", self.peer, type(ev).__name__)
            reply = TEMP_FAILURE
        if reply.code >= 400 and ev.__class__ is MessageReceived:
            self.listener.counters["rejected"] += 1
        self._resume(conn.send(reply))

    # -- message --------------------------------------------------------------------------

    def _envelope(self, ev: MessageReceived) -> tuple[Envelope, bytes, str]:
        """The envelope, the message with its trace header, and the trace id."""
        conn = self.conn
        assert conn is not None
        now = time.time()
        trace_id = f"{_ID_PREFIX}{next(_ids):08X}"
        envelope = Envelope(
            mail_from=ev.mail_from,
            rcpt_to=ev.rcpt_to,
            peer=self.peer,
            helo=conn.helo,
            tls=conn.tls,
            auth_user=conn.auth_user,
            smtputf8=ev.smtputf8,
            # Mailpit's --use-message-dates: the listing's Created is the Date header's time
            received_at=(self.listener.use_message_dates and message_date(ev.data)) or now,
        )
        return envelope, self._trace(ev, conn, trace_id, now) + ev.data, trace_id

    def _trace(self, ev: MessageReceived, conn: SMTPConnection, trace_id: str, now: float) -> bytes:
        """The header lines this server adds above the message (:mod:`.smtp_trace`)."""
        message_id = f"{trace_id}.{int(now)}@{self.listener.config.hostname}"
        return delivery_headers(
            ev.data, ev.mail_from, ev.rcpt_to, self._received(ev, conn, trace_id, now), message_id
        )

    async def _deliver(self, ev: MessageReceived) -> Reply:
        envelope, data, trace_id = self._envelope(ev)
        try:
            msg_id = await self.listener.ingest.deliver(envelope, data)
        except Exception:
            log.exception("SMTP: could not store a message from %s (trace id %s)", self.peer, trace_id)
            return TEMP_FAILURE
        return self._stored(msg_id, ev)

    def _deliver_now(self, ev: MessageReceived) -> Reply:
        """The same with a store that commits without waiting (its ingest journal): no task."""
        deliver_now = self.listener.deliver_now
        assert deliver_now is not None
        envelope, data, trace_id = self._envelope(ev)
        try:
            msg_id = deliver_now(envelope, data)
        except Exception:
            log.exception("SMTP: could not store a message from %s (trace id %s)", self.peer, trace_id)
            return TEMP_FAILURE
        return self._stored(msg_id, ev)

    def _stored(self, msg_id: str, ev: MessageReceived) -> Reply:
        log.debug("SMTP: stored %s from %s for %d recipient(s)", msg_id, self.peer, len(ev.rcpt_to))
        return Reply(250, "2.0.0", (f"Ok: queued as {msg_id}",))

    def _received(self, ev: MessageReceived, conn: SMTPConnection, trace_id: str, now: float) -> bytes:
        """The trace header of RFC 5321 4.4 (protocol names from RFC 3848 and RFC 6531)."""
        if ev.smtputf8:
            proto = "UTF8SMTP"
        elif conn.esmtp:
            proto = "ESMTP"
        else:
            proto = "SMTP"
        if proto != "SMTP":
            proto += ("S" if conn.tls else "") + ("A" if conn.auth_user is not None else "")
        ip = self.ip
        literal = f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"
        host = self.listener.config.hostname
        rcpt = f"\r\n\tfor <{ev.rcpt_to[0]}>" if len(ev.rcpt_to) == 1 else ""
        text = (
            f"Received: from {conn.helo or 'unknown'} ({literal})\r\n"
            f"\tby {host} (postroom) with {proto} id {trace_id}{rcpt};\r\n"
            f"\t{_rfc5322_date(now)}\r\n"
        )
        return text.encode("utf-8", "replace")

    # -- auth, hooks, TLS ---------------------------------------------------------------

    async def _limited_auth(self, ev: AuthAttempt) -> Reply:
        """Check credentials under the failed-login limits (authlimit.py, RFC 4954 section 4)."""
        limiter = self.listener.limiter
        address = client_address(self.ip)
        if limiter.retry_after(address) > 0:
            log.info("SMTP AUTH refused for %s: too many failed logins from it", self.peer)
            return AUTH_LOCKED_OUT
        reply = self._check_auth(ev)
        if reply.code != AUTH_FAILED.code:
            return reply
        self.auth_failures += 1
        await limiter.failed(address)
        if self.auth_failures >= FAILURES_PER_CONNECTION:
            return AUTH_TOO_MANY  # a 421 closes the connection
        return reply

    def _check_auth(self, ev: AuthAttempt) -> Reply:
        auth = self.listener.authenticator
        if auth is None:
            return ev.reply
        if ev.mechanism == "CRAM-MD5":
            ok = auth.check_cram_md5(ev.username, ev.challenge or "", ev.digest or "")
        else:
            ok = auth.check_password(ev.username, ev.password or "")
        if ok:
            log.debug("SMTP AUTH %s as %r from %s", ev.mechanism, ev.username, self.peer)
            return ev.reply
        log.info("SMTP AUTH %s failed for %r from %s", ev.mechanism, ev.username, self.peer)
        return AUTH_FAILED

    def _info(self, argument: str = "", size: int = 0) -> SessionInfo:
        conn = self.conn
        assert conn is not None
        return SessionInfo(
            peer=self.peer,
            helo=conn.helo,
            tls=conn.tls,
            auth_user=conn.auth_user,
            mail_from=conn.mail_from if conn.in_transaction else None,
            rcpt_to=tuple(conn.rcpt_to),
            argument=argument,
            size=size,
        )

    async def _hook(self, ev: Event) -> Reply | None:
        stage = _STAGE_OF.get(ev.__class__)
        if stage is None:
            return None
        if isinstance(ev, Hello):
            info = self._info(ev.hostname)
        elif isinstance(ev, AuthAttempt):
            info = self._info(ev.username)
        elif isinstance(ev, MailFrom | RcptTo):
            info = self._info(ev.address)
        elif isinstance(ev, MessageReceived):
            info = self._info(size=len(ev.data))
            info = SessionInfo(
                info.peer,
                info.helo,
                info.tls,
                info.auth_user,
                ev.mail_from,
                ev.rcpt_to,
                "",
                info.size,
                ev.data,
            )
        else:
            info = self._info()
        return await self._call_hooks(stage, info)

    async def _call_hooks(self, stage: str, info: SessionInfo) -> Reply | None:
        for hook in list(self.hooks or ()):
            answer = await call_stage(hook, stage, info)
            if answer is not None:
                return answer
        return None

    async def _greet_with_hooks(self) -> None:
        conn = self.conn
        assert conn is not None
        try:
            reply = await self._call_hooks("connect", self._info()) or conn.greeting()
        except HookDisconnect:
            self._drop()
            return
        except Exception:
            log.exception("SMTP connect hook failed")
            reply = conn.greeting()
        self._resume(conn.send(reply))

    def _drop(self) -> None:
        """Close without a reply (a hook asked for it)."""
        self.busy = False
        self.task = None
        if self.transport is not None:
            self.transport.abort()

    async def _start_tls(self) -> None:
        transport = self.transport
        ctx = self.listener.ssl_context
        if transport is None or ctx is None:
            return
        try:
            new = await self.loop.start_tls(transport, self, ctx, server_side=True)
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as e:
            log.debug("SMTP STARTTLS handshake with %s failed: %s", self.peer, e)
            transport.close()
            return
        if new is None:
            transport.close()
            return
        self.transport = new
        self.tls_pending = False
        self.busy = False
        self.task = None
        self.last = time.monotonic()
        self._process()

    # -- timeouts and shutdown ----------------------------------------------------------

    def expired(self) -> None:
        """The session has lasted longer than --smtp-session-limit: 421 and close (a client
        in the middle of a message has not had it acknowledged, and sends it again)."""
        conn, transport = self.conn, self.transport
        if conn is None or transport is None or transport.is_closing():
            return
        host = self.listener.config.hostname
        transport.write(conn.send(Reply(421, "4.4.2", (f"{host} Error: session time limit exceeded",))))
        transport.close()

    def timed_out(self) -> None:
        """The client did not finish a command within the timeout (RFC 5321 4.5.3.2.7): 421
        and close."""
        conn, transport = self.conn, self.transport
        if conn is None or transport is None or transport.is_closing():
            return
        transport.write(conn.send(conn.timeout_reply()))
        transport.close()

    def shutdown(self) -> None:
        """The server is stopping: 421 to an idle session, then close."""
        conn, transport = self.conn, self.transport
        if conn is None or transport is None or transport.is_closing():
            return
        if not self.busy:
            host = self.listener.config.hostname
            transport.write(conn.send(Reply(421, "4.3.2", (f"{host} Service shutting down",))))
        transport.close()
