"""The checks service: runs each check on demand, off the ingest path, and caches results.

Ingest never runs a check (they cost milliseconds to seconds; see
docs/performance.md). The API and ``postroom check`` ask a :class:`Checker`, which
runs the CPU-bound checks (HTML, lint, DKIM/SPF/DMARC) in a worker thread and the
network ones (links, spamd) on the event loop, and keeps the answers in a bounded
LRU cache keyed by message ID (a stored message never changes, so an answer stays
true until the message is deleted, and a deleted ID is never reused).

The combined report (``GET /api/v2/message/{ID}/checks``) has one section per
check with its ``State`` (``done``, ``error``, ``disabled``, ``not checked``), its
``Ms`` (time taken) and its ``Result``, plus a ``Summary`` counting findings by
severity. A section that cannot run (spamd not configured, no HTML part, no DNS)
says so; it never fails the report.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..config import Settings, parse_dns_server, parse_hostport
from ..message import ParsedMessage, parse_message
from ..store.base import Envelope
from .auth import NOT_CHECKED, AuthInput, authenticate, input_from_headers, peer_ip
from .dns import Dns
from .html import html_check
from .links import LinkChecker, extract_links
from .lint import SEVERITIES, findings_from_checks, lint
from .spam import spam_check

__all__ = ["CACHE_SIZE", "PARSED_CACHE", "CheckOptions", "Checker", "Section"]

# Cached answers per check kind (an HTML check answer is ~50-200 KB of JSON for a
# large newsletter, so 256 of them stay well under 64 MB).
CACHE_SIZE = 256
# Parsed messages kept for the checks of one report (they hold decoded attachments: a
# 50 MB message is 50 MB here), so only the last few.
PARSED_CACHE = 8


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What the checks may reach (from the settings; see docs/configuration.md)."""

    spamd: tuple[str, int] | None = None
    spamd_timeout: float = 30.0
    link_allow_private: bool = False
    link_timeout: float = 5.0
    link_concurrency: int = 8
    dns_server: tuple[str, int] | None = None  # None: the system resolver
    dns_off: bool = False
    dns_timeout: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckOptions:
        spamd = parse_hostport(settings.enable_spamassassin) if settings.enable_spamassassin else None
        dns = settings.checks_dns
        return cls(
            spamd=spamd,
            link_allow_private=settings.link_check_private,
            dns_server=parse_dns_server(dns) if dns and dns != "off" else None,
            dns_off=dns == "off",
        )


@dataclass(slots=True)
class Section:
    """One check's part of the combined report."""

    state: str  # done | error | disabled | not checked
    ms: float
    result: Any = None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"State": self.state, "Ms": round(self.ms, 2), "Result": self.result, "Error": self.error}


class _Lru:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


