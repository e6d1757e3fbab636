"""One SMTP connection limit for the whole server, across its worker processes.

``--smtp-max-connections`` was counted per process, so with two SMTP worker processes
(servers/smtp_workers.py) it admitted twice the limit (issue 14 item 7). A
:class:`SharedGate` keeps one count per process in a small shared memory file (a
``memfd`` the main process creates and hands to each worker): each process changes only
its own slot, and admitting a connection (sum the slots, compare with the limit, count it)
happens under a POSIX record lock (``lockf``), so the sum never passes the limit however
the kernel spreads connections over the processes. Costs two system calls per connection.
When a worker exits, the main process clears its slot (its connections are gone with it).

Without workers, :class:`LocalGate` counts in the process.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from typing import Protocol

__all__ = ["GATE_KEY", "ConnectionGate", "LocalGate", "SharedGate"]

GATE_KEY = "smtp_gate"  # app.extras: the gate of the SMTP and SMTPS listeners of one app

_SLOT = struct.Struct("=q")


class ConnectionGate(Protocol):
    """Admission to the server's connection limit."""

    def admit(self) -> bool:
        """Count a new connection, or say False when the limit is reached."""
        ...

    def release(self) -> None:
        """A connection that :meth:`admit` counted has closed."""
        ...

    @property
    def count(self) -> int:
        """Connections open now (across every process sharing the gate)."""
        ...


class LocalGate:
    """The limit for one process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0

    def admit(self) -> bool:
        if self._open >= self.limit:
            return False
        self._open += 1
        return True

    def release(self) -> None:
        self._open = max(0, self._open - 1)

    @property
    def count(self) -> int:
        return self._open


class SharedGate:
    """The limit for processes sharing ``fd`` (slot 0: the main process; 1..N: workers)."""

    def __init__(self, fd: int, slot: int, slots: int, limit: int) -> None:
        self.fd = fd
        self.slot = slot
        self.slots = slots
        self.limit = limit
        self._map = mmap.mmap(fd, _SLOT.size * slots)

    @classmethod
    def create(cls, slots: int, limit: int) -> SharedGate:
        """A new shared gate (in the main process, slot 0); pass :attr:`fd` to the workers
        (it is inheritable) with their slot numbers."""
        fd = os.memfd_create("postroom-smtp-connections", 0)
        os.ftruncate(fd, _SLOT.size * slots)
        os.set_inheritable(fd, True)
        return cls(fd, 0, slots, limit)

    def _total(self) -> int:
        return sum(_SLOT.unpack_from(self._map, i * _SLOT.size)[0] for i in range(self.slots))

    def _add(self, slot: int, delta: int | None) -> None:
        """Add ``delta`` to ``slot`` (None: set it to 0), under the lock."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            at = slot * _SLOT.size
            value = 0 if delta is None else max(0, _SLOT.unpack_from(self._map, at)[0] + delta)
            _SLOT.pack_into(self._map, at, value)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def admit(self) -> bool:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            if self._total() >= self.limit:
                return False
            at = self.slot * _SLOT.size
            _SLOT.pack_into(self._map, at, _SLOT.unpack_from(self._map, at)[0] + 1)
            return True
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def release(self) -> None:
        self._add(self.slot, -1)

    def clear(self, slot: int) -> None:
        """Forget the connections of ``slot`` (its process has exited)."""
        self._add(slot, None)

    @property
    def count(self) -> int:
        return self._total()

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
