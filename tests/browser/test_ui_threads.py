"""Conversations in the web UI (real Chromium, real postroom): the list grouped by
conversation, opening one shows its newest message on the Thread tab with the replies
indented, a live reply updates the group, and `g` switches back to messages."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import pytest

from tests.browser.conftest import USE_MOCK, UIServer, shot

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect


def mail(subject: str, sender: str, to: str, msgid: str, parent: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{msgid}>"
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
        msg["References"] = f"<{parent}>"
    msg.set_content(f"{subject}\n")
    return msg


@pytest.fixture(autouse=True)
def _real_server_only() -> None:
    if USE_MOCK:
        pytest.skip("conversations need the real threads API")


def test_grouped_list_and_conversation_view(open_ui: Any, ui_server: UIServer) -> None:
    alice, bob = "Alice <alice@example.org>", "Bob <bob@example.org>"
    ui_server.deliver(mail("Offsite agenda", alice, "bob@example.org", "agenda-1@example.org"))
    ui_server.deliver(
        mail("Re: Offsite agenda", bob, "alice@example.org", "agenda-2@example.org", "agenda-1@example.org")
    )
    ui_server.deliver(
        mail("Unrelated notice", "Shop <shop@example.com>", "bob@example.org", "shop-1@example.com")
    )
    ui_server.deliver(
        mail("Re: Offsite agenda", alice, "bob@example.org", "agenda-3@example.org", "agenda-2@example.org")
    )
    ui_server.settle()
    page = open_ui()
    group = page.locator("#group-btn")
    ex(group).to_be_visible()
    ex(page.locator("#list li.row")).to_have_count(4)
    group.click()
    ex(group).to_have_attribute("aria-pressed", "true")
    threads = page.locator("#list li.thread-row")
    ex(threads).to_have_count(2)
    ex(page.locator("#list-title")).to_have_text("All conversations")
    ex(threads.first).to_contain_text("Offsite agenda")  # newest activity first
    ex(threads.first.locator(".thread-count")).to_have_text("3")
    ex(threads.first).to_have_class(re.compile(r"\bunread\b"))
    assert "group=1" in page.evaluate("location.hash")

    threads.first.click()
    ex(page.locator("#tab-thread")).to_have_attribute("aria-selected", "true")
    items = page.locator(".thread li")
    ex(items).to_have_count(3)
    ex(items.nth(0)).to_have_class("depth-0")
    ex(items.nth(1)).to_have_class("depth-1")
    ex(items.nth(2)).to_have_class("depth-2")
    ex(page.locator(".thread-item.current")).to_contain_text("Alice")  # the newest message is open
    shot(page, "conversations")

    # a live reply joins the conversation (after the indexer threads it)
    ui_server.deliver(
        mail("Re: Offsite agenda", bob, "alice@example.org", "agenda-4@example.org", "agenda-3@example.org")
    )
    ex(threads.first.locator(".thread-count")).to_have_text("4", timeout=15_000)
    ex(threads).to_have_count(2)

    page.locator("#list").focus()
    page.keyboard.press("g")
    ex(group).to_have_attribute("aria-pressed", "false")
    ex(page.locator("#list li.row:not(.thread-row)")).to_have_count(5)


def test_grouped_list_by_link_and_mailbox(open_ui: Any, ui_server: UIServer) -> None:
    ui_server.deliver(mail("For carol", "A <a@example.com>", "carol@example.org", "c-1@example.com"))
    ui_server.deliver(mail("For dave", "A <a@example.com>", "dave@example.org", "d-1@example.com"))
    ui_server.settle()
    page = open_ui(hash="mailbox=carol%40example.org&group=1")
    threads = page.locator("#list li.thread-row")
    ex(threads).to_have_count(1)
    ex(threads.first).to_contain_text("For carol")
    ex(page.locator("#group-btn")).to_have_attribute("aria-pressed", "true")
