"""Deterministic benchmark messages: small (~1 KB text), html (~21 KB text + HTML), attachment (~270 KB).

Sizes match the fixtures of the shared ingest benchmark so that figures compare.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

VOCAB = [
    "order",
    "invoice",
    "shipping",
    "account",
    "password",
    "reset",
    "welcome",
    "team",
    "update",
    "report",
    "weekly",
    "summary",
    "thanks",
    "please",
    "click",
    "confirm",
    "verify",
    "your",
    "new",
    "settings",
    "profile",
    "payment",
    "receipt",
    "delivery",
    "tracking",
]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def _message(subject: str, seq: int) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Shop <noreply@shop.example.com>"
    m["To"] = "Alice <alice@example.org>"
    m["Subject"] = subject
    m["Date"] = format_datetime(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    m["Message-ID"] = f"<bench-{seq}@shop.example.com>"
    return m


def build(kind: str) -> bytes:
    """Return the fixture ``kind`` ('small', 'html' or 'attachment') with LF line ends."""
    rng = random.Random(2026)
    if kind == "small":
        m = _message("Your password reset code", 1)
        m.set_content(_words(rng, 120))
    elif kind == "html":
        m = _message("Your order #12345 has shipped", 2)
        m.set_content("\n".join(_words(rng, 20) for _ in range(40)))
        links = "".join(
            f"<p>{_words(rng, 25)} <a href='https://shop.example.com/t/{i}'>link</a></p>" for i in range(60)
        )
        m.add_alternative(f"<html><body>{links}</body></html>", subtype="html")
        m["List-Unsubscribe"] = "<https://shop.example.com/unsub>"
    elif kind == "attachment":
        m = _message("Monthly report (PDF attached)", 3)
        m.set_content(_words(rng, 200))
        m.add_attachment(rng.randbytes(200_000), maintype="application", subtype="pdf", filename="report.pdf")
    else:
        raise ValueError(f"unknown fixture {kind!r}")
    return m.as_bytes().replace(b"\r\n", b"\n")


def write(kind: str, directory: Path) -> Path:
    path = directory / f"{kind}.eml"
    path.write_bytes(build(kind))
    return path
