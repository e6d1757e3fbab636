"""One postroom per SQLite database (issue 15): a second ``postroom serve`` on a database in
use exits at once with one line naming the process that holds it, before it opens a port."""

from __future__ import annotations

import smtplib
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.helpers import serve_process


def test_a_second_serve_on_a_database_in_use_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with serve_process(db, "--smtp-workers", "0") as (first, smtp, http):
        # the same ports as the first: had it got as far as its listeners, the error would
        # be "cannot listen"; it must stop before, on the lock
        second = subprocess.run(
            [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{smtp}", "--http",
             f"127.0.0.1:{http}", "--pop3", "off", "--imap", "off", "--db", str(db)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"the database {db} is in use by process {first.pid} (postroom serve" in lines[0]
        assert "Traceback" not in second.stderr
        # the first one is undisturbed: it still takes and stores mail
        with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as s:
            s.sendmail("a@x.org", ["b@x.org"], "Subject: still here\r\nMessage-ID: <still@x>\r\n\r\nx\r\n")
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT message_id FROM message")] == ["still@x"]
    conn.close()
    # once the first has stopped (even had it been killed: the kernel drops its lock), the
    # database can be opened again
    with serve_process(db, "--smtp-workers", "0"):
        pass


def test_a_throwaway_database_takes_no_lock_file_a_database_file_does(tmp_path: Path) -> None:
    """A throwaway store (``--db :memory:``, each in-process test server) lives in a
    directory its process made for it: no lock file (five system calls per test server);
    a database file still gets its lock."""
    from postroom.config import Settings
    from postroom.events import Bus
    from postroom.store.owner import lock_path
    from postroom.store.sqlite import SQLiteStore

    for target in (":memory:", str(tmp_path / "store.db")):
        store = SQLiteStore(target, Settings(db=target, indexer="thread", quiet=True), Bus())
        store.start()
        try:
            locked = Path(lock_path(store.path)).exists()
        finally:
            store.close()
        assert locked == (target != ":memory:"), target
