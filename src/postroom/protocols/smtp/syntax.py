"""The SMTP core's argument syntax: paths with ESMTP parameters, each command's arguments
checked (a checker returns what it read, or the reply refusing it), SASL responses."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from .replies import AUTH_UNDECODABLE, UNSUPPORTED_PARAM, Reply, line_reply

__all__ = [
    "CTL",
    "MailArguments",
    "bdat_arguments",
    "cram_md5_response",
    "decode_b64",
    "mail_arguments",
    "parse_path",
    "plain_response",
    "rcpt_argument",
    "xoauth2_response",
]

#: Control characters: never allowed in a HELO name or an address.
CTL = re.compile(rb"[\x00-\x1f\x7f]")


def decode_b64(data: bytes) -> str | None:
    """Decode a SASL response; "=" is the empty response (RFC 4954 4)."""
    if data == b"=":
        return ""
    try:
        return binascii.a2b_base64(data, strict_mode=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def parse_path(text: bytes) -> tuple[str, list[tuple[str, str | None]]] | None:
    """``<addr> PARAM=x ...`` -> (address, [(PARAM, value)]), or None when malformed.

    Tolerates a space after the colon and a missing pair of angle brackets; strips a
    source route (RFC 5321 4.1.1.3 says to accept and ignore it).
    """
    text = text.lstrip(b" ")
    if text.startswith(b"<"):
        end = _closing_bracket(text)
        if end < 0:
            return None
        raw, rest = text[1:end], text[end + 1 :]
        if rest and rest[:1] != b" ":
            return None
    else:
        raw, _, rest = text.partition(b" ")
        if not raw:
            return None
    if raw.startswith(b"@"):
        _, colon, raw = raw.partition(b":")
        if not colon:
            return None
    if CTL.search(raw):
        return None
    try:
        address = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    params: list[tuple[str, str | None]] = []
    if rest:
        for item in rest.split():
            key, eq, value = item.partition(b"=")
            try:
                params.append((key.decode("ascii").upper(), value.decode("utf-8") if eq else None))
            except UnicodeDecodeError:
                return None
    return address, params


def _closing_bracket(text: bytes) -> int:
    if b'"' not in text:
        return text.find(b">")
    quoted = False
    escaped = False
    for i in range(1, len(text)):
        c = text[i]
        if escaped:
            escaped = False
        elif c == 0x5C and quoted:  # backslash
            escaped = True
        elif c == 0x22:
            quoted = not quoted
        elif c == 0x3E and not quoted:
            return i
    return -1


# -- the commands' arguments: each checker returns what it read, or the reply refusing it --


@dataclass(frozen=True, slots=True)
class MailArguments:
    """What ``MAIL FROM:<address> [parameters]`` asks for."""

    address: str
    size: int | None  # SIZE= (RFC 1870), None when not given
    body: str  # BODY= (RFC 6152 8BITMIME, RFC 3030 BINARYMIME), 7BIT when not given
    smtputf8: bool  # SMTPUTF8 (RFC 6531)


def mail_arguments(arg: bytes, max_size: int) -> MailArguments | Reply:
    """MAIL's argument (``arg``: what follows the verb), or the 5xx refusing it: bad syntax,
    an unknown parameter (555, RFC 5321 4.1.1.11) or a SIZE over ``max_size`` (RFC 1870 6.1:
    refused before the data is sent)."""
    if arg[:5].upper() != b"FROM:":
        return line_reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
    parsed = parse_path(arg[5:])
    if parsed is None:
        return line_reply(501, "5.1.7", "Bad sender address syntax")
    address, params = parsed
    size: int | None = None
    body = "7BIT"
    utf8 = False
    for key, value in params:
        if key == "SIZE":
            if value is None or not value.isdigit():
                return line_reply(501, "5.5.4", "Bad SIZE parameter")
            size = int(value)
            if size > max_size:
                return line_reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
        elif key == "BODY":
            body = (value or "").upper()
            if body not in ("7BIT", "8BITMIME", "BINARYMIME"):
                return line_reply(501, "5.5.4", "Bad BODY parameter")
        elif key == "SMTPUTF8":
            if value is not None:
                return line_reply(501, "5.5.4", "SMTPUTF8 takes no value")
            utf8 = True
        elif key == "RET":
            if (value or "").upper() not in ("FULL", "HDRS"):
                return line_reply(501, "5.5.4", "Bad RET parameter")
        elif key in ("ENVID", "AUTH"):  # RFC 3461 4.4, RFC 4954 5: accepted, not used
            if not value:
                return line_reply(501, "5.5.4", f"Bad {key} parameter")
        else:
            return UNSUPPORTED_PARAM
    return MailArguments(address, size, body, utf8)


def rcpt_argument(arg: bytes) -> str | Reply:
    """RCPT's address (``arg``: what follows the verb), or the 5xx refusing it."""
    if arg[:3].upper() != b"TO:":
        return line_reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
    parsed = parse_path(arg[3:])
    if parsed is None or not parsed[0]:
        return line_reply(501, "5.1.3", "Bad recipient address syntax")
    address, params = parsed
    for key, value in params:
        if key not in ("NOTIFY", "ORCPT"):  # RFC 3461 4.1, 4.2: accepted, not used
            return UNSUPPORTED_PARAM
        if not value:
            return line_reply(501, "5.5.4", f"Bad {key} parameter")
    return address


def bdat_arguments(arg: bytes) -> tuple[int, bool] | Reply:
    """``BDAT size [LAST]`` (RFC 3030 2) as (size, last), or the 501 refusing it."""
    parts = arg.split()
    if not parts or len(parts) > 2 or not parts[0].isdigit():
        return line_reply(501, "5.5.4", "Syntax: BDAT size [LAST]")
    if len(parts) == 2 and parts[1].upper() != b"LAST":
        return line_reply(501, "5.5.4", "Syntax: BDAT size [LAST]")
    return int(parts[0]), len(parts) == 2


def plain_response(data: bytes) -> tuple[str, str] | Reply:
    """A PLAIN response (RFC 4616 2: [authzid] NUL authcid NUL passwd) as (user, password)."""
    text = decode_b64(data)
    if text is None:
        return AUTH_UNDECODABLE
    parts = text.split("\0")
    if len(parts) != 3 or not parts[1]:
        return line_reply(501, "5.5.2", "Bad PLAIN response")
    return parts[1], parts[2]


def xoauth2_response(data: bytes) -> tuple[str, str] | Reply:
    """An XOAUTH2 response (``user=`` USER ^A ``auth=Bearer `` TOKEN ^A ^A) as (user, token)."""
    text = decode_b64(data)
    if text is None:
        return AUTH_UNDECODABLE
    fields = dict(f.partition("=")[::2] for f in text.split("\x01") if f)
    user = fields.get("user", "")
    kind, _, token = fields.get("auth", "").partition(" ")
    if not user or kind.lower() != "bearer" or not token:
        return line_reply(501, "5.5.2", "Bad XOAUTH2 response")
    return user, token


def cram_md5_response(text: str) -> tuple[str, str] | Reply:
    """A decoded CRAM-MD5 response, ``user hexdigest`` (RFC 2195 2), as (user, digest)."""
    user, _, digest = text.rpartition(" ")
    if not user or not re.fullmatch(r"[0-9a-fA-F]{32}", digest):
        return line_reply(501, "5.5.4", "Bad CRAM-MD5 response")
    return user, digest.lower()
