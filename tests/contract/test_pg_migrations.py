"""PostgreSQL migrations: every file not recorded in ``schema_version`` is applied, also one
numbered below the newest applied (two branches may each take a number; the later one to
land can be the lower one, as 0019 did after 0020)."""

from __future__ import annotations

import psycopg
import pytest

from postroom.config import Settings
from postroom.events import Bus
from postroom.store import open_store
from postroom.store.base import StoreError

from .. import pg


def _open_close(url: str) -> None:
    store = open_store(Settings(db=url), Bus())
    store.start()
    store.close()


def _columns(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'message'"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.timeout(120)
def test_a_migration_numbered_below_the_newest_applied_is_still_applied(pg_database: str) -> None:
    pg.reset_schema(pg_database)
    _open_close(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert 19 in versions and max(versions) > 19
        # a database that got 0020 before 0019 existed: without 0019's column or row
        conn.execute("ALTER TABLE message DROP COLUMN thread_key")
        conn.execute("DELETE FROM schema_version WHERE version = 19")
    assert "thread_key" not in _columns(pg_database)
    _open_close(pg_database)
    assert "thread_key" in _columns(pg_database)
    with psycopg.connect(pg_database) as conn:
        again = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert again == versions  # each applied once, none twice


@pytest.mark.timeout(120)
def test_a_database_a_newer_postroom_migrated_is_refused(pg_database: str) -> None:
    """An older postroom writing a newer schema could keep it wrong for good (as folder
    counts would be): it refuses the database with one line instead."""
    pg.reset_schema(pg_database)
    _open_close(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        (newest,) = conn.execute("SELECT max(version) FROM schema_version").fetchone() or (0,)
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (newest + 1,))
    with pytest.raises(StoreError, match=f"schema is version {newest + 1}, newer than this postroom knows"):
        _open_close(pg_database)
