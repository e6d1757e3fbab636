"""Mailpit's UI settings in postroom's web UI: --label in the page title, and
--hide-delete-all-button (both read from /api/v2/webui)."""

from __future__ import annotations

from typing import Any

from tests.helpers import running_server


def test_label_titles_the_page_and_the_delete_all_button_can_be_hidden(chromium: Any) -> None:
    with running_server(label="staging mail", hide_delete_all_button=True) as s:
        ctx = chromium.new_context()
        try:
            page = ctx.new_page()
            page.goto(s.http_url + "/")
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=20_000)
            page.wait_for_function("document.title.includes('staging mail')", timeout=20_000)
            assert page.title() == "staging mail - postroom"
            assert page.locator("#delete-all-btn").is_hidden()
        finally:
            ctx.close()
    with running_server() as s:  # by default the button is there and the title plain
        ctx = chromium.new_context()
        try:
            page = ctx.new_page()
            page.goto(s.http_url + "/")
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=20_000)
            assert page.title() == "postroom" and page.locator("#delete-all-btn").is_visible()
        finally:
            ctx.close()
