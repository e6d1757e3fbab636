"""``postroom.Client``: the read API of :class:`~postroom.Server`, over HTTP.

For suites that share one running postroom (a CI service container, a server started
once for many jobs)::

    mail = Client("http://localhost:8025", smtp_port=1025)
    view = mail.scope()                      # only mail arriving from now on
    app.send_welcome("alice@example.com")
    msg = view.wait_for(to="alice@example.com")

It speaks the Mailpit-compatible API (``/api/v1``), so listing, reading and clearing
also work against Mailpit; waiting uses postroom's long-poll ``GET /api/v2/wait`` and
falls back to polling where that route is missing. Only the standard library is used.

A view (:meth:`Client.scope`, what the ``mail`` fixture is with ``--postroom-url``) lists
only what arrived after it was made, asking the server for just that (``after:`` its
cursor), so its cost does not grow with the mail already stored; and once the test asked
for :meth:`~postroom.testing.reader.MailReader.unique_address`, only mail to those
addresses, which isolates it from tests running at the same time (pytest-xdist, other CI
jobs) and from mail a previous test's background job sends late.

Errors::

    ClientError          the server answered an error or could not be reached
    NoMatchingMail       (from the reader) a wait timed out / an assertion failed
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..runtime.models import Message
from ..store.base import Address, Envelope, Summary
from .reader import Criteria, MailReader, NoMatchingMail
from .remote import RemoteChaos, RemoteWebhooks, unsupported_handler

__all__ = ["Client", "ClientError", "ClientView"]

F = TypeVar("F", bound=Callable[..., Any])

# Page size of listings (Mailpit's maximum is not documented; postroom's is 10,000).
_PAGE = 1000
# Longest single long-poll; short enough that a message arriving between a listing and
# the poll (which only reports newer mail) is seen within this delay.
_LONG_POLL = 2.0
_CACHE_SIZE = 2000
# A view's cursor starts this long before the newest stored message (clocks of SMTP worker
# processes, equal timestamps); what the server held then is remembered and left out.
_CURSOR_MARGIN = 2.0
# IDs per /api/v2/unindexed call (the route's limit).
_UNINDEXED_BATCH = 500


class ClientError(RuntimeError):
    """An HTTP call to the server failed; the message has the status and the answer."""


def _addr(d: dict[str, Any] | None) -> Address | None:
    if not d or not (d.get("Address") or d.get("Name")):
        return None
    return Address(d.get("Name", ""), d.get("Address", ""))


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def summary_from_json(d: dict[str, Any]) -> Summary:
    """A store :class:`Summary` from Mailpit's ``MessageSummary`` JSON."""
    return Summary(
        id=d.get("ID", ""),
        message_id=d.get("MessageID", ""),
        subject=d.get("Subject", ""),
        from_=_addr(d.get("From")),
        to=[a for a in map(_addr, d.get("To") or []) if a],
        cc=[a for a in map(_addr, d.get("Cc") or []) if a],
        bcc=[a for a in map(_addr, d.get("Bcc") or []) if a],
        created=_epoch(d.get("Created", "")),
        size=int(d.get("Size", 0)),
        read=bool(d.get("Read", False)),
        tags=list(d.get("Tags") or []),
        mailboxes=list(d.get("Mailboxes") or []),
    )


class _Remote(MailReader):
    """What a client and its views share: the addresses and the features over HTTP."""

    client: Client

    @property
    def host(self) -> str:
        return self.client._smtp_host

    @property
    def smtp_port(self) -> int:
        return self.client._smtp_port

    @property
    def http_url(self) -> str:
        return self.client.url

    @property
    def webhooks(self) -> RemoteWebhooks:
        """The server's webhooks (``GET``/``PUT /api/v2/webhooks``)."""
        return RemoteWebhooks(self.client)

    def handler(self, fn: F) -> F:
        """Handlers need an in-process server.

        Raises:
            RemoteUnsupported: always, naming what to do instead.
        """
        return unsupported_handler(fn)  # type: ignore[no-any-return]

    def rcpt_handler(self, fn: F) -> F:
        """Handlers need an in-process server.

        Raises:
            RemoteUnsupported: always.
        """
        return unsupported_handler(fn)  # type: ignore[no-any-return]

    def _unindexed(self, ids: list[str] | None) -> list[str]:
        if ids is None:
            ids = [s.id for s in self._summaries(None, None)]
        return self.client._remote_unindexed(ids)

    def _summaries(self, mailbox: str | None, query: str | None) -> list[Summary]:
        raise NotImplementedError

    def _idle(self, remaining: float, criteria: Criteria) -> None:
        self.client._long_poll(remaining, criteria)


