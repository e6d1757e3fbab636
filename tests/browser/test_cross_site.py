"""A hostile page in a real Chromium (issue 14 item 3): it must not read mail or inject it.

A page served from another origin tries what the issue found working: open the events
WebSocket (to read every new message), ``fetch()`` a ``text/plain`` POST to
``/api/v1/send`` (no preflight), a JSON POST, and a read of the message list. Then a
DNS-rebinding page (``evil.test`` resolved to 127.0.0.1 by Chromium's resolver rules, so
the page and postroom share an origin) tries the API. All fail; the UI itself, opened
at postroom's own address, still lists new mail live and deletes it.
"""

from __future__ import annotations

import http.server
import json
import smtplib
import threading
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_ARGS
from tests.helpers import require_tool, running_server

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
ex = sync_api.expect

ATTACK = """<!doctype html><meta charset="utf-8"><title>attack</title><script>
window.results = (async () => {
  const target = "http://127.0.0.1:%(port)d";
  const out = {};
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(target.replace("http", "ws") + "/api/events");
    ws.onmessage = (e) => resolve("read: " + e.data);
    ws.onopen = () => setTimeout(() => resolve("open"), 1500);
    ws.onerror = () => resolve("refused");
  });
  const body = JSON.stringify({From: {Email: "evil@example.com"}, To: [{Email: "victim@example.org"}],
                               Subject: "injected", Text: "hi"});
  try {
    const r = await fetch(target + "/api/v1/send", {method: "POST", mode: "no-cors",
                                                    headers: {"Content-Type": "text/plain"}, body});
    out.simple = "sent (opaque " + r.type + ")";
  } catch (e) { out.simple = "error " + e; }
  try {
    const r = await fetch(target + "/api/v1/send", {method: "POST",
                                                    headers: {"Content-Type": "application/json"}, body});
    out.json = "status " + r.status;
  } catch (e) { out.json = "blocked"; }
  try {
    const r = await fetch(target + "/api/v1/messages");
    out.read = "read " + (await r.text()).slice(0, 80);
  } catch (e) { out.read = "blocked"; }
  return out;
})();
</script>"""


def _serve_attack_page(port: int) -> tuple[http.server.ThreadingHTTPServer, int]:
    page = (ATTACK % {"port": port}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, int(httpd.server_address[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = require_tool("chromium")
    # evil.test resolves to 127.0.0.1 in this browser: DNS rebinding without a DNS server.
    # Chromium's own Private Network Access checks are turned off: postroom must hold
    # without them (other browsers have none).
    args = [
        *CHROMIUM_ARGS,
        "--host-resolver-rules=MAP evil.test 127.0.0.1",
        "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
        "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks",
    ]
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=args)
        yield b
        b.close()


def _mail(port: int, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "victim@example.org"
    msg["Subject"] = subject
    msg.set_content("Your login code is 123456")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def _total(url: str) -> int:
    with urllib.request.urlopen(url + "/api/v1/messages", timeout=10) as r:
        return int(json.load(r)["total"])


def test_hostile_page_cannot_read_or_inject(browser: Any) -> None:
    with running_server(pop3="off", imap="off") as s:
        host, port = s.addr("http")
        httpd, attacker_port = _serve_attack_page(port)
        ctx = browser.new_context()
        try:
            # 1. a page on another origin (evil.test, another port)
            page = ctx.new_page()
            page.goto(f"http://evil.test:{attacker_port}/")
            page.wait_for_function("window.results !== undefined")
            # mail arrives while the page listens: its WebSocket must not see it
            _mail(s.smtp_port, "Login code")
            results = page.evaluate("window.results")
            assert results["ws"] == "refused", results
            assert results["simple"].startswith("sent")  # the browser sends it: postroom refuses it
            assert results["json"] == "blocked", results  # the preflight is refused
            assert results["read"] == "blocked", results  # no CORS header: the page cannot read
            assert _total(s.http_url) == 1  # only the SMTP message: nothing was injected

            # 2. DNS rebinding: the attacker's page was loaded from evil.test:PORT (Playwright
            # serves it here), then evil.test resolves to 127.0.0.1: its same-origin fetches
            # reach postroom, with Host: evil.test
            rebound = ctx.new_page()
            origin = f"http://evil.test:{port}"
            rebound.route(
                origin + "/", lambda route: route.fulfill(body="<p>hi</p>", content_type="text/html")
            )
            rebound.goto(origin + "/")
            answer = rebound.evaluate(
                "fetch('/api/v1/messages').then(async (r) => [r.status, await r.text()])"
            )
            assert answer[0] == 403 and "--allowed-hosts" in answer[1], answer
            reply = rebound.goto(origin + "/api/v1/messages")  # a top-level visit too
            assert reply is not None and reply.status == 403

            # 3. the UI at postroom's own address still works: live list, delete
            ui = ctx.new_page()
            errors: list[str] = []
            ui.on("pageerror", lambda e: errors.append(str(e)))
            ui.goto(f"http://{host}:{port}/")
            ui.wait_for_selector("body[data-ready]")
            ui.wait_for_selector("#conn[data-state=open]")  # its WebSocket is accepted
            _mail(s.smtp_port, "Arrives live")
            live = ui.locator("#list li.row", has_text="Arrives live")
            ex(live).to_have_count(1)
            live.click()
            ui.locator("#list").focus()
            ui.keyboard.press("Delete")
            ex(live).to_have_count(0)
            assert _total(s.http_url) == 1 and errors == []
        finally:
            ctx.close()
            httpd.shutdown()
