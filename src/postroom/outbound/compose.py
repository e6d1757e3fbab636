"""Compose a message: the one builder behind ``postroom send`` and the outbound queue.

Structure (RFC 2045/2046), from the inside out::

    text + html            -> multipart/alternative   (text first: the least preferred)
    html + inline images   -> multipart/related        (images referenced by cid:, RFC 2392)
    body + attachments     -> multipart/mixed

A message with a single part is not wrapped. Non-ASCII header text becomes RFC 2047
encoded words and non-ASCII file names RFC 2231 parameters (Python's ``email`` package
with the SMTP policy does both), lines end in CRLF, and every message gets a Date and a
Message-ID (RFC 5322 3.6.1, 3.6.4) unless the caller gave them.

``List-Unsubscribe`` (RFC 2369) with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
(RFC 8058) is what Gmail and Yahoo require of bulk senders since 2024; :class:`Draft` sets
both from one field.

Errors: :class:`ComposeError` (a ``ValueError``) names the field that is wrong.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid

__all__ = ["Attachment", "ComposeError", "Draft", "compose", "parse_address", "parse_addresses"]

# Headers the builder owns: a caller's extra headers may not replace them.
_RESERVED = frozenset(("content-type", "content-transfer-encoding", "mime-version", "bcc"))


class ComposeError(ValueError):
    """The draft cannot become a message; the text names the field."""


@dataclass(frozen=True)
class Attachment:
    """A file carried by the message.

    ``content_id`` makes it an inline part of the HTML (``<img src="cid:ID">``); without
    it the part is a plain attachment. ``content_type`` is guessed from the file name
    when empty.
    """

    filename: str
    data: bytes
    content_type: str = ""
    content_id: str = ""

    @classmethod
    def from_path(cls, path: str, content_id: str = "") -> Attachment:
        """Read a file from disk.

        Raises:
            ComposeError: the file cannot be read.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ComposeError(f"attachment {path}: {e.strerror or e}") from None
        return cls(os.path.basename(path), data, content_id=content_id)

    def mime_type(self) -> tuple[str, str]:
        ctype = self.content_type or mimetypes.guess_type(self.filename)[0] or "application/octet-stream"
        main, _, sub = ctype.partition("/")
        if not main or not sub:
            raise ComposeError(f"attachment {self.filename}: content type {ctype!r} is not type/subtype")
        return main.lower(), sub.lower()


@dataclass(frozen=True)
class Draft:
    """Everything a message is made of. Addresses are ``Address`` objects (see
    :func:`parse_address`). ``bcc`` recipients are returned by :meth:`recipients` but never
    written into the message."""

    sender: Address
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    list_unsubscribe: tuple[str, ...] = ()  # URLs: https:// and/or mailto:
    one_click: bool = False  # List-Unsubscribe-Post (RFC 8058); needs an https:// URL
    message_id: str = ""
    date: str = ""

    def recipients(self) -> list[str]:
        """Every envelope recipient (To, Cc and Bcc), each once, in order."""
        seen: dict[str, None] = {}
        for a in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(a.addr_spec, None)
        return list(seen)


def parse_address(value: str, field_name: str = "address") -> Address:
    """``"Name <user@example.com>"`` or ``"user@example.com"`` as an ``Address``.

    Raises:
        ComposeError: not one valid address.
    """
    pairs = getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1]:
        raise ComposeError(f"{field_name}: not an address: {value!r}")
    name, email = pairs[0]
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>\r\n" for c in email):
        raise ComposeError(f"{field_name}: not an address: {value!r}")
    try:
        return Address(display_name=name, addr_spec=email)
    except (ValueError, IndexError):
        try:  # non-ASCII local parts (RFC 6532) that the header parser refuses
            return Address(display_name=name, username=local, domain=domain)
        except (ValueError, IndexError):
            raise ComposeError(f"{field_name}: not an address: {value!r}") from None


