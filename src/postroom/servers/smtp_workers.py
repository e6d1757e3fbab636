"""SMTP worker processes: more SMTP protocol throughput than one GIL allows.

With one process, the event loop's thread spends about a third of its time in the kernel's
``write`` for replies and shares the GIL with the store's writer thread, which caps a
connection-per-message load well below what the machine can do (docs/performance.md).
``--smtp-workers N`` (default 0) starts N processes that accept connections on the same listening
socket (inherited file descriptor) and run the same SMTP server (servers/smtp.py). A worker
does not store anything: at the end of DATA it sends the message to the main process over
a socketpair; a thread of the main process commits it to the ingest journal
(``SQLiteStore.deliver_journaled``) and answers with the message ID, and only then does the
worker reply 250. So every acknowledged message is in the main process's journal exactly
as if the main process had received it, and events, the API and IMAP see it the same way.

Wire format on the socketpair, both ways: a 4-byte big-endian length and a ``marshal``
dump. Request: ``(envelope_json, tags, raw)``. Answer: ``("ok", id)`` or
``("error", text)``; answers come in request order.

Workers are not used when SMTP hooks (chaos, handlers) may be installed: those live in
the main process only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import marshal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..store.base import Envelope

if TYPE_CHECKING:
    from ..app import App

__all__ = ["WorkerPool", "main", "worker_count"]

log = logging.getLogger(__name__)

FRAME = struct.Struct(">I")
MAX_FRAME = 1 << 31


def worker_count(app: App) -> int:
    """How many extra SMTP processes to start for ``app`` (0: serve SMTP in this process only)."""
    s = app.settings
    value = str(s.smtp_workers).strip() or "0"
    store_ok = bool(getattr(app.store, "journaled", False))
    hooks_possible = bool(app.extras.get("smtp_hooks")) or s.enable_chaos or bool(s.chaos)
    if not store_ok or hooks_possible or not value.isdigit():
        return 0
    return max(0, int(value))


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


@dataclass
class WorkerPool:
    """The worker processes of one SMTP listener and the threads that take their messages."""

    app: App
    on_all_gone: Callable[[], None] | None = None  # called once if every worker exits on its own
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    socks: list[socket.socket] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    closing: bool = False
    _alive: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, listen: socket.socket, count: int) -> None:
        settings = json.dumps({k: v for k, v in asdict(self.app.settings).items() if k != "extra"})
        for n in range(count):
            mine, theirs = socket.socketpair()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "postroom.servers.smtp_workers",
                    str(listen.fileno()),
                    str(theirs.fileno()),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(listen.fileno(), theirs.fileno()),
                close_fds=True,
            )
            assert proc.stdin is not None
            proc.stdin.write(settings.encode())
            proc.stdin.close()
            theirs.close()
            t = threading.Thread(
                target=self._serve, args=(mine,), name=f"postroom-smtp-worker-{n}", daemon=True
            )
            t.start()
            self.procs.append(proc)
            self.socks.append(mine)
            self.threads.append(t)
            self._alive += 1

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._take_messages(sock)
        finally:
            with self._lock:
                self._alive -= 1
                gone = self._alive == 0 and not self.closing
            if gone and self.on_all_gone is not None:
                self.on_all_gone()

    def _take_messages(self, sock: socket.socket) -> None:
        store: Any = self.app.store
        try:
            while True:
                head = _recv_exact(sock, FRAME.size)
                if head is None:
                    return
                (size,) = FRAME.unpack(head)
                if size > MAX_FRAME:
                    log.error("SMTP worker sent a frame of %d bytes; dropping it", size)
                    return
                body = _recv_exact(sock, size)
                if body is None:
                    return
                try:
                    env_json, tags, raw = marshal.loads(body)
                    envelope = Envelope.from_json(json.loads(env_json))
                    answer: tuple[str, str] = ("ok", store.deliver_journaled(envelope, raw, tuple(tags)))
                except Exception as e:  # the worker answers 451 and the client retries
                    log.exception("could not store a message from an SMTP worker")
                    answer = ("error", str(e))
                data = marshal.dumps(answer)
                sock.sendall(FRAME.pack(len(data)) + data)
        except OSError:
            return

    def close(self) -> None:
        self.closing = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sock in self.socks:
            sock.close()
        for t in self.threads:
            t.join(5)


# -- the worker process ----------------------------------------------------------------


class _ForwardStore:
    """The worker's "store": hands each message to the main process and waits for its ID."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.waiting: list[asyncio.Future[str]] = []

    async def deliver(self, envelope: Envelope, raw: bytes, *, tags: tuple[str, ...] = ()) -> str:
        data = marshal.dumps((envelope.dumps(), list(tags), raw))
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)  # answers come back in request order
        self.writer.write(FRAME.pack(len(data)) + data)
        return await fut

    async def read_answers(self) -> None:
        try:
            while True:
                head = await self.reader.readexactly(FRAME.size)
                (size,) = FRAME.unpack(head)
                status, value = marshal.loads(await self.reader.readexactly(size))
                fut = self.waiting.pop(0)
                if status == "ok":
                    fut.set_result(value)
                else:
                    fut.set_exception(RuntimeError(value))
        except (asyncio.IncompleteReadError, OSError):
            for fut in self.waiting:
                if not fut.done():
                    fut.set_exception(RuntimeError("the main postroom process is gone"))


@dataclass
class _WorkerApp:
    """The parts of App that servers/smtp.py uses."""

    settings: Any
    store: Any
    ssl_context: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


async def _run(listen_fd: int, ipc_fd: int, settings_json: str) -> None:
    import signal

    from ..config import Settings
    from ..runtime import tune_gc
    from . import smtp

    settings = Settings(**json.loads(settings_json))
    ipc = socket.socket(fileno=ipc_fd)
    reader, writer = await asyncio.open_connection(sock=ipc)
    store = _ForwardStore(reader, writer)
    app = _WorkerApp(settings, store)
    if settings.tls_enabled:
        from .tls import make_server_context

        app.ssl_context = make_server_context(settings)
    listen = socket.socket(fileno=listen_fd)
    listener = smtp.SMTPListener(app, False)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    listener.server = await loop.create_server(listener.new_session, sock=listen, backlog=1024)
    listener.start_sweeper()
    tune_gc()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    answers = loop.create_task(store.read_answers())
    # run until told to stop, or until the main process goes away (its socket closes)
    await asyncio.wait({answers, loop.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    listener.close()
    answers.cancel()


def main(argv: list[str] | None = None) -> int:
    """``python -m postroom.servers.smtp_workers LISTEN_FD IPC_FD`` (settings as JSON on stdin)."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s smtp-worker: %(message)s")
    settings_json = sys.stdin.read()
    try:
        import uvloop

        uvloop.run(_run(int(args[0]), int(args[1]), settings_json))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_run(int(args[0]), int(args[1]), settings_json))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
