"""Failed-login limits shared by HTTP basic auth, SMTP AUTH, POP3 and IMAP LOGIN/AUTHENTICATE.

Guessing passwords against a staging postroom is cheap unless each wrong guess costs
something. Three rules, the same for every protocol (docs/security.md):

* **Delay.** Each failed login waits ``--auth-failure-delay`` seconds (default 1) before
  its answer, as Dovecot's ``auth_failure_delay`` does. The wait is an ``asyncio.sleep``:
  it holds the guesser's connection, never the server.
* **Per connection.** After :data:`FAILURES_PER_CONNECTION` failed logins an SMTP or IMAP
  connection is closed (SMTP ``421 4.7.0``, IMAP ``BYE``; RFC 4954 section 4 lets an SMTP
  server limit failed AUTH attempts this way), so one connection no longer gets 30
  tries. POP3's core closes after its own ``MAX_AUTH_FAILURES`` (3).
* **Per client address.** An address with ``--auth-max-failures`` (default 10) failed
  logins within the last ``--auth-lockout`` seconds (default 300) is refused without a
  password check until the oldest of them ages out (HTTP ``429`` with ``Retry-After``,
  SMTP ``454 4.7.0`` (RFC 4954 section 6), POP3 ``-ERR [LOGIN-DELAY]`` (RFC 2449 section
  8.1.1), IMAP ``NO [UNAVAILABLE]`` (RFC 5530)).
  A successful login does not clear the count, so one known account cannot be used to
  reset the guesses against another.

Equal-time rejection (an unknown user costs what a wrong password costs) is the
credential checkers' part: ``web/auth.py`` verifies unknown users against a dummy hash of
the same kind, ``servers/auth.py`` compares against a dummy password. Nothing here sees
or logs a password.

One :class:`AuthLimiter` belongs to one running postroom (``App.auth_limiter``); SMTP
worker processes each keep their own, so there the per-address limit is per process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["FAILURES_PER_CONNECTION", "MAX_TRACKED_ADDRESSES", "AuthLimiter", "client_address"]

# Failed logins one connection gets before it is closed (RFC 4954 section 4 allows it).
# Not fewer than 4: Python's smtplib answers one wrong password by trying CRAM-MD5, PLAIN
# and LOGIN in turn, and its user should see the 535 of the last, not a 421.
FAILURES_PER_CONNECTION = 5
# Addresses whose failures are remembered at once; the least recently failing are
# forgotten first, so a flood of spoofed sources cannot grow memory without bound.
MAX_TRACKED_ADDRESSES = 10_000


def client_address(peer: str | tuple[object, ...] | None) -> str:
    """The address part of a peer (``"1.2.3.4:5678"``, ``("::1", 5678, 0, 0)``), normalised.

    An IPv6 client counts by its /64 network: one host usually has a whole /64 to
    pick source addresses from.
    """
    if peer is None:
        return ""
    if isinstance(peer, tuple):
        host = str(peer[0]) if peer else ""
    else:
        host = peer.rsplit(":", 1)[0] if peer.count(":") == 1 or peer.startswith("[") else peer
        host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False).network_address) + "/64"
    return str(ip)


class AuthLimiter:
    """Counts failed logins per client address and says when one must wait.

    Args:
        max_failures: failures of one address within ``window`` seconds after which it is
            refused (0: never refused).
        window: seconds a failure counts.
        delay: seconds each failure waits before its answer.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window: float = 300.0,
        delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.delay = delay
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthLimiter:
        return cls(
            max_failures=settings.auth_max_failures,
            window=float(settings.auth_lockout),
            delay=settings.auth_failure_delay,
        )

    def _recent(self, address: str) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        cutoff = self._clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try to log in again; 0 when it may now."""
        if self.max_failures <= 0:
            return 0.0
        times = self._recent(address)
        if times is None or len(times) < self.max_failures:
            return 0.0
        return max(0.0, times[-self.max_failures] + self.window - self._clock())

    def record_failure(self, address: str) -> None:
        """Count one failed login of ``address`` (no waiting; see :meth:`failed`)."""
        times = self._recent(address)
        if times is None:
            times = self._failures[address] = deque(maxlen=max(self.max_failures, 1))
            while len(self._failures) > MAX_TRACKED_ADDRESSES:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        times.append(self._clock())

    async def failed(self, address: str) -> None:
        """Count one failed login and wait the failure delay before the caller answers."""
        self.record_failure(address)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
