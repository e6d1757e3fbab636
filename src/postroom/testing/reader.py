"""The read API shared by :class:`~postroom.Server`, its isolated views and :class:`~postroom.Client`.

A reader lists messages (oldest first), waits for messages to arrive, clears, and checks
expectations. Backends provide three things: fetching the messages in scope, a way to be
woken when something changes (the server's event bus; a long-poll over HTTP for the
client), and deleting. Waiting never sleeps in a loop where a wake-up exists.

Criteria are combined with AND: a search query in postroom's language (passed to the
store, see :mod:`postroom.search`) or a predicate on :class:`Message`, plus keyword
filters ``mailbox``, ``to``, ``from_``, ``subject`` and ``text``.

Errors::

    AssertionError
     +-- NoMatchingMail   a wait timed out, or an assertion about received mail failed;
                          the message lists what was received
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

from .models import Message, describe

__all__ = ["DEFAULT_TIMEOUT", "Criteria", "MailReader", "NoMatchingMail", "Predicate", "listing"]

#: How long wait_for waits by default (seconds): long enough for a slow CI machine.
DEFAULT_TIMEOUT = 10.0
# Messages named in a failure listing before "... and N more".
_LISTED = 25

Predicate = Callable[[Message], bool]
Text = str | re.Pattern[str]


class NoMatchingMail(AssertionError):
    """Expected mail did not arrive (or unexpected mail did); lists what was received."""


def _text_matches(wanted: Text, value: str) -> bool:
    if isinstance(wanted, re.Pattern):
        return wanted.search(value) is not None
    return wanted.lower() in value.lower()


def _address_matches(wanted: str, addresses: list[str]) -> bool:
    w = wanted.strip().lower()
    local, _, domain = w.partition("@")
    if local and domain:  # a whole address: exact
        return w in addresses
    return any(a.endswith(w) if w.startswith("@") else w in a for a in addresses)


@dataclass(frozen=True, slots=True)
class Criteria:
    """What a test looks for. Every given criterion must hold."""

    query: str | None = None
    predicate: Predicate | None = None
    mailbox: str | None = None
    to: str | None = None
    from_: str | None = None
    subject: Text | None = None
    text: Text | None = None

    @classmethod
    def build(
        cls,
        query_or_predicate: str | Predicate | None,
        mailbox: str | None,
        to: str | None,
        from_: str | None,
        subject: Text | None,
        text: Text | None,
    ) -> Criteria:
        query = query_or_predicate if isinstance(query_or_predicate, str) else None
        predicate = None if isinstance(query_or_predicate, str) else query_or_predicate
        if predicate is not None and not callable(predicate):
            raise TypeError(f"expected a query string or a predicate, got {query_or_predicate!r}")
        box = mailbox.strip().lower() if mailbox else None
        return cls(query or None, predicate, box, to, from_, subject, text)

    def matches(self, msg: Message) -> bool:
        """Whether ``msg`` meets the criteria that are checked locally (not the query)."""
        if self.to is not None:
            rcpts = {*msg.recipients, *(a.address.lower() for a in (*msg.to, *msg.cc, *msg.bcc))}
            if not _address_matches(self.to, sorted(rcpts)):
                return False
        if self.from_ is not None:
            senders = [msg.sender.lower()] + ([msg.from_.address.lower()] if msg.from_ else [])
            if not _address_matches(self.from_, senders):
                return False
        if self.subject is not None and not _text_matches(self.subject, msg.subject):
            return False
        if self.text is not None and not (
            _text_matches(self.text, msg.text) or _text_matches(self.text, msg.html)
        ):
            return False
        return self.predicate is None or bool(self.predicate(msg))

    def __str__(self) -> str:
        parts = []
        if self.query:
            parts.append(f"query {self.query!r}")
        if self.mailbox:
            parts.append(f"mailbox {self.mailbox!r}")
        for name in ("to", "from_", "subject", "text"):
            value = getattr(self, name)
            if value is not None:
                shown = f"/{value.pattern}/" if isinstance(value, re.Pattern) else repr(value)
                parts.append(f"{name.rstrip('_')}={shown}")
        if self.predicate is not None:
            parts.append(f"predicate {getattr(self.predicate, '__name__', 'function')}")
        return ", ".join(parts) or "any message"


def listing(messages: list[Message]) -> str:
    """Numbered lines naming each message (what failure messages show)."""
    if not messages:
        return "  (no messages at all)"
    lines = [f"  {i}. {describe(m)}" for i, m in enumerate(messages[:_LISTED], 1)]
    if len(messages) > _LISTED:
        lines.append(f"  ... and {len(messages) - _LISTED} more")
    return "\n".join(lines)


class MailReader(ABC):
    """Read, wait for and check caught mail. Subclasses bind it to a server or a URL."""

    # -- what a backend provides ----------------------------------------------------------

    @abstractmethod
    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        """Messages in scope matching mailbox/query, oldest first (may block)."""

    @abstractmethod
    def _delete(self, ids: list[str] | None) -> None:
        """Delete ``ids``, or everything in scope when None (may block)."""

    def _subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake`` (from any thread) when mail may have changed; None: cannot."""
        return None

    def _idle(self, remaining: float, criteria: Criteria) -> None:
        """Block until something may have changed (used only without a subscription)."""
        time.sleep(min(remaining, 0.1))

    def _check_blocking_allowed(self) -> None:  # noqa: B027 - optional for backends
        """Raise when a blocking wait would deadlock (the server's own loop thread)."""

    # -- reading ----------------------------------------------------------------------------

    def messages(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]:
        """Messages received so far that match, oldest first.

        Args:
            query_or_predicate: a search query (``"subject:reset to:alice"``) or a
                function ``Message -> bool``.
            mailbox: only this mailbox (a recipient address, by default).
            to, from_: an address (exact, case-insensitive), ``@domain``, or a fragment.
            subject, text: a substring (case-insensitive) or a compiled regex.
        """
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        return self._select(crit)

    def _select(self, crit: Criteria) -> list[Message]:
        return [m for m in self._fetch(crit.mailbox, crit.query) if crit.matches(m)]

    @property
    def last(self) -> Message:
        """The newest message (NoMatchingMail when there is none)."""
        found = self._fetch(None, None)
        if not found:
            raise NoMatchingMail("expected a message, but none was received")
        return found[-1]

    def __len__(self) -> int:
        return len(self._fetch(None, None))

    def clear(self) -> None:
        """Delete every message in scope."""
        self._delete(None)

    # -- waiting ----------------------------------------------------------------------------

    @overload
    def wait_for(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        count: None = None,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> Message: ...

    @overload
    def wait_for(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        count: int,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]: ...

    def wait_for(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        count: int | None = None,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> Message | list[Message]:
        """Wait until a message (or ``count`` messages) match, woken by arrivals.

        Returns:
            The first matching message (oldest first), or with ``count`` the first
            ``count`` matches as a list.

        Raises:
            NoMatchingMail: not enough matches within ``timeout`` seconds; the message
                lists everything that was received.
        """
        self._check_blocking_allowed()
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        need = 1 if count is None else count
        changed = threading.Event()
        unsubscribe = self._subscribe(changed.set)
        deadline = time.monotonic() + timeout
        try:
            while True:
                changed.clear()
                found = self._select(crit)
                if len(found) >= need:
                    return found[0] if count is None else found[:need]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout_error(crit, need, timeout, found)
                if unsubscribe is not None:
                    changed.wait(remaining)
                else:
                    self._idle(remaining, crit)
        finally:
            if unsubscribe is not None:
                unsubscribe()

    async def wait_for_async(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        count: int | None = None,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]:
        """:meth:`wait_for` for async tests (also inside the server's own loop).

        Returns:
            The first ``count`` (default 1) matching messages, oldest first, as a list.

        Raises:
            NoMatchingMail: as :meth:`wait_for`.
        """
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        need = 1 if count is None else count
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(changed.set)

        unsubscribe = self._subscribe(wake)
        deadline = loop.time() + timeout
        try:
            while True:
                changed.clear()
                found = await asyncio.to_thread(self._select, crit)
                if len(found) >= need:
                    return found[:need]
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self._timeout_error(crit, need, timeout, found)
                wait = remaining if unsubscribe is not None else min(remaining, 0.1)
                try:
                    await asyncio.wait_for(changed.wait(), wait)
                except TimeoutError:
                    pass
        finally:
            if unsubscribe is not None:
                unsubscribe()

    async def messages_async(
        self, query_or_predicate: str | Predicate | None = None, *, mailbox: str | None = None
    ) -> list[Message]:
        """:meth:`messages` without blocking the running loop."""
        crit = Criteria.build(query_or_predicate, mailbox, None, None, None, None)
        return await asyncio.to_thread(self._select, crit)

    async def clear_async(self) -> None:
        """:meth:`clear` without blocking the running loop."""
        await asyncio.to_thread(self._delete, None)

    def _timeout_error(
        self, crit: Criteria, need: int, timeout: float, found: list[Message]
    ) -> NoMatchingMail:
        everything = self._fetch(None, None)
        what = "a message" if need == 1 else f"{need} messages"
        got = f"{len(found)} matched" if found else "none matched"
        return NoMatchingMail(
            f"timed out after {timeout:g} s waiting for {what} matching {crit}; {got}. "
            f"Received {len(everything)} message(s):\n{listing(everything)}"
        )

    # -- assertions -------------------------------------------------------------------------

    def assert_received(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        count: int | None = None,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]:
        """Assert that matching mail was received (exactly ``count`` messages when given).

        Returns:
            The matching messages, oldest first.

        Raises:
            NoMatchingMail: with the list of what was received.
        """
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        found = self._select(crit)
        ok = len(found) == count if count is not None else bool(found)
        if not ok:
            everything = self._fetch(None, None)
            want = f"exactly {count}" if count is not None else "at least one"
            raise NoMatchingMail(
                f"expected {want} message(s) matching {crit}, found {len(found)}. "
                f"Received {len(everything)} message(s):\n{listing(everything)}"
            )
        return found

    def assert_not_received(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> None:
        """Assert that no matching mail was received (no criteria: no mail at all).

        Raises:
            NoMatchingMail: naming the messages that matched.
        """
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        found = self._select(crit)
        if found:
            raise NoMatchingMail(
                f"expected no message matching {crit}, but {len(found)} matched:\n{listing(found)}"
            )
