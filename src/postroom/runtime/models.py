"""What a test sees of a caught message: :class:`Message`, its attachments and headers.

A :class:`Message` is built from the raw bytes (with :func:`postroom.message.parse_message`)
plus, when known, the store's summary and the SMTP envelope. The same class is returned
by :class:`postroom.Server` (reading the store directly) and :class:`postroom.Client`
(reading a running server over HTTP), so a test does not care which one it talks to.

Extraction helpers (:func:`extract_links`, :func:`extract_code`) work on any text and
are what :meth:`Message.link` and :meth:`Message.code` use.

Errors: :meth:`Message.code` and :meth:`Message.link` raise :class:`LookupError`
subclass :class:`NotFoundInMessage` (also an ``AssertionError``, so pytest shows it as a
failed expectation) naming what was looked for and what the message holds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..charsets import decode_words
from ..message import ParsedMessage, Part, html_to_text, parse_message
from ..store.base import Address, Envelope, Summary

__all__ = [
    "DEFAULT_CODE_PATTERN",
    "NO_ADDRESS",
    "Address",
    "Attachment",
    "Envelope",
    "Headers",
    "Message",
    "NotFoundInMessage",
    "describe",
    "extract_code",
    "extract_links",
]

#: A one-time code as most services send them: 4 to 8 digits standing alone.
DEFAULT_CODE_PATTERN = r"(?<![\d-])(\d{4,8})(?![\d-])"
# How much of a body a failure message quotes (test output, never server logs).
_QUOTE = 300
_URL = re.compile(r"""\b(?:https?://|mailto:)[^\s<>"'`\])}]+""", re.IGNORECASE)
_TRAILING = ".,;:!?*'\""


class NotFoundInMessage(AssertionError, LookupError):
    """A link or code that a test asked for is not in the message."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment (or an inline part such as an embedded image)."""

    filename: str
    content_type: str
    content: bytes = field(repr=False)
    content_id: str = ""
    part_id: str = ""
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def text(self) -> str:
        """The content decoded as UTF-8 (undecodable bytes replaced)."""
        return self.content.decode("utf-8", errors="replace")

    @classmethod
    def from_part(cls, part: Part, *, inline: bool) -> Attachment:
        return cls(part.filename, part.content_type, part.payload, part.content_id, part.part_id, inline)


class Headers:
    """Read-only, case-insensitive view of a message's headers (decoded values).

    ``headers["Subject"]`` is the first value (KeyError when absent), ``get(name)``
    the first or a default, ``get_all(name)`` every value in order.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = [(k, decode_words(v)) for k, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self._items:
            if k.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self._items if k.lower() == low]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@functools.cache
def _href_reader() -> Callable[[str], list[str]]:
    """The links (``href`` of ``<a>``/``<area>``) of an HTML body, made on first use:
    ``html.parser`` is not loaded by a test server whose test reads no links."""
    from html.parser import HTMLParser

    class Hrefs(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.links: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("a", "area"):
                for name, value in attrs:
                    if name == "href" and value and value.strip():
                        self.links.append(value.strip())

    def read(html: str) -> list[str]:
        parser = Hrefs()
        try:
            parser.feed(html)
            parser.close()
        except Exception:  # lenient parser; what it found so far, and the text scan
            pass
        return parser.links

    return read


def extract_links(text: str = "", html: str = "") -> list[str]:
    """Every link of an HTML body (``href`` of ``<a>``/``<area>``) and every URL in text.

    Returns:
        Links in the order they appear, HTML first, without duplicates.
    """
    found: list[str] = []
    if html:
        found.extend(_href_reader()(html))
        found.extend(m.group(0).rstrip(_TRAILING) for m in _URL.finditer(html_to_text(html)))
    if text:
        found.extend(m.group(0).rstrip(_TRAILING) for m in _URL.finditer(text))
    return list(dict.fromkeys(found))


def extract_code(text: str, pattern: str | re.Pattern[str] = DEFAULT_CODE_PATTERN) -> str | None:
    """The first match of ``pattern`` in ``text``: its first group when it has one.

    Returns:
        The code, or None when nothing matches.
    """
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    m = rx.search(text)
    if m is None:
        return None
    return m.group(1) if rx.groups else m.group(0)


#: ``from_`` of a message without a (parseable) From header.
NO_ADDRESS = Address("", "")


def _addr(pair: tuple[str, str] | None) -> Address:
    return Address(pair[0], pair[1]) if pair else NO_ADDRESS


def _envelope_from_headers(pm: ParsedMessage) -> Envelope:
    """What the envelope most likely was, for a message whose envelope is unknown (read
    from Mailpit, or built from bytes): Return-Path, else From; To, Cc and Bcc."""
    sender = ""
    for name, value in pm.raw_headers:
        if name.lower() == "return-path":
            sender = value.strip().strip("<>").strip()
            break
    if not sender and pm.from_:
        sender = pm.from_[1]
    rcpts = tuple(dict.fromkeys(a for _, a in (*pm.to, *pm.cc, *pm.bcc) if a))
    return Envelope(mail_from=sender, rcpt_to=rcpts)


def _addrs(pairs: list[tuple[str, str]]) -> list[Address]:
    return [Address(n, a) for n, a in pairs]


class Message:
    """A caught message, parsed. Attributes are plain values; nothing here does I/O.

    Attributes:
        id: the store's message ID ("" for a message not stored yet, e.g. in a handler).
        subject, from_, to, cc, bcc, reply_to: from the headers (:class:`Address` values;
            ``from_`` is ``Address("", "")`` when the message has no From).
        text, html: the bodies (``text`` falls back to the HTML's text).
        attachments: attachments, then inline parts (``inline=True``).
        headers: case-insensitive :class:`Headers`.
        envelope: the SMTP envelope (``mail_from``, ``rcpt_to``); where the server does
            not say (Mailpit) it is derived from the headers and ``envelope_known`` is False.
        raw: the message as stored (with the server's ``Received:`` line).
        mailboxes, tags, received (epoch seconds), date (the Date header, epoch seconds).
    """

    __slots__ = (
        "_parsed",
        "attachments",
        "bcc",
        "cc",
        "date",
        "envelope",
        "envelope_known",
        "from_",
        "headers",
        "html",
        "id",
        "mailboxes",
        "message_id",
        "raw",
        "received",
        "reply_to",
        "subject",
        "tags",
        "text",
        "to",
    )

    def __init__(
        self,
        raw: bytes,
        *,
        id: str = "",
        envelope: Envelope | None = None,
        summary: Summary | None = None,
        parsed: ParsedMessage | None = None,
    ) -> None:
        pm = parsed or parse_message(raw)
        self._parsed = pm
        self.id = id or (summary.id if summary else "")
        self.raw = raw
        self.envelope_known = envelope is not None
        self.envelope: Envelope = envelope if envelope is not None else _envelope_from_headers(pm)
        self.subject = pm.subject
        self.from_: Address = _addr(pm.from_)
        self.to = _addrs(pm.to)
        self.cc = _addrs(pm.cc)
        # Bcc is not in the headers of a message sent properly; the store knows it
        # from the envelope (recipients not named in To/Cc).
        self.bcc = list(summary.bcc) if summary and summary.bcc else _addrs(pm.bcc)
        self.reply_to = _addrs(pm.reply_to)
        self.message_id = pm.message_id
        self.date = pm.date
        self.text = pm.text
        self.html = pm.html
        self.headers = Headers(pm.raw_headers)
        self.attachments = [Attachment.from_part(p, inline=False) for p in pm.attachments] + [
            Attachment.from_part(p, inline=True) for p in pm.inline
        ]
        self.mailboxes: list[str] = list(summary.mailboxes) if summary else []
        self.tags: list[str] = list(summary.tags) if summary else []
        self.received: float = summary.created if summary else self.envelope.received_at

    # -- convenience -------------------------------------------------------------------

    @property
    def recipients(self) -> list[str]:
        """Lower-cased envelope recipients (To/Cc/Bcc when the envelope is unknown)."""
        return [r.lower() for r in self.envelope.rcpt_to]

    @property
    def sender(self) -> str:
        """The envelope sender (MAIL FROM; Return-Path or From when the envelope is unknown)."""
        return self.envelope.mail_from

    @property
    def links(self) -> list[str]:
        """Every link in the HTML and text bodies, in order, without duplicates."""
        return extract_links(self.text, self.html)

    def link(self, containing: str = "", *, pattern: str | re.Pattern[str] | None = None) -> str:
        """The first link that contains ``containing`` (or matches ``pattern``).

        Raises:
            NotFoundInMessage: no link matches; the message lists the links there are.
        """
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        links = self.links
        for url in links:
            if containing in url and (rx is None or rx.search(url)):
                return url
        wanted = f"matching {rx.pattern!r}" if rx is not None else f"containing {containing!r}"
        shown = "\n".join(f"    {u}" for u in links) or "    (none)"
        raise NotFoundInMessage(f"no link {wanted} in {describe(self)}; links found:\n{shown}")

    def code(self, pattern: str | re.Pattern[str] = DEFAULT_CODE_PATTERN) -> str:
        """A one-time code: the first match of ``pattern`` in the subject, then the body.

        Raises:
            NotFoundInMessage: nothing matches; the message quotes the start of the body.
        """
        for source in (self.subject, self.text or html_to_text(self.html)):
            found = extract_code(source, pattern)
            if found is not None:
                return found
        rx = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        body = " ".join(self.text.split())[:_QUOTE]
        raise NotFoundInMessage(f"no code matching {rx!r} in {describe(self)}; text: {body!r}")

    def header(self, name: str, default: str = "") -> str:
        """The first header ``name`` (case-insensitive, decoded), or ``default``."""
        value = self.headers.get(name)
        return default if value is None else value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (what failure listings and webhooks show)."""
        return {
            "id": self.id,
            "subject": self.subject,
            "from": self.from_.address,
            "to": [a.address for a in self.to],
            "recipients": self.recipients,
            "attachments": [a.filename for a in self.attachments if not a.inline],
        }

    def __repr__(self) -> str:
        return f"<Message {describe(self)}>"


def describe(msg: Message) -> str:
    """One line naming a message: id, sender, recipients, subject."""
    ident = f"{msg.id} " if msg.id else ""
    sender = msg.sender or "<>"
    rcpts = ", ".join(msg.recipients) or "(no recipients)"
    return f"{ident}from {sender} to {rcpts}: {msg.subject!r}"