def parse_addresses(values: list[str] | tuple[str, ...], field_name: str) -> tuple[Address, ...]:
    """Each value may hold several comma-separated addresses."""
    out: list[Address] = []
    for value in values:
        for name, email in getaddresses([value]):
            if email:
                out.append(parse_address(f"{name} <{email}>" if name else email, field_name))
            elif name.strip():
                raise ComposeError(f"{field_name}: not an address: {value!r}")
    return tuple(out)


def _body(draft: Draft) -> EmailMessage:
    inline = [a for a in draft.attachments if a.content_id]
    attached = [a for a in draft.attachments if not a.content_id]
    if inline and draft.html is None:
        raise ComposeError("inline images (Content-ID) need an HTML body that refers to them")
    msg = EmailMessage(policy=policy.SMTP)
    if draft.text is not None or draft.html is None:
        msg.set_content(draft.text or "", subtype="plain", cte=_cte(draft.text or ""))
    if draft.html is not None:
        if draft.text is None:
            msg.set_content(draft.html, subtype="html", cte=_cte(draft.html))
        else:
            msg.add_alternative(draft.html, subtype="html", cte=_cte(draft.html))
        html_part = msg if draft.text is None else msg.get_payload()[-1]  # type: ignore[index]
        for a in inline:
            main, sub = a.mime_type()
            html_part.add_related(  # type: ignore[union-attr]
                a.data,
                maintype=main,
                subtype=sub,
                cid=f"<{a.content_id.strip('<>')}>",
                filename=a.filename,
                disposition="inline",
            )
    for a in attached:
        main, sub = a.mime_type()
        if main == "text":
            msg.add_attachment(a.data.decode("utf-8", "replace"), subtype=sub, filename=a.filename)
        else:
            msg.add_attachment(a.data, maintype=main, subtype=sub, filename=a.filename)
    return msg


def _cte(text: str) -> str:
    # 7bit keeps plain ASCII readable; quoted-printable for the rest, and for any line
    # past RFC 5322 2.1.1's 998 characters.
    if text.isascii() and all(len(line) <= 998 for line in text.splitlines()):
        return "7bit"
    return "quoted-printable"


def compose(draft: Draft, *, msgid_domain: str | None = None) -> bytes:
    """The draft as RFC 5322 bytes (CRLF line ends), ready for DATA.

    Raises:
        ComposeError: a field cannot be written (the message names it).
    """
    if draft.one_click and not any(u.lower().startswith("https://") for u in draft.list_unsubscribe):
        raise ComposeError("one-click unsubscribe (RFC 8058) needs an https:// List-Unsubscribe URL")
    msg = _body(draft)
    head = EmailMessage(policy=policy.SMTP)
    head["From"] = draft.sender
    for name, addrs in (("To", draft.to), ("Cc", draft.cc), ("Reply-To", draft.reply_to)):
        if addrs:
            head[name] = addrs
    try:
        head["Subject"] = draft.subject
    except ValueError as e:
        raise ComposeError(f"subject: {e}") from None
    head["Date"] = draft.date or formatdate(localtime=True)
    domain = msgid_domain or draft.sender.domain or "postroom.localhost"
    head["Message-ID"] = draft.message_id or make_msgid(domain=domain.encode("idna").decode("ascii"))
    if draft.list_unsubscribe:
        head["List-Unsubscribe"] = ", ".join(f"<{u.strip('<>')}>" for u in draft.list_unsubscribe)
        if draft.one_click:
            head["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    owned = {k.lower() for k in head}
    for name, value in draft.headers:
        key = name.strip().lower()
        if not key or any(c in name for c in ": \r\n") or key in _RESERVED:
            raise ComposeError(f"header {name!r} cannot be set here")
        if "\r" in value or "\n" in value:
            raise ComposeError(f"header {name}: value may not contain line breaks")
        if key in owned:
            del head[name]
        head[name] = value
    # the addressing headers first, then MIME-Version and the content headers from _body
    ordered = EmailMessage(policy=policy.SMTP)
    for name, value in [*head.items(), *msg.items()]:
        ordered[name] = value
    ordered.set_payload(msg.get_payload())
    ordered.preamble, ordered.epilogue = msg.preamble, msg.epilogue
    return ordered.as_bytes(policy=policy.SMTP.clone(max_line_length=78))
