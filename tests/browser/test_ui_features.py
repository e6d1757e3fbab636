"""What a Mailpit user reaches for (issue 21 item 9), in a real Chromium against a real
postroom: selecting messages and acting on them, tags in the sidebar and as chips, the
theme button, previous/next and page size, the tabs a message needs (HTML source, linked
URLs, Thread with Date headers), the SMTP address on the empty screen, and the phone."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import pytest

from tests.browser.conftest import USE_MOCK, UIServer, shot

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect
OpenUI = Callable[..., Any]


def mail(
    subject: str, to: str = "alice@example.org", text: str = "", html: str | None = None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.com>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text or f"{subject}.")
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def row(page: Any, subject: str) -> Any:
    return page.locator("#list li.row", has_text=subject)


def on_server(ui_server: UIServer) -> dict[str, dict[str, Any]]:
    return {m["Subject"]: m for m in ui_server.api("GET", "/api/v1/messages")["messages"]}


def test_select_messages_and_act_on_them(open_ui: OpenUI, ui_server: UIServer) -> None:
    for i in range(5):
        ui_server.deliver(mail(f"Item {i}"))
    ui_server.settle()
    page = open_ui()
    rows = page.locator("#list li.row")
    ex(rows).to_have_count(5)
    ex(page.locator("#bulk-tools")).to_be_hidden()
    # Click one box, shift-click another: the rows between are selected too.
    row(page, "Item 4").locator(".row-check").click()
    row(page, "Item 2").locator(".row-check").click(modifiers=["Shift"])
    ex(page.locator("#bulk-count")).to_have_text("3 selected")
    ex(page.locator("#list-tools-main")).to_be_hidden()
    ex(page.locator("#select-all")).to_have_js_property("indeterminate", True)
    ex(page.locator("#msg-subject")).to_be_hidden()  # ticking a box does not open the message
    page.click("#bulk-read")
    ex(page.locator("#bulk-tools")).to_be_hidden()
    ex(page.locator("#list li.row.unread")).to_have_count(2)
    state = on_server(ui_server)
    assert [state[f"Item {i}"]["Read"] for i in range(5)] == [False, False, True, True, True]
    # x selects the open message from the keyboard; Tags… tags every selected message.
    row(page, "Item 0").click()
    page.locator("#list").focus()
    page.keyboard.press("x")
    row(page, "Item 1").locator(".row-check").check()
    ex(page.locator("#bulk-count")).to_have_text("2 selected")
    page.click("#bulk-tags")
    ex(page.locator("#tag-label")).to_contain_text("2 messages")
    page.fill("#tag-input", "batch")
    page.keyboard.press("Enter")
    ex(row(page, "Item 0").locator(".tag")).to_have_text("batch")
    ex(row(page, "Item 1").locator(".tag")).to_have_text("batch")
    assert on_server(ui_server)["Item 1"]["Tags"] == ["batch"]
    # Select all, mark unread, then delete all of the page.
    page.locator("#select-all").check()
    ex(page.locator("#bulk-count")).to_have_text("5 selected")
    page.click("#bulk-unread")
    ex(page.locator("#list li.row.unread")).to_have_count(5)
    assert not any(m["Read"] for m in on_server(ui_server).values())
    row(page, "Item 3").locator(".row-check").check()
    row(page, "Item 4").locator(".row-check").check()
    shot(page, "bulk-selection")
    page.click("#bulk-delete")
    ex(rows).to_have_count(3)
    assert sorted(on_server(ui_server)) == ["Item 0", "Item 1", "Item 2"]


def test_a_bulk_delete_that_empties_the_page_asks_for_the_next_one_once(
    open_ui: OpenUI, ui_server: UIServer
) -> None:
    """The server also announces each deletion over the WebSocket, usually while the page
    that replaces the emptied one is on its way: that must not ask for it a second time
    (which aborted the first answer and waited for another: the UI benchmark's bulk delete)."""
    for i in range(30):
        ui_server.deliver(mail(f"Bulk {i:02d}"))
    ui_server.settle()
    page = open_ui()
    page.select_option("#page-size", "25")
    ex(page.locator("#list li.row")).to_have_count(25)
    listings: list[str] = []

    def slow_listing(route: Any) -> None:  # a listing slower than the WebSocket's frames
        listings.append(route.request.url)
        time.sleep(0.3)
        route.continue_()

    page.route(re.compile(r"/api/v[12]/messages\?.*limit=25"), slow_listing)
    page.locator("#select-all").check()
    page.click("#bulk-delete")
    ex(page.locator("#list li.row")).to_have_count(5)
    page.wait_for_timeout(500)  # late frames would ask again now
    assert len(listings) == 1, listings
    ex(page.locator("#page-info")).to_have_text("1–5 of 5")


def test_tags_in_the_sidebar_and_as_chips(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("Tagged invoice"))
    ui_server.deliver(mail("Tagged receipt"))
    ui_server.deliver(mail("Plain"))
    ui_server.settle()
    ids = {s: m["ID"] for s, m in on_server(ui_server).items()}
    ui_server.api("PUT", "/api/v1/tags", {"IDs": [ids["Tagged invoice"]], "Tags": ["billing"]})
    page = open_ui()
    nav = page.locator("#tag-nav a[data-tag='billing']")
    ex(nav).to_be_visible()
    ex(page.locator("#tag-nav a[data-tag='urgent']")).to_have_count(0)
    nav.click()
    ex(page.locator("#search")).to_have_value("tag:billing")
    ex(page.locator("#list li.row")).to_have_count(1)
    ex(nav).to_have_attribute("aria-current", "page")
    page.locator("#search").press("Escape")
    ex(page.locator("#list li.row")).to_have_count(3)
    # a tag added in the UI appears in the sidebar; a chip in a row lists its messages
    row(page, "Tagged receipt").click()
    page.click("#tag-btn")
    page.fill("#tag-input", "billing, urgent")
    page.keyboard.press("Enter")
    ex(page.locator("#tag-nav a[data-tag='urgent']")).to_be_visible()
    row(page, "Tagged receipt").locator(".tag-link", has_text="urgent").click()
    ex(page.locator("#search")).to_have_value("tag:urgent")
    ex(page.locator("#list li.row")).to_have_count(1)
    # and the chips in the message header do the same
    page.locator("#msg-tags .tag-link", has_text="billing").click()
    ex(page.locator("#search")).to_have_value("tag:billing")
    ex(page.locator("#list li.row")).to_have_count(2)


def test_theme_button(open_ui: OpenUI, ui_server: UIServer) -> None:
    page = open_ui(color_scheme="light")
    bg = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(bg)
    btn = page.locator("#theme-btn")
    ex(btn).to_have_attribute("data-theme", "system")
    btn.click()
    ex(btn).to_have_attribute("data-theme", "light")
    assert page.evaluate(bg) == light
    btn.click()
    ex(btn).to_have_attribute("data-theme", "dark")
    ex(page.locator("body")).not_to_have_css("background-color", light)
    dark = page.evaluate(bg)
    page.reload()
    page.wait_for_selector("body[data-ready]")
    assert page.evaluate(bg) == dark  # remembered
    btn.click()
    ex(btn).to_have_attribute("data-theme", "system")
    assert page.evaluate(bg) == light  # the system (light here) again


def test_previous_next_and_page_size(open_ui: OpenUI, ui_server: UIServer) -> None:
    for i in range(30):
        ui_server.deliver(mail(f"Msg {i:02d}"))
    ui_server.settle()
    page = open_ui()
    ex(page.locator("#list li.row")).to_have_count(30)
    page.select_option("#page-size", "25")
    ex(page.locator("#list li.row")).to_have_count(25)
    ex(page.locator("#page-info")).to_have_text("1–25 of 30")
    row(page, "Msg 06").click()
    ex(page.locator("#msg-subject")).to_have_text("Msg 06")
    page.click("#next-msg")
    ex(page.locator("#msg-subject")).to_have_text("Msg 05")
    page.click("#prev-msg")
    page.click("#prev-msg")
    ex(page.locator("#msg-subject")).to_have_text("Msg 07")
    # the last row of the page: Next goes on to the next page
    row(page, "Msg 05").click()
    page.click("#next-msg")
    ex(page.locator("#page-info")).to_have_text("26–30 of 30")
    page.reload()
    page.wait_for_selector("body[data-ready]")
    ex(page.locator("#page-size")).to_have_value("25")  # remembered


def test_tabs_a_message_needs(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(
        mail(
            "Plain text",
            text="See https://example.com/a?b=1, or (https://example.org/x). Not javascript:alert(1).",
        )
    )
    ui_server.deliver(mail("Rich", html="<p class='x'>Hello <b>there</b></p>"))
    first = mail("Lunch?")
    first["Message-ID"] = "<lunch-1@example.org>"
    first["Date"] = formatdate(1_580_000_000)  # 2020-01-26, long before it arrives
    reply = mail("Re: Lunch?")
    reply["Message-ID"] = "<lunch-2@example.org>"
    reply["In-Reply-To"] = reply["References"] = "<lunch-1@example.org>"
    reply["Date"] = formatdate(1_580_003_600)
    ui_server.deliver(first)
    ui_server.deliver(reply)
    ui_server.settle()
    page = open_ui()

    def tabs() -> list[str]:
        return [t.split(" (")[0] for t in page.locator("#tabs [role=tab]").all_inner_texts()]

    row(page, "Plain text").click()
    ex(page.locator("#tab-text")).to_have_attribute("aria-selected", "true")
    # no HTML, HTML source, Attachments or Thread (other features' tabs, e.g. the checks', may follow)
    assert tabs()[:4] == ["Text", "Headers", "Raw", "Envelope"]
    for absent in ("html", "source", "attachments", "thread"):
        ex(page.locator(f"#tab-{absent}")).to_have_count(0)
    links = page.locator(".text-body a")
    ex(links).to_have_count(2)
    assert links.nth(0).get_attribute("href") == "https://example.com/a?b=1"
    assert links.nth(1).get_attribute("href") == "https://example.org/x"
    assert links.nth(0).get_attribute("target") == "_blank"
    assert "noopener" in (links.nth(0).get_attribute("rel") or "")
    ex(page.locator(".text-body")).to_contain_text("javascript:alert(1)")  # text, not a link
    row(page, "Rich").click()
    ex(page.locator("#tab-source")).to_be_visible()
    page.click("#tab-source")
    ex(page.locator(".html-source")).to_contain_text("<p class='x'>Hello <b>there</b></p>")
    assert page.locator(".html-source b").count() == 0  # shown as text, never as markup
    if ui_server.status("/api/v2/threads") == 404 or USE_MOCK:
        return
    row(page, "Re: Lunch?").click()
    ex(page.locator("#tab-thread")).to_have_text("Thread (2)")
    page.click("#tab-thread")
    times = page.locator(".thread-item time")
    ex(times).to_have_count(2)
    ex(times.first).to_contain_text("2020")  # the Date header, not the arrival time


def test_empty_screen_names_the_smtp_address(open_ui: OpenUI, ui_server: UIServer) -> None:
    if USE_MOCK:
        pytest.skip("the mock has no SMTP listener")
    smtp = ui_server.api("GET", "/api/v2/webui")["Listeners"]["smtp"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", smtp)
    page = open_ui()
    ex(page.locator("#empty-hint")).to_contain_text(smtp)
    ex(page.locator("#view-empty-hint")).to_contain_text(f"SMTP {smtp}")


def test_phone_and_tablet(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(
        mail("A subject long enough to need the whole width of a phone screen and more", html="<p>hi</p>")
    )
    ui_server.deliver(
        mail("Second", to="bob@example.org, carol@example.org, dave@example.org, erin@example.org")
    )
    ui_server.settle()
    page = open_ui(width=390, height=844)
    ex(page.locator("#mark-all-read-btn")).to_be_visible()
    if not page.locator("#group-btn").is_hidden():
        ex(page.locator("#group-btn")).to_be_in_viewport()
        page.click("#group-btn")
        ex(page.locator("#list li.thread-row")).to_have_count(2)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for r in page.locator("#list li.thread-row").all():
            box = r.bounding_box()
            assert box and box["x"] + box["width"] <= 390.5  # thread rows stay on screen
        page.click("#group-btn")
    row(page, "A subject long").click()
    # the tab strip shows that it scrolls
    ex(page.locator(".tabs-wrap")).to_have_class(re.compile(r"\bmore-right\b"))
    page.locator("#tab-envelope").click()
    ex(page.locator(".tabs-wrap")).to_have_class(re.compile(r"\bmore-left\b"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()
    # Tablet preview in a pane narrower than 768 px is 768 px wide (it scrolls), not the pane.
    page = open_ui(width=1100, height=800)
    row(page, "A subject long").click()
    page.click("button.seg[data-width=tablet]")
    ex(page.locator("iframe.html-frame")).to_have_css("width", "768px")
    pane = page.locator("#view-pane").bounding_box()
    assert pane and pane["width"] < 768
