"""SMTP worker processes: more SMTP protocol throughput than one GIL allows.

With one process, the event loop's thread spends about a third of its time in the kernel's
``write`` for replies and shares the GIL with the store's writer thread, which caps a
connection-per-message load well below what the machine can do (docs/performance.md).
``--smtp-workers N`` starts N processes that accept connections on the same socket
(inherited file descriptor) and run the same SMTP server (servers/smtp.py). The main process
binds it and accepts on it only until a worker sends :data:`READY` (it serves): clients are
greeted at once, not after the workers' start (SMTPListener.ready waits for the first).

At the end of DATA a worker prepares the message for the store (scans its header fields,
compresses it) and appends it to a journal file of its own (store/journal.py,
:class:`~postroom.store.journal.SegmentedJournal`); once that ``write`` has returned the
message survives a crash, and the worker replies 250. The main process's writer reads the
new records and inserts them, exactly as if the main process had received the message:
events, the API and IMAP see it the same way. It keeps reading after each batch while it
finds mail; when it has read a journal to its end it "arms" the worker (:data:`ARM` over a
socketpair), and the worker then sends one byte when it next journals mail (or at once if it
already has), which a thread of the main process turns into another read
(:meth:`SQLiteStore.poke_journals`). So a busy worker sends no notes at all. A reader of the API
waits until the store has applied everything the workers had written when it asked
(read-your-writes), so a client that reads after its 250 finds its message. At start the
store applies what an earlier run's workers acknowledged but it had not stored.

The main process does no per-message work for worker mail but the inserts. The socketpair
also tells each side when the other is gone: a worker exits when the main process does,
and when every worker has exited the main process accepts SMTP itself.

Workers are not used when SMTP hooks (chaos, handlers) may be installed: those live in
the main process only.
"""

from __future__ import annotations

if __name__ == "__main__":  # a worker starting: Ctrl-C is the main process's to handle (main())
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # before the imports a Ctrl-C would interrupt

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..authlimit import AuthLimiter
from ..store.base import Envelope, StoreError
from ..store.ingest import WorkerFeed, WorkerIngest, WorkerJournalWriter, ingest_paths
from .smtp_gate import GATE_KEY, SharedGate

if TYPE_CHECKING:
    import ssl

    from ..app import App
    from ..config import Settings
    from .smtp_hooks import SMTPHook

__all__ = ["WorkerPool", "main", "worker_count"]

log = logging.getLogger(__name__)

ARM = b"?"  # main -> worker: send a note when you next journal mail
REFUSE = b"!"  # main -> worker: the store cannot write (disk full...), refuse mail (451)
ACCEPT = b"="  # main -> worker: the store writes again, accept mail
NOTE = b"+"  # worker -> main: mail journaled since you armed me
READY = b"R"  # worker -> main: I am accepting connections

# --smtp-workers auto on a machine with 2 or more cores: measured on 2 cores, 2 workers beat
# 1 and 0 (docs/performance.md); more have not been measured.
AUTO_WORKERS = 2


def worker_count(app: App) -> int:
    """How many extra SMTP processes to start for ``app`` (0: serve SMTP in this process only)."""
    s = app.settings
    if bool(app.smtp_hooks) or s.enable_chaos or bool(s.chaos):
        return 0  # hooks are possible (a test server's case: decided before anything it costs)
    value = str(s.smtp_workers).strip() or "0"
    if value == "auto":
        value = str(AUTO_WORKERS) if (os.cpu_count() or 1) >= 2 else "0"
    if not value.isdigit() or int(value) == 0:
        return 0  # (decided before the store's protocol checks, which cost a test server time)
    if ingest_paths(app.store).workers is None:
        return 0
    return max(0, int(value))


