"""The HTML tab's Screenshot button (issue 21 item 9, as Mailpit offers): a PNG of the
message's HTML at the preview's width, drawn by Chromium from the server's SVG image of it
(``/view/{ID}.svg``), with the message's styles and its cid: pictures, nothing remote."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import SAVE_SCREENSHOTS, SCREENSHOTS, USE_MOCK, UIServer, shot

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect
Image = pytest.importorskip("PIL.Image")


def _blue_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (60, 40), (0, 0, 255)).save(buf, "PNG")
    return buf.getvalue()


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.com>"
    msg["To"] = "alice@example.org"
    msg["Subject"] = "Styled receipt"
    msg.set_content("Your receipt.")
    msg.add_alternative(
        "<html><head><style>h1 { color: rgb(200, 30, 30); font-size: 40px; }</style>"
        "<script>document.title = 'ran'</script></head><body>"
        "<h1>Your receipt</h1><o:p>Outlook's paragraph</o:p>"
        "<p @click='x' onclick='alert(1)'>Thanks for shopping.</p>"
        "<img src='cid:logo@shop' width='60' height='40' alt='logo'>"
        "<img src='https://tracker.example.net/pixel.png' alt=''>"
        "</body></html>",
        subtype="html",
    )
    html_part = msg.get_payload()[1]  # type: ignore[index]
    html_part.add_related(_blue_png(), maintype="image", subtype="png", cid="<logo@shop>")
    return msg


def test_screenshot_is_a_png_of_the_html_at_the_preview_width(
    open_ui: Any, ui_server: UIServer, tmp_path: Path
) -> None:
    if USE_MOCK:
        pytest.skip("the mock has no /view/{ID}.svg")
    ui_server.deliver(_message())
    ui_server.settle()
    page = open_ui()
    page.locator("#list li.row", has_text="Styled receipt").click()
    ex(page.locator("#msg-subject")).to_have_text("Styled receipt")
    page.click(".seg[data-width=phone]")
    with page.expect_download(timeout=30_000) as download:
        page.click("#screenshot-btn")
    assert download.value.suggested_filename.endswith("-375px.png")
    path = (SCREENSHOTS if SAVE_SCREENSHOTS else tmp_path) / "html-screenshot-375.png"
    download.value.save_as(path)  # make screenshots keeps it: docs/ui.md shows it
    with Image.open(path) as img:
        assert img.format == "PNG"
        width, height = img.size
        assert width == 375
        assert 80 < height < 1000  # cut under the content, not the full 6,000 px
        colours = {c for _, c in img.convert("RGB").getcolors(375 * 1000) or []}
    # the message's own style (the red heading) and its inlined cid: picture (blue)
    assert any(abs(r - 200) < 30 and g < 80 and b < 80 for r, g, b in colours)
    assert (0, 0, 255) in colours
    ex(page.locator("#screenshot-btn")).to_be_enabled()
    shot(page, "message-screenshot-button")
    assert page.title() != "ran"
