"""SMTP server protocol, sans-IO (RFC 5321, with the extensions a mail catcher meets).

No sockets, no asyncio, no store: bytes go in, events come out, replies go back as bytes.
The caller (``postroom.servers.smtp``) owns the socket and drives an
:class:`SMTPConnection` in the h11 style::

    conn = SMTPConnection(config)
    write(conn.send(conn.greeting()))
    conn.receive_data(chunk)
    while (event := conn.next_event()) is not NEED_DATA:
        write(conn.send(event.reply))      # or a reply of the caller's own choosing

Every event is something that needs exactly one reply: each carries the reply the core
proposes (``event.reply``), which the caller may replace (a failed credential check, a
hook that refuses a recipient, "queued as <id>" after a message is stored). Sending the
reply applies the state change: a ``2xx`` to :class:`MailFrom` opens the transaction, a
``5xx`` leaves the state as it was. Until the reply is sent :meth:`SMTPConnection.next_event`
refuses to run, so pipelined commands (RFC 2920) wait in the buffer, in order.

States are :class:`State`; which command is valid in which state is one table,
:data:`COMMANDS`, checked in one place (:meth:`SMTPConnection._command`).

Input handling, and what it tolerates:

* Commands end in CRLF; a bare LF is accepted too (Postel; RFC 5321 2.3.8 allows it to
  be refused, but many test clients send it).
* DATA is read in bulk: the buffer is searched for the end-of-data line (``.`` alone on
  a line ending in CRLF or LF) rather than line by line; the same search notes the
  stuffed dots, which are then cut out by joining the slices between them (RFC 5321
  4.5.2); bare LFs in the body become CRLF.
* BDAT chunks (RFC 3030) are taken byte-exact: no unstuffing, no line-end changes.
* Oversized messages are read to their end and thrown away, then refused with
  ``552 5.3.4``, so the session stays in step with the client.

Modules: :mod:`.states` (states, the command table, limits, configuration),
:mod:`.connection` (the session), :mod:`.events`, :mod:`.replies`, :mod:`.syntax` (the
commands' arguments: paths, ESMTP parameters, SASL responses).

Errors::

    SMTPError                 base of this package's errors
     +-- LocalProtocolError   the caller misused the API (asked for the next event before
                              answering the last one): a bug in the server, never caused
                              by a client. Everything a client does wrong becomes a
                              :class:`CommandError` event with a 4xx/5xx reply instead.
"""

from __future__ import annotations

from .connection import SMTPConnection
from .events import (
    NEED_DATA,
    AuthAttempt,
    AuthChallenge,
    ChunkReceived,
    Command,
    CommandError,
    DataStart,
    Event,
    Hello,
    MailFrom,
    MessageReceived,
    Quit,
    RcptTo,
    Sentinel,
    StartTLS,
)
from .replies import AUTH_FAILED, IGNORED_RCPT, TEMP_FAILURE, Reply
from .states import (
    AUTH_MECHANISMS,
    COMMAND_TIMEOUT,
    COMMANDS,
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    MAX_ERRORS,
    LocalProtocolError,
    SMTPConfig,
    SMTPError,
    State,
)

__all__ = [
    "AUTH_FAILED",
    "AUTH_MECHANISMS",
    "COMMANDS",
    "COMMAND_TIMEOUT",
    "IGNORED_RCPT",
    "MAX_AUTH_LINE",
    "MAX_COMMAND_LINE",
    "MAX_ERRORS",
    "NEED_DATA",
    "TEMP_FAILURE",
    "AuthAttempt",
    "AuthChallenge",
    "ChunkReceived",
    "Command",
    "CommandError",
    "DataStart",
    "Event",
    "Hello",
    "LocalProtocolError",
    "MailFrom",
    "MessageReceived",
    "Quit",
    "RcptTo",
    "Reply",
    "SMTPConfig",
    "SMTPConnection",
    "SMTPError",
    "Sentinel",
    "StartTLS",
    "State",
]
