"""Build a MIME message from the JSON of ``POST /api/v1/send`` (Mailpit's SendMessageParams).

Structure of the result (RFC 2045/2046): text and HTML become ``multipart/alternative``;
attachments with a ``ContentID`` are related to the HTML (``multipart/related``);
others make the whole ``multipart/mixed``. Lines end in CRLF, as on the wire; Text and
HTML are base64-encoded (unless one short ASCII line) so that they read back byte for
byte, LF line ends included (a client compares what it sent with what it reads). The envelope-only
recipients are named in a ``Bcc`` header and the sender in ``Return-Path``, as Mailpit's
store adds them. Keys match in any letter case, as Go's JSON decoder does.

Errors: :class:`SendError` (a ``ValueError``) names the field that is wrong.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Callable
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

__all__ = ["SendError", "build_message"]

# Longest line a 7bit body may have (RFC 5322 section 2.1.1: 998 characters and CRLF).
MAX_7BIT_LINE = 998

# The fields of Mailpit's SendMessageParams (matched in any letter case).
SEND_FIELDS = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "ReplyTo",
    "Subject",
    "Text",
    "HTML",
    "Headers",
    "Attachments",
    "Tags",
)
# Header names a caller may not set through "Headers" (the builder owns them).
_RESERVED = frozenset(("content-type", "content-transfer-encoding", "mime-version", "bcc", "return-path"))


class SendError(ValueError):
    """The request cannot become a message; the text names the field."""


def _fields(value: dict[str, Any], *names: str) -> dict[str, Any]:
    """``value`` with keys spelt as ``names`` when they match in any case (others kept)."""
    canonical = {n.lower(): n for n in names}
    return {canonical.get(k.lower(), k): v for k, v in value.items()}


def _addr(value: Any, field: str) -> Address:
    if not isinstance(value, dict):
        raise SendError(f"{field} must be an object with Email and optional Name")
    value = _fields(value, "Email", "Name")
    email = value.get("Email")
    name = value.get("Name") or ""
    if not isinstance(email, str) or not email.strip():
        raise SendError(f"{field}.Email is required")
    if not isinstance(name, str):
        raise SendError(f"{field}.Name must be a string")
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>\r\n" for c in email):
        raise SendError(f"{field}.Email is not a valid address: {email!r}")
    try:
        return Address(display_name=name.strip(), addr_spec=email)
    except (ValueError, IndexError):
        try:
            return Address(display_name=name.strip(), username=local, domain=domain)
        except (ValueError, IndexError):
            raise SendError(f"{field}.Email is not a valid address: {email!r}") from None


def _addr_list(body: dict[str, Any], key: str) -> list[Address]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SendError(f"{key} must be an array")
    return [_addr(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _opt_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SendError(f"{key} must be a string")
    return value


def build_message(body: dict[str, Any]) -> tuple[bytes, list[str], list[str], str]:
    """Return (raw message, envelope recipients, tags, envelope sender).

    Raises:
        SendError: a field is missing or has the wrong type.
    """
    body = _fields(body, *SEND_FIELDS)
    if "From" not in body:
        raise SendError("From is required")
    sender = _addr(body["From"], "From")
    to = _addr_list(body, "To")
    cc = _addr_list(body, "Cc")
    reply_to = _addr_list(body, "ReplyTo")
    bcc_raw = body.get("Bcc") or []
    if not isinstance(bcc_raw, list) or not all(isinstance(b, str) for b in bcc_raw):
        raise SendError("Bcc must be an array of email addresses")
    bcc = [_addr({"Email": b}, f"Bcc[{i}]").addr_spec for i, b in enumerate(bcc_raw)]
    rcpts = list(dict.fromkeys([a.addr_spec for a in (*to, *cc)] + bcc))
    if not rcpts:
        raise SendError("no recipients: give at least one of To, Cc or Bcc")
    subject = _opt_str(body, "Subject")
    text = _opt_str(body, "Text")
    html = _opt_str(body, "HTML")
    tags = body.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise SendError("Tags must be an array of strings")
    headers = body.get("Headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise SendError('Headers must be an object of strings ({"X-Name": "value"})')

    msg = EmailMessage(policy=policy.SMTP)
    try:
        msg["From"] = sender
        if to:
            msg["To"] = to
        if cc:
            msg["Cc"] = cc
        if reply_to:
            msg["Reply-To"] = reply_to
        msg["Subject"] = subject
        for name, value in headers.items():
            if name.lower() in _RESERVED or not name or any(c.isspace() or c == ":" for c in name):
                raise SendError(f"Headers: {name!r} cannot be set")
            if "\r" in value or "\n" in value:
                raise SendError(f"Headers: the value of {name} contains a line break")
            if name.lower() in ("from", "to", "cc", "reply-to", "subject"):
                del msg[name]
            msg[name] = value
    except SendError:
        raise
    except (ValueError, TypeError) as e:
        raise SendError(f"cannot build headers: {e}") from None
    if "Date" not in msg:
        msg["Date"] = formatdate(localtime=False)
    if "Message-ID" not in msg:
        msg["Message-ID"] = make_msgid(domain=sender.domain or "postroom")
    shown = {a.addr_spec.lower() for a in (*to, *cc)}
    hidden = [b for b in bcc if b.lower() not in shown]
    if hidden:
        msg["Bcc"] = ", ".join(dict.fromkeys(hidden))
    if "Return-Path" not in msg:
        msg["Return-Path"] = f"<{sender.addr_spec}>"

    attachments = body.get("Attachments") or []
    if not isinstance(attachments, list):
        raise SendError("Attachments must be an array")
    decoded = [_attachment(a, i) for i, a in enumerate(attachments)]

    if html and text:
        _add_text(msg.set_content, text, "plain")
        _add_text(msg.add_alternative, html, "html")
    else:
        _add_text(msg.set_content, html or text, "html" if html else "plain")
    html_part = _find_html(msg) if html else None
    for data, filename, ctype, cid in decoded:
        maintype, _, subtype = ctype.partition("/")
        if cid and html_part is not None:
            html_part.add_related(
                data, maintype, subtype, cid=f"<{cid}>", filename=filename, disposition="inline"
            )
            html_part = _find_html(msg)
        elif cid:
            msg.add_attachment(
                data, maintype, subtype, filename=filename, cid=f"<{cid}>", disposition="inline"
            )
        else:
            msg.add_attachment(data, maintype, subtype, filename=filename)
    return msg.as_bytes(policy=policy.SMTP), rcpts, [t.strip() for t in tags if t.strip()], sender.addr_spec


def _add_text(add: Callable[..., None], text: str, subtype: str) -> None:
    """Add a text part with ``add`` (``set_content`` or ``add_alternative``) that reads back
    as exactly ``text``: one short ASCII line as it is, anything else base64 (given a str,
    ``email`` would rewrite LF line ends to CRLF and add one at the end)."""
    data = text.encode("utf-8")
    plain = text.isascii() and len(data) <= MAX_7BIT_LINE and not ("\r" in text or "\n" in text)
    add(data, "text", subtype, cte="7bit" if plain else "base64", params={"charset": "utf-8"})


def _find_html(msg: EmailMessage) -> EmailMessage | None:
    """The part holding the HTML body (or the multipart/related around it)."""
    for part in msg.walk():
        if not isinstance(part, EmailMessage):
            continue
        if part.get_content_type() == "multipart/related":
            return part
        if part.get_content_type() == "text/html" and part.get_content_disposition() is None:
            return part
    return None


def _attachment(a: Any, i: int) -> tuple[bytes, str, str, str]:
    field = f"Attachments[{i}]"
    if not isinstance(a, dict):
        raise SendError(f"{field} must be an object with Content and Filename")
    a = _fields(a, "Content", "Filename", "ContentType", "ContentID")
    content, filename = a.get("Content"), a.get("Filename")
    if not isinstance(filename, str) or not filename.strip():
        raise SendError(f"{field}.Filename is required")
    if not isinstance(content, str):
        raise SendError(f"{field}.Content is required (base64)")
    try:
        data = base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SendError(f"{field}.Content is not valid base64") from None
    ctype = a.get("ContentType") or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if not isinstance(ctype, str) or "/" not in ctype:
        raise SendError(f"{field}.ContentType must look like type/subtype")
    cid = a.get("ContentID") or ""
    if not isinstance(cid, str):
        raise SendError(f"{field}.ContentID must be a string")
    return data, filename.strip(), ctype.lower(), cid.strip().strip("<>")
