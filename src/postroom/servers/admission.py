"""Connection caps for the mail-reading listeners (IMAP and POP3): one count in all and one
per client address.

When a cap is reached, the longest-idle session that has not logged in is closed to make
room: it holds nothing a client could lose, and its login deadline ends it soon anyway. Only
when every session under the cap has logged in is the new connection refused; the caller
then answers with its protocol's refusal (IMAP ``* BYE [UNAVAILABLE]``, POP3
``-ERR [SYS/TEMP]``) and closes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["Capped", "admit"]


class Capped(Protocol):
    """What :func:`admit` needs of a session."""

    @property
    def address(self) -> str:
        """The client address the per-address cap counts (authlimit.client_address)."""
        ...

    @property
    def authenticated(self) -> bool: ...

    @property
    def last_active(self) -> float:
        """When the client last sent something (loop time)."""
        ...

    @property
    def closing(self) -> bool:
        """Evicted or ending: no longer counted."""
        ...

    def evict(self) -> None:
        """Say why and close (the session then counts as :attr:`closing`)."""
        ...


S = TypeVar("S", bound=Capped)


def _evict(sessions: list[S]) -> bool:
    """Close the longest-idle session of ``sessions`` that has not logged in; False if none."""
    waiting = [s for s in sessions if not s.authenticated]
    if not waiting:
        return False
    min(waiting, key=lambda s: s.last_active).evict()
    return True


def admit(sessions: Iterable[S], address: str, max_total: int, max_per_address: int) -> str | None:
    """Whether a new connection from ``address`` may join ``sessions`` (the live ones of one
    listener): None if so, after making room if needed, else why not (for the refusal)."""
    live = [s for s in sessions if not s.closing]
    same = [s for s in live if s.address == address]
    if len(same) >= max_per_address and not _evict(same):
        return f"too many connections from {address} (limit {max_per_address})"
    if len(live) >= max_total and not _evict(live):
        return f"too many connections (limit {max_total})"
    return None
