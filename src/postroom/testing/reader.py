"""The read API shared by :class:`~postroom.Server`, its isolated views and :class:`~postroom.Client`.

A reader lists messages (oldest first), waits for messages to arrive, clears, and checks
expectations. Backends provide: fetching the messages in scope, the IDs in scope whose
background indexing is not done, a way to be woken when something changes (the server's
event bus; a long-poll over HTTP for the client), and deleting. Waiting never sleeps in a
loop where a wake-up exists.

Criteria are combined with AND: a search query in postroom's language (passed to the
store, see :mod:`postroom.search`) or a predicate on :class:`Message`, plus keyword
filters ``mailbox``, ``to``, ``from_``, ``subject`` and ``text``.

Indexing. A message is listed as soon as its ``250`` was sent, but full-text terms and
``has:``/``is:`` filters see it only once the background indexer has read it. So that a
test never races the indexer, whatever :meth:`MailReader.wait_for` returns is indexed
(every query finds it at once), and a query given to :meth:`~MailReader.messages` or an
assertion first waits until every message in scope is indexed. When that takes longer
than the timeout the error says so, naming the messages still waiting.

Errors::

    AssertionError
     +-- NoMatchingMail   a wait timed out, or an assertion about received mail failed;
                          the message lists what was received, with near misses
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

from ..runtime.models import Message, describe

__all__ = ["DEFAULT_TIMEOUT", "Criteria", "MailReader", "NoMatchingMail", "Predicate", "listing", "plural"]

#: How long wait_for waits by default (seconds): long enough for a slow CI machine.
DEFAULT_TIMEOUT = 10.0
# Messages named in a failure listing before "... and N more".
_LISTED = 25
# Seconds between looks at a remote server's indexing (it has no event to wait on).
_POLL = 0.02
# Longest a subject is quoted in a near miss.
_QUOTED = 60

Predicate = Callable[[Message], bool]
Text = str | re.Pattern[str]


class NoMatchingMail(AssertionError):
    """Expected mail did not arrive (or unexpected mail did); lists what was received."""


def plural(n: int, word: str = "message") -> str:
    """``"1 message"``, ``"2 messages"`` (failure output says neither "message(s)")."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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


def _shown(value: Text) -> str:
    return f"/{value.pattern}/" if isinstance(value, re.Pattern) else repr(value)


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTED else text[: _QUOTED - 3] + "...")


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

    def _checks(self, msg: Message) -> list[tuple[str, bool, str]]:
        """(criterion, held, what the message has) for each local criterion given."""
        out: list[tuple[str, bool, str]] = []
        if self.to is not None:
            rcpts = sorted({*msg.recipients, *(a.address.lower() for a in (*msg.to, *msg.cc, *msg.bcc))})
            out.append(("to", _address_matches(self.to, rcpts), f"to was {', '.join(rcpts) or '(nobody)'}"))
        if self.from_ is not None:
            senders = [msg.sender.lower()]
            if msg.from_.address and msg.from_.address.lower() not in senders:
                senders.append(msg.from_.address.lower())
            out.append(("from", _address_matches(self.from_, senders), f"from was {' / '.join(senders)}"))
        if self.subject is not None:
            out.append(
                ("subject", _text_matches(self.subject, msg.subject), f"subject was {_quote(msg.subject)}")
            )
        if self.text is not None:
            held = _text_matches(self.text, msg.text) or _text_matches(self.text, msg.html)
            out.append(("text", held, f"text has no {_shown(self.text)}"))
        return out

    def matches(self, msg: Message) -> bool:
        """Whether ``msg`` meets the criteria that are checked locally (not the query)."""
        if not all(held for _, held, _ in self._checks(msg)):
            return False
        return self.predicate is None or bool(self.predicate(msg))

    def near_miss(self, msg: Message, found_by_query: bool) -> str:
        """Why ``msg`` does not match, naming the criteria it does meet:
        ``"to matched; subject was 'Welcome aboard'"``."""
        checks = self._checks(msg)
        good = [name for name, held, _ in checks if held]
        bad = [why for _, held, why in checks if not held]
        if self.query:
            (good if found_by_query else bad).append("query" if found_by_query else "query did not find it")
        if not bad and self.predicate is not None:
            bad.append("predicate returned false")
        if not bad:
            return ""
        matched = f"{' and '.join(good)} matched; " if good else ""
        return matched + "; ".join(bad)

    def __str__(self) -> str:
        parts = []
        if self.query:
            parts.append(f"query {self.query!r}")
        if self.mailbox:
            parts.append(f"mailbox {self.mailbox!r}")
        for name in ("to", "from_", "subject", "text"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name.rstrip('_')}={_shown(value)}")
        if self.predicate is not None:
            parts.append(f"predicate {getattr(self.predicate, '__name__', 'function')}")
        return ", ".join(parts) or "any message"


