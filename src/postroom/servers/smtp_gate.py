"""One SMTP connection limit for the whole server, across its worker processes.

``--smtp-max-connections`` was counted per process, so with two SMTP worker processes
(servers/smtp_workers.py) it admitted twice the limit (issue 14 item 7). A
:class:`SharedGate` keeps one count per process in a small shared memory file (a
``memfd`` the main process creates and hands to each worker): each process changes only
its own slot, and admitting a connection (sum the slots, compare with the limit, count it)
happens under a POSIX record lock (``lockf``), so the sum never passes the limit however
the kernel spreads connections over the processes. A closed connection is taken off its
process's own slot without the lock: a slot has one writer (its process, whose sessions
share one thread), an aligned 8-byte store is seen whole, and an admission that reads a
count not lowered yet only errs on the safe side (a refusal at the limit, as if it had
come a moment earlier). So two system calls per connection, both at its admission. When
a worker exits, the main process clears its slot (its connections are gone with it), under
the lock.

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
        self._all = struct.Struct(f"={slots}q")  # every slot at once
        self._at = slot * _SLOT.size  # this process's slot

    @classmethod
    def create(cls, slots: int, limit: int) -> SharedGate:
        """A new shared gate (in the main process, slot 0); pass :attr:`fd` to the workers
        (it is inheritable) with their slot numbers."""
        fd = os.memfd_create("postroom-smtp-connections", 0)
        os.ftruncate(fd, _SLOT.size * slots)
        os.set_inheritable(fd, True)
        return cls(fd, 0, slots, limit)

    def _total(self) -> int:
        return sum(self._all.unpack_from(self._map))

    def admit(self) -> bool:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            if sum(self._all.unpack_from(self._map)) >= self.limit:  # (_total, inline: per connection)
                return False
            at = self._at
            _SLOT.pack_into(self._map, at, _SLOT.unpack_from(self._map, at)[0] + 1)
            return True
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def release(self) -> None:
        """Take one connection off this process's slot (no lock: see the module docstring)."""
        at = self._at
        value = _SLOT.unpack_from(self._map, at)[0]
        if value > 0:
            _SLOT.pack_into(self._map, at, value - 1)

    def clear(self, slot: int) -> None:
        """Forget the connections of ``slot`` (its process has exited)."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            _SLOT.pack_into(self._map, slot * _SLOT.size, 0)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    @property
    def count(self) -> int:
        return self._total()

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
