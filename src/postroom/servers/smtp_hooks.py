"""The SMTP listener's extension point: typed stage methods, in the manner of aiosmtpd's
``handle_RCPT``/``handle_DATA``.

An :class:`SMTPHook` in ``app.smtp_hooks`` is called at each stage of a session, with what
the session knows (:class:`~postroom.servers.smtp_session.SessionInfo`). A method that returns a
reply has the client get it instead of the server's own (a rejected recipient, a refused
message, a greeting of ``421``); ``None`` goes on. Raising
:class:`~postroom.servers.smtp_session.HookDisconnect` closes the connection without a reply.

Stages (RFC 5321 section 3 for the order): ``on_connect`` (instead of the greeting),
``on_helo``, ``on_auth``, ``on_mail``, ``on_rcpt`` (``info.argument`` is the address being
added), ``on_data`` (the DATA command) and ``on_message`` (the end of the data, before the
message is stored; ``info.data`` holds it). The runtime features (chaos, handlers, in
:mod:`postroom.runtime`) subclass :class:`SMTPHook`; a listener without hooks calls none of
this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..protocols.smtp import Reply
    from .smtp_session import SessionInfo

__all__ = ["STAGES", "SMTPHook", "call_stage"]

#: The stages, in the order a session meets them.
STAGES = ("connect", "helo", "auth", "mail", "rcpt", "data", "message")


class SMTPHook:
    """Override the stages you need; the others go on (return None)."""

    async def on_connect(self, info: SessionInfo) -> Reply | None:
        return None

    async def on_helo(self, info: SessionInfo) -> Reply | None:
        return None

    async def on_auth(self, info: SessionInfo) -> Reply | None:
        return None

    async def on_mail(self, info: SessionInfo) -> Reply | None:
        return None

    async def on_rcpt(self, info: SessionInfo) -> Reply | None:
        return None

    async def on_data(self, info: SessionInfo) -> Reply | None:
        return None

    async def on_message(self, info: SessionInfo) -> Reply | None:
        return None


_CALLS: dict[str, Callable[[SMTPHook, SessionInfo], Awaitable[Reply | None]]] = {
    "connect": lambda h, i: h.on_connect(i),
    "helo": lambda h, i: h.on_helo(i),
    "auth": lambda h, i: h.on_auth(i),
    "mail": lambda h, i: h.on_mail(i),
    "rcpt": lambda h, i: h.on_rcpt(i),
    "data": lambda h, i: h.on_data(i),
    "message": lambda h, i: h.on_message(i),
}


def call_stage(hook: SMTPHook, stage: str, info: SessionInfo) -> Awaitable[Reply | None]:
    """``hook``'s method for ``stage`` (one of :data:`STAGES`), called with ``info``."""
    return _CALLS[stage](hook, info)
