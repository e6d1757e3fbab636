"""Link check: the HTTP status of every link and image URL of a message.

Each http(s) URL of the HTML (``a``/``area`` ``href``, ``img`` ``src``) and of the
text part is asked with ``HEAD``; when that fails or answers 4xx/5xx (many servers
refuse HEAD), with ``GET`` (the body is not read). Redirects are reported as they
are (``301``...) unless ``follow`` is asked, as Mailpit's ``?follow=true``; then up
to :data:`MAX_REDIRECTS` hops are followed, each one checked like the first URL.

Safety: a captured message is untrusted input, and checking its links makes this
machine send requests to where the message says. So, unless
``--link-check-private`` is given, no request goes to an address that is not
globally routable (loopback, RFC 1918 private, link-local, CGNAT, unique-local,
multicast, reserved): the *resolved* addresses are checked, in the resolver the
connection uses (a public name pointing at 127.0.0.1 is refused too, and there is
no second lookup to rebind), and literal IP hosts are checked before any request.
Each request has a timeout, at most :data:`CONCURRENCY` run at once (across every
check running in the process), at most
:data:`MAX_LINKS` URLs are checked per message, and answers are cached for
:data:`CACHE_TTL` seconds.

The answer has Mailpit's ``LinkCheckResponse`` shape: ``Errors`` (links that failed
or answered 4xx/5xx) and ``Links`` (``URL``, ``StatusCode``, ``Status``; code 0 and
the reason when no HTTP answer came).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections import OrderedDict
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .html import parse_html

__all__ = [
    "CACHE_TTL",
    "CONCURRENCY",
    "MAX_LINKS",
    "MAX_REDIRECTS",
    "TIMEOUT",
    "LinkChecker",
    "extract_links",
    "is_public",
]

TIMEOUT = 5.0  # seconds per request (Mailpit waits 5 s too)
CONCURRENCY = 8  # requests at once (a browser opens 6 per host)
MAX_LINKS = 200  # URLs checked per message; a newsletter has tens
MAX_REDIRECTS = 10  # hops followed with follow=true (curl's default is 50; 10 is plenty)
CACHE_TTL = 300.0  # seconds an answer is reused
CACHE_SIZE = 4096
_TEXT_URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+")
_TRAILING = ".,;:!?"


def is_public(ip: str) -> bool:
    """True when ``ip`` is globally routable (IPv4-mapped IPv6 judged as its IPv4)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class RefusedAddress(OSError):
    """The URL's host is (or resolves only to) a non-public address."""


