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
from datetime import datetime
from typing import Any

from ..store.base import Address, Envelope, Summary
from .models import Message
from .reader import Criteria, MailReader

__all__ = ["Client", "ClientError", "ClientView"]

# Page size of listings (Mailpit's maximum is not documented; postroom's is 10,000).
_PAGE = 1000
# Longest single long-poll; short enough that a message arriving between a listing and
# the poll (which only reports newer mail) is seen within this delay.
_LONG_POLL = 2.0
_CACHE_SIZE = 2000


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


class Client(MailReader):
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
        self.host = smtp_host or parsed.hostname
        self.smtp_port = smtp_port
        self.timeout = timeout
        self._auth = auth
        self._cache: OrderedDict[str, Message] = OrderedDict()
        self._lock = threading.Lock()
        self._has_wait: bool | None = None

    @property
    def http_url(self) -> str:
        return self.url

    # -- HTTP -------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> tuple[int, bytes]:
        """One call; returns (status, body) for 2xx.

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

    def summaries(self, mailbox: str | None = None, query: str | None = None) -> list[Summary]:
        """Every matching message's summary, oldest first."""
        out: list[Summary] = []
        start = 0
        path = "/api/v1/search" if query else "/api/v1/messages"
        while True:
            page = self._json(
                "GET", path, {"query": query, "mailbox": mailbox, "start": start, "limit": _PAGE}
            )
            batch = page.get("messages") or []
            out.extend(summary_from_json(d) for d in batch)
            start += len(batch)
            if not batch or start >= int(page.get("messages_count", page.get("total", 0))):
                break
        out.reverse()
        return out

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
            pass  # Mailpit, or an older postroom: no envelope
        msg = Message(raw, summary=summary, envelope=envelope)
        with self._lock:
            self._cache[summary.id] = msg
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return msg

    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        return [self.message(s) for s in self.summaries(mailbox, query)]

    def _delete(self, ids: list[str] | None) -> None:
        self.request("DELETE", "/api/v1/messages", body={"IDs": ids} if ids else {})
        with self._lock:
            if ids is None:
                self._cache.clear()
            else:
                for i in ids:
                    self._cache.pop(i, None)

    def _idle(self, remaining: float, criteria: Criteria) -> None:
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

    # -- chaos (Mailpit's API) ----------------------------------------------------------------

    def chaos(self) -> dict[str, Any]:
        """Mailpit's chaos triggers (``GET /api/v1/chaos``)."""
        return dict(self._json("GET", "/api/v1/chaos"))

    def set_chaos(self, triggers: dict[str, Any]) -> dict[str, Any]:
        """Replace the chaos triggers (``PUT /api/v1/chaos``); ``{}`` turns them off."""
        return dict(self._json("PUT", "/api/v1/chaos", body=triggers))

    def scope(self) -> ClientView:
        """An isolated view: only mail arriving from now on."""
        return ClientView(self)

    def __repr__(self) -> str:
        return f"<postroom.Client {self.url}>"


class ClientView(MailReader):
    """The mail of a shared server that arrived after the view was made.

    It remembers which messages existed when it was made and ignores them; so do not
    share one server between tests that run at the same time.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._before = {s.id for s in client.summaries()}

    @property
    def host(self) -> str:
        return self.client.host

    @property
    def smtp_port(self) -> int:
        return self.client.smtp_port

    @property
    def http_url(self) -> str:
        return self.client.url

    def _fetch(self, mailbox: str | None, query: str | None) -> list[Message]:
        summaries = self.client.summaries(mailbox, query)
        return [self.client.message(s) for s in summaries if s.id not in self._before]

    def _delete(self, ids: list[str] | None) -> None:
        targets = (
            ids if ids is not None else [s.id for s in self.client.summaries() if s.id not in self._before]
        )
        if targets:
            self.client._delete(targets)

    def _idle(self, remaining: float, criteria: Criteria) -> None:
        self.client._idle(remaining, criteria)
