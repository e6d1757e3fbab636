"""The sidebar's "Fetched accounts" panel in a real Chromium, for a postroom fetching a real
Dovecot inside `serve`: each account's state and error, and "Sync now" bringing new mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM_ARGS
from tests.helpers import require_tool, running_dovecot, running_server
from tests.interop.test_fetch_dovecot import account, local_folder, put, remote

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect


def test_fetch_panel_shows_accounts_and_syncs_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("BOB_PW", "secret")
    monkeypatch.setenv("WRONG_PW", "wrong")
    with running_dovecot() as (imap_port, pop3_port):
        config = tmp_path / "fetch.toml"
        config.write_text(
            account("bob", pop3_port, "bob@example.org", "BOB_PW", protocol="pop3")
            + account("broken", imap_port, "alice@example.org", "WRONG_PW")
        )
        settings = {"pop3": "off", "fetch_config": str(config), "fetch_state": str(tmp_path / "s.sqlite"),
                    "fetch_interval": 600.0}  # fmt: skip
        with running_server(**settings) as srv, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.http_url + "/")
            panel = page.locator("#sidebar-fetch")
            ex(panel).to_be_visible(timeout=15_000)
            bob = panel.locator('[data-account="bob"]')
            ex(bob.locator(".fetch-state")).to_contain_text("polling", timeout=15_000)
            broken = panel.locator('[data-account="broken"]')
            ex(broken.locator(".fetch-error")).to_contain_text("refused", timeout=15_000)
            b = remote(imap_port, "bob@example.org")
            put(b, "INBOX", "fresh for bob")
            b.logout()
            bob.get_by_role("button", name="Sync now").click()
            ex(bob.locator(".fetch-total")).to_contain_text("1 fetched", timeout=15_000)
            assert list(local_folder(srv.addr("imap")[1], "bob@example.org", "INBOX")) == ["fresh for bob"]
            browser.close()
        assert errors == []
