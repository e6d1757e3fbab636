"""POP3 server protocol, sans-IO (RFC 1939, RFC 2449, RFC 2595 STLS, RFC 5034 SASL).

No sockets, no asyncio, no store: bytes go in, events and bytes come out. The caller
(``postroom.servers.pop3``) owns the socket and the mailbox and drives a
:class:`POP3Connection` like this::

    conn = POP3Connection(config)          # the greeting is queued at once
    write(conn.data_to_send())
    conn.receive_data(chunk)               # b"" means the peer closed its side
    while (event := conn.next_event()) not in (NEED_DATA, PAUSED):
        ...                                # Authenticate, Retrieve, StartTLS, Update, Close
        conn.send(answer)                  # AuthAccepted, Reject, MessageContent, ...
    write(conn.data_to_send())

Everything the core can answer alone (CAPA, STAT, LIST, UIDL, DELE, RSET, NOOP, wrong
state, bad syntax) never becomes an event: its reply is queued and the next command is
parsed. A command that needs the outside world (a credential check, message bytes, the
UPDATE state's deletions, a TLS handshake) becomes an event, and the connection is
*paused* (:data:`PAUSED`) until the caller answers it with :meth:`POP3Connection.send`;
pipelined commands (RFC 2449 §6.6) wait in the buffer and are answered in order.

States are :class:`State`; which command is valid in which state is one table,
:data:`COMMANDS`, checked in one place.

Errors::

    POP3Error                 base of this package's errors
     +-- LocalProtocolError   the caller misused the API (answered nothing, or the wrong
                              event): a bug in the server, never caused by a client
     +-- CommandError         a client command cannot be honoured; internal, turned into
                              ``-ERR [CODE] text`` in exactly one place (_guard)

A client can never make this package raise: malformed input gets ``-ERR``.

Modules: :mod:`.states` (limits, errors, states, the command table, configuration),
:mod:`.events` (events and answers), :mod:`.connection` (the session).
"""

from __future__ import annotations

from .connection import POP3Connection, apop_digest, apop_matches, dot_stuff, top_of
from .events import (
    NEED_DATA,
    PAUSED,
    AuthAccepted,
    Authenticate,
    Close,
    MessageContent,
    Reject,
    Retrieve,
    StartTLS,
    TLSStarted,
    Update,
    UpdateDone,
)
from .states import (
    COMMANDS,
    IDLE_TIMEOUT,
    LOGIN_TIMEOUT,
    MAX_AUTH_FAILURES,
    MAX_BAD_COMMANDS,
    MAX_COMMAND_LINE,
    MAX_SASL_LINE,
    CommandError,
    Config,
    LocalProtocolError,
    MaildropItem,
    POP3Error,
    State,
)

__all__ = [
    "COMMANDS",
    "IDLE_TIMEOUT",
    "LOGIN_TIMEOUT",
    "MAX_AUTH_FAILURES",
    "MAX_BAD_COMMANDS",
    "MAX_COMMAND_LINE",
    "MAX_SASL_LINE",
    "NEED_DATA",
    "PAUSED",
    "AuthAccepted",
    "Authenticate",
    "Close",
    "CommandError",
    "Config",
    "LocalProtocolError",
    "MaildropItem",
    "MessageContent",
    "POP3Connection",
    "POP3Error",
    "Reject",
    "Retrieve",
    "StartTLS",
    "State",
    "TLSStarted",
    "Update",
    "UpdateDone",
    "apop_digest",
    "apop_matches",
    "dot_stuff",
    "top_of",
]