def listing(messages: list[Message], why: Callable[[Message], str] | None = None) -> str:
    """Numbered lines naming each message (what failure messages show), each with the
    reason it did not match when ``why`` gives one."""
    if not messages:
        return "  (no messages at all)"
    lines = []
    for i, m in enumerate(messages[:_LISTED], 1):
        reason = why(m) if why is not None else ""
        lines.append(f"  {i}. {describe(m)}" + (f"\n       ({reason})" if reason else ""))
    if len(messages) > _LISTED:
        lines.append(f"  ... and {len(messages) - _LISTED} more")
    return "\n".join(lines)


class MailReader(ABC):
    """Read, wait for and check caught mail. Subclasses bind it to a server or a URL."""

    _token: str | None = None  # this reader's unique-address mark (made on first use)
    _namespaced = False  # a view keeps only mail to its unique addresses once one was handed out

    def unique_address(self, local: str = "user", domain: str = "example.com") -> str:
        """An address that only this test uses: ``local+TOKEN@domain``.

        On a shared server (``shared=True``, ``--postroom-url``) the test's view then keeps
        only mail sent to its unique addresses, so tests running at the same time, and a
        background job of an earlier test that sends late, never show up in it.
        """
        if self._token is None:
            import secrets

            self._token = secrets.token_hex(4)
        self._namespaced = True
        return f"{local}+{self._token}@{domain}"

    # -- what a backend provides ----------------------------------------------------------

    @abstractmethod
    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        """Messages in scope matching mailbox/query, oldest first (may block)."""

    @abstractmethod
    def _delete(self, ids: list[str] | None) -> None:
        """Delete ``ids``, or everything in scope when None (may block)."""

    def _unindexed(self, ids: list[str] | None) -> list[str]:
        """IDs (of ``ids``, or of everything in scope when None) whose background indexing
        is not done, so that a query cannot see them yet. Default: none."""
        return []

    def _subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake`` (from any thread) when mail may have changed; None: cannot."""
        return None

    def _idle(self, remaining: float, criteria: Criteria) -> None:
        """Block until something may have changed (used only without a subscription)."""
        time.sleep(min(remaining, 0.1))

    def _check_blocking_allowed(self) -> None:  # noqa: B027 - optional for backends
        """Raise when a blocking wait would deadlock (the server's own loop thread)."""

    # -- the one waiting loop ---------------------------------------------------------------

    def _until(
        self, ready: Callable[[], bool], timeout: float, crit: Criteria, *, poll: bool = False
    ) -> bool:
        """Call ``ready`` until it is true, woken by changes; False when time ran out.

        ``poll``: without a subscription, look again every :data:`_POLL` seconds instead of
        waiting for new mail (indexing is not new mail: a long-poll would not end for it)."""
        if ready():  # most waits end at the first look (it waits for the writer's commit)
            return True
        changed = threading.Event()
        unsubscribe = self._subscribe(changed.set)  # then look again: no change goes unseen
        deadline = time.monotonic() + timeout
        looked = unsubscribe is None  # nothing to miss without a subscription: wait first
        try:
            while True:
                if not looked:
                    changed.clear()
                    if ready():
                        return True
                looked = False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if unsubscribe is not None:
                    changed.wait(remaining)
                elif poll:
                    time.sleep(min(remaining, _POLL))
                else:
                    self._idle(remaining, crit)
        finally:
            if unsubscribe is not None:
                unsubscribe()

    def _settle(
        self, ids: list[str] | None, timeout: float, crit: Criteria, shown: float | None = None
    ) -> None:
        """Wait until the messages ``ids`` (None: all in scope) are indexed.

        Raises:
            NoMatchingMail: still not indexed after ``timeout`` seconds.
        """
        pending: list[str] = []

        def done() -> bool:
            pending[:] = self._unindexed(ids)
            return not pending

        if not done() and not self._until(done, timeout, crit, poll=True):
            raise NoMatchingMail(
                f"{plural(len(pending))} received but still not indexed after {shown or timeout:g} s "
                f"(the indexer is overloaded or stopped), so {crit} cannot be checked yet: "
                + ", ".join(pending[:10])
            )

    def _select(self, crit: Criteria) -> list[Message]:
        """Matches among the messages in scope; with a query, once every one is indexed."""
        if crit.query is not None:
            self._check_blocking_allowed()  # waiting for the indexer blocks
            self._settle(None, DEFAULT_TIMEOUT, crit)
        return self._matching(crit)

    def _matching(self, crit: Criteria) -> list[Message]:
        return [m for m in self._fetch(crit.mailbox, crit.query) if crit.matches(m)]

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
                function ``Message -> bool``. With a query, messages that arrived but are
                not indexed yet are waited for (up to :data:`DEFAULT_TIMEOUT`).
            mailbox: only this mailbox (a recipient address, by default).
            to, from_: an address (exact, case-insensitive), ``@domain``, or a fragment.
            subject, text: a substring (case-insensitive) or a compiled regex.

        Raises:
            NoMatchingMail: a query was given and some message stayed unindexed.
        """
        __tracebackhide__ = True
        return self._select(Criteria.build(query_or_predicate, mailbox, to, from_, subject, text))

    @property
    def last(self) -> Message:
        """The newest message (NoMatchingMail when there is none)."""
        __tracebackhide__ = True
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

        What it returns is indexed: any query (full text, ``has:attachment``) finds it.

        Returns:
            The first matching message (oldest first), or with ``count`` the first
            ``count`` matches as a list.

        Raises:
            NoMatchingMail: not enough matches within ``timeout`` seconds; the message
                lists everything that was received, with near misses.
        """
        __tracebackhide__ = True
        self._check_blocking_allowed()
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        found = self._wait(crit, 1 if count is None else count, timeout)
        return found[0] if count is None else found

    def _wait(self, crit: Criteria, need: int, timeout: float) -> list[Message]:
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        found: list[Message] = []

        def enough() -> bool:
            found[:] = self._matching(crit)
            return len(found) >= need

        if not self._until(enough, timeout, crit):
            raise self._timeout_error(crit, need, timeout, found)
        chosen = found[:need]
        self._settle([m.id for m in chosen], max(0.0, deadline - time.monotonic()), crit, timeout)
        return chosen

    @overload
    async def wait_for_async(
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
    async def wait_for_async(
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
    ) -> Message | list[Message]:
        """:meth:`wait_for` for async code (also inside the server's own loop): the same
        arguments, the same result (a message, or a list with ``count``).

        Raises:
            NoMatchingMail: as :meth:`wait_for`.
        """
        __tracebackhide__ = True
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        # The blocking wait runs in a worker thread; the server's loop (maybe this one)
        # stays free to deliver the events that wake it.
        found = await asyncio.to_thread(self._wait, crit, 1 if count is None else count, timeout)
        return found[0] if count is None else found

    async def messages_async(
        self,
        query_or_predicate: str | Predicate | None = None,
        *,
        mailbox: str | None = None,
        to: str | None = None,
        from_: str | None = None,
        subject: Text | None = None,
        text: Text | None = None,
    ) -> list[Message]:
        """:meth:`messages` without blocking the running loop (the same arguments)."""
        __tracebackhide__ = True
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        return await asyncio.to_thread(self._select, crit)

    async def clear_async(self) -> None:
        """:meth:`clear` without blocking the running loop."""
        await asyncio.to_thread(self._delete, None)

    # -- failure output ---------------------------------------------------------------------

    def _report(self, crit: Criteria) -> str:
        """Everything received, each with why it did not match (one listing per failure)."""
        everything = self._fetch(None, None)
        by_query: set[str] = set()
        if crit.query is not None and everything:
            by_query = {m.id for m in self._fetch(crit.mailbox, crit.query)}
        elif crit.mailbox is not None:
            by_query = {m.id for m in self._fetch(crit.mailbox, None)}

        def why(m: Message) -> str:
            if crit.mailbox is not None and crit.query is None and m.id not in by_query:
                return f"not in mailbox {crit.mailbox!r}; mailboxes were {', '.join(m.mailboxes)}"
            return crit.near_miss(m, m.id in by_query)

        return f"Received {plural(len(everything))}:\n{listing(everything, why)}"

    def _timeout_error(
        self, crit: Criteria, need: int, timeout: float, found: list[Message]
    ) -> NoMatchingMail:
        what = "a message" if need == 1 else plural(need)
        got = f"only {len(found)} matched" if found else "none matched"
        return NoMatchingMail(
            f"timed out after {timeout:g} s waiting for {what} matching {crit}; {got}.\n{self._report(crit)}"
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
            NoMatchingMail: with the list of what was received and why each missed.
        """
        __tracebackhide__ = True
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        found = self._select(crit)
        ok = len(found) == count if count is not None else bool(found)
        if not ok:
            want = f"exactly {plural(count)}" if count is not None else "a message"
            raise NoMatchingMail(
                f"expected {want} matching {crit}, found {len(found)}.\n{self._report(crit)}"
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
        __tracebackhide__ = True
        crit = Criteria.build(query_or_predicate, mailbox, to, from_, subject, text)
        found = self._select(crit)
        if found:
            raise NoMatchingMail(
                f"expected no message matching {crit}, but {len(found)} matched:\n{listing(found)}"
            )
