"""The checks' tabs in a real Chromium: HTML Check, Link Check, Spam (real spamd),
Authentication (local DNS server) and the Checks summary."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_ARGS, shot
from tests.dns_zone import dns_server, txt
from tests.helpers import require_tool, running_server
from tests.integration.test_checks_auth import DKIM_TXT, _signed
from tests.integration.test_checks_html import FLEX
from tests.integration.test_checks_links import serving
from tests.integration.test_checks_spam import GTUBE, spamd  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect


@pytest.fixture(scope="module")
def page(spamd: tuple[str, int]) -> Iterator[tuple[Any, int]]:  # noqa: F811
    path = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    zones = {
        ("local.test", "TXT"): [txt("v=spf1 ip4:127.0.0.1 -all")],
        ("sel._domainkey.local.test", "TXT"): DKIM_TXT,
        ("_dmarc.local.test", "TXT"): [txt("v=DMARC1; p=reject")],
    }
    hits: list[str] = []
    with (
        dns_server(zones) as (dhost, dport),
        serving(hits) as web_port,
        running_server(
            enable_spamassassin=f"{spamd[0]}:{spamd[1]}",
            checks_dns=f"{dhost}:{dport}",
            link_check_private=True,
        ) as srv,
    ):
        html_mail = FLEX.replace(b"https://shop.example/sale", f"http://127.0.0.1:{web_port}/ok".encode())
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
            c.sendmail("bounce@local.test", ["ann@example.org"], html_mail)
            body = b"GTUBE test\r\n\r\n" + GTUBE.encode() + b"\r\n"
            c.sendmail(
                "bounce@local.test",
                ["ann@example.org"],
                _signed("news@local.test", "local.test").replace(b"Hello there.\r\n", body),
            )
            c.sendmail("bounce@local.test", ["ann@example.org"], _signed("news@local.test", "local.test"))
        srv.app.store.wait_indexed(30)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            p = ctx.new_page()
            p.errors = []  # type: ignore[attr-defined]
            p.on("pageerror", lambda e: p.errors.append(str(e)))
            p.goto(srv.http_url + "/")
            p.wait_for_selector("body[data-ready]")
            yield p, web_port
            assert p.errors == [], p.errors
            browser.close()


def open_message(p: Any, subject: str) -> None:
    p.locator("#list li.row", has_text=subject).first.click()
    ex(p.locator("#msg-subject")).to_have_text(subject)


def test_html_check_and_link_check_tabs(page: tuple[Any, int]) -> None:
    p, port = page
    open_message(p, "Flex newsletter")
    p.click("#tab-htmlcheck")
    warning = p.locator(".panel-htmlcheck details.ck-warning", has_text="display:flex")
    ex(warning).to_be_visible(timeout=20_000)
    warning.locator("summary").click()
    ex(warning.locator(".ck-clients")).to_contain_text("Outlook Windows")
    ex(p.locator(".panel-htmlcheck .ck-total")).to_contain_text("supported")
    shot(p, "checks-html")
    p.click("#tab-linkcheck")
    p.click("#ck-run-links")
    ex(p.locator(".panel-linkcheck .ck-link-table")).to_contain_text(f"http://127.0.0.1:{port}/ok")
    ex(p.locator(".panel-linkcheck .ck-link-table th").first).to_have_text("200")


def test_spam_tab_with_spamd(page: tuple[Any, int]) -> None:
    p, _ = page
    open_message(p, "Order")  # the GTUBE one is delivered before the clean one; both are "Order"
    rows = p.locator("#list li.row", has_text="Order")
    ex(rows).to_have_count(2)
    rows.nth(1).click()
    p.click("#tab-spam")
    ex(p.locator(".panel-spam .ck-spam")).to_contain_text("spam", timeout=20_000)
    ex(p.locator(".panel-spam .ck-rules")).to_contain_text("GTUBE")


def test_authentication_and_summary_tabs(page: tuple[Any, int]) -> None:
    p, _ = page
    p.locator("#list li.row", has_text="Order").first.click()
    p.click("#tab-auth")
    auth = p.locator(".panel-auth .ck-auth")
    rows = auth.locator("tr")
    ex(rows.nth(0)).to_contain_text("SPF", timeout=20_000)  # a shared 2-core machine: DKIM + DNS + lint
    ex(rows.nth(0)).to_contain_text("pass")
    ex(rows.nth(1)).to_contain_text("d=local.test")
    ex(rows.last).to_contain_text("DMARC")
    ex(rows.last).to_contain_text("pass")
    ex(p.locator(".panel-auth .ck-ar")).to_contain_text("spf=pass")
    p.click("#tab-checks")
    ex(p.locator(".panel-checks .ck-summary")).to_contain_text("pass / pass / pass")
    shot(p, "checks-summary")
