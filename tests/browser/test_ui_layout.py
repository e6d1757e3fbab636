"""The layout from 320 to 2560 px wide (pictured at 375, 768, 1280 and 1920), light and dark: no control of a header
or toolbar sticks out of its container, the page never scrolls sideways, the list title
is whole. With POSTROOM_SCREENSHOTS=1 this also refreshes docs/screenshots/layout-*.png,
which docs/ui.md shows (``make screenshots``)."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

from tests.browser.conftest import UIServer, shot

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect

WIDTHS = {320: 640, 375: 812, 768: 1024, 1280: 800, 1920: 1080, 2560: 1440}
PICTURED = {375, 768, 1280, 1920}  # the widths docs/ui.md shows

# Containers whose controls must stay inside them, and which must not scroll sideways.
OVERFLOW_JS = """
() => {
  const bad = [];
  const boxes = [".topbar", ".list-head", ".list-tools", ".msg-toolbar", ".pager", ".sidebar-foot", ".panel-bar"];
  for (const sel of boxes) {
    for (const box of document.querySelectorAll(sel)) {
      const r = box.getBoundingClientRect();
      if (!r.width || getComputedStyle(box).visibility === "hidden") continue;
      if (box.scrollWidth > box.clientWidth + 1) bad.push(`${sel} scrolls (${box.scrollWidth} > ${box.clientWidth})`);
      for (const c of box.querySelectorAll("button, input, select, a, h1, h2, .list-count, .conn")) {
        const cr = c.getBoundingClientRect();
        if (!cr.width || !cr.height) continue;  // hidden
        if (cr.left < r.left - 1 || cr.right > r.right + 1) bad.push(`${sel} > ${c.id || c.className || c.tagName} sticks out`);
      }
    }
  }
  const title = document.getElementById("list-title");
  if (title.getBoundingClientRect().width && title.scrollWidth > title.clientWidth) bad.push("list title cut");
  if (document.documentElement.scrollWidth > innerWidth) bad.push("the page scrolls sideways");
  return bad;
}
"""


def _seed(ui_server: UIServer) -> None:
    rows = [
        ("Weekly report: signups up 12%", "team@example.org", "Metrics <metrics@example.com>"),
        ("Reset your password", "bob@example.org", "Security <security@example.com>"),
        ("Invoice INV-2024-0042", "billing@example.org", "Billing <billing@example.com>"),
        ("Welcome to Example, Bob!", "bob@example.org", "Example <hello@example.com>"),
        ("Your order is on its way", "alice@example.org", "Shop Example <orders@shop.example.com>"),
    ]
    for subject, to, sender in rows:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, to, subject
        msg.set_content(f"{subject}.\n\nDetails at https://example.com/account/settings?ref=mail.\n")
        msg.add_alternative(
            f"<div style='font-family:sans-serif;max-width:560px;margin:auto'><h1>{subject}</h1>"
            "<p>Details inside.</p><a href='https://example.com/'>Open</a></div>",
            subtype="html",
        )
        if subject.startswith("Invoice"):
            msg.add_attachment(b"%PDF-1.4 x", maintype="application", subtype="pdf", filename="INV-0042.pdf")
        ui_server.deliver(msg)
    ui_server.settle()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_layout_holds_at_every_width(open_ui: Callable[..., Any], ui_server: UIServer, scheme: str) -> None:
    _seed(ui_server)
    listing = ui_server.api("GET", "/api/v1/messages")["messages"]
    invoice = next(m["ID"] for m in listing if m["Subject"].startswith("Invoice"))
    ui_server.api("PUT", "/api/v1/tags", {"IDs": [invoice], "Tags": ["billing"]})
    for width, height in WIDTHS.items():
        page = open_ui(width=width, height=height, color_scheme=scheme)
        ex(page.locator("#list li.row")).to_have_count(5)
        assert page.evaluate(OVERFLOW_JS) == [], f"{width} px {scheme}, list"
        if width < 760 and width in PICTURED:
            shot(page, f"layout-{width}-{scheme}-list")
        # Conversations mode too (it used to squeeze the title to nothing).
        if not page.locator("#group-btn").is_hidden():
            page.click("#group-btn")
            ex(page.locator("#group-btn")).to_have_attribute("aria-pressed", "true")
            assert page.evaluate(OVERFLOW_JS) == [], f"{width} px {scheme}, conversations"
            page.click("#group-btn")
        page.locator("#list li.row", has_text="Invoice").click()
        ex(page.locator("#msg-subject")).to_have_text("Invoice INV-2024-0042")
        ex(page.locator("#tab-attachments")).to_be_attached()
        assert page.evaluate(OVERFLOW_JS) == [], f"{width} px {scheme}, message"
        # selecting messages swaps the tools for the bulk actions; they fit too
        if width >= 760:
            page.locator("#list li.row .row-check").nth(0).check()
            ex(page.locator("#bulk-tools")).to_be_visible()
            assert page.evaluate(OVERFLOW_JS) == [], f"{width} px {scheme}, selection"
            page.locator("#list li.row .row-check").nth(0).uncheck()
        if width in PICTURED:
            shot(page, f"layout-{width}-{scheme}")
        page.context.close()
