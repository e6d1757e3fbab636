"""Fetch accounts running inside the server (``--fetch-config``; docs/fetch.md).

* ``GET /api/v2/fetch/accounts``: ``{"Enabled": bool, "Accounts": [...]}``, each account with
  its server, user, folders and local mailbox (never its password or token) and its status:
  ``Syncing``, ``Idle`` (a folder is held in IMAP IDLE), ``LastSync``, ``LastFetched``,
  ``FetchedTotal``, ``LastError``.
* ``POST /api/v2/fetch/accounts/{Name}/sync``: sync that account now (202; the result shows in
  the listing). Like every state change it needs ``Content-Type: application/json`` or
  ``X-Postroom-Request: 1`` (the cross-site contract, :mod:`.security`).
"""

from __future__ import annotations

from aiohttp import web

from ..fetch.service import FetchService
from .common import APP_KEY, json_response, not_found

__all__ = ["add_routes"]


def _service(request: web.Request) -> FetchService | None:
    service = request.app[APP_KEY].extras.get("fetch")
    return service if isinstance(service, FetchService) else None


async def accounts(request: web.Request) -> web.Response:
    service = _service(request)
    return json_response(
        {"Enabled": service is not None, "Accounts": service.describe() if service is not None else []}
    )


async def sync(request: web.Request) -> web.Response:
    service = _service(request)
    name = request.match_info["Name"]
    if service is None:
        raise not_found("no fetch accounts (start postroom with --fetch-config FILE)")
    if not service.sync_now(name):
        raise not_found(f"no fetch account {name!r}")
    return json_response({"Queued": name}, status=202)


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    r.add_get(prefix + "api/v2/fetch/accounts", accounts)
    r.add_post(prefix + "api/v2/fetch/accounts/{Name}/sync", sync)
