"""Where ``postroom import`` puts messages, and its progress line.

* :class:`SmtpSink` (the default, like Mailpit's ``ingest``): SMTP to the running postroom,
  as if the application had sent it; postroom adds its ``Received`` line, flags are lost.
* :class:`ImapSink` (``--imap HOST:PORT``): IMAP APPEND into each recipient's mailbox in
  postroom, into the Maildir++ folder the message came from, with its flags (Maildir
  ``:2,`` info, mbox ``Status``/``X-Status``); the stored bytes are exactly the file's
  (line ends as CRLF), so an export imported again hashes the same.
"""

from __future__ import annotations

import imaplib
import smtplib
import sys
import time
from typing import TextIO

from .archive import Item
from .imap_sync import no_delay

__all__ = ["IMAP_FLAGS", "ImapSink", "Progress", "SmtpSink"]

#: archive flag names -> IMAP system flags (RFC 3501 2.3.2)
IMAP_FLAGS = {
    "seen": "\\Seen",
    "flagged": "\\Flagged",
    "answered": "\\Answered",
    "deleted": "\\Deleted",
    "draft": "\\Draft",
}


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class SmtpSink:
    """One SMTP connection reused for every message, reopened after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.smtp: smtplib.SMTP | None = None

    def send(self, sender: str, rcpts: list[str], item: Item) -> None:
        data = crlf(item.data)
        for attempt in (1, 2):
            try:
                if self.smtp is None:
                    self.smtp = smtplib.SMTP(self.host, self.port, timeout=60)
                    self.smtp.ehlo()
                opts = ["SMTPUTF8"] if not all(a.isascii() for a in (sender, *rcpts)) else []
                if not data.isascii() and self.smtp.has_extn("8bitmime"):
                    opts.append("BODY=8BITMIME")
                self.smtp.sendmail(sender, rcpts, data, mail_options=opts)
                return
            except smtplib.SMTPServerDisconnected:
                self.smtp = None
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()


class ImapRefused(Exception):
    """postroom's IMAP refused a login or an APPEND; the text says which."""


class ImapSink:
    """IMAP APPEND into postroom, one logged-in connection per mailbox."""

    def __init__(self, host: str, port: int, password: str) -> None:
        self.host, self.port, self.password = host, port, password
        self.conns: dict[str, imaplib.IMAP4] = {}
        self.folders: set[tuple[str, str]] = set()

    def _conn(self, mailbox: str) -> imaplib.IMAP4:
        conn = self.conns.get(mailbox)
        if conn is None:
            conn = imaplib.IMAP4(self.host, self.port, timeout=60)
            no_delay(conn)
            try:
                conn.login(mailbox, self.password)
            except imaplib.IMAP4.error as e:
                conn.shutdown()
                raise ImapRefused(f"login to postroom's IMAP as {mailbox} refused: {e}") from None
            self.conns[mailbox] = conn
        return conn

    def send(self, sender: str, rcpts: list[str], item: Item) -> None:
        folder = item.folder if item.folder and item.folder.upper() != "INBOX" else "INBOX"
        quoted = '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
        flags = " ".join(IMAP_FLAGS[f] for f in sorted(item.flags) if f in IMAP_FLAGS)
        for mailbox in rcpts:
            conn = self._conn(mailbox.lower())
            if folder != "INBOX" and (mailbox, folder) not in self.folders:
                conn.create(quoted)  # NO [ALREADYEXISTS] is fine
                self.folders.add((mailbox, folder))
            typ, data = conn.append(quoted, f"({flags})" if flags else None, None, item.data)
            if typ != "OK":
                text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
                raise ImapRefused(f"APPEND to {mailbox} {folder} refused: {text}")

    def close(self) -> None:
        for conn in self.conns.values():
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                pass


class Progress:
    """``verb N messages (R/s)`` rewritten in place at most twice a second, on a terminal only."""

    def __init__(self, verb: str, stream: TextIO | None = None) -> None:
        self.verb = verb
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty()
        self.start = self.last = time.monotonic()
        self.shown = False

    def update(self, count: int) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = count / max(now - self.start, 1e-6)
        self.stream.write(f"\r{self.verb} {count:,} messages ({rate:,.0f}/s)\x1b[K")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
