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

Synchronous handlers run in a worker thread, so they may block (they do not hold up
other SMTP sessions); async handlers run on the server's loop. Handlers run in the order
they were added; the first that does not accept decides. A handler that raises makes the
server answer ``451 4.3.0`` (the exception is logged), so a bug shows up as a temporary
failure, not as lost mail.

Errors: :class:`HandlerError` (a ``TypeError``) when a handler returns something that is
none of the above.
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
from ..store.base import Envelope
from .models import Message

if TYPE_CHECKING:
    from ..servers.smtp import SessionInfo

__all__ = ["ACCEPT", "Decision", "Handler", "HandlerError", "Handlers", "accept", "delay", "reject"]

log = logging.getLogger(__name__)

#: Reply for a handler that returned False.
DEFAULT_REJECT = Reply(550, "5.7.1", ("Rejected by handler",))
# Longest delay a handler may ask for (seconds): a client waits 10 minutes for the
# reply to the end of data (RFC 5321 4.5.3.2.6); more would only test its patience.
MAX_DELAY = 600.0


class HandlerError(TypeError):
    """A handler returned something that is not a decision."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What a handler decided: accept (reply None), reply, or wait then decide."""

    reply: Reply | None = None
    seconds: float = 0.0


#: Go on: store the message and answer 250.
ACCEPT = Decision()

Result = Decision | Reply | str | bool | None
Handler = Callable[[Message], Result] | Callable[[Message], Awaitable[Result]]


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


class Handlers:
    """The handlers of one server (``app.extras["handlers"]``); thread-safe.

    Args:
        extras: the app's ``extras``; the handler hook is in its ``"smtp_hooks"`` list
            only while there are handlers.
    """

    def __init__(self, extras: dict[str, Any] | None = None) -> None:
        self._extras: dict[str, Any] = extras if extras is not None else {}
        self._lock = threading.Lock()
        self._handlers: list[Handler] = []

    @property
    def _hooks(self) -> list[Any]:
        # looked up each time: whoever replaces the list (a test) must not strand us
        hooks: list[Any] = self._extras.setdefault("smtp_hooks", [])
        return hooks

    def add(self, handler: Handler) -> Callable[[], None]:
        """Add ``handler``; returns a function that removes it. Usable as a decorator."""
        if not callable(handler):
            raise TypeError(f"a handler must be callable, not {handler!r}")
        with self._lock:
            self._handlers.append(handler)
        self._sync()

        def remove() -> None:
            with self._lock:
                if handler in self._handlers:
                    self._handlers.remove(handler)
            self._sync()

        return remove

    def clear(self) -> None:
        """Remove every handler."""
        with self._lock:
            self._handlers.clear()
        self._sync()

    def __len__(self) -> int:
        return len(self._handlers)

    def _sync(self) -> None:
        present = self.hook in self._hooks
        if self._handlers and not present:
            self._hooks.append(self.hook)
        elif not self._handlers and present:
            self._hooks.remove(self.hook)

    async def hook(self, stage: str, info: SessionInfo) -> Reply | None:
        """The SMTP hook: at stage "message", run the handlers on the message."""
        if stage != "message":
            return None
        with self._lock:
            handlers = list(self._handlers)
        if not handlers:
            return None
        envelope = Envelope(
            mail_from=info.mail_from or "",
            rcpt_to=tuple(info.rcpt_to),
            peer=info.peer,
            helo=info.helo,
            tls=info.tls,
            auth_user=info.auth_user,
        )
        msg = await asyncio.to_thread(Message, bytes(info.data), envelope=envelope)
        for handler in handlers:
            if inspect.iscoroutinefunction(handler):
                result = await handler(msg)
            else:
                result = await asyncio.to_thread(handler, msg)
                if inspect.isawaitable(result):
                    result = await result
            decision = decide(result)
            if decision.seconds:
                await asyncio.sleep(decision.seconds)
            if decision.reply is not None:
                return decision.reply
        return None
