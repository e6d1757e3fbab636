"""Message handlers: code that sees each message before the server acknowledges it.

A handler is a function (or coroutine function) taking a :class:`~postroom.testing.Message`
(``id`` is empty: the message is not stored yet) and deciding what the client hears::

    def handler(msg):
        if "unsubscribe" not in msg.text:
            return reject("550 5.7.1 missing unsubscribe link")
        # returning None (or True, or ACCEPT) accepts: the message is stored, 250

What a handler may return:

* ``None``, ``True`` or :data:`ACCEPT`: go on (store the message and answer 250);
* ``False``: reject with ``550 5.7.1 Rejected by handler``;
* a reply, as text (``"550 5.7.1 no"``) or a :class:`Reply`: answer that instead of
  storing (a ``250`` reply accepts without storing: a sink);
* :func:`delay` ``(seconds, then=None)``: hold the answer, then go on (or send ``then``).

Recipient-level handlers decide about one recipient at ``RCPT TO`` (RFC 5321 3.3), so a
message can be refused for some recipients and delivered to the others: a function
``(address, envelope) -> decision`` added with :meth:`Handlers.add_rcpt`, or a
:class:`SMTPHandler` subclass with typed stage methods in the manner of aiosmtpd's
``handle_RCPT``/``handle_DATA``::

    class Policy(SMTPHandler):
        def handle_RCPT(self, address: str, envelope: Envelope) -> Result:
            return reject("550 5.1.1 no such user") if address.startswith("gone@") else None

        async def handle_DATA(self, msg: Message) -> Result:
            return None

Synchronous handlers run in a worker thread, so they may block (they do not hold up
other SMTP sessions); async handlers run on the server's loop. Handlers run in the order
they were added; the first that does not accept decides. A handler that raises makes the
server answer ``451 4.3.0`` (a bug shows up as a temporary failure, not as lost mail) and
is kept in :attr:`Handlers.errors`: the pytest plugin fails the test that owns the server
with it (:meth:`Handlers.raise_errors`).

Errors::

    TypeError
     +-- HandlerError     a handler returned something that is none of the above
    AssertionError
     +-- HandlerFailed    a handler raised while the test ran (its exception is the cause)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..protocols.smtp import Reply
from ..servers.smtp_hooks import SMTPHook
from ..store.base import Envelope
from .models import Message

if TYPE_CHECKING:
    from ..servers.smtp import SessionInfo

__all__ = [
    "ACCEPT",
    "Decision",
    "Handler",
    "HandlerError",
    "HandlerFailed",
    "Handlers",
    "RcptHandler",
    "Result",
    "SMTPHandler",
    "accept",
    "delay",
    "reject",
]

log = logging.getLogger(__name__)

#: Reply when a handler raised (RFC 5321 4.2.5: a transient local error).
HANDLER_FAILED = Reply(451, "4.3.0", ("Error in a postroom handler; see the test's report",))
#: Reply for a handler that returned False.
DEFAULT_REJECT = Reply(550, "5.7.1", ("Rejected by handler",))
# Longest delay a handler may ask for (seconds): a client waits 10 minutes for the
# reply to the end of data (RFC 5321 4.5.3.2.6); more would only test its patience.
MAX_DELAY = 600.0


class HandlerError(TypeError):
    """A handler returned something that is not a decision."""


class HandlerFailed(AssertionError):
    """A handler raised while the server handled a message; ``__cause__`` is what it raised."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What a handler decided: accept (reply None), reply, or wait then decide."""

    reply: Reply | None = None
    seconds: float = 0.0


#: Go on: store the message and answer 250.
ACCEPT = Decision()

Result = Decision | Reply | str | bool | None
Handler = Callable[[Message], Result] | Callable[[Message], Awaitable[Result]]
RcptHandler = Callable[[str, Envelope], Result] | Callable[[str, Envelope], Awaitable[Result]]


class SMTPHandler:
    """Typed stage methods (as aiosmtpd's); override those you need, the others accept.

    ``handle_RCPT(address, envelope)`` runs at each ``RCPT TO`` (``envelope.rcpt_to`` holds
    the recipients accepted so far); ``handle_DATA(msg)`` at the end of the message, before
    it is stored. Either may be ``async def``. Add with ``server.handlers.add(Policy())``.
    """

    def handle_RCPT(self, address: str, envelope: Envelope) -> Result | Awaitable[Result]:
        return None

    def handle_DATA(self, msg: Message) -> Result | Awaitable[Result]:
        return None


def accept() -> Decision:
    """Store the message and answer 250 (the same as returning None)."""
    return ACCEPT


def reject(reply: str | int | Reply = DEFAULT_REJECT) -> Decision:
    """Answer ``reply`` (``"550 5.7.1 no"``, or just a code) and do not store the message.

    Raises:
        ValueError: ``reply`` is not an SMTP reply.
    """
    return Decision(_as_reply(reply))


def delay(seconds: float, then: str | int | Reply | None = None) -> Decision:
    """Hold the answer for ``seconds``, then accept (or answer ``then``).

    Raises:
        ValueError: a negative or too long delay, or a ``then`` that is not a reply.
    """
    if not 0 <= seconds <= MAX_DELAY:
        raise ValueError(f"a handler delay must be between 0 and {MAX_DELAY:g} seconds")
    return Decision(_as_reply(then) if then is not None else None, float(seconds))


def _as_reply(value: str | int | Reply) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, int):
        return Reply(value, f"{value // 100}.0.0" if value >= 400 else "2.0.0", ("Handled",))
    return Reply.parse(value)


