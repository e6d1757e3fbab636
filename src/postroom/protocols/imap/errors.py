"""The IMAP error hierarchy (every module of :mod:`postroom.protocols.imap` raises these).

::

    ImapError                  base; the message is safe to show the client
     +-- ParseError            malformed command or arguments         -> tagged BAD
     |    +-- SectionError     FETCH section naming no part (mime)    -> BAD
     |    +-- Utf7Error        bad modified UTF-7 name (utf7)         -> BAD
     +-- LimitError            a named limit was exceeded             -> tagged BAD
     +-- StateError            command not valid in this state        -> tagged BAD
     +-- No                    the command failed                     -> tagged NO [code]
          +-- BadCharset       unsupported SEARCH CHARSET (search)    -> NO [BADCHARSET (...)]
          +-- UnknownCTE       BINARY of an unknown encoding (fetch)  -> NO [UNKNOWN-CTE]

The server translates these to replies in exactly one place (its command dispatcher).
"""

from __future__ import annotations

__all__ = ["ImapError", "LimitError", "No", "ParseError", "StateError"]


class ImapError(Exception):
    """Base of IMAP protocol errors; the message is safe to show the client."""

    code: str | None = None


class ParseError(ImapError):
    """Malformed command or arguments (tagged BAD)."""


class LimitError(ImapError):
    """A size or depth limit was exceeded (tagged BAD)."""


class StateError(ImapError):
    """The command is not valid in the session's state (tagged BAD)."""


class No(ImapError):
    """The command was understood but failed (tagged NO, with an optional response code)."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code
