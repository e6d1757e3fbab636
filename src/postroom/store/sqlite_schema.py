"""The SQLite schema: versioned migrations, and the migrated template throwaway stores copy.

Migrations are the SQL files in ``migrations/sqlite/`` (``NNNN_name.sql``), applied in order,
each in its own transaction; ``PRAGMA user_version`` records the last one applied.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from importlib import resources

from .index_write import begin_immediate

__all__ = ["apply_migrations", "schema_template"]

log = logging.getLogger(__name__)


def _split_sql(script: str) -> list[str]:
    """Split a migration file into statements (triggers' BEGIN ... END; included).

    Comments run from ``--`` to the end of the line; our migrations keep ``--`` out of literals.
    """
    out: list[str] = []
    buf = ""
    for line in script.splitlines():
        code = line.split("--", 1)[0]
        if not code.strip():
            continue
        buf += code + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip().rstrip(";").strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def apply_migrations(conn: sqlite3.Connection, upto: int | None = None) -> None:
    """Bring a database to the newest schema (versioned SQL files, each in a transaction),
    or only to version ``upto`` (tests that build an older store)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    files = sorted(
        (
            f.name
            for f in resources.files("postroom.store").joinpath("migrations/sqlite").iterdir()
            if f.name.endswith(".sql")
        ),
    )
    for name in files:
        num = int(name.split("_", 1)[0])
        if num <= version or (upto is not None and num > upto):
            continue
        sql = resources.files("postroom.store").joinpath(f"migrations/sqlite/{name}").read_text()
        begin_immediate(conn)
        try:
            for stmt in _split_sql(sql):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={num}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.debug("applied migration %s", name)


# A throwaway store (``--db :memory:``: every in-process test server) starts as a copy of a
# database migrated once per process: the migrations are ~900 statements, most of the cost of
# a fresh store; copying the migrated file is a fraction of that.
_template_lock = threading.Lock()
_template: str | None = None


def schema_template(connect: Callable[[str], sqlite3.Connection]) -> str:
    """The path of this process's freshly migrated, empty database (made on first use)."""
    global _template
    with _template_lock:
        if _template is None or not os.path.exists(_template):
            import atexit

            base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            directory = tempfile.mkdtemp(prefix="postroom-template-", dir=base)
            atexit.register(shutil.rmtree, directory, True)
            path = os.path.join(directory, "template.db")
            conn = connect(path)
            try:
                apply_migrations(conn)
                # FTS5 merges at insert, as the thread indexer sets it (a setting stored in the
                # database): a copy's inline indexer does not write it again (sqlite_background)
                conn.execute("INSERT INTO fts(fts, rank) VALUES ('automerge', 4)")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the one file
            finally:
                conn.close()
            _template = path
        return _template
