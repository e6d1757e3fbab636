"""SpamAssassin check through spamd, speaking the SPAMC protocol over asyncio.

spamd (``--enable-spamassassin HOST:PORT``, Mailpit's flag) is asked ``REPORT``:
SpamAssassin's ``spamd/PROTOCOL`` (SPAMC/1.5) is a request line, headers
(``Content-length`` is required), a blank line and the message; the answer is
``SPAMD/1.1 0 EX_OK``, headers including ``Spam: True ; 1005.2 / 5.0``, a blank line,
and the report whose table lists each rule hit as ``pts name description``
(descriptions may wrap onto indented lines). The result has Mailpit's
``SpamAssassinResponse`` shape: ``Score``, ``IsSpam``, ``Rules`` (Score, Name,
Description) and ``Error`` (set, with the rest zero, when spamd cannot be reached or
answers an error, as Mailpit does).

Budgets: the connect and the whole exchange share :data:`TIMEOUT`; an answer larger
than :data:`MAX_REPLY` is refused; a message larger than :data:`MAX_MESSAGE` is not
sent (spamc's own default limit is 500 KB; spamd is slow on large mail).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

__all__ = ["MAX_MESSAGE", "MAX_REPLY", "TIMEOUT", "SpamdError", "parse_reply", "spam_check"]

TIMEOUT = 30.0  # seconds for connect + scan (spamc's default is 600; a developer waits)
MAX_MESSAGE = 10 * 1024 * 1024  # bytes sent to spamd (spamc -s allows up to 256 MB; 10 MiB is ample)
MAX_REPLY = 1024 * 1024  # a report is a few KB
_STATUS = re.compile(r"SPAMD/(\d+\.\d+) +(\d+) +(\S+)")
_SPAM = re.compile(r"(True|False|Yes|No) *; *(-?[0-9]+(?:\.[0-9]+)?) */ *(-?[0-9]+(?:\.[0-9]+)?)", re.I)
_RULE = re.compile(r" *(-?[0-9]+(?:\.[0-9]+)?) +([A-Za-z0-9_]+) +(.*)")


class SpamdError(Exception):
    """spamd answered something other than a report (the message says what)."""


def _rules(report: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("---- ")), None)
    if start is None:
        return rules
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        m = _RULE.fullmatch(line)
        if m:
            rules.append({"Score": float(m.group(1)), "Name": m.group(2), "Description": m.group(3).strip()})
        elif rules and line.startswith(" "):  # a wrapped description
            rules[-1]["Description"] += " " + line.strip()
    return rules


def parse_reply(data: bytes) -> dict[str, Any]:
    """A spamd ``REPORT`` answer as Mailpit's ``SpamAssassinResponse``.

    Raises:
        SpamdError: not a SPAMD answer, or an error code (``EX_*`` other than 0).
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = data.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    if not lines:
        raise SpamdError("empty answer from spamd")
    m = _STATUS.match(lines[0])
    if m is None:
        raise SpamdError(f"not a spamd answer: {lines[0][:80]!r}")
    if m.group(2) != "0":
        raise SpamdError(f"spamd error {m.group(2)} {m.group(3)}")
    score, is_spam = 0.0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "spam":
            sm = _SPAM.match(value.strip())
            if sm is None:
                raise SpamdError(f"unreadable Spam header: {value.strip()[:80]!r}")
            is_spam = sm.group(1).lower() in ("true", "yes")
            score = float(sm.group(2))
    return {"Score": score, "IsSpam": is_spam, "Rules": _rules(body.decode("utf-8", "replace")), "Error": ""}


async def _exchange(host: str, port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"REPORT SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(raw) + raw)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # spamd reads to Content-length; EOF tells older versions too
        data = await reader.read(MAX_REPLY + 1)
        while data and len(data) <= MAX_REPLY:
            more = await reader.read(MAX_REPLY + 1 - len(data))
            if not more:
                break
            data += more
        if len(data) > MAX_REPLY:
            raise SpamdError("spamd's answer is too large")
        return data
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def _failed(message: str) -> dict[str, Any]:
    return {"Score": 0.0, "IsSpam": False, "Rules": [], "Error": message}


async def spam_check(raw: bytes, host: str, port: int, *, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Score a message with spamd; problems come back in ``Error``, never as an exception.

    Args:
        raw: the message as received.
        host, port: spamd's address.
        timeout: seconds for the whole exchange.
    """
    if len(raw) > MAX_MESSAGE:
        return _failed(f"message is larger than {MAX_MESSAGE // (1024 * 1024)} MiB; not sent to spamd")
    try:
        data = await asyncio.wait_for(_exchange(host, port, raw), timeout)
        return parse_reply(data)
    except TimeoutError:
        return _failed(f"spamd at {host}:{port} did not answer within {timeout:g} s")
    except OSError as e:
        return _failed(f"cannot reach spamd at {host}:{port}: {e.strerror or e}")
    except SpamdError as e:
        return _failed(str(e))