class Client(_Remote):
    """Read mail from a running postroom (or Mailpit) at ``url``.

    Args:
        url: base URL of the web UI/API, e.g. ``http://127.0.0.1:8025``.
        smtp_host, smtp_port: where the server listens for SMTP (for the code under test;
            the client itself never sends), default the URL's host and 1025.
        timeout: seconds allowed for one HTTP call.
        auth: (user, password) for a server behind ``--ui-auth-file``.
    """

    def __init__(
        self,
        url: str,
        *,
        smtp_host: str | None = None,
        smtp_port: int = 1025,
        timeout: float = 30.0,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"expected an http(s):// URL, not {url!r}")
        self.client = self
        self._smtp_host = smtp_host or parsed.hostname
        self._smtp_port = smtp_port
        self.timeout = timeout
        self._auth = auth
        self._cache: OrderedDict[str, Message] = OrderedDict()
        self._lock = threading.Lock()
        self._has_wait: bool | None = None
        self._has_unindexed: bool | None = None
        self._has_v2: bool | None = None  # postroom's /api/v2 listings (not on Mailpit)
        self._chaos: RemoteChaos | None = None

    # -- HTTP -------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> tuple[int, bytes]:
        """One call; returns (status, body) for 2xx.

        A POST, PUT or DELETE always carries a JSON body (``{}`` when there is nothing to
        say) and ``Content-Type: application/json``: postroom refuses state-changing
        requests with a CORS-simple type (cross-site request protection, docs/security.md).

        Raises:
            ClientError: any other status, or a connection failure.
        """
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = self.url + path + (f"?{query}" if query else "")
        if body is None and method not in ("GET", "HEAD"):
            body = {}  # postroom refuses a body-less POST without a JSON type (docs/security.md)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self._auth is not None:
            import base64

            token = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace").strip()[:300]
            raise ClientError(f"{method} {path}: HTTP {e.code} {text}".rstrip()) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ClientError(f"{method} {url}: {reason}") from None

    def _json(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return json.loads(self.request(method, path, params, body)[1] or b"null")

    # -- reading ----------------------------------------------------------------------------

    def _page(self, mailbox: str | None, query: str | None, start: int, limit: int) -> dict[str, Any]:
        # postroom's /api/v2 listing adds each message's Mailboxes; Mailpit has only /api/v1
        params = {"query": query, "mailbox": mailbox, "start": start, "limit": limit}
        if self._has_v2 is not False:
            try:
                page: dict[str, Any] = self._json(
                    "GET", "/api/v2/search" if query else "/api/v2/messages", params
                )
                self._has_v2 = True
                return page
            except ClientError as e:
                if self._has_v2 is not None or "HTTP 404" not in str(e):
                    raise
                self._has_v2 = False
        page = self._json("GET", "/api/v1/search" if query else "/api/v1/messages", params)
        return page

    def summaries(self, mailbox: str | None = None, query: str | None = None) -> list[Summary]:
        """Every matching message's summary, oldest first."""
        out: list[Summary] = []
        start = 0
        while True:
            page = self._page(mailbox, query, start, _PAGE)
            batch = page.get("messages") or []
            out.extend(summary_from_json(d) for d in batch)
            start += len(batch)
            if not batch or start >= int(page.get("messages_count", page.get("total", 0))):
                break
        out.reverse()
        return out

    _summaries = summaries

    def message(self, summary: Summary) -> Message:
        """The parsed message of a summary (raw and envelope fetched once, then cached)."""
        with self._lock:
            msg = self._cache.get(summary.id)
        if msg is not None:
            return msg
        quoted = urllib.parse.quote(summary.id, safe="")
        raw = self.request("GET", f"/api/v1/message/{quoted}/raw")[1]
        envelope = None
        try:
            envelope = Envelope.from_json(self._json("GET", f"/api/v2/message/{quoted}/envelope"))
        except ClientError:
            pass  # Mailpit, or an older postroom: derived from the headers
        msg = Message(raw, summary=summary, envelope=envelope)
        with self._lock:
            self._cache[summary.id] = msg
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return msg

    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        return [self.message(s) for s in self.summaries(mailbox, query)]

    def __len__(self) -> int:
        """Messages on the server (one call; nothing is listed)."""
        page = self._page(None, None, 0, 1)
        return int(page.get("messages_count", page.get("total", 0)))

    @property
    def last(self) -> Message:
        """The newest message (one call for its summary)."""
        __tracebackhide__ = True
        batch = self._page(None, None, 0, 1).get("messages") or []
        if not batch:
            raise NoMatchingMail("expected a message, but none was received")
        return self.message(summary_from_json(batch[0]))

    def _delete(self, ids: list[str] | None) -> None:
        if ids is not None and not ids:
            return  # no IDs in the API's body means "every message": never send that for []
        self.request("DELETE", "/api/v1/messages", body={"IDs": ids} if ids else {})
        with self._lock:
            if ids is None:
                self._cache.clear()
            else:
                for i in ids:
                    self._cache.pop(i, None)

    def _remote_unindexed(self, ids: list[str]) -> list[str]:
        """``GET /api/v2/unindexed``; Mailpit (no such route) indexes as it stores."""
        if not ids or self._has_unindexed is False:
            return []
        pending: list[str] = []
        for i in range(0, len(ids), _UNINDEXED_BATCH):
            try:
                answer = self._json(
                    "GET", "/api/v2/unindexed", {"ids": ",".join(ids[i : i + _UNINDEXED_BATCH])}
                )
            except ClientError as e:
                if self._has_unindexed is None and "HTTP 404" in str(e):
                    self._has_unindexed = False
                    return []
                raise
            self._has_unindexed = True
            pending += answer.get("IDs") or []
        return pending

    def _long_poll(self, remaining: float, criteria: Criteria) -> None:
        """Long-poll postroom's /api/v2/wait for newer mail; poll Mailpit."""
        if self._has_wait is False:
            time.sleep(min(remaining, 0.25))
            return
        params = {
            "query": criteria.query,
            "mailbox": criteria.mailbox,
            "timeout": f"{min(remaining, _LONG_POLL):.3f}",
            "new": "1",
        }
        try:
            self.request("GET", "/api/v2/wait", params)
            self._has_wait = True
        except ClientError as e:
            if "HTTP 408" in str(e):
                return
            if self._has_wait is None and "HTTP 404" in str(e):
                self._has_wait = False
                return
            raise

    # -- features ---------------------------------------------------------------------------

    @property
    def chaos(self) -> RemoteChaos:
        """Fault injection on the server (``/api/v2/chaos``; see :mod:`postroom.testing.remote`)."""
        if self._chaos is None:
            self._chaos = RemoteChaos(self)
        return self._chaos

    def mailpit_chaos(self) -> dict[str, Any]:
        """Mailpit's chaos triggers (``GET /api/v1/chaos``)."""
        return dict(self._json("GET", "/api/v1/chaos"))

    def set_mailpit_chaos(self, triggers: dict[str, Any]) -> dict[str, Any]:
        """Replace Mailpit's chaos triggers (``PUT /api/v1/chaos``); ``{}`` turns them off."""
        return dict(self._json("PUT", "/api/v1/chaos", body=triggers))

    def scope(self) -> ClientView:
        """An isolated view: only mail arriving from now on (see the module docstring)."""
        return ClientView(self)

    def __repr__(self) -> str:
        return f"<postroom.Client {self.url}>"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class ClientView(_Remote):
    """The mail of a shared server that arrived after the view was made (one test's mail).

    Its listings ask the server only for mail newer than its cursor, so they cost the
    same with 5,000 stored messages as with none. Mail from tests running at the same
    time is in it too, unless the test sends to :meth:`unique_address`: the view then
    keeps only mail to those addresses. :meth:`close` removes the chaos faults it set.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._chaos: RemoteChaos | None = None
        newest = client._page(None, None, 0, 1).get("messages") or []
        # The cursor: the newest message's time on the server's clock (not ours).
        self._after: str | None = None
        self._before: frozenset[str] = frozenset()
        if newest:
            self._after = _iso(summary_from_json(newest[0]).created - _CURSOR_MARGIN)
            self._before = frozenset(s.id for s in client.summaries(None, f"after:{self._after}"))

    def _in_scope(self, s: Summary) -> bool:
        if s.id in self._before:
            return False
        if not self._namespaced:
            return True
        mark = f"+{self._token}@"
        return any(mark in a.address.lower() for a in (*s.to, *s.cc, *s.bcc))

    def _summaries(self, mailbox: str | None, query: str | None) -> list[Summary]:
        if self._after is not None:
            query = f"after:{self._after}" + (f" ({query})" if query else "")
        return [s for s in self.client.summaries(mailbox, query) if self._in_scope(s)]

    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        return [self.client.message(s) for s in self._summaries(mailbox, query)]

    def _delete(self, ids: list[str] | None) -> None:
        mine = {s.id for s in self._summaries(None, None)}
        targets = [i for i in (mine if ids is None else ids) if i in mine]
        if targets:
            self.client._delete(targets)

    @property
    def chaos(self) -> RemoteChaos:
        """Fault injection on the shared server; :meth:`close` removes this view's faults."""
        if self._chaos is None:
            self._chaos = RemoteChaos(self.client)
        return self._chaos

    def close(self) -> None:
        """Remove the chaos faults this view set (its mail stays on the server)."""
        if self._chaos is not None:
            self._chaos.clear()

    def __enter__(self) -> ClientView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<postroom.ClientView of {self.client.url} after {self._after}>"
