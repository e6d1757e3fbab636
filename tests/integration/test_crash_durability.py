"""An acknowledged message survives ``kill -9`` of a real server process."""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", ["0", "2"])
def test_every_250_survives_kill_9(tmp_path: Path, workers: str) -> None:
    db = tmp_path / "store.db"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "postroom",
            "serve",
            "--smtp",
            f"127.0.0.1:{port}",
            "--http",
            "off",
            "--pop3",
            "off",
            "--imap",
            "off",
            "--db",
            str(db),
            "--max",
            "0",
            "--quiet",
            "--smtp-workers",
            workers,
        ],
        start_new_session=True,
    )
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            mid = f"crash-{n}-{i}@test.example"
            msg = f"From: a@test.example\r\nTo: b@test.example\r\nMessage-ID: <{mid}>\r\nSubject: {i}\r\n\r\nbody\r\n"
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                    s.sendmail("a@test.example", ["b@test.example"], msg)
            except (OSError, smtplib.SMTPException):
                return  # the server died under us: whatever was not acknowledged may be lost
            with lock:
                acked.add(mid)

    try:
        wait_for_port(port, proc=proc)
        threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-burst: senders are still sending
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert len(acked) >= 300, "the burst did not get going"
    # Start the store again, as the next `postroom serve` would: it applies what the killed
    # process acknowledged (journaled) but had not yet written to SQLite.
    from postroom.config import Settings
    from postroom.events import Bus
    from postroom.store.sqlite import SQLiteStore

    store = SQLiteStore(str(db), Settings(indexer="thread"), Bus())
    store.start()
    store.close()
    conn = sqlite3.connect(db)
    stored = {r[0] for r in conn.execute("SELECT message_id FROM message")}
    conn.close()
    lost = acked - stored
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:3]}"
