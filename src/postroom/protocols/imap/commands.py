"""IMAP session states and the command -> allowed-states table (RFC 3501 section 3, 6).

Wrong-state commands fail here, in one place (:func:`check`), before any handler runs.

Errors::

    StateError (from .errors)   command not valid in this state (tagged BAD)
    ParseError (from .errors)   unknown command (tagged BAD)
"""

from __future__ import annotations

import enum
from typing import Final

from .errors import ParseError, StateError

__all__ = ["COMMANDS", "UID_COMMANDS", "State", "capabilities", "check"]


class State(enum.Enum):
    """RFC 3501 section 3."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_PRE = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SEL = frozenset({State.SELECTED})

COMMANDS: Final[dict[str, frozenset[State]]] = {
    # any state (RFC 3501 6.1, RFC 2971 ID)
    "CAPABILITY": _ANY,
    "NOOP": _ANY,
    "LOGOUT": _ANY,
    "ID": _ANY,
    # not authenticated (6.2)
    "STARTTLS": _PRE,
    "LOGIN": _PRE,
    "AUTHENTICATE": _PRE,
    # authenticated (6.3) -- also valid when a mailbox is selected
    "ENABLE": _AUTH,
    "SELECT": _AUTH,
    "EXAMINE": _AUTH,
    "CREATE": _AUTH,
    "DELETE": _AUTH,
    "RENAME": _AUTH,
    "SUBSCRIBE": _AUTH,
    "UNSUBSCRIBE": _AUTH,
    "LIST": _AUTH,
    "LSUB": _AUTH,
    "STATUS": _AUTH,
    "APPEND": _AUTH,
    "NAMESPACE": _AUTH,
    "IDLE": _AUTH,
    # selected (6.4, RFC 3691 UNSELECT, RFC 6851 MOVE, RFC 5256 SORT/THREAD)
    "CHECK": _SEL,
    "CLOSE": _SEL,
    "UNSELECT": _SEL,
    "EXPUNGE": _SEL,
    "SEARCH": _SEL,
    "FETCH": _SEL,
    "STORE": _SEL,
    "COPY": _SEL,
    "MOVE": _SEL,
    "SORT": _SEL,
    "THREAD": _SEL,
    "UID": _SEL,
}

# Commands that take the UID prefix (RFC 3501 6.4.8, RFC 4315 UID EXPUNGE, RFC 6851).
UID_COMMANDS: Final = frozenset({"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "SORT", "THREAD"})


def check(name: str, state: State) -> None:
    """Raise unless ``name`` may run in ``state``.

    Raises:
        ParseError: unknown command.
        StateError: known command, wrong state.
    """
    allowed = COMMANDS.get(name)
    if allowed is None:
        raise ParseError(f"unknown command {name[:20]}")
    if state not in allowed:
        raise StateError(f"{name} not allowed {_why(allowed)}")


def _why(allowed: frozenset[State]) -> str:
    if allowed == _PRE:
        return "after login"
    if allowed == _SEL:
        return "without a selected mailbox"
    return "before login"


BASE_CAPABILITIES: Final = (
    "IMAP4rev1",
    "LITERAL+",
    "SASL-IR",
    "ID",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MULTIAPPEND",
    "MOVE",
    "CHILDREN",
    "SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "BINARY",
    "ESEARCH",
    "SEARCHRES",
    "WITHIN",
    "SORT",
    "SORT=DISPLAY",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "CONDSTORE",
    "APPENDLIMIT",
    "X-GM-EXT-1",
)


def capabilities(
    *,
    tls_available: bool,
    tls_active: bool,
    authenticated: bool,
    login_disabled: bool,
    append_limit: int,
    thread: bool = True,
) -> list[str]:
    """The CAPABILITY list for the session's current situation (RFC 3501 6.1.1).

    Args:
        tls_available: the server has a certificate (offer STARTTLS before TLS is on).
        tls_active: the connection is already encrypted.
        authenticated: after login, AUTH= and STARTTLS are no longer listed.
        login_disabled: plaintext login is refused (RFC 3501 LOGINDISABLED).
        append_limit: APPENDLIMIT value (RFC 7889).
        thread: whether THREAD is available.
    """
    caps = []
    for c in BASE_CAPABILITIES:
        if c.startswith("THREAD=") and not thread:
            continue
        caps.append(f"APPENDLIMIT={append_limit}" if c == "APPENDLIMIT" else c)
    if not authenticated:
        if tls_available and not tls_active:
            caps.append("STARTTLS")
        if login_disabled:
            caps.append("LOGINDISABLED")
        else:
            caps.append("AUTH=PLAIN")
    return caps