@dataclass
class WorkerPool:
    """The worker processes of one SMTP listener and the threads that take their messages."""

    app: App
    on_all_gone: Callable[[], None] | None = None  # called once if every worker exits on its own
    gate: SharedGate | None = None  # the connection limit shared with the workers
    store: WorkerIngest | None = None  # set by start()
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    socks: list[socket.socket] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    closing: bool = False
    ready: threading.Event = field(default_factory=threading.Event)  # a worker accepts, or none is left
    _alive: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, listen: socket.socket, count: int) -> None:
        settings = json.dumps({k: v for k, v in asdict(self.app.settings).items() if k != "extra"})
        store = ingest_paths(self.app.store).workers
        if store is None:
            raise ValueError("this store cannot take mail from SMTP worker processes")
        self.store = store
        for n in range(count):
            tail = store.open_worker_journal(n)
            mine, theirs = socket.socketpair()
            gate_args = [str(self.gate.fd), str(n + 1), str(self.gate.slots)] if self.gate is not None else []
            gate_fds = (self.gate.fd,) if self.gate is not None else ()
            tail.arm = lambda sock=mine: _send_quietly(sock, ARM)
            tail.refuse = lambda refuse, sock=mine: _send_quietly(sock, REFUSE if refuse else ACCEPT)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "postroom.servers.smtp_workers",
                    str(listen.fileno()),
                    str(theirs.fileno()),
                    tail.location,
                    *gate_args,
                ],
                stdin=subprocess.PIPE,
                pass_fds=(listen.fileno(), theirs.fileno(), *gate_fds),
                close_fds=True,
            )
            assert proc.stdin is not None
            proc.stdin.write(settings.encode())
            proc.stdin.close()
            theirs.close()
            t = threading.Thread(
                target=self._serve, args=(mine, tail, n + 1), name=f"postroom-smtp-worker-{n}", daemon=True
            )
            t.start()
            self.procs.append(proc)
            self.socks.append(mine)
            self.threads.append(t)
            self._alive += 1

    def _serve(self, sock: socket.socket, tail: WorkerFeed, slot: int) -> None:
        try:
            self._take_notes(sock, tail)
        finally:
            if self.gate is not None:
                self.gate.clear(slot)  # its connections went with it
            with self._lock:
                self._alive -= 1
                gone = self._alive == 0 and not self.closing
                if self._alive == 0:
                    self.ready.set()  # nobody left to wait for: the main process takes over
            if gone and self.on_all_gone is not None:
                self.on_all_gone()

    def _take_notes(self, sock: socket.socket, tail: WorkerFeed) -> None:
        """Bytes from a worker: READY once it accepts connections, then a NOTE whenever it has
        journaled mail since the store last asked (armed it)."""
        store = self.store
        assert store is not None
        try:
            while data := sock.recv(4096):
                if READY in data:
                    self.ready.set()
                if NOTE in data:
                    tail.armed = False
                    store.poke_journals()
        except OSError:
            pass
        tail.arm = tail.refuse = None
        tail.gone = True
        store.poke_journals()  # whatever it wrote last

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


