"""HTTP routes of the checks (docs/checks.md): Mailpit's three and postroom's report.

- ``GET /api/v1/message/{ID}/html-check``: Mailpit's ``HTMLCheckResponse``; ``400``
  when the message has no HTML part (as Mailpit answers).
- ``GET /api/v1/message/{ID}/link-check?follow=true``: Mailpit's ``LinkCheckResponse``.
- ``GET /api/v1/message/{ID}/sa-check``: Mailpit's ``SpamAssassinResponse``; ``400``
  when postroom was started without ``--enable-spamassassin``.
- ``GET /api/v2/message/{ID}/checks``: every check in one report, each section with
  its state and timing (``?links=false`` skips the network link check).

The checks run when asked, never at ingest; :class:`postroom.checks.report.Checker`
caches their answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .common import APP_KEY, bad_request, in_thread, json_response, raw_or_404, resolve_id, store_of

if TYPE_CHECKING:
    from ..checks.report import Checker

__all__ = ["add_routes", "checker_of"]

CHECKER_KEY = "checks"  # App.extras key


def checker_of(request: web.Request) -> Checker:
    """The app's one :class:`Checker`, made from the settings on first use (imported then:
    the checks bring DKIM and DNS modules, a tenth of a second of CPU that a server which
    is never asked for a check should not spend while it starts)."""
    from ..checks.report import Checker, CheckOptions

    app = request.app[APP_KEY]
    checker = app.extras.get(CHECKER_KEY)
    if checker is None:
        checker = Checker(CheckOptions.from_settings(app.settings))
        app.extras[CHECKER_KEY] = checker
    assert isinstance(checker, Checker)
    return checker


async def _message(request: web.Request) -> tuple[str, bytes]:
    mid = await resolve_id(request)
    return mid, await raw_or_404(request, mid)


async def html_check(request: web.Request) -> web.Response:
    mid, raw = await _message(request)
    result = await checker_of(request).html(mid, raw)
    if result is None:
        raise bad_request("message does not contain HTML")
    return json_response(result)


async def link_check(request: web.Request) -> web.Response:
    mid, raw = await _message(request)
    follow = request.query.get("follow", "").lower() in ("true", "1", "yes")  # as Mailpit: else false
    return json_response(await checker_of(request).links(mid, raw, follow=follow))


async def sa_check(request: web.Request) -> web.Response:
    mid, raw = await _message(request)
    result = await checker_of(request).spam(mid, raw)
    if result is None:
        raise bad_request("SpamAssassin is not enabled (start postroom with --enable-spamassassin HOST:PORT)")
    return json_response(result)


def _flag(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise bad_request(f"{name} must be true or false, not {value!r}")


async def checks(request: web.Request) -> web.Response:
    mid, raw = await _message(request)
    envelope = await in_thread(store_of(request).get_envelope, mid)
    report = await checker_of(request).report(
        mid, raw, envelope, links=_flag(request, "links", True), follow=_flag(request, "follow", False)
    )
    return json_response(report)


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    """Register the check routes under ``prefix`` (the webroot, ending in '/')."""
    r.add_get(prefix + "api/v1/message/{ID}/html-check", html_check)
    r.add_get(prefix + "api/v1/message/{ID}/sa-check", sa_check)
    r.add_get(prefix + "api/v1/message/{ID}/link-check", link_check)
    r.add_get(prefix + "api/v2/message/{ID}/checks", checks)
