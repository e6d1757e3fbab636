"""HTTP basic authentication from an htpasswd file (``--ui-auth-file``).

Supported password formats (as Apache's ``htpasswd`` writes them):

* bcrypt: ``$2y$``, ``$2a$``, ``$2b$`` (``htpasswd -B``)
* APR1-MD5: ``$apr1$salt$hash`` (``htpasswd -m``, Apache's default)
* SHA-1: ``{SHA}base64`` (``htpasswd -s``)
* plain text: anything else (``htpasswd -p``). Note: DES ``crypt()`` hashes are not
  supported and are compared as plain text, so they never match a real password.

The file is re-read when its modification time changes. Successful checks are cached
(by a SHA-256 of the credentials) so that bcrypt's deliberate slowness is paid once.
An unknown user is checked against a dummy hash of the file's kind, so it costs what a
wrong password costs (no user enumeration by timing); failed logins are limited per
client address (:mod:`postroom.authlimit`). ``/livez`` and ``/readyz`` stay open for
health checks. Credentials are never logged.

Errors: :class:`HtpasswdError` (a ``ValueError``) for a file that cannot be read, or (when
the server starts) has a line that is not ``user:hash``; a line like that in a file edited
while the server runs is skipped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import math
import os
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from ..authlimit import AuthLimiter, client_address
from ..config import ConfigError
from .common import AUTH_USER_KEY

__all__ = [
    "Htpasswd",
    "HtpasswdError",
    "apr1_md5",
    "auth_middleware",
    "dummy_hash",
    "load_htpasswd",
    "verify_password",
]

log = logging.getLogger(__name__)

REALM = "postroom"
# Successful credential checks remembered (bounded; cleared when the file changes).
CACHE_SIZE = 256

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class HtpasswdError(ValueError):
    """The htpasswd file cannot be read."""


def _to64(value: int, n: int) -> bytes:
    out = bytearray()
    for _ in range(n):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return bytes(out)


def apr1_md5(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> bytes:
    """The MD5-crypt hash (Poul-Henning Kamp's algorithm, with Apache's ``$apr1$`` magic)."""
    salt = salt[:8]
    final = hashlib.md5(password + salt + password).digest()
    ctx = bytearray(password + magic + salt)
    n = len(password)
    while n > 0:
        ctx += final[: min(16, n)]
        n -= 16
    i = len(password)
    while i:
        ctx += b"\x00" if i & 1 else password[:1]
        i >>= 1
    final = hashlib.md5(bytes(ctx)).digest()
    for r in range(1000):
        step = bytearray()
        step += password if r & 1 else final
        if r % 3:
            step += salt
        if r % 7:
            step += password
        step += final if r & 1 else password
        final = hashlib.md5(bytes(step)).digest()
    f = final
    encoded = b"".join(
        _to64((f[a] << 16) | (f[b] << 8) | f[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    ) + _to64(f[11], 2)
    return magic + salt + b"$" + encoded


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the htpasswd hash ``stored`` (constant-time compares)."""
    pw = password.encode("utf-8")
    if stored.startswith(("$2y$", "$2a$", "$2b$")):
        import bcrypt

        try:
            return bool(bcrypt.checkpw(pw, ("$2b$" + stored[4:]).encode("ascii")))
        except ValueError:
            return False
    if stored.startswith("$apr1$"):
        salt = stored[6:].split("$", 1)[0].encode("ascii", "replace")
        return hmac.compare_digest(apr1_md5(pw, salt), stored.encode("ascii", "replace"))
    if stored.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(pw).digest()).decode("ascii")
        return hmac.compare_digest(digest, stored[5:])
    return hmac.compare_digest(pw, stored.encode("utf-8"))


def dummy_hash(hashes: Iterable[str]) -> str:
    """A hash of a random password, of the kind most of ``hashes`` are (bcrypt: same cost).

    Checking a password against it takes as long as checking against a real user's
    hash, so a request for an unknown user is not answered measurably sooner.
    """
    kinds: Counter[str] = Counter()
    cost = 5
    for h in hashes:
        if h.startswith(("$2y$", "$2a$", "$2b$")):
            kinds["bcrypt"] += 1
            with contextlib.suppress(ValueError):
                cost = int(h[4:6])
        elif h.startswith("$apr1$"):
            kinds["apr1"] += 1
        elif h.startswith("{SHA}"):
            kinds["sha"] += 1
        else:
            kinds["plain"] += 1
    secret = secrets.token_bytes(16)
    kind = kinds.most_common(1)[0][0] if kinds else "plain"
    if kind == "bcrypt":
        import bcrypt

        return bcrypt.hashpw(secret, bcrypt.gensalt(min(max(cost, 4), 31))).decode("ascii")
    if kind == "apr1":
        return apr1_md5(secret, secrets.token_hex(4).encode()).decode("ascii")
    if kind == "sha":
        return "{SHA}" + base64.b64encode(hashlib.sha1(secret).digest()).decode("ascii")
    return secrets.token_hex(16)