def decide(result: object) -> Decision:
    """Turn whatever a handler returned into a :class:`Decision`.

    Raises:
        HandlerError: the value means nothing.
    """
    if result is None or result is True:
        return ACCEPT
    if result is False:
        return Decision(DEFAULT_REJECT)
    if isinstance(result, Decision):
        return result
    if isinstance(result, Reply):
        return Decision(result)
    if isinstance(result, str):
        try:
            return Decision(Reply.parse(result))
        except ValueError:
            pass
    raise HandlerError(f"a handler returned {result!r}; expected None, a bool, a reply, reject() or delay()")


class Handlers(SMTPHook):
    """The handlers of one server (``app.handlers``); thread-safe.

    Args:
        hooks: the app's ``smtp_hooks``; the handlers are in it only while there are some.
    """

    def __init__(self, hooks: list[SMTPHook] | None = None) -> None:
        self._hooks: list[SMTPHook] = hooks if hooks is not None else []
        self._lock = threading.Lock()
        self._handlers: list[Callable[[Message], Any]] = []  # end of data
        self._rcpt: list[Callable[[str, Envelope], Any]] = []  # each RCPT TO
        self._errors: list[BaseException] = []

    def add(self, handler: Handler | SMTPHandler) -> Callable[[], None]:
        """Add a message handler, or an :class:`SMTPHandler` (its stage methods); returns a
        function that removes it. Usable as a decorator."""
        if isinstance(handler, SMTPHandler):
            return self._add(handler.handle_DATA, handler.handle_RCPT)
        if not callable(handler):
            raise TypeError(f"a handler must be callable, not {handler!r}")
        return self._add(handler, None)

    def add_rcpt(self, handler: RcptHandler) -> Callable[[], None]:
        """Add a recipient handler ``(address, envelope) -> decision`` run at each
        ``RCPT TO``; returns a function that removes it."""
        if not callable(handler):
            raise TypeError(f"a handler must be callable, not {handler!r}")
        return self._add(None, handler)

    def _add(self, data: Callable[..., Any] | None, rcpt: Callable[..., Any] | None) -> Callable[[], None]:
        with self._lock:
            if data is not None:
                self._handlers.append(data)
            if rcpt is not None:
                self._rcpt.append(rcpt)
        self._sync()

        def remove() -> None:
            with self._lock:
                if data is not None and data in self._handlers:
                    self._handlers.remove(data)
                if rcpt is not None and rcpt in self._rcpt:
                    self._rcpt.remove(rcpt)
            self._sync()

        return remove

    def clear(self) -> None:
        """Remove every handler (the recorded errors stay until taken)."""
        with self._lock:
            self._handlers.clear()
            self._rcpt.clear()
        self._sync()

    def __len__(self) -> int:
        return len(self._handlers) + len(self._rcpt)

    @property
    def errors(self) -> list[BaseException]:
        """What handlers raised so far (each also made the server answer 451)."""
        with self._lock:
            return list(self._errors)

    def take_errors(self) -> list[BaseException]:
        """The recorded errors, forgetting them."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def raise_errors(self) -> None:
        """Raise :class:`HandlerFailed` for the first error a handler raised (then forget them).

        Raises:
            HandlerFailed: a handler raised; its exception is the ``__cause__``.
        """
        __tracebackhide__ = True
        errors = self.take_errors()
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            first = errors[0]
            raise HandlerFailed(
                f"a postroom handler raised {type(first).__name__}: {first}{more}; "
                "the SMTP client was answered 451 4.3.0"
            ) from first

    def _sync(self) -> None:
        present = self in self._hooks
        if (self._handlers or self._rcpt) and not present:
            self._hooks.append(self)
        elif not (self._handlers or self._rcpt) and present:
            self._hooks.remove(self)

    async def on_rcpt(self, info: SessionInfo) -> Reply | None:
        """RCPT TO: the recipient handlers decide about ``info.argument``."""
        with self._lock:
            rcpt_handlers = list(self._rcpt)
        if not rcpt_handlers:
            return None
        return await self._run(rcpt_handlers, (info.argument, _envelope(info)))

    async def on_message(self, info: SessionInfo) -> Reply | None:
        """End of data: the message handlers decide, before the message is stored."""
        with self._lock:
            handlers = list(self._handlers)
        if not handlers:
            return None
        msg = await asyncio.to_thread(Message, bytes(info.data), envelope=_envelope(info))
        return await self._run(handlers, (msg,))

    async def _run(self, handlers: list[Callable[..., Any]], args: tuple[Any, ...]) -> Reply | None:
        for handler in handlers:
            try:
                if inspect.iscoroutinefunction(handler):
                    result = await handler(*args)
                else:
                    result = await asyncio.to_thread(handler, *args)
                    if inspect.isawaitable(result):
                        result = await result
                decision = decide(result)
            except Exception as e:
                log.warning("SMTP handler %r raised %s: %s (answered 451)", handler, type(e).__name__, e)
                with self._lock:
                    self._errors.append(e)
                return HANDLER_FAILED
            if decision.seconds:
                await asyncio.sleep(decision.seconds)
            if decision.reply is not None:
                return decision.reply
        return None


def _envelope(info: SessionInfo) -> Envelope:
    return Envelope(
        mail_from=info.mail_from or "",
        rcpt_to=tuple(info.rcpt_to),
        peer=info.peer,
        helo=info.helo,
        tls=info.tls,
        auth_user=info.auth_user,
    )
