"""Cross-site request protection for the HTTP API, the UI and the WebSocket.

postroom usually runs on a developer's machine while a browser is open there. Any page
that browser shows may send requests to ``127.0.0.1:8025``; this module makes sure
such a page can neither read captured mail nor change anything (docs/security.md):

* **Host allow-list** (DNS rebinding). A page on ``evil.example`` whose name is
  re-pointed at 127.0.0.1 talks to postroom as its own origin, so the browser lets it
  read every answer. Its requests still carry ``Host: evil.example``: a request whose
  Host is not an allowed name gets 403. Allowed are IP literals (a rebinding attack
  needs a name it controls), loopback names (``localhost``, ``*.localhost``, RFC 6761
  section 6.3), single-label names (``mailpit``, a container's service name: only the
  local resolver answers for them), the name ``--http`` binds, this machine's host
  name, and ``--allowed-hosts`` (``*`` turns the check off).
* **Origin check.** A state-changing request (POST, PUT, PATCH, DELETE) or a WebSocket
  handshake whose ``Origin`` is neither this server's own origin nor allowed by
  ``--api-cors`` gets 403. Browsers always send Origin on these (Fetch standard,
  "append a request Origin header"); clients that are not browsers send none and pass.
* **No "simple" POST.** Browsers send a cross-origin POST without asking first (no
  CORS preflight) only when its Content-Type is ``text/plain``,
  ``application/x-www-form-urlencoded`` or ``multipart/form-data`` (or absent). A POST
  must therefore carry another type (``application/json``) or the header
  ``X-Postroom-Request``; otherwise 415. PUT, PATCH and DELETE are always preflighted.
* **CORS** only with ``--api-cors`` (Mailpit's flag: a comma- or space-separated list
  of origins, matched on host and port, or ``*``): allowed origins get
  ``Access-Control-Allow-Origin`` and their preflights are answered.
* **Request timeouts** (slowloris): :class:`TimedRequestHandler` closes a connection
  whose request head does not arrive within ``--http-header-timeout`` seconds of its
  first byte; :func:`body_deadline_middleware` reads every request body within
  ``--http-body-timeout``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "REQUEST_HEADER",
    "SIMPLE_CONTENT_TYPES",
    "Policy",
    "TimedRequestHandler",
    "body_deadline_middleware",
    "policy_from_settings",
    "security_middleware",
]

log = logging.getLogger(__name__)

# The custom header a body-less POST may send instead of a JSON Content-Type: any header
# outside the CORS-safelisted ones makes a browser preflight the request.
REQUEST_HEADER = "X-Postroom-Request"
# Fetch standard, "CORS-safelisted request-header": the Content-Type values a
# cross-origin request may carry without a preflight.
SIMPLE_CONTENT_TYPES = frozenset(
    {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Methods and headers a preflight from an --api-cors origin may ask for.
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_MAX_AGE = "600"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _split_authority(authority: str) -> tuple[str, int | None]:
    """``"Example.COM:8025"`` -> ``("example.com", 8025)``; ``"[::1]"`` -> ``("::1", None)``."""
    a = authority.strip().lower()
    if a.startswith("["):
        host, _, rest = a[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    elif a.count(":") == 1:
        host, _, port_s = a.partition(":")
    else:  # a bare IPv6 address, or no port
        host, port_s = a, ""
    try:
        port = int(port_s) if port_s else None
    except ValueError:
        port = -1  # never equal to a real port
    return host.rstrip("."), port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_single_label(host: str) -> bool:
    """A name without dots, such as a container's service name (letters, digits, - and _)."""
    return host.isascii() and host.replace("-", "").replace("_", "").isalnum()


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Policy:
    """Which Host names and Origins this server answers; built once from the settings."""

    # names from --allowed-hosts: exact, or ".example.com" for the domain and its subdomains
    allowed_hosts: frozenset[str] = frozenset()
    any_host: bool = False  # --allowed-hosts '*'
    own_names: frozenset[str] = frozenset()  # the --http name and this machine's name
    cors_origins: frozenset[str] = frozenset()  # --api-cors, as lower-cased host[:port]
    cors_any: bool = False  # --api-cors '*'
    body_timeout: float = 60.0  # --http-body-timeout

    def host_allowed(self, host_header: str) -> bool:
        """Is ``host_header`` (a request's Host) a name this server may be reached by?"""
        if self.any_host:
            return True
        host, port = _split_authority(host_header)
        if port == -1 or not host:
            return False
        if _is_ip(host) or _is_loopback(host) or _is_single_label(host):
            return True
        return host in self.own_names or self._explicitly_allowed(host)

    def _explicitly_allowed(self, host: str) -> bool:
        if host in self.allowed_hosts:
            return True
        return any(p.startswith(".") and (host.endswith(p) or host == p[1:]) for p in self.allowed_hosts)

    def same_origin(self, origin: str, host_header: str, scheme: str) -> bool:
        """Is ``origin`` this server's own origin, as reached through ``host_header``?"""
        try:
            parts = urlsplit(origin.strip())
        except ValueError:  # "http://[::1" and the like
            return False
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file: pages) and anything odd
        o_host, o_port = _split_authority(parts.netloc)
        h_host, h_port = _split_authority(host_header)
        o_port = o_port or _DEFAULT_PORTS[parts.scheme]
        h_port = h_port or _DEFAULT_PORTS.get(scheme, 80)
        if o_host == h_host and o_port == h_port:
            return True
        if _is_loopback(o_host) and _is_loopback(h_host) and o_port == h_port:
            return True  # http://localhost:8025 calling http://127.0.0.1:8025
        # a name the operator listed (a reverse proxy's public name, any port or scheme)
        return self._explicitly_allowed(o_host)

    def cors_allowed(self, origin: str) -> bool:
        """Does ``--api-cors`` admit ``origin`` (matched on host and port, as Mailpit does)?"""
        if self.cors_any:
            return True
        if not self.cors_origins:
            return False
        try:
            netloc = urlsplit(origin.strip()).netloc.lower()
        except ValueError:
            return False
        return bool(netloc) and netloc in self.cors_origins


