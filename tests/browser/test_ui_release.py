"""Release from the web UI in a real Chromium reaches the upstream server, and the delivery
log shows each copy's outcome (a second postroom is the upstream, refusing one address)."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM_ARGS
from tests.helpers import require_tool, running_server

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect

MSG = b"From: Shop <shop@example.org>\r\nTo: ann@example.org\r\nSubject: Your receipt\r\n\r\nThanks!\r\n"


def test_release_button_sends_through_the_relay(tmp_path: Path) -> None:
    path = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with running_server(
        chaos="rcpt:550 5.1.1 no such user:rcpt=*@bounce.example", pop3="off", imap="off", http="off"
    ) as up:
        relay = tmp_path / "relay.yaml"
        relay.write_text(f"host: 127.0.0.1\nport: {up.smtp_port}\n")
        with running_server(pop3="off", imap="off", smtp_relay_config=str(relay)) as srv:
            with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
                c.sendmail("shop@example.org", ["ann@example.org"], MSG)
            srv.app.store.wait_indexed(30)
            with sync_api.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(srv.http_url + "/")
                page.get_by_text("Your receipt").first.click()
                tab = page.locator("#tab-release")
                ex(tab).to_be_visible(timeout=10_000)
                tab.click()
                field = page.locator(".release-to")
                ex(field).to_have_value("ann@example.org")  # the envelope recipients
                field.fill("ann@example.net, gone@bounce.example")
                page.get_by_role("button", name="Release").click()
                ex(page.locator(".release-status")).to_contain_text("Queued for 2 recipients")
                ex(page.locator('tr.delivery[data-to="ann@example.net"] .ck-badge')).to_have_text(
                    "sent", timeout=15_000
                )
                ex(page.locator('tr.delivery[data-to="gone@bounce.example"] .ck-badge')).to_have_text(
                    "failed", timeout=15_000
                )
                ex(page.locator('tr.delivery[data-to="gone@bounce.example"] .reply')).to_contain_text("5.1.1")
                browser.close()
            assert errors == []
            assert up.app.store.list_messages(mailbox="ann@example.net").total == 1
            assert up.app.store.list_messages(mailbox="gone@bounce.example").total == 0


def test_no_release_tab_without_a_relay() -> None:
    path = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with running_server(pop3="off", imap="off") as srv:
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
            c.sendmail("shop@example.org", ["ann@example.org"], MSG)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(srv.http_url + "/")
            page.get_by_text("Your receipt").first.click()
            ex(page.locator("#tab-text")).to_be_visible(timeout=10_000)
            ex(page.locator("#tab-release")).to_have_count(0)
            browser.close()
