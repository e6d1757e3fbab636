"""Parsing a message for a read (API, views) within a time and memory budget.

Every parser postroom runs on message content is linear in its input (docs/security.md,
"Parsing budgets"), so a small message parses in milliseconds on a thread, as it always
has. A large one is parsed in a child process instead, for three reasons:

* time: a child that overruns :data:`PARSE_SECONDS` is killed, which no thread can be
  (a C parser or a regular expression holds the GIL; issue 14 saw one hang HTTP, IMAP and
  SIGTERM for everyone);
* memory: the child runs under an address-space limit (:data:`PARSE_MEMORY`), so one
  hostile message costs a ``MemoryError`` there, not the server's memory;
* fairness: six concurrent reads of a 1.2 MB message parsed on threads shared the GIL with
  the event loop, and every other request waited 15-18 s (issue 14 item 6). In children
  they use the second core and leave the loop alone; at most :data:`PARSE_WORKERS` run at
  once and the rest queue.

A message that exceeds the budget is shown raw: :func:`raw_view` gives its header fields
and the start of its undecoded body as the text, flagged with ``ParsedMessage.unparsed``
(the API's ``ParseError``). It stays stored and searchable like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from .message import ParsedMessage, parse_message, raw_view

__all__ = [
    "PARSE_INLINE_BYTES",
    "PARSE_MEMORY",
    "PARSE_SECONDS",
    "PARSE_WORKERS",
    "ParseBudgetExceeded",
    "ParsePool",
    "shared_pool",
]

log = logging.getLogger(__name__)

# Messages up to this size parse on a thread: linear parsers take a few ms on them.
PARSE_INLINE_BYTES = 256 * 1024
# Wall-clock seconds one parse of a larger message may take in its child process.
PARSE_SECONDS = 10.0
# Address space of a parsing child (RLIMIT_AS): the interpreter and lxml take ~60 MB; a
# 19 MB one-line HTML message peaked at 1.2 GB before the HTML reading was bounded.
PARSE_MEMORY = 1024 * 1024 * 1024
# Children parsing at once (one per core of a small machine); further reads queue.
PARSE_WORKERS = 2


class ParseBudgetExceeded(Exception):
    """A parse ran out of time or memory (its child process was stopped)."""


def _child(conn: Connection, memory: int) -> None:
    """A parsing child: read raw messages, answer ("ok", ParsedMessage) or ("error", why)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):  # no such limit on this platform
        pass
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):  # the server went away
            return
        try:
            reply: tuple[str, Any] = ("ok", parse_message(raw))
        except MemoryError:
            reply = ("error", f"memory budget exceeded ({memory // 2**20} MiB)")
        except Exception as e:  # parse_message never raises; belt and braces
            reply = ("error", f"parse failed ({type(e).__name__})")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("error", f"memory budget exceeded ({memory // 2**20} MiB)"))


class _Child:
    """One parsing child process and the pipe to it."""

    def __init__(self, memory: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process running threads
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(theirs, memory), daemon=True, name="postroom-parse")
        self.proc.start()
        theirs.close()

    def parse(self, raw: bytes, seconds: float) -> ParsedMessage:
        """Parse ``raw`` in the child (blocking; call on a thread). Raises
        :class:`ParseBudgetExceeded` (the child is then killed) or ``OSError``."""
        self.conn.send_bytes(raw)
        if not self.conn.poll(seconds):
            self.kill()
            raise ParseBudgetExceeded(f"time budget exceeded ({seconds:g} s)")
        try:
            status, value = self.conn.recv()
        except EOFError:  # it died: killed by the kernel, or by its memory limit in C code
            self.kill()
            raise ParseBudgetExceeded("the parser stopped (memory budget)") from None
        if status != "ok":
            self.kill()
            raise ParseBudgetExceeded(str(value))
        assert isinstance(value, ParsedMessage)
        return value

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class ParsePool:
    """Parses messages for reads within a budget (see the module docstring).

    Args:
        workers: children parsing at once.
        seconds: time budget of one parse in a child.
        memory: address-space limit of a child, in bytes.
        inline_bytes: messages up to this size parse on a thread instead.
    """

    def __init__(
        self,
        workers: int = PARSE_WORKERS,
        seconds: float = PARSE_SECONDS,
        memory: int = PARSE_MEMORY,
        inline_bytes: int = PARSE_INLINE_BYTES,
    ) -> None:
        self.seconds = seconds
        self.memory = memory
        self.inline_bytes = inline_bytes
        # The waits for the children run on threads of their own (as many as children):
        # requests queued for a child must not hold the loop's default executor, which
        # every other request's store reads go through.
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="postroom-parse")
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False

    async def parse(self, raw: bytes) -> ParsedMessage:
        """The parsed view of ``raw``; :func:`raw_view` when the parse exceeds the budget."""
        if len(raw) <= self.inline_bytes:
            return await asyncio.to_thread(parse_message, raw)
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.parse_blocking, raw)

    def parse_blocking(self, raw: bytes) -> ParsedMessage:
        """Parse ``raw`` in a child process, from a thread (blocking)."""
        child = self._take()
        try:
            pm = child.parse(raw, self.seconds)
        except ParseBudgetExceeded as e:
            log.warning("a message of %d bytes is shown raw: %s", len(raw), e)
            return raw_view(raw, str(e))
        except OSError:  # the child is gone (killed from outside)
            child.kill()
            return raw_view(raw, "the parser stopped")
        self._give_back(child)
        return pm

    def _take(self) -> _Child:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Child(self.memory)

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(child)
                return
        child.kill()

    def close(self) -> None:
        """Stop the idle children (a parse in progress stops its own when it ends)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for child in idle:
            child.kill()
        self._threads.shutdown(wait=False)


_SHARED: ParsePool | None = None
_SHARED_LOCK = threading.Lock()


def shared_pool() -> ParsePool:
    """The process's pool (created on first use; its children are daemons that end with it)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED._closed:
            _SHARED = ParsePool()
        return _SHARED