def _cors_entries(value: str) -> tuple[bool, frozenset[str]]:
    out: set[str] = set()
    for item in value.replace(",", " ").split():
        if item == "*":
            return True, frozenset()
        url = item if item.startswith(("http://", "https://")) else "http://" + item
        try:
            netloc = urlsplit(url).netloc.lower()
        except ValueError:
            netloc = ""
        if not netloc or "*" in netloc:
            log.warning("--api-cors: ignoring %r (expected an origin such as https://app.example:3000)", item)
            continue
        out.add(netloc)
    return False, frozenset(out)


def _host_entries(value: str) -> tuple[bool, frozenset[str]]:
    out: set[str] = set()
    for item in value.replace(",", " ").split():
        name = item.strip().lower().rstrip(".")
        if name in ("*", "all"):
            return True, frozenset()
        if name.startswith("*."):
            name = name[1:]  # "*.example.com" -> ".example.com"
        if name:
            out.add(_split_authority(name)[0] if not name.startswith(".") else name)
    return False, frozenset(out)


def policy_from_settings(
    allowed_hosts: str,
    api_cors: str,
    bind_host: str,
    *,
    body_timeout: float,
    extra_names: Iterable[str] = (),
) -> Policy:
    """The :class:`Policy` for ``--allowed-hosts``, ``--api-cors`` and the ``--http`` host."""
    any_host, hosts = _host_entries(allowed_hosts)
    cors_any, cors = _cors_entries(api_cors)
    own = {bind_host.strip("[]").lower(), *(n.lower() for n in extra_names)}
    try:
        own.add(socket.gethostname().lower())
    except OSError:
        pass
    own.discard("")
    return Policy(
        allowed_hosts=hosts,
        any_host=any_host,
        own_names=frozenset(own),
        cors_origins=cors,
        cors_any=cors_any,
        body_timeout=body_timeout,
    )


