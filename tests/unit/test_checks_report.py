"""The checks service: bounded caches, one computation for concurrent askers, no caching
of answers that depend on a passing outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from postroom.checks import report
from postroom.checks.report import PARSED_CACHE, Checker, CheckOptions

HTML = (
    b"From: a@example.org\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<p style='display:flex'>x</p>\r\n"
)


def test_caches_are_bounded_and_concurrent_askers_share_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = report.html_check

    def counting(html: str) -> dict[str, Any]:
        calls.append(html)
        return real(html)

    monkeypatch.setattr(report, "html_check", counting)

    async def go() -> None:
        c = Checker(cache_size=2)
        a, b = await asyncio.gather(c.html("m1", HTML), c.html("m1", HTML))
        assert a is b and len(calls) == 1
        for i in range(2, 5):
            await c.html(f"m{i}", HTML)
        assert len(c._lru("html").items) == 2
        assert len(c._lru("parsed").items) <= PARSED_CACHE
        await c.html("m1", HTML)  # evicted: computed again
        assert len(calls) == 5

    asyncio.run(go())


def test_outage_answers_are_not_cached() -> None:
    async def go() -> None:
        c = Checker(CheckOptions(spamd=("127.0.0.1", 9), spamd_timeout=2, dns_off=True))
        spam = await c.spam("m1", HTML)
        assert spam is not None and spam["Error"]
        assert c._lru("spam").items == {}
        auth = await c.auth("m1", HTML, None)
        assert auth["Offline"] is True and c._lru("auth").items == {}
        rep = await c.report("m1", HTML, None, links=False)
        assert rep["Sections"]["Spam"]["State"] == "error"
        assert rep["Sections"]["Authentication"]["State"] == "not checked"
        assert rep["Sections"]["HTML"]["State"] == "done"
        assert rep["Summary"]["SPF"] == "not checked"

    asyncio.run(go())
