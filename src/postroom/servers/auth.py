"""Credentials for SMTP AUTH, POP3 and IMAP logins: a file of ``user:password`` lines.

By default postroom accepts any credentials (it is a development tool): a server that
has no credentials file simply does not build an :class:`Authenticator`. With a file,
:class:`Authenticator` checks what the SASL mechanisms hand over:

* a clear-text password (PLAIN, LOGIN, POP3 USER/PASS, IMAP LOGIN);
* a CRAM-MD5 digest over a challenge (RFC 2195);
* an APOP digest over a timestamp (RFC 1939 7).

File format: one ``user:password`` per line; the password is everything after the first
colon, kept as written. Blank lines and lines starting with ``#`` are ignored. User
names compare case-insensitively (they are usually mail addresses); passwords compare in
constant time. The file is read again when its modification time changes, so credentials
can be edited while the server runs. Passwords are never logged.

Errors::

    ConfigError (postroom.config)   the file cannot be read (or is not UTF-8), or a line
                                    has no colon
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets

from ..config import ConfigError

__all__ = ["Authenticator", "parse_credentials"]

log = logging.getLogger(__name__)

# The password an unknown user is compared with (random per process, never accepted).
_STAND_IN = secrets.token_hex(16)


def parse_credentials(text: str, source: str = "credentials") -> dict[str, str]:
    """``user:password`` lines -> {lower-cased user: password}.

    Raises:
        ConfigError: a line without a colon or with an empty user name.
    """
    users: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        if not colon or not user.strip():
            raise ConfigError(f"{source}:{n}: expected user:password")
        users[user.strip().lower()] = password
    return users


class Authenticator:
    """Checks credentials against a ``user:password`` file (re-read when it changes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime = -1.0
        self._users: dict[str, str] = {}
        self._reload(force=True)

    @classmethod
    def from_users(cls, users: dict[str, str]) -> Authenticator:
        """An authenticator over fixed credentials (no file); handy in tests."""
        self = cls.__new__(cls)
        self.path = ""
        self._mtime = 0.0
        self._users = {u.lower(): p for u, p in users.items()}
        return self

    @classmethod
    def inline(cls, text: str, source: str) -> Authenticator:
        """Over Mailpit's inline logins, ``"user:password user2:password2"`` (``MP_SMTP_AUTH``,
        ``MP_POP3_AUTH``); ``source`` names the setting in errors.

        Raises:
            ConfigError: an entry without a colon or with an empty user name.
        """
        return cls.from_users(parse_credentials("\n".join(text.split()), source))

    def _reload(self, force: bool = False) -> None:
        if not self.path:
            return
        try:
            mtime = os.stat(self.path).st_mtime
            if not force and mtime == self._mtime:
                return
            with open(self.path, encoding="utf-8") as f:
                users = parse_credentials(f.read(), self.path)
        except (OSError, UnicodeDecodeError) as e:
            why = (
                f"not UTF-8 text (byte {e.start + 1})"
                if isinstance(e, UnicodeDecodeError)
                else e.strerror or str(e)
            )
            if force:
                raise ConfigError(f"cannot read credentials file {self.path}: {why}") from None
            log.warning("cannot re-read credentials file %s: %s (keeping the old ones)", self.path, why)
            return
        except ConfigError as e:
            if force:
                raise
            log.warning("%s (keeping the old credentials)", e)
            return
        self._users = users
        self._mtime = mtime

    def _password(self, user: str) -> str | None:
        self._reload()
        return self._users.get(user.lower())

    # Equal-time rejection: an unknown user is checked against a random stand-in password
    # through the same steps as a known one, so the answer's timing does not tell them apart.

    def check_password(self, user: str, password: str) -> bool:
        """True when ``password`` is the user's password."""
        expected = self._password(user)
        known = expected is not None
        same = hmac.compare_digest((expected or _STAND_IN).encode(), password.encode())
        return known and same

    def check_cram_md5(self, user: str, challenge: str, digest: str) -> bool:
        """True when ``digest`` is HMAC-MD5(password, challenge) in hex (RFC 2195)."""
        expected = self._password(user)
        secret = (expected if expected is not None else _STAND_IN).encode()
        want = hmac.new(secret, challenge.encode(), hashlib.md5).hexdigest()
        return hmac.compare_digest(want, digest.lower()) and expected is not None

    def check_apop(self, user: str, timestamp: str, digest: str) -> bool:
        """True when ``digest`` is MD5(timestamp + password) in hex (RFC 1939 7)."""
        expected = self._password(user)
        want = hashlib.md5(
            (timestamp + (expected if expected is not None else _STAND_IN)).encode()
        ).hexdigest()
        return hmac.compare_digest(want, digest.lower()) and expected is not None

    def knows(self, user: str) -> bool:
        """Is there such a user in the file?"""
        return self._password(user) is not None
