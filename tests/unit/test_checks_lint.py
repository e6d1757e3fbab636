"""Deliverability lint: each rule fires on a message that breaks it, and not on a clean one."""

from __future__ import annotations

from postroom.checks.lint import lint
from postroom.message import parse_message

CLEAN = (
    b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: Lunch\r\n"
    b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <l1@example.org>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nLunch at noon? https://example.org/menu\r\n"
    b'--b\r\nContent-Type: text/html\r\n\r\n<p>Lunch at noon? <a href="https://example.org/menu">'
    b"example.org/menu</a></p>" + b"<p>" + b"Some words. " * 30 + b"</p>\r\n--b--\r\n"
)


def codes(raw: bytes) -> dict[str, str]:
    return {f.code: f.severity for f in lint(raw, parse_message(raw))}


def test_clean_message_has_no_findings() -> None:
    assert codes(CLEAN) == {}


def test_missing_headers() -> None:
    raw = b"To: bob@example.org\r\nSubject: \r\n\r\nhi\r\n"
    c = codes(raw)
    assert c["from-count"] == "error" and c["no-date"] == "error"
    assert c["no-message-id"] == "warning" and c["no-subject"] == "warning"


def test_html_only_image_only_and_mismatched_link() -> None:
    raw = (
        b"From: a@shop.example\r\nTo: b@example.org\r\nSubject: SALE SALE SALE NOW\r\n"
        b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <x@shop.example>\r\n"
        b"Content-Type: text/html\r\n\r\n"
        b'<img src="https://cdn.example/banner.png"><a href="https://evil.example/login">https://mybank.example</a>'
    )
    c = codes(raw)
    assert c["no-text-part"] == "warning" and c["image-only"] == "warning"
    assert c["link-domain-mismatch"] == "error" and c["subject-caps"] == "warning"
    assert c["image-without-alt"] == "info"


def test_bulk_mail_needs_one_click_unsubscribe() -> None:
    base = CLEAN.replace(b"Subject: Lunch\r\n", b"Subject: News\r\nList-Id: <news.example.org>\r\n")
    assert codes(base)["no-list-unsubscribe"] == "error"
    with_unsub = base.replace(b"List-Id:", b"List-Unsubscribe: <https://example.org/u/1>\r\nList-Id:")
    c = codes(with_unsub)
    assert "no-list-unsubscribe" not in c and c["no-one-click"] == "error"
    one_click = with_unsub.replace(
        b"List-Id:", b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nList-Id:"
    )
    assert "no-one-click" not in codes(one_click)


def test_broken_mime_and_spammy_phrasing() -> None:
    raw = CLEAN.replace(b"\r\n--b--\r\n", b"\r\n")  # no closing boundary
    assert codes(raw)["broken-mime"] == "error"
    spammy = CLEAN.replace(b"Lunch at noon? https", b"Act now!!! 100% free, risk-free and guaranteed: https")
    assert codes(spammy)["spammy-phrases"] == "warning" and codes(spammy)["shouting"] == "info"


def test_findings_are_sorted_errors_first() -> None:
    raw = b"To: bob@example.org\r\nSubject: \r\n\r\nhi\r\n"
    sev = [f.severity for f in lint(raw, parse_message(raw))]
    assert sev == sorted(sev, key=("error", "warning", "info").index)