class Checker:
    """Runs and caches the checks of stored messages (one per running postroom)."""

    def __init__(self, options: CheckOptions | None = None, *, cache_size: int = CACHE_SIZE) -> None:
        self.options = options or CheckOptions()
        self._cache_size = cache_size
        self._caches: dict[str, _Lru] = {"parsed": _Lru(PARSED_CACHE)}
        self._links = LinkChecker(
            allow_private=self.options.link_allow_private,
            timeout=self.options.link_timeout,
            concurrency=self.options.link_concurrency,
        )
        self._inflight: dict[Any, asyncio.Future[Any]] = {}

    def _lru(self, kind: str) -> _Lru:
        lru = self._caches.get(kind)
        if lru is None:
            lru = self._caches[kind] = _Lru(self._cache_size)
        return lru

    async def _cached(self, key: tuple[str, str], compute: Callable[[], Awaitable[Any]]) -> Any:
        hit = self._lru(key[1]).get(key)
        if hit is not None:
            return hit
        pending = self._inflight.get(key)
        if pending is not None:  # the same check already running: share its answer
            return await asyncio.shield(pending)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await compute()
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(value)
        self._lru(key[1]).put(key, value)
        return value

    async def parsed(self, mid: str, raw: bytes) -> ParsedMessage:
        async def compute() -> ParsedMessage:
            return await asyncio.to_thread(parse_message, raw)

        pm: ParsedMessage = await self._cached((mid, "parsed"), compute)
        return pm

    async def html(self, mid: str, raw: bytes) -> dict[str, Any] | None:
        """Mailpit's HTMLCheckResponse, or None when the message has no HTML part."""
        pm = await self.parsed(mid, raw)
        if not pm.html:
            return None

        async def compute() -> dict[str, Any]:
            return await asyncio.to_thread(html_check, pm.html)

        result: dict[str, Any] = await self._cached((mid, "html"), compute)
        return result

    async def spam(self, mid: str, raw: bytes) -> dict[str, Any] | None:
        """Mailpit's SpamAssassinResponse, or None when no spamd is configured.

        A failed exchange (spamd down, timeout) answers with ``Error`` set and is not
        cached, so the next request tries again.
        """
        if self.options.spamd is None:
            return None
        host, port = self.options.spamd
        key = (mid, "spam")
        hit = self._lru("spam").get(key)
        if hit is not None:
            return dict(hit)
        result = await spam_check(raw, host, port, timeout=self.options.spamd_timeout)
        if not result["Error"]:
            self._lru("spam").put(key, result)
        return result

    async def links(self, mid: str, raw: bytes, *, follow: bool = False) -> dict[str, Any]:
        """Mailpit's LinkCheckResponse (URLs are cached by the link checker, not per message)."""
        pm = await self.parsed(mid, raw)
        urls = await asyncio.to_thread(extract_links, pm.html, "" if pm.text_from_html else pm.text)
        return await self._links.check(urls, follow=follow)

    def dns(self) -> Dns:
        """A resolver as the settings say (a new one per check: it tracks offline state)."""
        if self.options.dns_off:
            return Dns.off()
        return Dns(self.options.dns_server, timeout=self.options.dns_timeout)

    async def auth(self, mid: str, raw: bytes, envelope: Envelope | None) -> dict[str, Any]:
        """SPF/DKIM/ARC/DMARC; answers made offline are not cached."""
        key = (mid, "auth")
        hit = self._lru("auth").get(key)
        if hit is not None:
            return dict(hit)
        if envelope is not None:
            inp = AuthInput(raw, peer_ip(envelope.peer), envelope.mail_from, envelope.helo)
        else:
            inp = input_from_headers(raw)
        result: dict[str, Any] = await asyncio.to_thread(authenticate, inp, self.dns())
        if not result["Offline"]:
            self._lru("auth").put(key, result)
        return result

    async def lint(self, mid: str, raw: bytes) -> list[dict[str, str]]:
        pm = await self.parsed(mid, raw)

        async def compute() -> list[dict[str, str]]:
            found = await asyncio.to_thread(lint, raw, pm)
            return [f.to_json() for f in found]

        result: list[dict[str, str]] = await self._cached((mid, "lint"), compute)
        return result

    async def report(
        self, mid: str, raw: bytes, envelope: Envelope | None, *, links: bool = True, follow: bool = False
    ) -> dict[str, Any]:
        """Every check of one message, run concurrently; see the module docstring."""

        async def html() -> Any:
            r = await self.html(mid, raw)
            return Section("not checked", 0, None, "the message has no HTML part") if r is None else r

        async def spam() -> Any:
            r = await self.spam(mid, raw)
            if r is None:
                return Section("disabled", 0, None, "start postroom with --enable-spamassassin HOST:PORT")
            if r["Error"]:
                return Section("error", 0, r, r["Error"])
            return r

        async def link() -> Any:
            if not links:
                return Section("disabled", 0, None, "link check not asked for")
            return await self.links(mid, raw, follow=follow)

        async def auth() -> Any:
            r = await self.auth(mid, raw, envelope)
            if r["Offline"]:
                return Section("not checked", 0, r, "DNS unreachable: SPF, DKIM and DMARC not checked")
            return r

        sections = dict(
            zip(
                ("HTML", "Links", "Spam", "Authentication", "Lint"),
                await asyncio.gather(
                    self.timed(html),
                    self.timed(link),
                    self.timed(spam),
                    self.timed(auth),
                    self.timed(lambda: self.lint(mid, raw)),
                ),
                strict=True,
            )
        )

        def done(name: str) -> Any:
            sec = sections[name]
            return sec.result if sec.state == "done" else None

        findings = list(done("Lint") or [])
        findings += [
            f.to_json() for f in findings_from_checks(done("Authentication"), done("Spam"), done("Links"))
        ]
        findings.sort(key=lambda f: SEVERITIES.index(f["Severity"]))
        counts = {sev: sum(1 for f in findings if f["Severity"] == sev) for sev in SEVERITIES}
        html_r, spam_r, auth_r, links_r = done("HTML"), done("Spam"), done("Authentication"), done("Links")
        summary = {
            "Errors": counts["error"],
            "Warnings": counts["warning"],
            "Infos": counts["info"],
            "HTMLSupported": round(html_r["Total"]["Supported"], 1) if html_r else None,
            "SpamScore": spam_r["Score"] if spam_r else None,
            "IsSpam": spam_r["IsSpam"] if spam_r else None,
            "LinkErrors": links_r["Errors"] if links_r else None,
            "SPF": auth_r["SPF"]["Result"] if auth_r else NOT_CHECKED,
            "DKIM": ",".join(d["Result"] for d in auth_r["DKIM"]) or "none" if auth_r else NOT_CHECKED,
            "DMARC": auth_r["DMARC"]["Result"] if auth_r else NOT_CHECKED,
        }
        return {
            "ID": mid,
            "Summary": summary,
            "Findings": findings,
            "Sections": {name: sec.to_json() for name, sec in sections.items()},
        }

    async def timed(self, run: Callable[[], Awaitable[Any]]) -> Section:
        """Run one check for the combined report, turning its failure into a section state."""
        t0 = time.perf_counter()
        try:
            result = await run()
        except Exception as e:  # one check failing never fails the report
            return Section("error", (time.perf_counter() - t0) * 1000, None, str(e) or type(e).__name__)
        ms = (time.perf_counter() - t0) * 1000
        if isinstance(result, Section):
            result.ms = ms
            return result
        return Section("done", ms, result)
