"""CPU per message of an SMTP worker process's own work, measured in one process.

Runs what a worker runs for each message (servers/smtp_workers.py): a session of
``SMTPListener`` over an in-memory transport, fed a connection as Postfix's
``smtp-source`` sends it (EHLO, MAIL, RCPT, DATA, the message in 4 KiB reads, QUIT), the
store being the worker's journal writer (a temporary journal file). No sockets, no event
loop turns: what is left is the Python work per message, which the process CPU of
``ingest_compare.py``'s ``smtp`` role cannot resolve below a clock tick per process.

    .venv/bin/python benchmarks/worker_cpu.py [-n 3000] [--rounds 5] [--msg html] [--profile]
                                              [--no-store] [TREE ...]

With trees (checkouts with their ``.venv``, such as ``/tmp/pre`` for ``git worktree add
/tmp/pre 1ba8b6b^``), each is run in turn with its own interpreter, rounds interleaved, and
the medians are printed; without, this tree. ``--profile`` prints cProfile's top entries
(``PROFILE_TOP``, 30); ``--no-store`` leaves out the store (the session and the protocol
alone). The running workers: ``worker_proc_cpu.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


class _Transport:
    """What a session uses of an asyncio transport."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        self.closing = True

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Pipe:
    def write(self, data: bytes) -> None:
        pass


def _conversation(message: bytes) -> list[bytes]:
    """The reads a session gets from smtp-source for one message (CRLF, dot-stuffed)."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    body = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines) + b".\r\n"
    data = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    return [b"EHLO bench.example\r\n", b"MAIL FROM:<sender@shop.example.com>\r\n",
            b"RCPT TO:<alice@example.org>\r\n", b"DATA\r\n", *data, b"QUIT\r\n"]  # fmt: skip


async def _measure(
    n: int, rounds: int, msg: str, profile: bool, no_store: bool = False, calls: bool = False
) -> list[float]:
    from fixtures import build

    from postroom.config import Settings
    from postroom.servers import smtp, smtp_workers

    reads = _conversation(build(msg))
    base = tempfile.mkdtemp(prefix="postroom-worker-cpu-")
    settings = Settings()
    try:  # this tree: the worker's ingest (store/ingest.py)
        from postroom.store.ingest import WorkerJournalWriter

        writer: Any = WorkerJournalWriter(os.path.join(base, "w"))
    except ImportError:  # before the renovation: the worker wrote the journal itself
        from postroom.store.journal import SegmentedJournal

        writer = SegmentedJournal(os.path.join(base, "w"))
    store = smtp_workers._JournalStore(writer, _Pipe())  # type: ignore[arg-type]
    if no_store:  # the session and the protocol alone
        store.deliver_journaled = lambda envelope, raw, tags=(): "ID"  # type: ignore[method-assign]
    app = smtp_workers._WorkerApp(settings, store)
    try:  # a worker's connection limit is shared with the other processes
        from postroom.servers.smtp_gate import GATE_KEY, SharedGate

        app.extras[GATE_KEY] = SharedGate.create(3, settings.smtp_max_connections)
        app.extras[GATE_KEY].slot = 1
    except ImportError:
        pass
    listener = smtp.SMTPListener(app, False)  # type: ignore[arg-type]

    def burst(count: int) -> None:
        for _ in range(count):
            session = listener.new_session()
            transport = _Transport()
            session.connection_made(transport)  # type: ignore[arg-type]
            for data in reads:
                session.data_received(data)
            assert b"250 2.0.0 Ok: queued" in transport.out[-2], transport.out
            session.connection_lost(None)

    burst(200)  # warm
    if calls:  # Python and C calls of one more message, by function
        counts: Counter[str] = Counter()

        def count(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                counts[f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}"] += 1
            elif event == "c_call":
                counts[f"C:{getattr(arg, '__qualname__', arg)}"] += 1

        sys.setprofile(count)
        burst(1)
        sys.setprofile(None)
        counts.pop("C:setprofile", None)
        return [
            float(sum(v for k, v in counts.items() if not k.startswith("C:"))),
            float(sum(counts.values())),
        ]
    out = []
    prof = cProfile.Profile() if profile else None
    for _ in range(rounds):
        if prof is not None:
            prof.enable()
        t0 = time.process_time()
        burst(n)
        out.append((time.process_time() - t0) * 1e6 / n)
        if prof is not None:
            prof.disable()
    if prof is not None:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(
            int(os.environ.get("PROFILE_TOP", "30"))
        )
    writer.close()
    for f in os.listdir(base):
        os.unlink(os.path.join(base, f))
    os.rmdir(base)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", type=Path)
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--msg", default="html", choices=["small", "html", "attachment"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--no-store", action="store_true", help="the session and the protocol alone")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if not a.trees:
        rows = asyncio.run(_measure(a.n, a.rounds, a.msg, a.profile, a.no_store))
        print(json.dumps(rows) if a.json else f"µs CPU per message: {[round(r, 1) for r in rows]}")
        return 0
    runs: dict[Path, list[float]] = {t: [] for t in a.trees}
    for r in range(a.rounds):
        for tree in a.trees if r % 2 == 0 else a.trees[::-1]:
            cmd = [str(tree / ".venv/bin/python"), str(Path(__file__).resolve()), "-n", str(a.n),
                   "--rounds", "1", "--msg", a.msg, "--json", *(["--no-store"] if a.no_store else [])]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(tree / "src")}
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=tree)
            runs[tree] += json.loads(res.stdout)
            print(tree, round(runs[tree][-1], 1), flush=True)
    for tree, rows in runs.items():
        print("median", tree, round(statistics.median(rows), 1), "µs/msg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