def _refuse(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain", charset="utf-8")


def _cors_headers(resp: web.StreamResponse, origin: str, policy: Policy) -> None:
    if resp.prepared:
        return
    resp.headers["Access-Control-Allow-Origin"] = "*" if policy.cors_any else origin
    resp.headers.add(hdrs.VARY, "Origin")


def security_middleware(
    policy: Policy, api_prefix: str
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware enforcing ``policy`` (Host, Origin, simple POSTs, CORS).

    ``api_prefix`` (the webroot plus ``api/``) is where CORS applies, as in Mailpit.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST)
        if host is not None and not policy.host_allowed(host):
            log.info("refused a request for Host %r (not an allowed host name)", host[:100])
            return _refuse(
                403,
                f"Blocked request: the Host {host[:100]!r} is not allowed (protection against DNS "
                "rebinding). postroom answers to loopback names, IP addresses and the names in "
                "--allowed-hosts (POSTROOM_ALLOWED_HOSTS); add this name there to use it.",
            )
        origin = request.headers.get(hdrs.ORIGIN)
        is_api = request.path.startswith(api_prefix)
        cors_ok = origin is not None and is_api and policy.cors_allowed(origin)
        if (
            request.method == "OPTIONS"
            and origin is not None
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        ):
            if not cors_ok:
                return _refuse(403, "cross-origin requests are not allowed (see --api-cors)")
            preflight = web.Response(status=204)
            _cors_headers(preflight, origin, policy)
            preflight.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
            if asked:
                preflight.headers["Access-Control-Allow-Headers"] = asked[:1000]
            preflight.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
            return preflight
        upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if (
            origin is not None
            and (request.method in STATE_CHANGING or upgrade)
            and not cors_ok
            and not policy.same_origin(origin, host or request.host, request.scheme)
        ):
            log.info("refused %s %s from origin %r", request.method, request.path, origin[:100])
            return _refuse(
                403,
                f"Blocked request: origin {origin[:100]!r} may not "
                + ("open the events WebSocket" if upgrade else f"send {request.method} requests")
                + " (cross-site request protection; allow an origin with --api-cors).",
            )
        if request.method == "POST" and REQUEST_HEADER not in request.headers:
            essence = request.headers.get(hdrs.CONTENT_TYPE, "").split(";", 1)[0].strip().lower()
            if essence in SIMPLE_CONTENT_TYPES:
                return _refuse(
                    415,
                    "POST needs Content-Type: application/json (a request without a body may send "
                    f"the header {REQUEST_HEADER}: 1 instead); this protects against cross-site requests.",
                )
        resp = await handler(request)
        if cors_ok and origin is not None:
            _cors_headers(resp, origin, policy)
        return resp

    return middleware


def body_deadline_middleware(
    timeout: float,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Read each request body within ``timeout`` seconds (``--http-body-timeout``).

    Installed innermost, after authentication, so that a stranger's body is never read.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in STATE_CHANGING and request.can_read_body:
            timed_out = await _read_body(request, timeout)
            if timed_out is not None:
                return timed_out
        return await handler(request)

    return middleware


async def _read_body(request: web.Request, timeout: float) -> web.StreamResponse | None:
    """Read (and cache) the body within ``timeout`` seconds; else send 408, close, return it.

    ``request.read()`` keeps what it read, so handlers reading the body later get it at
    once; ``client_max_size`` still applies (413).
    """
    try:
        await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        log.info("%s %s: request body not received within %g s", request.method, request.path, timeout)
        answer = web.Response(
            status=408,
            text=f"request body not received within {timeout:g} s (--http-body-timeout)\n",
            content_type="text/plain",
        )
        answer.force_close()
        await answer.prepare(request)
        await answer.write_eof()
        # aiohttp would otherwise linger, reading the rest of the body for up to 10 s
        if request.transport is not None:
            request.transport.close()
        return answer
    return None


class TimedRequestHandler(RequestHandler):  # type: ignore[misc]
    """aiohttp's connection handler with a deadline on each request head (slowloris).

    aiohttp only bounds the idle time between requests (``keepalive_timeout``); a client
    sending its request line and headers a byte at a time keeps a connection, and a
    handler, forever. The deadline starts with the first byte of a head and ends when
    the head is parsed; when it passes the client gets ``408`` and the connection is
    closed (RFC 9110 section 15.5.9).
    """

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._cancel_head_deadline()
            return
        waiter = self._waiter
        if data and self._head_deadline is None and waiter is not None and not waiter.done():
            self._head_deadline = self._loop.call_later(self._header_timeout, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        waiter = self._waiter
        transport = self.transport
        if waiter is None or waiter.done() or transport is None:
            return  # a request is being handled: its body has its own deadline
        log.info("closing an HTTP connection: request head not received within %g s", self._header_timeout)
        transport.write(_timeout_response(self._header_timeout))
        self.force_close()
        transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)


def _timeout_response(timeout: float) -> bytes:
    body = f"request head not received within {timeout:g} s (--http-header-timeout)\n".encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
