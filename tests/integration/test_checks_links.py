"""Link check against a local aiohttp server: 200, 404, redirects, timeout, private ranges."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiohttp import web

from postroom.checks.links import LinkChecker, extract_links, is_public
from tests.helpers import running_server
from tests.integration._api_client import Api
from tests.integration.test_checks_html import validate


def target_app(hits: list[str]) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        return web.Response(text="fine")

    async def missing(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        return web.Response(status=404)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def no_head(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        if request.method == "HEAD":
            return web.Response(status=405)
        return web.Response(text="get only")

    app = web.Application()
    app.router.add_route("*", "/ok", ok)
    app.router.add_route("*", "/missing", missing)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_route("*", "/loop", loop)
    app.router.add_route("*", "/slow", slow)
    app.router.add_route("*", "/no-head", no_head)
    return app


@contextmanager
def serving(hits: list[str]) -> Iterator[int]:
    """The target app on 127.0.0.1, port 0, in its own thread and loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    runner = web.AppRunner(target_app(hits), shutdown_timeout=0.1)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])

    def run() -> None:
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(10)
    try:
        yield port[0]
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


def test_statuses_redirects_timeout_and_head_fallback() -> None:
    hits: list[str] = []
    with serving(hits) as port:
        base = f"http://127.0.0.1:{port}"
        urls = [f"{base}/ok", f"{base}/missing", f"{base}/redirect", f"{base}/slow", f"{base}/no-head"]

        async def go() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
            lc = LinkChecker(allow_private=True, timeout=0.5, concurrency=2)
            plain = await lc.check(urls)
            followed = await lc.check([f"{base}/redirect", f"{base}/loop"], follow=True)
            again = await lc.check([f"{base}/ok"])
            return plain, followed, again

        plain, followed, again = asyncio.run(go())
    validate("LinkCheckResponse", plain)
    by = {link["URL"].rsplit("/", 1)[1]: link for link in plain["Links"]}  # type: ignore[attr-defined]
    assert (by["ok"]["StatusCode"], by["ok"]["Status"]) == (200, "OK")
    assert (by["missing"]["StatusCode"], by["missing"]["Status"]) == (404, "Not Found")
    assert (by["redirect"]["StatusCode"], by["redirect"]["Status"]) == (302, "Found")
    assert by["slow"]["StatusCode"] == 0 and "timed out" in by["slow"]["Status"]
    assert by["no-head"]["StatusCode"] == 200  # HEAD 405, then GET
    assert plain["Errors"] == 2  # 404 and the timeout
    assert hits.count("HEAD /missing") == 1 and hits.count("GET /missing") == 1
    assert "GET /no-head" in hits
    f = {link["URL"].rsplit("/", 1)[1]: link for link in followed["Links"]}  # type: ignore[attr-defined]
    assert f["redirect"]["StatusCode"] == 200  # followed to /ok
    assert f["loop"]["StatusCode"] == 0 and "redirects" in f["loop"]["Status"]
    assert again["Links"][0]["StatusCode"] == 200  # type: ignore[index]
    assert hits.count("HEAD /ok") == 2  # /ok once plain, once at the end of the redirect; then cached


def test_private_addresses_are_refused_by_default_through_the_api() -> None:
    hits: list[str] = []
    with serving(hits) as port:
        html = (
            f'<a href="http://127.0.0.1:{port}/ok">ip</a> <img src="http://localhost:{port}/ok">'
            f'<a href="mailto:x@example.org">mail</a>'
        )
        with running_server() as s:
            api = Api(s)
            mid = api.send(From={"Email": "a@example.com"}, To=[{"Email": "b@example.com"}], HTML=html)
            body = api.get(f"/api/v1/message/{mid}/link-check").json()
            validate("LinkCheckResponse", body)
            assert body["Errors"] == 2 and len(body["Links"]) == 2
            assert all(x["StatusCode"] == 0 and "private" in x["Status"] for x in body["Links"])
            # "localhost" is a name: it was refused for what it resolves to.
            assert "resolves to" in body["Links"][1]["Status"]
        assert hits == []  # nothing reached the server
        with running_server(link_check_private=True) as s:
            api = Api(s)
            mid = api.send(From={"Email": "a@example.com"}, To=[{"Email": "b@example.com"}], HTML=html)
            body = api.get(f"/api/v1/message/{mid}/link-check?follow=true").json()
            assert body["Errors"] == 0 and [x["StatusCode"] for x in body["Links"]] == [200, 200]


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("not-an-ip", False),
    ],
)
def test_is_public(ip: str, public: bool) -> None:
    assert is_public(ip) is public


def test_malformed_urls_are_a_status_not_a_crash() -> None:
    bad = ["http://[::1/x", "http://a.example:99999/", "http:///nohost", "http://exa mple.com/"]
    body = asyncio.run(LinkChecker().check(bad))
    validate("LinkCheckResponse", body)
    assert body["Errors"] == 4 and all(x["StatusCode"] == 0 for x in body["Links"])
    assert [x["Status"].startswith("invalid URL") for x in body["Links"]] == [True, True, True, False]


def test_extract_links_from_html_and_text() -> None:
    html = (
        '<a href="https://a.example/x">a</a><img src="http://b.example/i.png">'
        '<a href="mailto:m@example.org">m</a><a href="#top">t</a><a href="https://a.example/x">dup</a>'
    )
    text = "See https://c.example/page. Or (https://d.example/q?x=1), ftp://no.example"
    assert extract_links(html, text) == [
        "https://a.example/x",
        "http://b.example/i.png",
        "https://c.example/page",
        "https://d.example/q?x=1",
    ]
