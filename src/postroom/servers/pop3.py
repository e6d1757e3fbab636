"""POP3 listener: binds the sans-IO core (:mod:`postroom.protocols.pop3`) to sockets and the store.

One :class:`_Session` per connection: an ``asyncio.Protocol`` that feeds bytes to a
:class:`~postroom.protocols.pop3.POP3Connection` and runs one task answering its events:

* ``Authenticate`` -- check the password (any, unless ``--auth-file``), take the mailbox's
  exclusive maildrop lock (RFC 1939 §8, ``[IN-USE]`` per RFC 2449 §8.1.1) and list the
  mailbox's INBOX as the maildrop (every message, no cap). A login with no mailbox yet
  gets an empty maildrop.
* ``Retrieve`` -- read the message bytes from the store.
* ``StartTLS`` -- ``loop.start_tls`` with the app's certificate (RFC 2595 §4).
* ``Update`` -- QUIT: flag the DELEted messages ``\\Deleted`` and expunge exactly those
  (RFC 1939 §6); RETRieved ones are marked ``\\Seen`` (as Dovecot does).

The unique-id of a message (UIDL) is ``<uidvalidity>.<uid>`` of its INBOX delivery, which
is unique in the maildrop and stable across sessions (RFC 1939 §7).

Store reads and writes are blocking, so they run in worker threads (``asyncio.to_thread``).

Errors: this module adds none. A store error while answering an event becomes
``-ERR [SYS/TEMP]``, any other exception a logged ``-ERR [SYS/TEMP] internal server error``
(both in :meth:`_Session._run`); the connection stays usable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from ..authlimit import client_address
from ..protocols.pop3 import (
    NEED_DATA,
    AuthAccepted,
    Authenticate,
    Config,
    MaildropItem,
    MessageContent,
    POP3Connection,
    Reject,
    Retrieve,
    StartTLS,
    TLSStarted,
    Update,
    UpdateDone,
)
from ..store.base import INBOX, Entry, NotFound, StoreError
from .admission import admit
from .auth import Authenticator

if TYPE_CHECKING:
    from ..app import App

__all__ = ["POP3Listener", "start_server"]

log = logging.getLogger("postroom.pop3")

# Pause reading from a client once this many unparsed bytes wait (a client pipelining
# faster than we answer); resume below the low mark. Our choice: far above any sane
# pipeline (RFC 2449 §6.6 lets clients send many commands at once).
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024
# RETR/TOP of a message this small reads it on the event loop (no read-your-writes wait: it
# was listed in the maildrop); a thread hop costs more than the read (imap/selected.py).
INLINE_READ_MAX = 256 * 1024

IMPLEMENTATION = "postroom"
LOCKS_KEY = "pop3_locks"  # app.extras: mailboxes whose maildrop a session holds
AUTH_KEY = "pop3_authenticator"  # app.extras: the --auth-file checker shared by POP3 and POP3S


async def start_server(app: App, host: str, port: int, *, implicit_tls: bool) -> POP3Listener:
    """Listen for POP3 (or POP3S when ``implicit_tls``) on ``host:port``.

    Raises:
        OSError: the address cannot be bound.
        ValueError: implicit TLS without a certificate.
    """
    if implicit_tls and app.ssl_context is None:
        raise ValueError("POP3S needs a certificate (--tls-cert/--tls-key or --tls-self-signed)")
    loop = asyncio.get_running_loop()
    listener = POP3Listener(app)
    server = await loop.create_server(
        lambda: _Session(app, listener, implicit_tls),
        host,
        port,
        ssl=app.ssl_context if implicit_tls else None,
    )
    listener.server = server
    return listener


class POP3Listener:
    """The listening socket plus its live sessions, so that stopping ends both."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.server: asyncio.Server | None = None
        self.sessions: set[_Session] = set()
        self.locks: set[str] = app.extras.setdefault(LOCKS_KEY, set())
        # /metrics (web/metrics.py): shared by POP3 and POP3S, counted on the loop's thread
        self.counters: Counter[str] = app.extras.setdefault("pop3_counters", Counter())
        self.max_connections = app.settings.pop3_max_connections
        self.max_per_address = app.settings.pop3_max_per_address
        self.idle_timeout = float(app.settings.pop3_timeout)
        self.login_timeout = float(app.settings.pop3_login_timeout)
        self.authenticator: Authenticator | None = None
        if app.settings.auth_file:
            if AUTH_KEY not in app.extras:
                app.extras[AUTH_KEY] = Authenticator(app.settings.auth_file)
            self.authenticator = app.extras[AUTH_KEY]
        elif app.settings.pop3_auth:  # inline "user:password ..." (Mailpit's MP_POP3_AUTH)
            self.authenticator = Authenticator.inline(app.settings.pop3_auth, "--pop3-auth")

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets) if self.server else ()

    def close(self) -> None:
        """Stop listening and end every session (without UPDATE, as after a broken link)."""
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            session.stop()

    async def wait_closed(self) -> None:
        """Wait until the socket and every session are closed."""
        if self.server is not None:
            await self.server.wait_closed()
        tasks = [s.task for s in list(self.sessions) if s.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _Session(asyncio.Protocol):
    """One client connection."""

    def __init__(self, app: App, listener: POP3Listener, implicit_tls: bool) -> None:
        self.app = app
        self.listener = listener
        self.tls = implicit_tls
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer = "?"
        self.address = ""  # the client address failed logins count against (authlimit.py)
        self.mailbox: str | None = None  # the locked maildrop's mailbox
        self._wake = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._lost = False
        self._reading_paused = False
        self.closing = False  # evicted or ending: no longer counts against the caps
        self.last_active = asyncio.get_running_loop().time()
        # when the client must have finished its next command: before login, the login
        # timeout counted from the connect (neither a trickle of bytes nor answered commands
        # move it, as Dovecot's pop3-login); after, the autologout timeout counted from our
        # last response (a trickle of bytes does not move it; issue 14 item 7)
        self._deadline = asyncio.get_running_loop().time() + listener.login_timeout
        settings = app.settings
        self.conn = POP3Connection(
            Config(
                hostname=IMPLEMENTATION,
                apop_timestamp=f"<{os.getpid()}.{secrets.token_hex(8)}@postroom>"
                if listener.authenticator is not None
                else None,
                tls_active=implicit_tls,
                stls_available=app.ssl_context is not None and not implicit_tls,
                require_tls_login=settings.require_tls_login,
                implementation=IMPLEMENTATION,
            )
        )

    # -- asyncio.Protocol callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.address = client_address(peer if isinstance(peer, tuple) else None)
        listener = self.listener
        refusal = admit(listener.sessions, self.address, listener.max_connections, listener.max_per_address)
        if refusal is not None:
            # RFC 2449 8.1.2: SYS/TEMP, a problem that should go away if tried later
            log.warning("pop3 %s: refused: %s", self.peer, refusal)
            listener.counters["refused"] += 1
            self.closing = True
            self.transport.write(b"-ERR [SYS/TEMP] " + refusal.encode() + b"\r\n")
            self.transport.close()
            return
        listener.sessions.add(self)
        listener.counters["sessions"] += 1
        listener.counters["open"] += 1
        self.task = asyncio.get_running_loop().create_task(self._run())

    @property
    def authenticated(self) -> bool:
        return self.mailbox is not None

    def evict(self) -> None:
        """Close this (not logged-in) connection to make room for another (servers/admission.py)."""
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self._write(b"-ERR [SYS/TEMP] connection limit reached; closing idle connections\r\n")
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_active = asyncio.get_running_loop().time()
        self.conn.receive_data(data)
        if self.conn.buffered > READ_HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake.set()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self._wake.set()
        # Keep a half-closed plain socket open to answer what was sent (a QUIT, say);
        # TLS transports cannot stay half-open.
        return not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._wake.set()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def stop(self) -> None:
        """End the session now (server shutdown)."""
        if self.task is not None:
            self.task.cancel()

    # -- the session task ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._flush()
            while True:
                if self.mailbox is None and asyncio.get_running_loop().time() >= self._deadline:
                    self._time_up()  # (a client pipelining commands never waits for data)
                    break
                self._wake.clear()
                event = self.conn.next_event()
                await self._flush()
                if event is NEED_DATA:
                    if self._lost:
                        break
                    if self._reading_paused and self.conn.buffered < READ_LOW_WATER and self.transport:
                        self.transport.resume_reading()
                        self._reading_paused = False
                    if not await self._wait_for_data():
                        break
                    continue
                if not isinstance(event, Authenticate | Retrieve | StartTLS | Update):
                    break  # Close (PAUSED cannot happen: every event is answered below)
                try:
                    await self._answer(event)
                except StoreError as e:
                    log.warning("pop3 %s: store error: %s", self.peer, e)
                    self.conn.abort("mail store unavailable, try again later", "SYS/TEMP")
                except ConnectionError as e:  # the TLS handshake failed: the stream is unusable
                    log.info("pop3 %s: connection failed: %s", self.peer, e)
                    break
                except Exception:
                    log.exception("pop3 %s: unexpected error", self.peer)
                    self.conn.abort("internal server error", "SYS/TEMP")
        except asyncio.CancelledError:
            pass
        finally:
            self.closing = True
            self._release()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()
            self.listener.sessions.discard(self)
            self.listener.counters["open"] -= 1

    async def _wait_for_data(self) -> bool:
        """Wait for bytes; False once the command's deadline has passed (RFC 1939 §3's
        inactivity autologout, or the login timeout before login)."""
        try:
            if asyncio.get_running_loop().time() >= self._deadline:
                raise TimeoutError  # (bytes keep coming: the timer below would never fire)
            async with asyncio.timeout_at(self._deadline):
                await self._wake.wait()
        except TimeoutError:
            self._time_up()
            return False
        return True

    def _time_up(self) -> None:
        """Say why the session ends at its deadline (the caller closes it)."""
        if self.mailbox is None:
            log.info("pop3 %s: not logged in within --pop3-login-timeout, closing", self.peer)
            self._write(b"-ERR autologout: login time limit reached\r\n")
        else:
            self._write(b"-ERR autologout: idle for too long\r\n")

    def _write(self, data: bytes) -> None:
        if data and not self._lost and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out and self.mailbox is not None:  # a response: the next command has its own time
            self._deadline = asyncio.get_running_loop().time() + self.listener.idle_timeout
        self._write(out)
        if self._can_write.is_set():
            return
        try:
            # A client that stops reading (mid-RETR, say) is as idle as one that stops
            # writing: the same RFC 1939 §3 autologout frees its maildrop lock.
            async with asyncio.timeout(self.listener.idle_timeout):
                await self._can_write.wait()
        except TimeoutError:
            log.info("pop3 %s: client stopped reading, closing", self.peer)
            self._lost = True
            if self.transport is not None:
                self.transport.abort()

    def _release(self) -> None:
        if self.mailbox is not None:
            self.listener.locks.discard(self.mailbox)
            self.mailbox = None

    # -- events ----------------------------------------------------------------------------------

    async def _answer(self, event: Authenticate | Retrieve | StartTLS | Update) -> None:
        if isinstance(event, Authenticate):
            await self._authenticate(event)
        elif isinstance(event, Retrieve):
            await self._retrieve(event)
        elif isinstance(event, StartTLS):
            await self._start_tls()
        else:
            await self._update(event)

    async def _authenticate(self, event: Authenticate) -> None:
        name = event.username.strip().lower()
        if event.authzid and event.authzid.strip().lower() != name:
            log.info("pop3 %s: %s may not act as another user", self.peer, name)
            self.conn.send(Reject("authorization identity must be empty or your own", "AUTH"))
            return
        limiter = self.app.auth_limiter
        if self.listener.authenticator is not None and limiter.retry_after(self.address) > 0:
            # RFC 2449 8.1.1: LOGIN-DELAY, "attempting to log in too frequently"
            self.conn.send(Reject("too many failed logins from your address, try again later", "LOGIN-DELAY"))
            return
        if not await self._password_ok(name, event):
            log.info("pop3 %s: login failed for %s", self.peer, name)
            self.listener.counters["login_failures"] += 1
            await limiter.failed(self.address)  # waits --auth-failure-delay
            # (the core closes the connection after its MAX_AUTH_FAILURES rejections)
            self.conn.send(Reject("invalid user name or password", "AUTH"))
            return
        locks = self.listener.locks
        if name in locks:
            self.conn.send(Reject("maildrop is locked by another POP3 session", "IN-USE"))
            return
        locks.add(name)  # taken before any await: no other session can slip in
        self.mailbox = name
        try:
            maildrop = await self._list_maildrop(name)
        except BaseException:
            self._release()
            raise
        self.listener.counters["logins"] += 1
        log.info("pop3 %s: %s logged in (%d messages)", self.peer, name, len(maildrop))
        self.conn.send(AuthAccepted(name, maildrop))

    async def _password_ok(self, name: str, event: Authenticate) -> bool:
        auth = self.listener.authenticator
        if auth is None:
            return True  # a development tool: any password (APOP is not offered then)
        if event.mechanism == "APOP":
            return await asyncio.to_thread(auth.check_apop, name, event.apop_timestamp, event.secret)
        return await asyncio.to_thread(auth.check_password, name, event.secret)

    async def _list_maildrop(self, mailbox: str) -> list[MaildropItem]:
        store = self.app.store
        entries = await asyncio.to_thread(store.folder_entries, mailbox, INBOX)
        if not entries:
            return []  # no folder_info call: it would create a mailbox for any login
        info = await asyncio.to_thread(store.folder_info, mailbox, INBOX)
        validity = info.uidvalidity if info is not None else 0
        return [MaildropItem(n, f"{validity}.{e.uid}", e.size, ref=e) for n, e in enumerate(entries, 1)]

    async def _retrieve(self, event: Retrieve) -> None:
        entry = event.item.ref
        assert isinstance(entry, Entry)
        store = self.app.store
        if entry.size <= INLINE_READ_MAX:  # one indexed read: quicker than a thread hop
            raw = store.get_raw_stored(entry.id)
        else:
            raw = await asyncio.to_thread(store.get_raw_stored, entry.id)
        if raw is None:
            self.conn.send(Reject(f"message {event.item.number} was removed by another client"))
            return
        self.conn.send(MessageContent(raw))

    async def _start_tls(self) -> None:
        context = self.app.ssl_context
        transport = self.transport
        assert context is not None and transport is not None  # the core offers STLS only then
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(transport, self, context, server_side=True)
        except OSError as e:  # ssl.SSLError, timeouts and resets are all OSErrors
            log.info("pop3 %s: TLS handshake failed: %s", self.peer, e)
            raise ConnectionError("TLS handshake failed") from e
        if new is None:
            raise ConnectionError("connection closed during the TLS handshake")
        self.transport = new
        self.tls = True
        self.conn.send(TLSStarted())

    async def _update(self, event: Update) -> None:
        mailbox = self.mailbox
        store = self.app.store
        kept = len(self.conn.maildrop) - len(event.deleted)
        if mailbox is None:
            self.conn.send(UpdateDone(kept))
            return
        try:
            seen = [m.ref.uid for m in event.retrieved if isinstance(m.ref, Entry)]
            if seen:
                await asyncio.to_thread(
                    store.update_flags, mailbox, INBOX, seen, frozenset({"\\Seen"}), "add"
                )
            gone = [m.ref.uid for m in event.deleted if isinstance(m.ref, Entry)]
            if gone:
                await asyncio.to_thread(
                    store.update_flags, mailbox, INBOX, gone, frozenset({"\\Deleted"}), "add"
                )
                await asyncio.to_thread(store.expunge, mailbox, INBOX, gone)
        except NotFound:
            pass  # the mailbox was removed meanwhile: its messages are gone either way
        except StoreError as e:
            log.warning("pop3 %s: update of %s failed: %s", self.peer, mailbox, e)
            self.conn.send(Reject("some deleted messages not removed", "SYS/TEMP"))
            return
        finally:
            self._release()
        log.info("pop3 %s: %s signed off, %d deleted", self.peer, mailbox, len(event.deleted))
        self.conn.send(UpdateDone(kept))
