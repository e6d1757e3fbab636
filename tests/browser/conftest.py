"""Fixtures for the browser tests: one headless Debian Chromium per session, a fresh
postroom per test, and a page already showing the UI.

The tests drive the real server (SMTP in, HTTP and WebSocket out). ``POSTROOM_UI_MOCK=1``
swaps in ``tests/browser/mockapi.py`` for UI work while the API is changing.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, require_tool, running_server

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
USE_MOCK = os.environ.get("POSTROOM_UI_MOCK", "") not in ("", "0")
SAVE_SCREENSHOTS = os.environ.get("POSTROOM_SCREENSHOTS", "") not in ("", "0")


@dataclass
class UIServer:
    """What a browser test needs from a server: its URL and a way to deliver mail."""

    url: str
    deliver: Callable[[EmailMessage], None]
    # Wait until the background indexer has caught up (snippets, attachment counts, full text).
    settle: Callable[[], None] = lambda: None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the HTTP API directly (to check what the UI did)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        ctype = resp.headers.get("Content-Type", "")
        return json.loads(raw) if "json" in ctype else raw

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return int(e.code)


# Playwright's sync API keeps an event loop running in this thread: end it with the module,
# or tests after it that use asyncio.run() fail.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    path = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def ui_server() -> Iterator[UIServer]:
    if USE_MOCK:
        yield from _mock_server()
        return
    with running_server() as srv:
        if "http" not in srv.app.addresses or "smtp" not in srv.app.addresses:
            pytest.skip("this build has no HTTP or SMTP listener yet")
        port = srv.smtp_port

        def deliver(msg: EmailMessage) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                smtp.send_message(msg)

        def settle() -> None:
            wait = getattr(srv.app.store, "wait_indexed", None)
            if wait is not None:
                assert wait(30), "the indexer did not catch up within 30 s"

        yield UIServer(srv.http_url, deliver, settle)


def _mock_server() -> Iterator[UIServer]:
    from aiohttp import web

    from tests.browser.mockapi import build_app

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app())
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}"

    def deliver(msg: EmailMessage) -> None:
        req = urllib.request.Request(url + "/mock/inject", data=bytes(msg), method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    try:
        yield UIServer(url, deliver)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def open_ui(chromium: Any, ui_server: UIServer) -> Iterator[Callable[..., Any]]:
    """open_ui(width=1400, height=860, color_scheme="light", ...) -> a Page showing the UI, ready.

    Every page records dialogs and console errors; a test fails if the UI threw.
    """
    contexts: list[Any] = []
    pages: list[Any] = []

    def open_page(
        width: int = 1400,
        height: int = 860,
        color_scheme: str = "light",
        hash: str = "",
        init_script: str = "",
    ) -> Any:
        ctx = chromium.new_context(
            viewport={"width": width, "height": height}, color_scheme=color_scheme, accept_downloads=True
        )
        contexts.append(ctx)
        page = ctx.new_page()
        page.dialogs = []  # type: ignore[attr-defined]
        page.errors = []  # type: ignore[attr-defined]
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        if init_script:
            page.add_init_script(init_script)
        page.goto(ui_server.url + "/" + (f"#{hash}" if hash else ""))
        page.wait_for_selector("body[data-ready]")
        page.wait_for_selector("#conn[data-state=open]")
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        assert page.errors == [], f"the UI threw: {page.errors}"
    for ctx in contexts:
        ctx.close()


def shot(page: Any, name: str) -> None:
    """Screenshot the page: into docs/screenshots/NAME.png with POSTROOM_SCREENSHOTS=1
    (to refresh the committed pictures), else into a temporary directory, so that an
    ordinary test run does not rewrite tracked files (times in the list always differ)."""
    folder = SCREENSHOTS if SAVE_SCREENSHOTS else Path(tempfile.gettempdir()) / "postroom-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 1000, f"empty screenshot {path}"
