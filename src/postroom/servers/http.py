"""The HTTP listener: serves :mod:`postroom.web` on the shared event loop (HTTPS when asked)."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from aiohttp import web

from ..web.app import create_app
from ..web.security import TimedRequestHandler

if TYPE_CHECKING:
    from ..app import App

__all__ = ["HTTPServer", "start_server"]

# Seconds in-flight requests (long polls, WebSockets) get to finish at shutdown.
SHUTDOWN_TIMEOUT = 1.0


class HTTPServer:
    """A running HTTP listener: ``sockets`` for the bound address, ``close``/``wait_closed``."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server) -> None:
        self._runner = runner
        self._server = server

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets or ())

    def close(self) -> None:
        """Stop accepting connections."""
        self._server.close()

    async def wait_closed(self) -> None:
        """Finish (or cut, after SHUTDOWN_TIMEOUT) open requests and release everything."""
        await self._runner.cleanup()


async def start_server(app: App, host: str, port: int, *, implicit_tls: bool) -> HTTPServer:
    """Serve the web UI and API on ``host:port`` (port 0 picks a free one).

    Raises:
        OSError: the address cannot be bound.
        RuntimeError: TLS was asked for but the app has no TLS context.
    """
    ssl_context = None
    if implicit_tls:
        if app.ssl_context is None:
            raise RuntimeError("HTTPS needs --tls-cert/--tls-key or --tls-self-signed")
        ssl_context = app.ssl_context
    s = app.settings
    runner = web.AppRunner(
        create_app(app),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        keepalive_timeout=s.http_idle_timeout,
    )
    await runner.setup()
    web_server = runner.server
    assert web_server is not None  # set by setup()
    loop = asyncio.get_running_loop()

    def protocol() -> TimedRequestHandler:
        # what aiohttp's Server() does, with a deadline on each request head (slowloris)
        return TimedRequestHandler(
            web_server, loop=loop, header_timeout=s.http_header_timeout, **web_server._kwargs
        )

    try:
        server = await loop.create_server(
            protocol, host, port, ssl=ssl_context, reuse_address=True, backlog=512
        )
    except BaseException:
        await runner.cleanup()
        raise
    return HTTPServer(runner, server)
