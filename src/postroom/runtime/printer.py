"""``postroom serve --print`` and ``--exit-after N``: the DebuggingServer habit, for scripts.

``--print`` writes each new message to standard output as it is stored, framed as
Python's old ``smtpd.DebuggingServer`` framed it, with the envelope as ``X-Peer``,
``X-MailFrom`` and ``X-RcptTo`` lines after the headers::

    ---------- MESSAGE FOLLOWS ----------
    Subject: hello
    ...
    X-Peer: 127.0.0.1
    X-MailFrom: app@example.com
    X-RcptTo: alice@example.com

    body
    ------------ END MESSAGE ------------

``--exit-after N`` stops the server after the N-th message has been stored (and, with
``--print``, printed), so a script can run ``postroom serve --print --exit-after 1``
around the code under test and read the message from a pipe.

Printing happens off the event loop (a write to a full pipe must not stall SMTP), one
message at a time, in the order the store committed them.

Errors: a closed standard output (``BrokenPipeError``) stops printing, not the server.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from ..events import Event, MessageStored

if TYPE_CHECKING:
    from ..app import App

__all__ = ["BEGIN", "END", "Printer", "format_message"]

log = logging.getLogger(__name__)

BEGIN = b"---------- MESSAGE FOLLOWS ----------\n"
END = b"------------ END MESSAGE ------------\n"


def format_message(raw: bytes, peer: str, mail_from: str, rcpt_to: list[str]) -> bytes:
    """The DebuggingServer framing of one message (line ends become ``\\n``)."""
    text = raw.replace(b"\r\n", b"\n")
    head, sep, body = text.partition(b"\n\n")
    ip = peer.rsplit(":", 1)[0].strip("[]") if peer else ""
    extra = f"X-Peer: {ip}\nX-MailFrom: {mail_from}\nX-RcptTo: {', '.join(rcpt_to)}\n".encode(
        "utf-8", "replace"
    )
    out = head.rstrip(b"\n") + b"\n" + extra + b"\n" + (body if sep else b"")
    if not out.endswith(b"\n"):
        out += b"\n"
    return BEGIN + out + END


class Printer:
    """Prints new messages and/or stops the app after N of them.

    Args:
        app: the running app.
        print_messages: write each message to ``out``.
        exit_after: stop after this many messages (0: never).
        out: where to write (default: standard output's byte stream).
        request_stop: called once the count is reached (the CLI puts its stop event's
            ``set`` in ``app.request_stop``; that is the default).
    """

    def __init__(
        self,
        app: App,
        *,
        print_messages: bool,
        exit_after: int = 0,
        out: BinaryIO | None = None,
        request_stop: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.print_messages = print_messages
        self.exit_after = exit_after
        self.out = out
        self.request_stop = request_stop
        self.count = 0
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._broken = False

    def start(self) -> None:
        """Subscribe to new messages (call on the app's loop)."""
        unsubscribe = self.app.bus.subscribe(self._on_event)
        self.app.spawn(self._run(unsubscribe))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageStored):
            self._queue.put_nowait(event.id)

    async def _run(self, unsubscribe: Callable[[], None]) -> None:
        try:
            while True:
                mid = await self._queue.get()
                if self.print_messages and not self._broken:
                    await asyncio.to_thread(self._print, mid)
                self.count += 1
                if self.exit_after and self.count == self.exit_after:
                    self._stop()
        finally:
            unsubscribe()

    def _print(self, mid: str) -> None:
        store = self.app.store
        raw = store.get_raw(mid)
        env = store.get_envelope(mid)
        if raw is None:
            return
        data = format_message(
            raw, env.peer if env else "", env.mail_from if env else "", list(env.rcpt_to) if env else []
        )
        out = self.out or sys.stdout.buffer
        try:
            out.write(data)
            out.flush()
        except (BrokenPipeError, ValueError):  # closed pipe or closed file
            self._broken = True

    def _stop(self) -> None:
        stop = self.request_stop or self.app.request_stop
        if stop is None:
            log.warning("--exit-after %d reached, but nothing can stop this server", self.exit_after)
            return
        log.info("stopping after %d message(s) (--exit-after)", self.count)
        stop()
