"""The SQLite schema: versioned migrations, and the migrated template throwaway stores copy.

Migrations are the SQL files in ``migrations/sqlite/`` (``NNNN_name.sql``), applied in order,
each in its own transaction; ``PRAGMA user_version`` records the last one applied.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from importlib import resources

from .base import StoreError
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
    newest = max(int(name.split("_", 1)[0]) for name in files)
    if version > newest:
        # a newer postroom migrated it: this code would write rows that schema no longer
        # expects (e.g. since 0021 the writer keeps the folder counts, no trigger does)
        raise StoreError(
            f"the database's schema is version {version}, newer than this postroom knows "
            f"({newest}): it was written by a newer postroom; run that one (or a copy of the file)"
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
_templates: dict[int, str] = {}  # by page size (0: SQLite's default)
# The page size of an in-process test server's template (SQLite's default is 4096). A test's
# first message writes a page of each of the ~30 tables and indexes it touches, as does
# emptying the database for the next test (sqlite_recycle.py), nearly all of them holding a
# row or two: with 2 KB pages storing and indexing a small message took ~0.44 ms of CPU
# against ~0.49, emptying ~0.18 against ~0.20; a message with a 270 KB attachment ~3% longer
# (more overflow pages). Other throwaway stores (``postroom serve --db :memory:``, which may
# hold 100,000 messages) keep SQLite's default.
TEMPLATE_PAGE_SIZE = 2048


def schema_template(connect: Callable[[str], sqlite3.Connection], page_size: int = 0) -> str:
    """The path of this process's freshly migrated, empty database (made on first use), with
    pages of ``page_size`` bytes (0: SQLite's default)."""
    with _template_lock:
        path = _templates.get(page_size)
        if path is None or not os.path.exists(path):
            import atexit

            base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            directory = tempfile.mkdtemp(prefix="postroom-template-", dir=base)
            atexit.register(shutil.rmtree, directory, True)
            path = os.path.join(directory, "template.db")
            if page_size:
                with contextlib.closing(sqlite3.connect(path)) as empty:
                    empty.execute(f"PRAGMA page_size={int(page_size)}")  # (before any page is written)
                    empty.execute("PRAGMA user_version=0")  # writes the header: the file has that size
            conn = connect(path)
            try:
                apply_migrations(conn)
                # FTS5 merges at insert, as the thread indexer sets it (a setting stored in the
                # database): a copy's inline indexer does not write it again (sqlite_background)
                conn.execute("INSERT INTO fts(fts, rank) VALUES ('automerge', 4)")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the one file
            finally:
                conn.close()
            _templates[page_size] = path
        return path
