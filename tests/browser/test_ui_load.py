"""The UI's first load asks for what the first page needs first (issue 21's speed figures:
first page of All, of a mailbox, of a deep page).

Every module the page imports is preloaded by index.html (none waits for app.js to be
parsed), the listing is the first API request, and the server's settings, which three parts
of the UI read (the SMTP address, the Spam tab, the Release tab), are asked once, after it.
No Intl formatter (the first costs 15-90 ms) is made before the listing is asked for, and
the listing itself is asked for by boot.js, a classic script in the head, while the modules
load; app.js takes that answer over.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import USE_MOCK, UIServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(USE_MOCK, reason="the mock API serves no settings and no fetch accounts"),
]
pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")


def _mail(subject: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.com>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Hello there.")
    return msg


def _path(url: str) -> str:
    u = urlsplit(url)
    return u.path + (f"?{u.query}" if u.query else "")


def _load(chromium: Any, ui_server: UIServer, fragment: str = "") -> tuple[list[str], list[str]]:
    """Open the UI; the paths of its API requests and of its scripts, in request order."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 860})
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        seen: list[str] = []
        page.on("request", lambda r: seen.append(_path(r.url)))
        page.goto(ui_server.url + "/" + fragment)
        page.wait_for_selector("body[data-ready] #list li.row")
        page.wait_for_selector("#conn[data-state=open]")
        page.wait_for_timeout(300)  # what the page asks for once it is ready
        assert errors == [], errors
        api = [p for p in seen if p.startswith("/api/")]
        scripts = [p for p in seen if p.endswith(".js")]
        return api, scripts
    finally:
        ctx.close()


def test_every_module_is_preloaded(chromium: Any, ui_server: UIServer) -> None:
    html = ui_server.api("GET", "/").decode()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', html))
    entry = re.findall(r'<script type="module" src="([^"]+)">', html)
    assert entry == ["app.js"]
    ui_server.deliver(_mail("Hello", "alice@example.org"))
    _, scripts = _load(chromium, ui_server)
    assert scripts, "no script was loaded"
    classic = set(re.findall(r'<script src="([^"]+)"></script>', html))
    assert classic == {"boot.js"}  # asks for the first page while the modules load
    late = [s for s in scripts if s.lstrip("/") not in preloaded | classic | {"app.js"}]
    # a module found only by parsing another one costs a round trip before the list is asked for
    assert late == [], f"imported but not preloaded by index.html: {late}"


@pytest.mark.parametrize("fragment", ["", "#mailbox=bob%40example.org"])
def test_the_listing_is_the_first_request_and_settings_are_asked_once(
    chromium: Any, ui_server: UIServer, fragment: str
) -> None:
    ui_server.deliver(_mail("Hello Alice", "alice@example.org"))
    ui_server.deliver(_mail("Hello Bob", "bob@example.org"))
    ui_server.settle()  # their "new" events are out before the page connects
    api, _ = _load(chromium, ui_server, fragment)
    assert api, "the UI asked the API for nothing"
    first = api[0]
    assert first.startswith("/api/v2/messages?"), f"asked first for {first}, not the list: {api}"
    if fragment:
        assert "mailbox=bob%40example.org" in first
    settings = [p for p in api if re.match(r"/api/v[12]/webui", p)]
    assert settings == ["/api/v2/webui"], f"the server's settings asked {len(settings)} times: {api}"
    # the optional parts and the sidebar still ask, after the list
    assert api.index("/api/v2/fetch/accounts") > 0 and api.index("/api/v2/mailboxes") > 0


# Logs, in order, each fetch(), each Intl formatter made (the page's first one costs 15-90 ms
# of ICU set-up in Chromium), and "main" when app.js's main() starts (its first step reads
# the stored theme).
ORDER_PROBE = """
window.__order = [];
const realFetch = window.fetch;
window.fetch = function (input, ...rest) {
  window.__order.push("fetch " + new URL(String(input), location.href).pathname);
  return realFetch.call(this, input, ...rest);
};
for (const name of ["DateTimeFormat", "NumberFormat"]) {
  const Real = Intl[name];
  Intl[name] = new Proxy(Real, {
    construct(target, args) { window.__order.push("Intl." + name); return Reflect.construct(target, args); },
  });
}const realGet = Storage.prototype.getItem;
Storage.prototype.getItem = function (key) {
  if (key === "postroom.theme" && !window.__order.includes("main")) window.__order.push("main");
  return realGet.call(this, key);
};
"""


def _probed_load(chromium: Any, ui_server: UIServer, fragment: str = "") -> tuple[list[str], int]:
    """Load the UI with ORDER_PROBE: (what happened in order, rows shown once ready)."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 860})
    try:
        page = ctx.new_page()
        page.add_init_script(ORDER_PROBE)
        page.goto(ui_server.url + "/" + fragment)
        page.wait_for_selector("body[data-ready] #list li.row")
        order: list[str] = page.evaluate("window.__order")
        return order, page.locator("#list li.row").count()
    finally:
        ctx.close()


def test_no_formatter_is_made_before_the_list_is_asked_for(chromium: Any, ui_server: UIServer) -> None:
    ui_server.deliver(_mail("Hello", "alice@example.org"))
    ui_server.settle()
    order, _ = _probed_load(chromium, ui_server)
    assert "fetch /api/v2/messages" in order, order
    listing = order.index("fetch /api/v2/messages")
    made = [i for i, what in enumerate(order) if what.startswith("Intl.")]
    assert made, f"no formatter was made at all: {order}"
    assert min(made) > listing, f"a formatter was made before the list was asked for: {order}"


@pytest.mark.parametrize("fragment", ["", "#mailbox=bob%40example.org"])
def test_the_first_page_is_asked_for_before_the_modules_run_and_only_once(
    chromium: Any, ui_server: UIServer, fragment: str
) -> None:
    """boot.js asks for the first page while the modules load; app.js takes that answer
    (one listing request, made before main() runs), and shows it."""
    ui_server.deliver(_mail("Hello Bob", "bob@example.org"))
    ui_server.settle()
    order, rows = _probed_load(chromium, ui_server, fragment)
    assert rows == 1
    listings = [i for i, what in enumerate(order) if what == "fetch /api/v2/messages"]
    assert listings and "main" in order, order
    assert listings[0] < order.index("main"), f"the first page was asked for by app.js: {order}"
    # the sidebar's unread probe (limit=1) is the only other listing
    assert len(listings) <= 2, order
