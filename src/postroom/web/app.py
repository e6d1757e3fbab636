"""The aiohttp application: routes of every API, the UI, and the cross-cutting middleware.

Middleware order (outermost first): error translation, security headers, cross-site
protection (Host allow-list, Origin check, CORS: :mod:`.security`), optional basic auth,
the request-body deadline. All routes live under ``settings.webroot`` (``--webroot``, default ``/``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config import parse_hostport
from ..events import Event, MessagesDeleted, MessagesPruned, MessageStored
from ..store.base import StoreClosed
from . import (
    api_checks,
    api_fetch,
    api_outbound,
    api_testing,
    api_threads,
    api_v1,
    api_v2,
    events,
    metrics,
    views,
)
from .common import APP_KEY, MAX_BODY, PREFIX_KEY
from .security import body_deadline_middleware, policy_from_settings, security_middleware

if TYPE_CHECKING:
    from ..app import App

__all__ = ["create_app", "normalize_webroot"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def normalize_webroot(webroot: str) -> str:
    """``"mail"`` / ``"/mail"`` / ``"/mail/"`` -> ``"/mail/"``; empty -> ``"/"``."""
    parts = [p for p in webroot.strip().split("/") if p]
    return "/" + "".join(p + "/" for p in parts)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except StoreClosed:
        return web.Response(status=503, text="server is shutting down", content_type="text/plain")
    except ConnectionError as e:
        if not _client_gone(request):  # another connection of ours (a relay, a source) failed
            log.exception("%s %s failed", request.method, request.path)
            return web.Response(status=500, text="internal server error", content_type="text/plain")
        # The client went away mid-response (a WebSocket closed during its handshake, a
        # download abandoned): normal, nothing to answer. aiohttp drops the connection.
        log.debug("%s %s: client %s went away (%s)", request.method, request.path, request.remote, e)
        return web.Response(status=499, text="client closed request", content_type="text/plain")
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return web.Response(status=500, text="internal server error", content_type="text/plain")


def _client_gone(request: web.Request) -> bool:
    """Whether the request's own connection is closed or closing (the client left)."""
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as e:
        resp = e
        _secure(resp)
        raise
    _secure(resp)
    return resp


def _secure(resp: web.StreamResponse) -> None:
    if resp.prepared:  # WebSocket and streamed responses have sent their headers
        return
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")


def _count_runtime(app: App) -> Callable[[Event], None]:
    stats: dict[str, int] = app.extras.setdefault("runtime_stats", {})

    def on_event(ev: Event) -> None:
        if isinstance(ev, MessageStored):
            stats["SMTPAccepted"] = stats.get("SMTPAccepted", 0) + 1
            stats["SMTPAcceptedSize"] = stats.get("SMTPAcceptedSize", 0) + ev.summary.size
        elif isinstance(ev, MessagesDeleted | MessagesPruned):
            stats["MessagesDeleted"] = stats.get("MessagesDeleted", 0) + len(ev.ids)

    return on_event


def _auth_middlewares(app: App, prefix: str) -> list[Any]:
    """Basic auth of the UI and API (``--ui-auth-file`` or inline ``--ui-auth``), and of
    ``POST /api/v1/send`` as Mailpit does it: its own credentials when
    ``--send-api-auth-file`` is given, none with ``--send-api-auth-accept-any``, else the UI's."""
    from .auth import auth_middleware, load_htpasswd

    s = app.settings
    send = frozenset({prefix + "api/v1/send"})
    out: list[Any] = []
    if s.ui_auth_file or s.ui_auth:
        open_paths = {prefix + "livez", prefix + "readyz"}
        if s.send_api_auth_file or s.send_api_auth_accept_any:
            open_paths |= send
        if s.ui_auth_file:
            users = load_htpasswd("--ui-auth-file", s.ui_auth_file)
        else:
            users = load_htpasswd("--ui-auth", "", inline=s.ui_auth)
        out.append(auth_middleware(users, frozenset(open_paths), app.auth_limiter))
    if s.send_api_auth_file and not s.send_api_auth_accept_any:
        send_users = load_htpasswd("--send-api-auth-file", s.send_api_auth_file)
        out.append(auth_middleware(send_users, frozenset(), app.auth_limiter, only_paths=send))
    return out


def create_app(app: App) -> web.Application:
    """Build the aiohttp application serving ``app`` (its store, bus and settings)."""
    prefix = normalize_webroot(app.settings.webroot)
    s = app.settings
    bind_host = parse_hostport(s.http, "http")[0] if s.http != "off" else ""
    policy = policy_from_settings(
        s.allowed_hosts,
        s.api_cors,
        bind_host,
        body_timeout=s.http_body_timeout,
    )
    middlewares: list[Any] = [
        metrics.middleware,
        _errors,
        _security_headers,
        security_middleware(policy, prefix + "api/"),
    ]
    middlewares += _auth_middlewares(app, prefix)
    middlewares.append(body_deadline_middleware(policy.body_timeout))  # after auth
    wapp = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    wapp[APP_KEY] = app
    wapp[PREFIX_KEY] = prefix
    app.extras.setdefault("started_at", time.time())
    unsubscribe = app.bus.subscribe(_count_runtime(app))
    unsubscribe_metrics = metrics.add_routes(wapp, prefix)  # /metrics (Prometheus)

    async def on_cleanup(_: web.Application) -> None:
        unsubscribe()
        unsubscribe_metrics()

    wapp.on_cleanup.append(on_cleanup)
    api_v1.add_routes(wapp.router, prefix)
    api_v2.add_routes(wapp.router, prefix)
    api_threads.add_routes(wapp.router, prefix)  # conversations (docs/threads.md)
    api_testing.add_routes(wapp.router, prefix)  # chaos and webhooks (postroom.testing)
    api_checks.add_routes(wapp.router, prefix)  # HTML/link/spam/authentication checks
    api_outbound.add_routes(wapp.router, prefix)  # release, delivery log, suppressions
    api_fetch.add_routes(wapp.router, prefix)  # fetch accounts inside serve (docs/fetch.md)
    events.add_routes(wapp, prefix)
    if prefix != "/":

        async def to_webroot(request: web.Request) -> web.Response:
            raise web.HTTPFound(prefix)

        wapp.router.add_get("/", to_webroot)
        wapp.router.add_get(prefix.rstrip("/"), to_webroot)
    views.add_routes(wapp.router, prefix)
    return wapp
