"""Wires the runtime features into a starting app (called once from ``App.start``).

Sets the app's typed fields:

* ``app.chaos``: :class:`~postroom.runtime.chaos.Chaos`, loaded from ``--chaos``;
* ``app.handlers``: :class:`~postroom.runtime.handlers.Handlers` (empty until a test adds one);
* ``app.webhooks``: :class:`~postroom.runtime.webhooks.Webhooks` from ``--webhook``;
* a :class:`~postroom.runtime.printer.Printer` runs for ``--print`` / ``--exit-after``;
* with ``--max-age``, a sweep that prunes expired mail on an idle server too.

Chaos and handlers put themselves in ``app.smtp_hooks`` only while they have something to
do, and webhooks subscribe to the bus only while they have a URL: a server that uses none
of this pays nothing on the SMTP path.

Errors: :class:`~postroom.config.ConfigError` for a ``--chaos`` or ``--webhook`` value
that cannot work.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import ConfigError
from ..protocols.smtp import IGNORED_RCPT, Reply
from .chaos import Chaos, ChaosError
from .handlers import Handlers
from .webhooks import Webhooks

if TYPE_CHECKING:
    from ..app import App

__all__ = ["AGE_SWEEP_INTERVAL", "install"]

log = logging.getLogger(__name__)

# Seconds between two --max-age sweeps of an idle server. The SQLite store prunes by age
# when it writes, at most every PRUNE_INTERVAL (30 s); an idle server writes nothing, so the
# sweep gives it an empty write this often. Mailpit sweeps every minute.
AGE_SWEEP_INTERVAL = 30.0


def install(app: App) -> None:
    """Set up chaos, handlers, webhooks and the printer for ``app`` (on its loop).

    Raises:
        ConfigError: a bad ``--chaos`` spec or webhook URL.
    """
    s = app.settings
    chaos = Chaos(app.smtp_hooks, enabled=bool(s.enable_chaos or s.chaos))
    try:
        if s.chaos:
            chaos.load(s.chaos)
    except ChaosError as e:
        raise ConfigError(f"--chaos: {e}") from None
    app.chaos = chaos
    app.handlers = Handlers(app.smtp_hooks)
    if s.smtp_allowed_recipients:  # Mailpit's --smtp-allowed-recipients, as a recipient handler
        pattern = re.compile(s.smtp_allowed_recipients)
        app.handlers.add_rcpt(_allowed_recipients(pattern, ignore=s.smtp_ignore_rejected_recipients))
    if s.smtp_strict_rfc_headers:  # Mailpit's --smtp-strict-rfc-headers, as a message handler
        app.handlers.add(_strict_line_breaks)
    if s.ignore_duplicate_ids:  # Mailpit's --ignore-duplicate-ids, as a message handler
        app.handlers.add(_drop_duplicates(app))
    urls = [u for u in s.webhook.split(",") if u.strip()] if s.webhook else []
    try:
        webhooks = Webhooks(app, urls, retries=s.webhook_retries)
    except ValueError as e:
        raise ConfigError(f"--webhook: {e}") from None
    app.webhooks = webhooks
    webhooks.start()
    write = getattr(app.store, "write", None)  # SQLite's; PostgreSQL's indexer loop sweeps itself
    if s.max_age and callable(write):
        app.spawn(_sweep_expired(write))
    if s.print or s.exit_after:
        from .printer import Printer

        Printer(app, print_messages=s.print, exit_after=s.exit_after).start()


async def _sweep_expired(write: Callable[[Callable[[Any], None]], Any]) -> None:
    """Give the store an empty write every AGE_SWEEP_INTERVAL: its retention runs with it."""
    while True:
        await asyncio.sleep(AGE_SWEEP_INTERVAL)
        try:
            await asyncio.to_thread(write, lambda conn: None)
        except Exception:  # the store closing, or a full disk: the next sweep tries again
            log.debug("--max-age sweep failed", exc_info=True)


# Mailpit's answer to a recipient --smtp-allowed-recipients does not match.
NOT_ALLOWED = "550 5.1.0 Requested action not taken: mailbox unavailable"


def _allowed_recipients(pattern: re.Pattern[str], ignore: bool) -> Callable[[str, Any], Any]:
    """Refuse a recipient ``pattern`` does not match; with ``ignore`` (Mailpit's
    --smtp-ignore-rejected-recipients) answer it 250 and leave it out of the envelope."""

    async def check(address: str, envelope: Any) -> str | Reply | None:
        if pattern.search(address):
            return None
        if ignore:
            log.info("SMTP recipient %s ignored (--smtp-allowed-recipients)", address)
            return IGNORED_RCPT
        log.info("SMTP recipient %s refused (--smtp-allowed-recipients)", address)
        return NOT_ALLOWED

    return check


# --smtp-strict-rfc-headers (Mailpit's meaning, from its code: headers with CR CR LF, left by
# a client that turned LF into CRLF on a CRLF message, are an error instead of repaired): a
# CR not followed by LF in the header block (up to its first empty line) is refused. Bare
# LFs never get here: the SMTP server stores them as CRLF, as Mailpit's parser accepts them.
BAD_LINE_BREAKS = "550 5.6.0 Error: message headers have a CR not followed by LF (CR CR LF?)"
_HEADER_END = re.compile(rb"\n\r*\n")
_STRAY_CR = re.compile(rb"\r(?!\n)")


def _strict_line_breaks(msg: Any) -> str | None:
    end = _HEADER_END.search(msg.raw)
    head = msg.raw[: end.end()] if end else msg.raw
    if _STRAY_CR.search(head):
        log.info("SMTP message refused: a CR without LF in its header (--smtp-strict-rfc-headers)")
        return BAD_LINE_BREAKS
    return None


# Mailpit's answer to a message it ignores as a duplicate: accepted, not stored.
IGNORED_DUPLICATE = "250 2.0.0 Ok: duplicate Message-ID, ignored"


def _drop_duplicates(app: App) -> Callable[[Any], Any]:
    def check(msg: Any) -> str | None:  # runs in a worker thread (it queries the store)
        mid = (msg.message_id or "").strip().strip("<>")
        if not mid:
            return None
        quoted = '"' + mid.replace("\\", "\\\\").replace('"', '\\"') + '"'
        page = app.store.list_messages(query=f"message-id:{quoted}", limit=50)
        if not any(s.message_id == mid for s in page.messages):
            return None
        stats = app.extras.setdefault("runtime_stats", {})
        stats["SMTPIgnored"] = stats.get("SMTPIgnored", 0) + 1
        log.info("SMTP message %s ignored: its Message-ID is stored already", mid)
        return IGNORED_DUPLICATE

    return check