class Htpasswd:
    """Users and hashes of an htpasswd file, reloaded when the file changes."""

    def __init__(self, path: str, inline: str = "") -> None:
        """``path``: the htpasswd file; or, with ``inline``, credentials given on the command
        line as Mailpit's ``MP_UI_AUTH`` takes them: ``user:password`` pairs separated by
        spaces (passwords in any of the formats above)."""
        self.path = path
        self._mtime: float | None = None
        self._users: dict[str, str] = {}
        self._ok: dict[bytes, None] = {}
        self._dummy: str | None = None
        self._malformed: list[int] = []  # numbers of the lines without a colon (skipped)
        if inline:
            self._users = dict(_pair(p) for p in inline.split() if ":" in p)
            if not self._users:
                raise HtpasswdError("no user:password pair in the inline credentials")
        else:
            self.reload()
            if self._malformed:  # at start a line that is not user:hash is a mistake to name
                raise HtpasswdError(f"{path}:{self._malformed[0]}: expected user:hash")

    def reload(self) -> None:
        if not self.path:  # inline credentials never change
            return
        try:
            st = os.stat(self.path)
            if st.st_mtime == self._mtime:
                return
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise HtpasswdError(f"cannot read {self.path}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise HtpasswdError(f"cannot read {self.path}: not UTF-8 text (byte {e.start + 1})") from None
        users: dict[str, str] = {}
        malformed: list[int] = []
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if sep and user:
                users[user] = hashed
            else:
                malformed.append(n)
        self._users, self._mtime, self._ok, self._malformed = users, st.st_mtime, {}, malformed
        self._dummy = None

    def _dummy_hash(self) -> str:
        """A hash of a random password in the scheme (and bcrypt cost) the file's users have."""
        if self._dummy is None:
            self._dummy = dummy_hash(self._users.values())
        return self._dummy

    async def check(self, user: str, password: str) -> bool:
        try:
            self.reload()
        except HtpasswdError:
            return False  # file gone: refuse rather than open the door
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if key in self._ok:
            return True
        stored = self._users.get(user)
        if stored is None:
            # equal-time rejection: an unknown user costs what a wrong password costs
            # (a bcrypt check takes ~60 ms; answering at once would list the users)
            await asyncio.to_thread(verify_password, password, self._dummy_hash())
            return False
        good = await asyncio.to_thread(verify_password, password, stored)
        if good:
            if len(self._ok) >= CACHE_SIZE:
                self._ok.pop(next(iter(self._ok)))
            self._ok[key] = None
        return good


def load_htpasswd(option: str, path: str, inline: str = "") -> Htpasswd:
    """The credentials of ``option`` (a file, or ``inline`` pairs); one that cannot be used
    is a ConfigError naming it."""
    try:
        return Htpasswd(path, inline=inline)
    except HtpasswdError as e:
        raise ConfigError(f"{option}: {e}") from None


def _pair(text: str) -> tuple[str, str]:
    user, _, password = text.partition(":")
    return user, password


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(
    htpasswd: Htpasswd,
    open_paths: frozenset[str],
    limiter: AuthLimiter,
    only_paths: frozenset[str] | None = None,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware requiring valid basic credentials except on ``open_paths`` (and, with
    ``only_paths``, only on those: the send API's own credentials).

    A request without credentials gets its 401 at once (a browser's first request, before
    it asks the user); wrong credentials count against the client address in
    ``limiter`` and wait its failure delay; an address over its limit gets 429.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths or (only_paths is not None and request.path not in only_paths):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            address = client_address(
                request.transport.get_extra_info("peername") if request.transport else None
            )
            wait = limiter.retry_after(address)
            if wait > 0:
                raise web.HTTPTooManyRequests(
                    text="too many failed logins from your address; try again later\n",
                    content_type="text/plain",
                    headers={"Retry-After": str(math.ceil(wait))},
                )
            try:
                user, sep, password = (
                    base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
                )
            except (binascii.Error, UnicodeDecodeError, ValueError):
                sep = ""
            if sep and await htpasswd.check(user, password):
                request[AUTH_USER_KEY] = user
                return await handler(request)
            log.info("HTTP basic auth failed from %s", address)
            await limiter.failed(address)
        raise web.HTTPUnauthorized(
            text="authentication required",
            content_type="text/plain",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )

    return middleware
