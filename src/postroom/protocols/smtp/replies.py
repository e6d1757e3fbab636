"""SMTP replies: a code, an enhanced status code (RFC 3463, RFC 5248) and text.

The replies the core proposes are module constants, so their wire bytes are built once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Reply", "line_reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: a code, an enhanced status code (RFC 3463) and text lines.

    ``enhanced`` is empty for the greeting, for replies to HELO/EHLO (RFC 2034 3) and
    for 3xx intermediate replies, which carry none.
    """

    code: int
    enhanced: str
    lines: tuple[str, ...]
    data: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = f"{self.enhanced} " if self.enhanced else ""
        lines = self.lines or ("",)
        last = len(lines) - 1
        if last == 0:  # one line, as nearly every reply (a 250 per message): no generator
            wire = f"{self.code} {prefix}{lines[0]}\r\n"
        else:
            wire = "".join(
                f"{self.code}{'-' if i < last else ' '}{prefix}{line}\r\n" for i, line in enumerate(lines)
            )
        object.__setattr__(self, "data", wire.encode("utf-8"))

    @classmethod
    def of(cls, code: int, enhanced: str, *lines: str) -> Reply:
        """Build a reply: ``Reply.of(250, "2.1.0", "Ok")``."""
        return cls(code, enhanced, lines)

    @classmethod
    def parse(cls, text: str) -> Reply:
        """Parse ``"550 5.7.1 no"`` (enhanced code optional).

        Raises:
            ValueError: the text does not start with a 3-digit code from 2xx to 5xx.
        """
        m = re.fullmatch(r"([2-5]\d\d)(?:[ -](?:([245]\.\d{1,3}\.\d{1,3})(?: |$))?(.*))?", text.strip())
        if not m:
            raise ValueError(f"not an SMTP reply: {text!r}")
        return cls(int(m.group(1)), m.group(2) or "", (m.group(3) or "",))

    @property
    def positive(self) -> bool:
        """True for 2xx and 3xx replies."""
        return self.code < 400


def line_reply(code: int, enhanced: str, text: str) -> Reply:
    """A one-line reply: ``line_reply(250, "2.1.0", "Ok")``."""
    return Reply(code, enhanced, (text,))


OK = line_reply(250, "2.0.0", "Ok")
OK_MAIL = line_reply(250, "2.1.0", "Ok")
OK_RCPT = line_reply(250, "2.1.5", "Ok")
# A hook's answer to RCPT TO: "250 Ok" on the wire, the recipient left out of the envelope
# (Mailpit's --smtp-ignore-rejected-recipients). Recognised by identity, not by value.
IGNORED_RCPT = line_reply(250, "2.1.5", "Ok")
START_DATA = line_reply(354, "", "End data with <CR><LF>.<CR><LF>")
BYE = line_reply(221, "2.0.0", "Bye")
VRFY_REPLY = line_reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
HELP_REPLY = line_reply(
    214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS AUTH"
)
READY_TLS = line_reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = line_reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = line_reply(535, "5.7.8", "Error: authentication failed")
AUTH_REQUIRED = line_reply(530, "5.7.0", "Authentication required")
TLS_REQUIRED = line_reply(530, "5.7.0", "Must issue a STARTTLS command first")
TLS_UNAVAILABLE = line_reply(454, "4.7.0", "TLS not available")
AUTH_CANCELLED = line_reply(501, "5.7.0", "Authentication cancelled")
AUTH_UNDECODABLE = line_reply(501, "5.5.2", "Cannot decode response")
AUTH_UNKNOWN_MECH = line_reply(504, "5.5.4", "Unrecognized authentication type")
ALREADY_AUTHED = line_reply(503, "5.5.1", "Error: already authenticated")
UNRECOGNIZED = line_reply(500, "5.5.2", "Error: command not recognized")
NOT_IMPLEMENTED = line_reply(502, "5.5.1", "Error: command not implemented")
LINE_TOO_LONG = line_reply(500, "5.5.6", "Error: line too long")
TOO_MANY_RECIPIENTS = line_reply(452, "4.5.3", "Error: too many recipients")
TOO_BIG = line_reply(552, "5.3.4", "Error: message too big")
TOO_MANY_ERRORS = line_reply(421, "4.7.0", "Error: too many errors")
TEMP_FAILURE = line_reply(451, "4.3.0", "Error: could not store the message, try again later")
UNSUPPORTED_PARAM = line_reply(555, "5.5.4", "Unsupported option")
NEED_HELO = line_reply(503, "5.5.1", "Error: send HELO/EHLO first")
