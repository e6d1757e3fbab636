"""An asyncio service that sends a welcome mail with a verification code (aiosmtplib)."""

from __future__ import annotations

import asyncio
import secrets
from email.message import EmailMessage

import aiosmtplib

#: Attempts per message; a 4xx answer (greylisting, a busy server) is worth retrying.
ATTEMPTS = 3


async def send_welcome(email: str, *, host: str, port: int, retry_delay: float = 0.05) -> str:
    """Send the welcome mail; returns the verification code it contains.

    Raises:
        aiosmtplib.SMTPException: a permanent failure, or every attempt failed.
    """
    code = f"{secrets.randbelow(10**6):06d}"
    msg = EmailMessage()
    msg["From"] = "welcome@service.example"
    msg["To"] = email
    msg["Subject"] = "Welcome! Confirm your address"
    msg.set_content(f"Your verification code is {code}.\nhttps://service.example/verify?e={email}\n")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            await aiosmtplib.send(msg, hostname=host, port=port, timeout=10)
            return code
        except aiosmtplib.SMTPResponseException as e:
            if e.code >= 500 or attempt == ATTEMPTS:
                raise
        except aiosmtplib.SMTPRecipientsRefused as e:
            if any(r.code >= 500 for r in e.recipients) or attempt == ATTEMPTS:
                raise
        await asyncio.sleep(retry_delay * attempt)
    raise AssertionError("unreachable")


async def signup_many(emails: list[str], *, host: str, port: int) -> dict[str, str]:
    """Send welcome mails concurrently; returns address -> code."""
    codes = await asyncio.gather(*(send_welcome(e, host=host, port=port) for e in emails))
    return dict(zip(emails, codes, strict=True))
