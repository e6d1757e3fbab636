"""``postroom fetch --watch`` (and fetch inside ``serve``): sync accounts again when their
server says something changed, and every ``interval`` seconds anyway.

For an IMAP account whose server advertises IDLE (RFC 2177), one thread per configured
folder holds its own connection in IDLE on that folder; an untagged EXISTS, EXPUNGE or
FETCH wakes the sync of the account at once. A dropped IDLE connection is reopened with a
doubling delay (1 s up to 10 minutes). Servers without IDLE, and POP3 accounts, are polled
every ``interval`` seconds; so is every account as a safety net. The syncs themselves run
one at a time in the calling thread (the state file has one writer).
"""

from __future__ import annotations

import imaplib
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .accounts import Account, State, default_state_path
from .imap_sync import FetchError, LocalTarget, Report, _quote, _remote_imap, resolve_folders, sync_account

__all__ = ["Watcher", "watch"]

# IDLE is renewed before the 30-minute inactivity limit of RFC 3501 5.4.
IDLE_RENEW = 25 * 60.0
MAX_BACKOFF = 600.0


class _Lines:
    """Lines read from a socket with a timeout, without a buffered file (whose state a
    timeout breaks): the IDLE connection is read here once imaplib has logged in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            buffered = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not buffered:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the IDLE connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


class _Idler(threading.Thread):
    """Holds one folder of one account in IDLE; puts the account's name on ``wake``."""

    def __init__(self, acc: Account, folder: str, wake: queue.Queue[str], stop: threading.Event) -> None:
        super().__init__(name=f"fetch-idle-{acc.name}-{folder}", daemon=True)
        self.acc, self.folder, self.wake, self.stop = acc, folder, wake, stop
        self.supported = True  # False once the server turned out to have no IDLE

    def run(self) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            try:
                conn = _remote_imap(self.acc)
            except FetchError:
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            try:
                if "IDLE" not in conn.capabilities:
                    self.supported = False
                    return
                names = resolve_folders(conn, (self.folder,))
                if not names or conn.select(_quote(names[0]), readonly=True)[0] != "OK":
                    self.supported = False
                    return
                # what arrived between the last sync and this IDLE is caught by one sync now
                self.wake.put(self.acc.name)
                backoff = 1.0
                self._idle(conn)
            except (imaplib.IMAP4.error, OSError, FetchError):
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                try:
                    conn.shutdown()
                except OSError:
                    pass

    def _idle(self, conn: imaplib.IMAP4) -> None:
        lines = _Lines(conn.sock)
        while not self.stop.is_set():
            tag = conn._new_tag()
            conn.sock.sendall(tag + b" IDLE\r\n")
            first = lines.line(60.0)
            if first is None or not first.startswith(b"+"):
                raise ConnectionError(f"IDLE refused: {first!r}")
            changed = False
            renew_at = time.monotonic() + IDLE_RENEW
            while not changed and not self.stop.is_set() and time.monotonic() < renew_at:
                line = lines.line(1.0)
                if line is not None and line.startswith(b"* "):
                    word = line.split(b" ", 3)[2:3]
                    changed = bool(word) and word[0].rstrip().upper() in (b"EXISTS", b"EXPUNGE", b"FETCH")
            conn.sock.sendall(b"DONE\r\n")
            while True:
                line = lines.line(60.0)
                if line is None:
                    raise ConnectionError("no answer to DONE")
                if line.startswith(tag + b" "):
                    break
            if changed:
                self.wake.put(self.acc.name)


class Watcher:
    """Syncs ``accounts`` until :meth:`stop`: at once, when IDLE reports a change, when
    :meth:`sync_now` asks, and every ``interval`` seconds; after a failure an account backs
    off exponentially (up to 10 minutes). :meth:`run` blocks; ``on_report`` sees every result."""

    def __init__(self, accounts: list[Account], target: LocalTarget, state_path: Path | None,
                 interval: float, on_report: Callable[[Report | FetchError], None],
                 on_start: Callable[[str], None] = lambda name: None) -> None:  # fmt: skip
        self.accounts, self.target, self.state_path = accounts, target, state_path
        self.interval, self.on_report, self.on_start = interval, on_report, on_start
        self.wake: queue.Queue[str] = queue.Queue()
        self.halt = threading.Event()
        self.idlers = [
            _Idler(a, f, self.wake, self.halt) for a in accounts if a.protocol == "imap" for f in a.folders
        ]

    def sync_now(self, name: str) -> None:
        self.wake.put(name)

    def stop(self) -> None:
        self.halt.set()
        self.wake.put("")

    def idle(self, name: str) -> bool:
        """Whether some folder of account ``name`` is held in IDLE (not known yet: True)."""
        return any(t.supported for t in self.idlers if t.acc.name == name)

    def run(self, state: State | None = None) -> None:
        own = state is None
        state = state or State(self.state_path or default_state_path())
        for t in self.idlers:
            t.start()
        next_at = {a.name: 0.0 for a in self.accounts}
        delay = {a.name: self.interval for a in self.accounts}
        try:
            while not self.halt.is_set():
                now = time.monotonic()
                for acc in self.accounts:
                    if now < next_at[acc.name] or self.halt.is_set():
                        continue
                    self.on_start(acc.name)
                    try:
                        self.on_report(sync_account(acc, self.target, state))
                        delay[acc.name] = self.interval
                    except FetchError as e:
                        self.on_report(e)
                        delay[acc.name] = min(delay[acc.name] * 2, MAX_BACKOFF)
                    next_at[acc.name] = time.monotonic() + delay[acc.name]
                soonest = min(next_at.values(), default=time.monotonic() + 1.0) - time.monotonic()
                try:
                    name = self.wake.get(timeout=max(0.0, min(1.0, soonest)))
                except queue.Empty:
                    continue
                for n in {name, *_drain(self.wake)}:
                    if n in next_at:
                        next_at[n] = 0.0
        finally:
            self.halt.set()
            for t in self.idlers:
                t.join(timeout=5)
            if own:
                state.close()


def watch(accounts: list[Account], target: LocalTarget, state: State, interval: float,
          on_report: Callable[[Report | FetchError], None], stop: Callable[[], bool]) -> None:  # fmt: skip
    """:class:`Watcher` for ``postroom fetch --watch``: until interrupted (or ``stop()``)."""
    w = Watcher(accounts, target, None, interval, on_report)
    done = threading.Event()

    def watch_stop() -> None:
        while not done.wait(0.5):
            if stop():
                w.stop()
                return

    threading.Thread(target=watch_stop, daemon=True).start()
    try:
        w.run(state)
    finally:
        done.set()
        w.stop()


def _drain(q: queue.Queue[str]) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out
