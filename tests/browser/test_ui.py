"""The web UI in a real Chromium against a real postroom: mail sent over SMTP appears
live, mailboxes and search filter the list, HTML renders sandboxed (hostile markup never
runs), attachments download, deletion and read state reach the server."""

from __future__ import annotations

import http.server
import re
import smtplib
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from tests.browser.conftest import USE_MOCK, UIServer, shot
from tests.helpers import free_port, running_server

pytestmark = pytest.mark.browser
ex = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)").expect

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2b1c1b80000000049454e44ae426082"
)
OpenUI = Callable[..., Any]


def mail(
    subject: str,
    to: str = "alice@example.org",
    sender: str = "Shop <shop@example.com>",
    text: str = "Hello there.",
    html: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def rows(page: Any) -> Any:
    return page.locator("#list li.row")


def row(page: Any, subject: str) -> Any:
    return page.locator("#list li.row", has_text=subject)


def test_mail_sent_over_smtp_appears_live(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.settle()
    page = open_ui()
    ex(page.locator("#empty")).to_be_visible()
    ui_server.deliver(mail("Welcome aboard", to="carol@example.org"))
    ex(row(page, "Welcome aboard")).to_be_visible()
    ex(row(page, "Welcome aboard")).to_have_class(re.compile(r"\bunread\b"))
    ex(page).to_have_title("(1) postroom")
    entry = page.locator("#mailboxes a[data-mailbox='carol@example.org']")
    ex(entry).to_be_visible()
    ex(entry.locator(".badge")).to_have_text("1")
    ui_server.deliver(mail("Second one", to="carol@example.org"))
    ex(rows(page)).to_have_count(2)
    ex(rows(page).first).to_contain_text("Second one")  # newest first
    ex(page).to_have_title("(2) postroom")


def test_switching_mailboxes(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("For alice", to="alice@example.org"))
    ui_server.deliver(mail("For bob", to="bob@example.org"))
    ui_server.deliver(mail("For both", to="alice@example.org, bob@example.org"))
    ui_server.settle()
    page = open_ui()
    ex(rows(page)).to_have_count(3)
    page.locator("#mailboxes a[data-mailbox='bob@example.org']").click()
    ex(page.locator("#list-title")).to_have_text("bob@example.org")
    ex(rows(page)).to_have_count(2)
    ex(row(page, "For alice")).to_have_count(0)
    assert "mailbox=bob%40example.org" in page.url
    # Live arrivals respect the mailbox on screen.
    ui_server.deliver(mail("Late for alice", to="alice@example.org"))
    ui_server.deliver(mail("Late for bob", to="bob@example.org"))
    ex(row(page, "Late for bob")).to_be_visible()
    ex(row(page, "Late for alice")).to_have_count(0)
    page.locator("#mailboxes a[data-mailbox='']").click()
    ex(rows(page)).to_have_count(5)
    shot(page, "list")


def test_search_filters_live(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("Invoice 2024-001", sender="Billing <billing@example.com>"))
    ui_server.deliver(mail("Password reset", sender="Security <security@example.com>"))
    ui_server.deliver(mail("Invoice 2024-002", sender="Billing <billing@example.com>"))
    ui_server.settle()
    page = open_ui()
    ex(rows(page)).to_have_count(3)
    page.keyboard.press("/")
    ex(page.locator("#search")).to_be_focused()
    page.keyboard.type("invoice")
    ex(rows(page)).to_have_count(2)
    ex(page.locator("#list-title")).to_have_text("Search results")
    ex(page.locator("#list-count")).to_have_text("1–2 of 2")  # counts the matches, not the store
    page.fill("#search", "from:security@example.com")
    ex(rows(page)).to_have_count(1)
    ex(rows(page).first).to_contain_text("Password reset")
    page.fill("#search", "nothing-matches-this-xyz")
    ex(page.locator("#empty-title")).to_have_text("Nothing matches this search")
    page.keyboard.press("Escape")
    ex(rows(page)).to_have_count(3)


@pytest.fixture
def remote_host() -> Iterator[tuple[str, list[str]]]:
    """A stand-in for a remote image host (another origin): (base URL, paths requested)."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG_1x1)))
            self.end_headers()
            self.wfile.write(PNG_1x1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_html_message_renders_sandboxed(
    open_ui: OpenUI, ui_server: UIServer, remote_host: tuple[str, list[str]]
) -> None:
    remote_url, requested = remote_host
    html = (
        "<html><head><style>h1 { color: rgb(200, 30, 30); }</style></head><body>"
        "<h1 id='h'>Your receipt</h1>"
        "<p id='p' style='font-size: 22px'>Thanks for shopping.</p>"
        f"<img id='remote' src='{remote_url}/track.png' alt='tracker'>"
        "<a id='link' href='https://example.com/receipt'>View online</a>"
        "</body></html>"
    )
    ui_server.deliver(mail("Receipt", html=html, text="Thanks for shopping."))
    ui_server.settle()
    page = open_ui()
    row(page, "Receipt").click()
    ex(page.locator("#msg-subject")).to_have_text("Receipt")
    ex(page.locator("#tab-html")).to_have_attribute("aria-selected", "true")
    iframe = page.locator("iframe.html-frame")
    sandbox = iframe.get_attribute("sandbox") or ""
    assert "allow-scripts" not in sandbox.split()
    frame = page.frame_locator("iframe.html-frame")
    ex(frame.locator("#h")).to_have_text("Your receipt")
    ex(frame.locator("#h")).to_have_css("color", "rgb(200, 30, 30)")  # <style> applied
    ex(frame.locator("#p")).to_have_css("font-size", "22px")  # style="" applied
    ex(frame.locator("base")).to_have_attribute("target", "_blank")  # links open a new tab
    # Remote images stay blocked (never even requested) until the person allows them.
    ex(page.locator(".remote-notice")).to_contain_text("1 remote image blocked")
    assert requested == []
    shot(page, "message-html")
    page.click("#allow-remote")
    ex(page.locator(".remote-notice")).to_have_count(0)
    ex(frame.locator("#h")).to_have_text("Your receipt")
    frame.locator("#remote").wait_for(state="visible")
    for _ in range(50):
        if requested:
            break
        page.wait_for_timeout(100)
    assert requested == ["/track.png"]
    # Responsive preview widths.
    page.click("button.seg[data-width=phone]")
    ex(iframe).to_have_css("width", "375px")
    # The message was marked read on open, on the server too.
    ex(row(page, "Receipt")).not_to_have_class(re.compile(r"\bunread\b"))
    listing = ui_server.api("GET", "/api/v1/messages")
    assert listing["messages"][0]["Read"] is True
    # Other tabs.
    page.click("#tab-text")
    ex(page.locator(".text-body")).to_contain_text("Thanks for shopping.")
    page.click("#tab-headers")
    ex(page.locator("table.headers")).to_contain_text("Subject")
    page.click("#tab-raw")
    ex(page.locator(".raw-body")).to_contain_text("Content-Type: multipart/alternative")
    page.click("#tab-envelope")
    ex(page.locator("table.envelope")).to_contain_text("alice@example.org")


def test_hostile_html_never_runs(open_ui: OpenUI, ui_server: UIServer) -> None:
    hostile = (
        "<p id='hello'>Hello</p>"
        "<script>parent.postMessage('pwned-script', '*'); top.pwned = 1; alert('script');"
        "document.body.setAttribute('data-pwned', 'script')</script>"
        "<img id='bad' src='x' onerror=\"parent.postMessage('pwned-onerror', '*'); top.pwned = 2;"
        " alert('onerror'); this.setAttribute('data-pwned', 'onerror')\">"
        "<svg><script>parent.postMessage('pwned-svg', '*')</script></svg>"
        "<a id='js' href='javascript:parent.postMessage(\"pwned-href\", \"*\")'>click</a>"
        "<iframe srcdoc=\"<script>parent.parent.postMessage('pwned-nested', '*')</script>\"></iframe>"
        "<form action='http://remote.invalid/steal'><input name='q'></form>"
        "<meta http-equiv='refresh' content='0; url=http://remote.invalid/'>"
        "<body onload=\"parent.postMessage('pwned-onload', '*')\"></body>"
    )
    ui_server.deliver(mail("Totally safe", html=hostile))
    ui_server.settle()
    page = open_ui()
    page.evaluate(
        "window.__messages = []; window.addEventListener('message', e => window.__messages.push(String(e.data)))"
    )
    row(page, "Totally safe").click()
    frame = page.frame_locator("iframe.html-frame")
    ex(frame.locator("#hello")).to_have_text("Hello")
    frame.locator("#js").click()  # a javascript: link must do nothing
    page.wait_for_timeout(300)  # give any handler a chance to fire (it must not)
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("window.__messages") == []
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert frame.locator("body").get_attribute("data-pwned") is None
    assert frame.locator("#bad").get_attribute("data-pwned") is None
    ex(page.locator("#msg-subject")).to_have_text("Totally safe")  # the page did not navigate
    shot(page, "message-hostile")


def test_attachment_download(open_ui: OpenUI, ui_server: UIServer) -> None:
    msg = mail("With files", text="See attached.")
    msg.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="report.csv")
    msg.add_attachment(PNG_1x1, maintype="image", subtype="png", filename="pixel.png")
    ui_server.deliver(msg)
    ui_server.settle()
    page = open_ui()
    ex(row(page, "With files").locator(".row-clip")).to_be_visible()
    row(page, "With files").click()
    page.click("#tab-attachments")
    cards = page.locator(".attachment")
    ex(cards).to_have_count(2)
    ex(cards.filter(has_text="pixel.png").locator("img.thumb")).to_be_visible()
    with page.expect_download() as info:
        page.click("a[aria-label='Download report.csv']")
    download = info.value
    assert download.suggested_filename == "report.csv"
    with open(download.path(), "rb") as f:
        assert f.read().replace(b"\r\n", b"\n") == b"col1,col2\n1,2\n"
    shot(page, "message-attachments")


def test_delete_and_delete_all(open_ui: OpenUI, ui_server: UIServer) -> None:
    for i in range(3):
        ui_server.deliver(mail(f"Disposable {i}"))
    ui_server.settle()
    page = open_ui()
    ex(rows(page)).to_have_count(3)
    row(page, "Disposable 1").click()
    ex(page.locator("#msg-subject")).to_have_text("Disposable 1")
    doomed = page.locator("#list li.row.selected").get_attribute("data-id")
    page.locator("#list").focus()
    page.keyboard.press("Delete")
    ex(row(page, "Disposable 1")).to_have_count(0)
    ex(rows(page)).to_have_count(2)
    assert ui_server.status(f"/api/v1/message/{doomed}") == 404
    # The next message opens after a delete.
    ex(page.locator("#msg-subject")).not_to_have_text("Disposable 1")
    # Delete all asks first; cancelling keeps everything.
    page.click("#delete-all-btn")
    ex(page.locator("#confirm-dialog")).to_be_visible()
    page.click("#confirm-dialog button[value=cancel]")
    ex(rows(page)).to_have_count(2)
    page.click("#delete-all-btn")
    page.click("#confirm-ok")
    ex(page.locator("#empty")).to_be_visible()
    assert ui_server.api("GET", "/api/v1/messages")["total"] == 0


def test_keyboard_and_read_state(open_ui: OpenUI, ui_server: UIServer) -> None:
    for i in range(3):
        ui_server.deliver(mail(f"Note {i}"))
    ui_server.settle()
    page = open_ui()
    ex(rows(page)).to_have_count(3)
    page.locator("body").focus()
    page.keyboard.press("j")
    ex(page.locator("#msg-subject")).to_have_text("Note 2")
    page.keyboard.press("j")
    ex(page.locator("#msg-subject")).to_have_text("Note 1")
    page.keyboard.press("k")
    ex(page.locator("#msg-subject")).to_have_text("Note 2")
    ex(row(page, "Note 2")).not_to_have_class(re.compile(r"\bunread\b"))
    page.keyboard.press("r")  # back to unread
    ex(row(page, "Note 2")).to_have_class(re.compile(r"\bunread\b"))
    ex(page.locator("#read-btn")).to_have_text("Mark read")

    def unread_on_server() -> int:
        return int(ui_server.api("GET", "/api/v1/messages")["unread"])

    # Note 1 and Note 2 were opened (read), Note 2 is unread again: Note 0 and Note 2 remain.
    ex(page).to_have_title("(2) postroom")
    assert unread_on_server() == 2
    page.keyboard.press("r")
    ex(page).to_have_title("(1) postroom")
    assert unread_on_server() == 1
    page.keyboard.press("?")
    ex(page.locator("#help-dialog")).to_be_visible()
    page.keyboard.press("Escape")


def test_tags(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("Tag me"))
    ui_server.settle()
    page = open_ui()
    row(page, "Tag me").click()
    page.click("#tag-btn")
    page.fill("#tag-input", "urgent, billing")
    page.click("#tag-dialog button[value=ok]")
    ex(page.locator("#msg-tags .tag")).to_have_count(2)
    ex(row(page, "Tag me").locator(".tag")).to_have_count(2)
    tags = ui_server.api("GET", "/api/v1/messages")["messages"][0]["Tags"]
    assert sorted(tags) == ["billing", "urgent"]


def test_narrow_screen_and_dark_mode(open_ui: OpenUI, ui_server: UIServer) -> None:
    ui_server.deliver(mail("A fairly long subject line that must not overflow a narrow phone screen"))
    ui_server.deliver(mail("Short", to="dave@example.org", html="<h1>Hi Dave</h1><p>Small screens too.</p>"))
    ui_server.settle()
    page = open_ui(width=360, height=740, color_scheme="dark")
    ex(rows(page)).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg != "rgb(255, 255, 255)" and bg != "rgb(246, 247, 251)"  # the dark palette
    shot(page, "narrow-list-dark")
    row(page, "Short").click()
    ex(page.locator("#message")).to_be_visible()
    ex(page.locator("#list-pane")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shot(page, "narrow-message-dark")
    page.click("#back-btn")
    ex(page.locator("#list-pane")).to_be_visible()
    # The mailbox drawer.
    page.click("#menu-btn")
    ex(page.locator("#sidebar")).to_be_in_viewport()
    page.locator("#mailboxes a[data-mailbox='dave@example.org']").click()
    ex(rows(page)).to_have_count(1)


NEWSLETTER = """<!doctype html><html><head><style>
  body { margin: 0; background: #eef2f7; font-family: Helvetica, Arial, sans-serif; color: #1f2937; }
  .wrap { max-width: 560px; margin: 24px auto; background: #fff; border-radius: 12px; overflow: hidden; }
  .hero { background: linear-gradient(135deg, #4338ca, #7c3aed); color: #fff; padding: 32px 28px; }
  .hero h1 { margin: 0 0 6px; font-size: 26px; }
  .body { padding: 24px 28px; line-height: 1.6; }
  .btn { display: inline-block; background: #4338ca; color: #fff; padding: 12px 22px; border-radius: 8px;
         text-decoration: none; font-weight: bold; }
  .foot { padding: 16px 28px; font-size: 12px; color: #6b7280; border-top: 1px solid #e5e7eb; }
  @media (max-width: 480px) { .hero h1 { font-size: 20px; } .wrap { margin: 0; border-radius: 0; } }
</style></head><body><div class="wrap">
  <div class="hero"><h1 id="hero">Your order is on its way</h1><div>Order #10482 · 3 items</div></div>
  <div class="body"><p>Hi Alice,</p><p>Good news: your parcel left our warehouse this morning and should
  arrive on <b>Thursday</b>. You can follow it at every step.</p>
  <p><a class="btn" href="https://shop.example.com/track/10482">Track your parcel</a></p></div>
  <div class="foot">Shop Example · 1 Market Street · You receive this because you placed an order.</div>
</div></body></html>"""


def test_overview_screenshot(open_ui: OpenUI, ui_server: UIServer) -> None:
    """Realistic mail in several mailboxes; the screenshot the README shows."""
    seed = [
        ("Weekly report: signups up 12%", "team@example.org", "Metrics <metrics@example.com>", None),
        ("Reset your password", "bob@example.org", "Security <security@example.com>", None),
        ("Invoice INV-2024-0042", "billing@example.org", "Billing <billing@example.com>", "invoice"),
        ("Welcome to Example, Bob!", "bob@example.org", "Example <hello@example.com>", None),
        ("Your order is on its way", "alice@example.org", "Shop Example <orders@shop.example.com>", "html"),
    ]
    for subject, to, sender, kind in seed:
        msg = mail(subject, to=to, sender=sender, text=f"{subject}. Details inside.")
        if kind == "html":
            msg = mail(subject, to=to, sender=sender, text="Your parcel left our warehouse.", html=NEWSLETTER)
        if kind == "invoice":
            msg.add_attachment(
                b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="INV-0042.pdf"
            )
        ui_server.deliver(msg)
    ui_server.settle()
    page = open_ui(width=1440, height=900)
    ex(rows(page)).to_have_count(5)
    ex(page.locator("#mailboxes li")).to_have_count(5)  # All + four recipients
    row(page, "Invoice INV-2024-0042").click()
    page.click("#tag-btn")
    page.fill("#tag-input", "billing")
    page.click("#tag-dialog button[value=ok]")
    ex(row(page, "Invoice INV-2024-0042").locator(".tag")).to_have_text("billing")
    row(page, "Your order is on its way").click()
    frame = page.frame_locator("iframe.html-frame")
    ex(frame.locator("#hero")).to_have_text("Your order is on its way")
    ex(frame.locator("#hero")).to_have_css("font-size", "26px")
    # Opened messages are read: their mailboxes show a plain total, not an unread badge.
    for box in ("alice@example.org", "billing@example.org"):
        ex(page.locator(f"#mailboxes a[data-mailbox='{box}'] .badge")).to_have_count(0)
    ex(page.locator("#mailboxes a[data-mailbox='bob@example.org'] .badge")).to_have_text("2")
    shot(page, "overview")
    page.click("button.seg[data-width=phone]")
    ex(frame.locator("#hero")).to_have_css("font-size", "20px")  # the message's media query at 375 px
    shot(page, "preview-phone")


# Stand-ins for what a headless browser cannot show: a granted Notification permission
# (recording what would be shown) and a tab the test can put in the background.
NOTIFY_STUB = """
window.__notes = [];
window.__hidden = false;
class RecordingNotification {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notes.push({ title, body: options.body }); }
  addEventListener() {}
  close() {}
}
window.Notification = RecordingNotification;
Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => window.__hidden });
"""


def test_notification_only_when_in_background(open_ui: OpenUI, ui_server: UIServer) -> None:
    page = open_ui(init_script=NOTIFY_STUB)
    ui_server.deliver(mail("Seen in the foreground"))
    ex(row(page, "Seen in the foreground")).to_be_visible()
    page.evaluate("window.__hidden = true")
    ui_server.deliver(mail("Arrived in the background", sender="Billing <billing@example.com>"))
    ex(row(page, "Arrived in the background")).to_be_visible()
    notes = page.evaluate("window.__notes")
    assert [n["title"] for n in notes] == ["Arrived in the background"]
    assert notes[0]["body"].startswith("From Billing")


def test_thread_view(open_ui: OpenUI, ui_server: UIServer) -> None:
    if ui_server.status("/api/v2/threads") == 404:
        pytest.skip("the threads API (GET /api/v2/threads) is not in this build yet")
    first = mail("Lunch on Friday?", sender="Alice <alice@example.org>", to="bob@example.org")
    first["Message-ID"] = "<lunch-1@example.org>"
    reply = mail("Re: Lunch on Friday?", sender="Bob <bob@example.org>", to="alice@example.org")
    reply["Message-ID"] = "<lunch-2@example.org>"
    reply["In-Reply-To"] = "<lunch-1@example.org>"
    reply["References"] = "<lunch-1@example.org>"
    ui_server.deliver(first)
    ui_server.deliver(reply)
    ui_server.deliver(mail("Unrelated"))
    ui_server.settle()
    page = open_ui()
    row(page, "Re: Lunch on Friday?").click()
    page.click("#tab-thread")
    items = page.locator(".thread .thread-item")
    ex(items).to_have_count(2)
    ex(page.locator(".thread-item.current")).to_contain_text("Re: Lunch on Friday?")
    items.filter(has_text="Alice").click()
    ex(page.locator("#msg-subject")).to_have_text("Lunch on Friday?")


def test_served_under_a_webroot(chromium: Any) -> None:
    """With --webroot /mail/ every asset, API call and the WebSocket resolve under it."""
    if USE_MOCK:
        pytest.skip("the mock serves at / only")
    with running_server(webroot="/mail/") as srv:
        if "http" not in srv.app.addresses:
            pytest.skip("this build has no HTTP listener yet")
        ctx = chromium.new_context()
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(srv.http_url + "/mail/")
        page.wait_for_selector("body[data-ready]")
        ex(page.locator("#conn")).to_have_attribute("data-state", "open")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as smtp:
            smtp.send_message(mail("Under a webroot"))
        ex(row(page, "Under a webroot")).to_be_visible()
        row(page, "Under a webroot").click()
        ex(page.locator("#msg-subject")).to_have_text("Under a webroot")
        assert errors == []
        ctx.close()
