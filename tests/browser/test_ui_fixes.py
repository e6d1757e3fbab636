"""Issue 21's fixes in a real Chromium against a real postroom: deleting a mailbox keeps
mail shared with other mailboxes, Enter saves tags, the envelope's time, mark-all-read on
many messages keeps the live connection, search errors, many mailboxes, the list header
at every width, and the phone layout."""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

from tests.browser.conftest import USE_MOCK, UIServer, shot

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect
OpenUI = Callable[..., Any]


def mail(
    subject: str, to: str = "alice@example.org", sender: str = "Shop <shop@example.com>"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(f"{subject}.")
    return msg


# Counts the WebSocket closes a page sees.
COUNT_CLOSES = """
window.__closes = 0;
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("close", () => { window.__closes += 1; });
  }
};
"""


def row(page: Any, subject: str) -> Any:
    return page.locator("#list li.row", has_text=subject)


def mailbox(page: Any, name: str) -> Any:
    return page.locator(f"#mailboxes a[data-mailbox='{name}']")


def test_delete_mailbox_keeps_shared_messages(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("Shared plan", to="alice@example.org, bob@example.org, carol@example.org"))
    ui_server.deliver(mail("Only carol", to="carol@example.org"))
    ui_server.deliver(mail("Only bob", to="bob@example.org"))
    ui_server.settle()
    page = open_ui(hash="mailbox=carol%40example.org")
    ex(page.locator("#list li.row")).to_have_count(2)
    page.click("#delete-all-btn")
    ex(page.locator("#confirm-title")).to_have_text("Delete mailbox carol@example.org?")
    page.click("#confirm-ok")
    ex(page.locator("#list-title")).to_have_text("All messages")
    ex(page.locator("#list li.row")).to_have_count(2)
    ex(row(page, "Shared plan")).to_be_visible()
    ex(row(page, "Only carol")).to_have_count(0)
    ex(mailbox(page, "carol@example.org")).to_have_count(0)  # gone, not left empty
    mailbox(page, "alice@example.org").click()
    ex(row(page, "Shared plan")).to_be_visible()
    boxes = {b["Name"]: b["Total"] for b in ui_server.api("GET", "/api/v2/mailboxes")["mailboxes"]}
    assert boxes == {"alice@example.org": 1, "bob@example.org": 2}


def test_enter_in_the_tags_dialog_saves(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("Tag by keyboard"))
    ui_server.settle()
    page = open_ui()
    row(page, "Tag by keyboard").click()
    ex(page.locator("#msg-subject")).to_have_text("Tag by keyboard")
    page.locator("#list").focus()
    page.keyboard.press("t")
    ex(page.locator("#tag-input")).to_be_focused()
    page.keyboard.type("urgent, billing")
    page.keyboard.press("Enter")
    ex(page.locator("#tag-dialog")).to_be_hidden()
    ex(page.locator("#msg-tags .tag")).to_have_count(2)
    assert sorted(ui_server.api("GET", "/api/v1/messages")["messages"][0]["Tags"]) == ["billing", "urgent"]
    # Cancel (and Esc) still discard.
    page.keyboard.press("t")
    page.keyboard.type(", more")
    page.click("#tag-cancel")
    ex(page.locator("#tag-dialog")).to_be_hidden()
    ex(page.locator("#msg-tags .tag")).to_have_count(2)


def test_envelope_received_time(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("Envelope time"))
    ui_server.settle()
    page = open_ui()
    row(page, "Envelope time").click()
    page.click("#tab-envelope")
    received = page.locator("table.envelope tr", has_text="Received").locator("td")
    year = str(datetime.datetime.now(datetime.UTC).year)
    ex(received).to_contain_text(re.compile(rf"\b{year}\b"))
    ex(received).not_to_contain_text("1970")


def test_mark_all_read_on_many_keeps_the_live_connection(
    open_ui: OpenUI, ui_server: UIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postroom.web import events as ws_events

    if USE_MOCK:
        pytest.skip("the live-queue limit is the real server's")
    count = ws_events.BULK_IDS + 30
    for i in range(count):
        ui_server.deliver(mail(f"Bulk {i}", to="bulk@example.org"))
    ui_server.settle()
    # Queues smaller than the change: per-message frames would cut both pages off.
    monkeypatch.setattr(ws_events, "QUEUE_SIZE", ws_events.BULK_IDS // 2)
    page = open_ui(init_script=COUNT_CLOSES)
    other = open_ui(init_script=COUNT_CLOSES)  # a second tab sees the change live
    entry = other.locator("#mailboxes a[data-mailbox='bulk@example.org']")
    ex(entry.locator(".badge")).to_have_text(str(count))
    ex(entry.locator(".count")).to_have_text(str(count))
    page.click("#mark-all-read-btn")
    ex(other.locator("#list li.row.unread")).to_have_count(0)
    ex(entry.locator(".badge")).to_have_count(0)
    ex(entry.locator(".count")).to_have_text(str(count))  # the grey figure is still the total
    ex(other).to_have_title("postroom")
    ui_server.deliver(mail("After the bulk change", to="bulk@example.org"))
    for p in (page, other):
        ex(row(p, "After the bulk change")).to_be_visible()
        assert p.evaluate("window.__closes") == 0  # never cut off (a reconnect would hide it)
    ex(entry.locator(".badge")).to_have_text("1")


def test_search_error_and_progress(open_ui: OpenUI, ui_server: UIServer) -> None:
    for i in range(3):
        ui_server.deliver(mail(f"Report {i}"))
    ui_server.settle()
    page = open_ui(width=1024)
    ex(page.locator("#list li.row")).to_have_count(3)
    # A search the server refuses: its message in full, a visible retry, no stale rows.
    page.fill("#search", "before:notadate")
    page.keyboard.press("Enter")
    error = page.locator("#list-error")
    ex(error).to_be_visible()
    ex(error).to_contain_text("This search could not run")
    ex(page.locator("#list-error-retry")).to_be_in_viewport()
    box = error.bounding_box()
    pane = page.locator("#list-pane").bounding_box()
    assert box and pane and box["x"] + box["width"] <= pane["x"] + pane["width"] + 0.5
    assert page.evaluate("document.getElementById('list-error-text').scrollWidth") <= page.evaluate(
        "document.getElementById('list-error-text').clientWidth"
    )  # wraps instead of being clipped
    ex(page.locator("#list li.row")).to_have_count(0)
    ex(page.locator("#list-count")).to_have_text("")
    # A slow search shows that it is searching.
    held: list[Any] = []
    page.route("**/api/v*/search?*", lambda route: held.append(route))
    page.fill("#search", "report")
    page.keyboard.press("Enter")
    ex(page.locator("#list-progress")).to_be_visible()
    ex(page.locator("#list-count")).to_have_text("Searching…")
    ex(page.locator("#list-pane")).to_have_attribute("aria-busy", "true")
    assert held
    for route in held:
        with contextlib.suppress(Exception):  # a request the UI aborted (superseded) is gone
            route.continue_()
    page.unroute("**/api/v*/search?*")
    ex(page.locator("#list li.row")).to_have_count(3)
    ex(page.locator("#list-progress")).to_be_hidden()
    ex(error).to_be_hidden()
    ex(page.locator("#list-count")).to_have_text("1–3 of 3")


def test_many_mailboxes(open_ui: OpenUI, ui_server: UIServer) -> None:
    names = [f"test-user-0000-{i:04d}@example.org" for i in range(305)]
    for chunk in range(0, len(names), 100):
        ui_server.deliver(mail(f"Batch {chunk}", to=", ".join(names[chunk : chunk + 100])))
    ui_server.deliver(mail("Two", to="box2@example.org"))
    ui_server.deliver(mail("Ten", to="box10@example.org"))
    ui_server.settle()
    page = open_ui(width=1280)
    entries = page.locator("#mailboxes a.mailbox")
    ex(entries).to_have_count(301)  # All + the first 300; the rest behind the filter
    ex(page.locator("#mailbox-more")).to_have_text("7 more — filter to find one")
    # The local part, which tells these apart, is shown whole; the domain gives way.
    local = mailbox(page, names[123]).locator(".mb-local")
    assert local.evaluate("e => e.scrollWidth <= e.clientWidth"), "the local part is cut"
    # Natural order: box2 before box10.
    order = page.eval_on_selector_all("#mailboxes a.mailbox", "es => es.map(e => e.dataset.mailbox)")
    assert order.index("box2@example.org") < order.index("box10@example.org")
    # The filter finds one among hundreds; Enter opens the first match.
    page.fill("#mailbox-filter", "0304")
    ex(entries).to_have_count(2)
    page.locator("#mailbox-filter").press("Enter")
    ex(page.locator("#list-title")).to_have_text(names[304])
    # The column is as wide as you drag it.
    handle = page.locator("#sidebar-resizer").bounding_box()
    assert handle
    page.mouse.move(handle["x"] + 4, handle["y"] + 200)
    page.mouse.down()
    page.mouse.move(handle["x"] + 124, handle["y"] + 200, steps=4)
    page.mouse.up()
    width = page.locator("#sidebar").bounding_box()
    assert width and 395 <= width["width"] <= 425
    shot(page, "many-mailboxes")
    # After Delete all, no emptied mailbox is left behind in the list.
    page.click("#mailboxes a[data-mailbox='']")
    page.click("#delete-all-btn")
    page.click("#confirm-ok")
    ex(page.locator("#empty")).to_be_visible()
    ex(entries).to_have_count(1)
