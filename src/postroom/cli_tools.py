"""Small commands: ``postroom readyz`` (a container health check) and ``postroom version``.

``readyz`` asks a running postroom's ``/readyz`` (open even with ``--ui-auth-file``) and
exits 0 when it answers 200, else 1 with one line saying why: what Mailpit's ``readyz``
does, so a compose file's ``healthcheck: ["CMD", "postroom", "readyz"]`` works unchanged.
The address comes from ``--http`` (Mailpit's ``--listen``), else ``$POSTROOM_HTTP``, else
``$MP_UI_BIND_ADDR``, else 127.0.0.1:8025; the path prefix likewise from ``--webroot``.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

from . import __version__
from .cli import command
from .config import parse_hostport

__all__ = ["readyz", "version"]


def _readyz_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--http", "--listen", "-l", dest="http", metavar="ADDR", help="postroom's HTTP address (host:port)"
    )
    p.add_argument("--webroot", metavar="PATH", help="URL path prefix of the UI and API")
    p.add_argument(
        "--https", action="store_true", help="connect with HTTPS (the certificate is not verified)"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait until postroom is ready instead of checking once"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait with --wait (default 30)")


def readyz_url(http: str | None, webroot: str | None, https: bool) -> str:
    """The ``/readyz`` URL of the postroom at ``http`` (or from the environment)."""
    addr = http or os.environ.get("POSTROOM_HTTP") or os.environ.get("MP_UI_BIND_ADDR") or "127.0.0.1:8025"
    host, port = parse_hostport(addr, "http")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    root = webroot or os.environ.get("POSTROOM_WEBROOT") or os.environ.get("MP_WEBROOT") or "/"
    root = "/" + root.strip("/") + "/" if root.strip("/") else "/"
    return f"{'https' if https else 'http'}://{host}:{port}{root}readyz"


def _check(url: str, timeout: float) -> str | None:
    """None when ready, else the reason."""
    ctx = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return None if r.status == 200 else f"{url} answered {r.status}"
    except urllib.error.HTTPError as e:
        return f"{url} answered {e.code}"
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return f"{url}: {getattr(reason, 'strerror', None) or reason}"


@command("readyz", "exit 0 when a running postroom is ready (a container health check)")
def readyz(args: argparse.Namespace) -> int:
    url = readyz_url(args.http, args.webroot, args.https)
    deadline = time.monotonic() + max(args.timeout, 0.0)
    while True:
        problem = _check(url, timeout=min(5.0, max(args.timeout, 0.5)))
        if problem is None:
            return 0
        if not args.wait or time.monotonic() >= deadline:
            print(f"postroom readyz: not ready: {problem}", file=sys.stderr)
            return 1
        time.sleep(0.2)


readyz.setup = _readyz_setup  # type: ignore[attr-defined]


@command("version", "print postroom's version")
def version(args: argparse.Namespace) -> int:
    print(f"postroom {__version__} (Python {sys.version.split()[0]})")
    return 0