class _GuardedResolver(AbstractResolver):
    """The default resolver, minus the addresses the link check may not reach."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        public = [r for r in results if is_public(r["host"])]
        if not public:
            raise RefusedAddress(f"{host} resolves to a private address (allow with --link-check-private)")
        return public

    async def close(self) -> None:
        await self._inner.close()


def extract_links(html: str, text: str) -> list[str]:
    """The distinct http(s) URLs of a message, in order of appearance, at most MAX_LINKS."""
    seen: dict[str, None] = {}
    root = parse_html(html) if html else None
    if root is not None:
        for node in root.iter("a", "area", "img"):
            url = (node.get("src") if node.tag == "img" else node.get("href")) or ""
            url = url.strip()
            if url.lower().startswith(("http://", "https://")):
                seen.setdefault(url, None)
    for m in _TEXT_URL.finditer(text[: 1024 * 1024]):
        seen.setdefault(m.group(0).rstrip(_TRAILING), None)
    return list(seen)[:MAX_LINKS]


def _status_text(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return str(code)


class LinkChecker:
    """Checks URLs with the safety rules above; one per running postroom (it owns the cache)."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = TIMEOUT,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.concurrency = concurrency
        self._cache: OrderedDict[tuple[str, bool], tuple[float, dict[str, Any]]] = OrderedDict()
        # One cap for every check running at once (many open UI tabs share it).
        self._sem = asyncio.Semaphore(concurrency)

    def _cached(self, key: tuple[str, bool]) -> dict[str, Any] | None:
        hit = self._cache.get(key)
        if hit is None or time.monotonic() - hit[0] > CACHE_TTL:
            return None
        return dict(hit[1])

    def _store(self, key: tuple[str, bool], value: dict[str, Any]) -> None:
        self._cache[key] = (time.monotonic(), value)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def _status(self, session: aiohttp.ClientSession, url: str) -> tuple[int, str, str | None]:
        """(code, status text, Location) of one URL: HEAD, then GET when HEAD fails."""
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
            literal = True
        except ValueError:
            literal = False
        if literal and not self.allow_private and not is_public(host):
            raise RefusedAddress(f"{host} is a private address (allow with --link-check-private)")
        last: BaseException | None = None
        head: tuple[int, str, str | None] | None = None
        for method in ("HEAD", "GET"):
            try:
                async with session.request(method, url, allow_redirects=False) as r:
                    if method == "HEAD" and r.status >= 400:
                        head = (r.status, r.reason or _status_text(r.status), r.headers.get("Location"))
                        continue
                    return r.status, r.reason or _status_text(r.status), r.headers.get("Location")
            except RefusedAddress:
                raise
            except aiohttp.ClientConnectorError as e:
                if isinstance(e.os_error, RefusedAddress):
                    raise e.os_error from None
                last = e
            except (aiohttp.ClientError, TimeoutError) as e:
                last = e
                if isinstance(e, TimeoutError):
                    break  # a server that does not answer HEAD in time will not answer GET either
        if head is not None:  # GET failed where HEAD answered: HEAD's answer stands
            return head
        assert last is not None
        raise last

    async def check_one(self, session: aiohttp.ClientSession, url: str, follow: bool) -> dict[str, Any]:
        key = (url, follow)
        hit = self._cached(key)
        if hit is not None:
            return hit
        current = url
        try:
            for _ in range(MAX_REDIRECTS + 1):
                code, status, location = await self._status(session, current)
                if not (follow and 300 <= code < 400 and location):
                    break
                current = urljoin(current, location)
                if not current.lower().startswith(("http://", "https://")):
                    break
            else:
                code, status = 0, f"more than {MAX_REDIRECTS} redirects"
        except RefusedAddress as e:
            code, status = 0, str(e)
        except TimeoutError:
            code, status = 0, f"timed out after {self.timeout:g} s"
        except aiohttp.ClientConnectorError as e:
            code, status = 0, f"cannot connect: {e.os_error.strerror or e.os_error}"
        except (aiohttp.InvalidURL, ValueError) as e:  # "http://[::1", port 99999, no host
            reason = str(e)
            code, status = 0, "invalid URL" + (f": {reason}" if reason and reason != current else "")
        except aiohttp.ClientError as e:
            code, status = 0, str(e) or type(e).__name__
        result = {"URL": url, "StatusCode": code, "Status": status}
        self._store(key, result)
        return result

    async def check(self, urls: list[str], *, follow: bool = False) -> dict[str, Any]:
        """Mailpit's ``LinkCheckResponse`` for these URLs (never raises for a bad link)."""
        connector = aiohttp.TCPConnector(
            resolver=_GuardedResolver(self.allow_private), limit=self.concurrency, use_dns_cache=False
        )
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        headers = {"User-Agent": "postroom-link-check"}
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=headers, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:

            async def one(url: str) -> dict[str, Any]:
                hit = self._cached((url, follow))
                if hit is not None:
                    return hit
                async with self._sem:
                    return await self.check_one(session, url, follow)

            links = await asyncio.gather(*(one(u) for u in urls[:MAX_LINKS]))
        errors = sum(1 for link in links if link["StatusCode"] == 0 or link["StatusCode"] >= 400)
        return {"Errors": errors, "Links": links}
