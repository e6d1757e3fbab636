"""One postroom per SQLite database: an exclusive lock taken before anything else.

Two ``postroom serve`` on one database file both started, and the second acknowledged
mail that it then failed to store (issue 15): each process keeps in-memory state about the
database (UID counters, folder ids, journal positions) that assumes it is the only writer.
So the store takes an exclusive ``flock`` on a lock file beside the database
(``<db>-postroom.lock``) before it opens the database, and writes its process ID into
it; a second process finds the lock held and stops with one line naming the holder, before
it opens any port (the store starts before the listeners, app.py).

``flock`` belongs to the open file: the kernel releases it when the holder exits, however
it exits, so a stale file left by ``kill -9`` never blocks the next start. The file is not
deleted at close: deleting it would let a third process lock a new file while a second
holds the old one.
"""

from __future__ import annotations

import fcntl
import os

from .base import StoreError

__all__ = ["StoreInUse", "StoreLock", "lock_path"]


class StoreInUse(StoreError):
    """Another process holds the database's lock."""


def lock_path(db_path: str) -> str:
    return db_path + "-postroom.lock"


def _describe(pid_text: str) -> str:
    """``pid 1234 (postroom serve --db x)`` from what the holder wrote, as far as known."""
    pid = pid_text.strip()
    if not pid.isdigit():
        return "another process"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return f"process {pid}"
    for i, arg in enumerate(argv):  # "python -m postroom serve ..." reads better from "postroom"
        if arg == "-m" and i + 1 < len(argv):
            argv = argv[i + 1 :]
            break
    command = " ".join(argv)
    if len(command) > 120:
        command = command[:117] + "..."
    return f"process {pid} ({command})" if command else f"process {pid}"


class StoreLock:
    """The exclusive lock of one database file, held until :meth:`release`.

    ``private``: a throwaway database (``--db :memory:``, every in-process test server) in a
    directory this process made for it (``mkdtemp``, mode 0700), which no other postroom is
    told of: there is nothing to lock, and the lock file's five system calls (open, flock,
    ftruncate, pwrite, close) are left out of each test server's start and stop."""

    def __init__(self, db_path: str, *, private: bool = False) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self.private = private
        self._fd = -1

    def acquire(self) -> None:
        """Take the lock and record this process in it (nothing for a private database).

        Raises:
            StoreInUse: another process holds it (the message names it).
            OSError: the lock file cannot be created.
        """
        if self.private:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace")
            os.close(fd)
            raise StoreInUse(
                f"the database {self.db_path} is in use by {_describe(holder)}: stop it, or choose another --db"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # releases the flock
            self._fd = -1
