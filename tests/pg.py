"""The PostgreSQL server the tests use: 127.0.0.1:5432, user postgres, trust authentication.

:func:`server_url` makes sure it runs (starting the Debian cluster when it is down, as CI
does) and :func:`fresh_database` gives a test run a database of its own, dropped by
:func:`drop_database`. Outside CI a machine without PostgreSQL skips those tests with the
reason; in CI (``CI=true``) that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"


def _ready() -> bool:
    if shutil.which("pg_isready") is None:
        return False
    r = subprocess.run(["pg_isready", "-q", "-h", HOST, "-p", str(PORT)], capture_output=True, timeout=10)
    return r.returncode == 0


def _start() -> None:
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    )
    if not versions or shutil.which("pg_ctlcluster") is None:
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        capture_output=True,
        timeout=60,
    )


def server_url(dbname: str = "postgres") -> str:
    """The URL of ``dbname`` on the test server, starting the server if needed."""
    if not _ready():
        _start()
    if not _ready():
        reason = f"PostgreSQL is not running at {HOST}:{PORT} and could not be started"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return f"postgresql://{USER}@{HOST}:{PORT}/{dbname}"


def fresh_database(prefix: str = "postroom_test") -> tuple[str, str]:
    """Create a database of its own; returns (name, URL)."""
    server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    subprocess.run(["createdb", "-h", HOST, "-p", str(PORT), "-U", USER, name], check=True, timeout=60)
    return name, server_url(name)


def drop_database(name: str) -> None:
    subprocess.run(
        ["dropdb", "--if-exists", "--force", "-h", HOST, "-p", str(PORT), "-U", USER, name],
        capture_output=True,
        timeout=60,
    )


def reset_schema(url: str) -> None:
    """Empty the database (a fresh store for the next test, without a new database)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
