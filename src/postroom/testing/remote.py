"""Chaos and webhooks of a running postroom, over its HTTP API (what :class:`~postroom.Client` offers).

The same calls as an in-process server's ``chaos`` and ``webhooks`` (see
:mod:`postroom.runtime.chaos`, :mod:`postroom.runtime.webhooks`), so a test reads the same
against either:

* :class:`RemoteChaos` adds faults with ``POST /api/v2/chaos`` (the ``--chaos`` syntax) and
  removes its own with ``DELETE /api/v2/chaos`` ``{"IDs": [...]}``, so that tests sharing a
  server do not remove each other's faults; :class:`RemoteFault` reads ``fired`` back.
* :class:`RemoteWebhooks` reads and sets the URLs and the delivery log
  (``GET``/``PUT /api/v2/webhooks``).

Handlers run Python in the server's process, which a remote server cannot do:
:class:`RemoteUnsupported` says so (the pytest plugin skips a test marked
``postroom(handler=...)`` or ``postroom_local`` when it runs against ``--postroom-url``).

Errors::

    RuntimeError
     +-- ClientError          (client.py) an HTTP call failed
     +-- RemoteUnsupported    the feature needs an in-process server
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..runtime.chaos import Fault, FaultBuilder
from ..runtime.webhooks import Delivery

__all__ = ["HTTPCaller", "RemoteChaos", "RemoteFault", "RemoteUnsupported", "RemoteWebhooks"]


class RemoteUnsupported(RuntimeError):
    """What was asked needs an in-process server (``postroom.Server``), not a URL."""


class HTTPCaller(Protocol):
    """What the remote features need of a client: one JSON call."""

    def _json(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any: ...


class RemoteFault:
    """A fault set on a remote server: ``fired`` asks the server how often it acted."""

    def __init__(self, http: HTTPCaller, fault: Fault) -> None:
        self._http = http
        self.id = fault.id
        self.stage = fault.stage
        self.action = fault.action
        self.spec = fault.to_spec()

    @property
    def fired(self) -> int:
        state = self._http._json("GET", "/api/v2/chaos")
        for f in state.get("Faults") or []:
            if f.get("ID") == self.id:
                return int(f.get("Fired", 0))
        return 0  # removed since

    def __repr__(self) -> str:
        return f"<RemoteFault {self.id} {self.spec!r}>"


class RemoteChaos(FaultBuilder[RemoteFault]):
    """Fault injection on a remote postroom (started with ``--enable-chaos`` or ``--chaos``).

    Faults apply to every SMTP client of that server: on a server shared by parallel
    tests, narrow them with ``recipients=`` (a test's :meth:`unique_address`).
    :meth:`clear` removes the faults this object added.
    """

    def __init__(self, http: HTTPCaller) -> None:
        self._http = http
        self._mine: list[int] = []

    def add(self, fault: Fault) -> RemoteFault:
        """Set ``fault`` on the server; returns a handle whose ``fired`` reads it back.

        Raises:
            ChaosError: a field the ``--chaos`` syntax cannot carry (a ``re:`` pattern).
            ClientError: the server refused (chaos not enabled: 400).
        """
        answer = self._http._json("POST", "/api/v2/chaos", body={"Spec": fault.to_spec()})
        [added] = answer["Faults"]
        fault.id = int(added["ID"])
        self._mine.append(fault.id)
        return RemoteFault(self._http, fault)

    def load(self, spec: str) -> list[RemoteFault]:
        """Add the faults of a ``--chaos`` spec."""
        from ..runtime.chaos import parse_spec

        return [self.add(f) for f in parse_spec(spec)]

    def clear(self) -> None:
        """Remove the faults this object added (others' stay)."""
        if self._mine:
            ids, self._mine = self._mine, []
            self._http._json("DELETE", "/api/v2/chaos", body={"IDs": ids})

    @property
    def faults(self) -> list[dict[str, Any]]:
        """Every fault on the server, as ``GET /api/v2/chaos`` lists them."""
        return list(self._http._json("GET", "/api/v2/chaos").get("Faults") or [])


class RemoteWebhooks:
    """The webhooks of a remote postroom: URLs and the delivery log."""

    def __init__(self, http: HTTPCaller) -> None:
        self._http = http

    @property
    def urls(self) -> list[str]:
        return list(self._http._json("GET", "/api/v2/webhooks").get("URLs") or [])

    def set_urls(self, urls: list[str]) -> None:
        """Replace the URLs (an empty list turns webhooks off)."""
        self._http._json("PUT", "/api/v2/webhooks", body={"URLs": list(urls)})

    def add(self, url: str) -> None:
        """Add one URL."""
        self.set_urls([*self.urls, url])

    def deliveries(self) -> list[Delivery]:
        """The delivery log, oldest first."""
        state = self._http._json("GET", "/api/v2/webhooks")
        return [Delivery.from_json(d) for d in state.get("Deliveries") or []]


def unsupported_handler(fn: Callable[..., Any]) -> Any:
    """What ``Client.handler`` does: explain that handlers need an in-process server."""
    raise RemoteUnsupported(
        f"handler {getattr(fn, '__name__', fn)!r}: handlers run Python inside the server, so they "
        "need an in-process postroom.Server (drop --postroom-url); a remote server offers chaos"
    )