class _JournalStore:
    """The worker's "store" (store/ingest.JournaledIngest): journals each message itself
    (store/ingest.WorkerJournalWriter) and tells the main process.

    Notes are sent only when the main process asked for one (it "armed" this worker after
    finding its journal read to the end): while the main process keeps reading, which it
    does as long as it finds mail, a busy worker sends none. A worker that wrote mail since
    its last note answers an arming at once, so no message waits for the next one.
    """

    def __init__(self, writer: WorkerJournalWriter, ipc: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.ipc = ipc
        self.armed = True  # the main process has read everything: note the next message
        self.dirty = False  # mail journaled since the last note
        self.refusing = False  # the main process cannot store mail now: answer 451

    @property
    def journaled(self) -> bool:
        return True  # deliver_journaled commits before it returns

    async def deliver(self, envelope: Envelope, raw: bytes, *, tags: tuple[str, ...] = ()) -> str:
        return self.deliver_journaled(envelope, raw, tags)

    def deliver_journaled(self, envelope: Envelope, raw: bytes, tags: tuple[str, ...] = ()) -> str:
        if self.refusing:
            raise StoreError("the store cannot write at the moment (is the disk full?)")
        pid = self.writer.commit(envelope, raw, tags)
        if self.armed:
            self.armed = False
            self.ipc.write(NOTE)
        else:
            self.dirty = True
        return pid

    def arm(self) -> None:
        """The main process has read this journal to its end and waits for a note."""
        if self.dirty:
            self.dirty = False
            self.ipc.write(NOTE)
        else:
            self.armed = True


async def _listen_to_main(reader: asyncio.StreamReader, store: _JournalStore) -> None:
    """Bytes from the main process (ARM, REFUSE, ACCEPT), until it goes away (end of file)."""
    while data := await reader.read(4096):
        last = max(data.rfind(REFUSE), data.rfind(ACCEPT))
        if last >= 0:
            store.refusing = data[last : last + 1] == REFUSE
        if ARM in data:
            store.arm()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:  # the worker is gone: its end-of-file reaches _take_notes
        pass


@dataclass
class _WorkerApp:
    """The parts of App that servers/smtp.py uses (its SMTPHost)."""

    settings: Settings
    store: _JournalStore
    ssl_context: ssl.SSLContext | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    smtp_hooks: list[SMTPHook] = field(default_factory=list)  # none: a worker runs no hooks
    auth_limiter: AuthLimiter = field(init=False)  # per worker process (authlimit.py)

    def __post_init__(self) -> None:
        self.auth_limiter = AuthLimiter.from_settings(self.settings)


async def _run(listen_fd: int, ipc_fd: int, journal_base: str, gate: list[int], settings_json: str) -> None:
    import signal

    from ..config import Settings
    from ..runtime.gc import tune_gc
    from . import smtp

    settings = Settings(**json.loads(settings_json))
    ipc = socket.socket(fileno=ipc_fd)
    reader, writer = await asyncio.open_connection(sock=ipc)
    journal = WorkerJournalWriter(journal_base)
    store = _JournalStore(journal, writer)
    app = _WorkerApp(settings, store)
    if gate:  # the connection limit shared with the main process and the other workers
        app.extras[GATE_KEY] = SharedGate(gate[0], gate[1], gate[2], settings.smtp_max_connections)
    if settings.tls_enabled:
        from .tls import make_server_context

        app.ssl_context = make_server_context(settings)
    listen = socket.socket(fileno=listen_fd)
    listener = smtp.SMTPListener(app, False)
    loop = asyncio.get_running_loop()
    # the main process bound the socket and accepts on it until a worker says READY
    listener.server = await loop.create_server(listener.new_session, sock=listen, backlog=1024)
    writer.write(READY)
    listener.start_sweeper()
    tune_gc()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Ctrl-C in a terminal reaches the whole process group: stopping is the main process's
    # decision (it closes our socket, or terminates us), so a worker ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    main_gone = loop.create_task(_listen_to_main(reader, store))
    # run until told to stop, or until the main process goes away (its socket closes)
    await asyncio.wait({main_gone, loop.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    listener.close()
    try:
        await asyncio.wait_for(listener.wait_closed(), 5)
    except TimeoutError:
        pass
    journal.close()
    main_gone.cancel()


def main(argv: list[str] | None = None) -> int:
    """``python -m postroom.servers.smtp_workers LISTEN_FD IPC_FD JOURNAL [GATE_FD SLOT SLOTS]``
    (settings as JSON on stdin)."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s smtp-worker: %(message)s")
    settings_json = sys.stdin.read()
    gate = [int(a) for a in args[3:6]]
    try:
        import uvloop

        uvloop.run(_run(int(args[0]), int(args[1]), args[2], gate, settings_json))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_run(int(args[0]), int(args[1]), args[2], gate, settings_json))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
