"""A flag change or expunge answered OK survives ``kill -9`` of a real server process
(issue 19: STOREs from many sessions share the writer's commits; each OK comes after its
commit, never before)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for_port
from tests.integration.imap_wire import Wire

pytestmark = pytest.mark.slow

USER = "bob@example.org"
SESSIONS = 6


def test_every_store_and_expunge_answered_ok_survives_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--imap", f"127.0.0.1:{port}", "--smtp", "off",
         "--http", "off", "--pop3", "off", "--db", str(db), "--max", "0", "--quiet"],
        start_new_session=True,
    )  # fmt: skip
    acked: set[tuple[int, str]] = set()  # (UID, keyword) answered OK
    expunged: set[int] = set()  # UIDs whose EXPUNGE was answered OK
    lock = threading.Lock()

    def session(n: int) -> None:
        try:
            with Wire("127.0.0.1", port, timeout=10) as w:
                w.ok(f"LOGIN {USER} x")
                w.ok("SELECT INBOX")
                i = 0
                while True:
                    i += 1
                    uid = n + 1
                    if i % 5 == 0:  # a message of its own: flag it \Deleted and expunge it
                        w.append("INBOX", b"Subject: gone\r\n\r\nx\r\n")
                        found = w.ok("UID SEARCH SUBJECT gone NOT DELETED")
                        line = next(x for x in found if x.startswith(b"* SEARCH"))
                        mine = [int(x) for x in line.split()[2:]]
                        if not mine:
                            continue
                        w.ok(f"UID STORE {mine[-1]} +FLAGS.SILENT (\\Deleted)")
                        w.ok(f"UID EXPUNGE {mine[-1]}")
                        with lock:
                            expunged.add(mine[-1])
                        continue
                    w.ok(f"UID STORE {uid} +FLAGS.SILENT (s{n}k{i})")
                    with lock:
                        acked.add((uid, f"s{n}k{i}"))
                        if n == 0 and len(acked) >= 300 and len(expunged) >= 10:
                            # right upon an OK: an answer sent before its commit would be lost
                            os.killpg(proc.pid, signal.SIGKILL)
        except (OSError, AssertionError, IndexError):
            return  # the server died under us: what was not answered may be lost

    try:
        wait_for_port(port, proc=proc)
        with Wire("127.0.0.1", port, timeout=10) as w:
            w.ok(f"LOGIN {USER} x")
            for n in range(SESSIONS):
                w.append("INBOX", f"Subject: m{n}\r\n\r\nbody\r\n".encode())
        threads = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
        for t in threads:
            t.start()
        proc.wait(60)  # session 0 kills it mid-burst: the others are still storing
        for t in threads:
            t.join(15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert len(acked) >= 300 and len(expunged) >= 10, "the burst did not get going"
    conn = sqlite3.connect(db)
    flags = {
        uid: set(f.split())
        for uid, f in conn.execute(
            "SELECT d.uid, d.flags FROM delivery d JOIN folder f ON f.id = d.folder_id WHERE f.name = 'INBOX'"
        )
    }
    conn.close()
    lost = {(u, k) for u, k in acked if k not in flags.get(u, set())}
    assert not lost, f"{len(lost)} flag changes answered OK were lost, e.g. {sorted(lost)[:3]}"
    back = expunged & set(flags)
    assert not back, f"expunges answered OK came back: {sorted(back)[:5]}"
