"""Mailpit's UI settings in postroom's web UI: --label in the page title, and
--hide-delete-all-button (both read from /api/v2/webui)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import running_server

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect


def test_label_titles_the_page_and_the_delete_all_button_can_be_hidden(chromium: Any) -> None:
    with running_server(label="staging mail", hide_delete_all_button=True) as s:
        ctx = chromium.new_context()
        try:
            page = ctx.new_page()
            page.goto(s.http_url + "/")
            page.wait_for_selector("body[data-ready]", timeout=20_000)
            expect(page).to_have_title("staging mail - postroom", timeout=20_000)
            assert page.locator("#delete-all-btn").is_hidden()
        finally:
            ctx.close()
    with running_server() as s:  # by default the button is there and the title plain
        ctx = chromium.new_context()
        try:
            page = ctx.new_page()
            page.goto(s.http_url + "/")
            page.wait_for_selector("body[data-ready]", timeout=20_000)
            assert page.title() == "postroom" and page.locator("#delete-all-btn").is_visible()
        finally:
            ctx.close()
