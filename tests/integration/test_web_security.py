"""Cross-site protection, odd input and HTTP timeouts, over real HTTP (aiohttp's client).

Issue 14 items 3, 7 (HTTP) and 8: a page on another origin must not read or change
mail (Origin check, Host allow-list against DNS rebinding, no "simple" POST), CORS only
with --api-cors; odd bodies and paths are 4xx, never 500; no bulk call widens to "all".
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.helpers import RunningServer, running_server

Session = aiohttp.ClientSession


def run(s: RunningServer, fn: Callable[[Session, str], Awaitable[Any]]) -> Any:
    """Run ``fn(session, base_url)`` with a fresh client session in the test thread."""

    async def main() -> Any:
        async with aiohttp.ClientSession() as session:
            return await fn(session, s.http_url)

    return asyncio.run(main())


async def send(session: Session, base: str, subject: str = "hello", **headers: str) -> aiohttp.ClientResponse:
    body = {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": subject}
    async with session.post(base + "/api/v1/send", json=body, headers=headers) as r:
        await r.read()
        return r


async def count(session: Session, base: str) -> int:
    async with session.get(base + "/api/v1/messages") as r:
        assert r.status == 200
        return int((await r.json())["messages_count"])


async def ids(session: Session, base: str) -> list[str]:
    async with session.get(base + "/api/v1/messages") as r:
        return [m["ID"] for m in (await r.json())["messages"]]


@pytest.fixture(scope="module")
def server() -> Any:
    with running_server(smtp="off", pop3="off", imap="off") as s:
        yield s


# -- Host allow-list (DNS rebinding) ---------------------------------------------------------


def test_foreign_host_is_refused_with_a_clear_answer(server: RunningServer) -> None:
    async def fn(session: Session, base: str) -> None:
        async with session.get(base + "/api/v1/messages", headers={"Host": "evil.example:8025"}) as r:
            assert r.status == 403
            text = await r.text()
            assert "evil.example" in text and "--allowed-hosts" in text
        for host in ("rebind.attacker.test", "a:b:c", "127.0.0.1.nip.io", "xn--e1a.example", "é"):
            async with session.get(base + "/", headers={"Host": host}) as r:
                assert r.status == 403, host
        for host in (
            "localhost:8025",
            "127.0.0.1",
            "[::1]:1",
            "mailpit:8025",
            "app.localhost",
            "10.1.2.3:80",
        ):
            async with session.get(base + "/api/v1/messages", headers={"Host": host}) as r:
                assert r.status == 200, host

    run(server, fn)


def test_allowed_hosts_flag_and_wildcards() -> None:
    with running_server(
        smtp="off", pop3="off", imap="off", allowed_hosts="mail.example.com, .corp.example"
    ) as s:

        async def fn(session: Session, base: str) -> None:
            for host, status in [
                ("mail.example.com", 200),
                ("MAIL.example.com.:8025", 200),
                ("a.b.corp.example", 200),
                ("corp.example", 200),
                ("other.example.com", 403),
                ("xcorp.example", 403),
            ]:
                async with session.get(base + "/livez", headers={"Host": host}) as r:
                    assert r.status == status, host

        run(s, fn)
    with running_server(smtp="off", pop3="off", imap="off", allowed_hosts="*") as s:

        async def any_host(session: Session, base: str) -> None:
            async with session.get(base + "/livez", headers={"Host": "anything.example"}) as r:
                assert r.status == 200

        run(s, any_host)


# -- Origin check and simple requests ------------------------------------------------------------


def test_cross_origin_changes_are_refused(server: RunningServer) -> None:
    async def fn(session: Session, base: str) -> None:
        before = await count(session, base)
        r = await send(session, base, "from evil", Origin="http://evil.example")
        assert r.status == 403
        assert await count(session, base) == before  # nothing was created
        r = await send(session, base, "same origin", Origin=base)
        assert r.status == 200
        r = await send(session, base, "loopback alias", Origin=base.replace("127.0.0.1", "localhost"))
        assert r.status == 200
        assert await count(session, base) == before + 2
        for method, path, body in [
            ("DELETE", "/api/v1/messages", {}),
            ("PUT", "/api/v1/messages", {"Read": True}),
            ("DELETE", "/api/v1/search?query=subject:same", None),
            ("PUT", "/api/v1/tags", {"IDs": await ids(session, base), "Tags": ["x"]}),
        ]:
            for origin in (
                "http://evil.example",
                "null",
                base.replace("127.0.0.1", "evil.example"),
                "http://[::1",  # not even a URL: refused, not a 500
                "file://",
            ):
                async with session.request(method, base + path, json=body, headers={"Origin": origin}) as r:
                    assert r.status == 403, (method, path, origin)
        assert await count(session, base) == before + 2
        async with session.get(base + "/api/v1/messages", headers={"Origin": "http://evil.example"}) as r:
            # a read is answered, but without CORS headers the browser hides it from the page
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers

    run(server, fn)


def test_simple_post_is_refused(server: RunningServer) -> None:
    """The ``text/plain`` fetch() of issue 14 item 3 created mail; it must not."""
    payload = b'{"From":{"Email":"a@example.com"},"To":[{"Email":"b@example.com"}],"Subject":"simple"}'

    async def fn(session: Session, base: str) -> None:
        before = await count(session, base)
        for ctype in (
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            None,
        ):
            headers = {"Content-Type": ctype} if ctype else {}
            async with session.post(
                base + "/api/v1/send", data=payload, headers=headers, skip_auto_headers=["Content-Type"]
            ) as r:
                assert r.status == 415, ctype
                assert "application/json" in await r.text()
        assert await count(session, base) == before
        # a body-less POST may send the custom header instead (it forces a preflight)
        async with session.post(
            base + "/api/v1/send",
            data=payload,
            headers={"Content-Type": "text/plain", "X-Postroom-Request": "1"},
        ) as r:
            assert r.status == 200
        assert await count(session, base) == before + 1

    run(server, fn)


def test_websocket_origin(server: RunningServer) -> None:
    async def fn(session: Session, base: str) -> None:
        url = base + "/api/events"
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await session.ws_connect(url, origin="http://evil.example")
        assert e.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url, headers={"Host": "evil.example"})
        for origin in (base, None):  # the UI, and clients that are not browsers
            ws = await session.ws_connect(url, origin=origin)
            await send(session, base, "ws check")
            while True:
                msg = await asyncio.wait_for(ws.receive_json(), 10)
                if msg["Type"] == "new":
                    assert msg["Data"]["Subject"] == "ws check"
                    break
            await ws.close()

    run(server, fn)


def test_cors_only_when_configured() -> None:
    app_origin = "http://app.example:3000"
    preflight = {
        "Origin": app_origin,
        "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "content-type",
    }
    with running_server(smtp="off", pop3="off", imap="off") as s:

        async def off(session: Session, base: str) -> None:
            async with session.options(base + "/api/v1/messages", headers=preflight) as r:
                assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers

        run(s, off)
    with running_server(
        smtp="off", pop3="off", imap="off", api_cors="app.example:3000, https://b.example"
    ) as s:

        async def on(session: Session, base: str) -> None:
            async with session.options(base + "/api/v1/messages", headers=preflight) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Origin"] == app_origin
                assert "DELETE" in r.headers["Access-Control-Allow-Methods"]
                assert r.headers["Access-Control-Allow-Headers"] == "content-type"
            r2 = await send(session, base, "cors", Origin=app_origin)
            assert r2.status == 200 and r2.headers["Access-Control-Allow-Origin"] == app_origin
            async with session.get(base + "/api/v1/messages", headers={"Origin": "https://b.example"}) as r:
                assert r.headers["Access-Control-Allow-Origin"] == "https://b.example"
            r3 = await send(session, base, "other", Origin="http://app.example:3001")  # port differs
            assert r3.status == 403
            ws = await session.ws_connect(base + "/api/events", origin=app_origin)
            await ws.close()

        run(s, on)


# -- odd input: 4xx, never 500, never "all" -------------------------------------------------------


def test_deep_json_and_nul_paths(server: RunningServer) -> None:
    async def fn(session: Session, base: str) -> None:
        for path, method in [
            ("/api/v1/messages", "PUT"),
            ("/api/v1/messages", "DELETE"),
            ("/api/v1/send", "POST"),
        ]:
            for n in (100_000, 400_000):  # parsed on the loop, and in a thread
                async with session.request(
                    method, base + path, data=b"[" * n, headers={"Content-Type": "application/json"}
                ) as r:
                    assert r.status == 400, (method, path, n, await r.text())
        for path in ("/app.js%00.html", "/%00", "/x%01y.js", "/view/%00.html"):
            async with session.get(base + path) as r:
                assert r.status == 404, path

    run(server, fn)


def test_bulk_calls_never_widen_to_all(server: RunningServer) -> None:
    async def fn(session: Session, base: str) -> None:
        for i in range(3):
            assert (await send(session, base, f"keep {i}")).status == 200
        before = await count(session, base)
        for query in ("%00", "a%00b", "tz:UTC", "%20", "%01"):
            async with session.delete(base + "/api/v1/search?query=" + query) as r:
                assert r.status == 400, (query, await r.text())
        assert await count(session, base) == before
        async with session.put(base + "/api/v1/messages", json={"Read": True, "Search": "tz:UTC"}) as r:
            assert r.status == 400
        # unknown or doubled keys are refused, never read as "no IDs: every message"
        victim = (await ids(session, base))[0]
        for body in ({"Id": [victim]}, {"IDs": [victim], "ids": [victim]}, {"messages": [victim]}):
            async with session.delete(base + "/api/v1/messages", json=body) as r:
                assert r.status == 400, body
        assert await count(session, base) == before
        # Mailpit's decoder is case-insensitive: {"ids": [X]} deletes X only
        async with session.delete(base + "/api/v1/messages", json={"ids": [victim]}) as r:
            assert r.status == 200
        assert await count(session, base) == before - 1 and victim not in await ids(session, base)
        one = (await ids(session, base))[0]
        async with session.put(base + "/api/v1/messages", json={"ids": [one], "read": True}) as r:
            assert r.status == 200
        async with session.get(base + "/api/v1/messages") as r:
            read = {m["ID"]: m["Read"] for m in (await r.json())["messages"]}
        assert read[one] is True and not any(v for k, v in read.items() if k != one)

    run(server, fn)


# -- slowloris: header and body timeouts ----------------------------------------------------------


def _read_all(sock: socket.socket, limit: float) -> bytes:
    sock.settimeout(limit)
    out = b""
    try:
        while chunk := sock.recv(4096):
            out += chunk
    except TimeoutError:
        pass
    return out


def test_slow_headers_and_body_are_cut() -> None:
    with running_server(
        smtp="off", pop3="off", imap="off", http_header_timeout=0.5, http_body_timeout=0.5
    ) as s:
        host, port = s.addr("http")
        with socket.create_connection((host, port)) as c:
            c.sendall(b"GET /livez HTTP/1.1\r\n")
            start = time.monotonic()
            c.sendall(b"Host: 127.0.0.1\r\n")  # ... and never the blank line
            reply = _read_all(c, 10)
            assert reply.startswith(b"HTTP/1.1 408"), reply
            assert b"--http-header-timeout" in reply
            assert time.monotonic() - start < 8  # cut, not left open
        with socket.create_connection((host, port)) as c:
            c.sendall(
                b"PUT /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            reply = _read_all(c, 10)
            assert reply.startswith(b"HTTP/1.1 408"), reply
            assert b"--http-body-timeout" in reply
        with socket.create_connection((host, port)) as c:  # a prompt request is unaffected
            c.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert _read_all(c, 10).startswith(b"HTTP/1.1 200")
