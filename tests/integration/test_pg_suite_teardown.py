"""`make pytest-postgres` drops each test's schema and, at the end, the run's database: the
test servers on them must be stopped first, else their indexers log "indexing failed;
retrying" (the schema's tables gone, or the connection terminated by ``dropdb --force``)
and the pool keeps trying a database that no longer exists.

The probes below are run by :func:`test_dropping_the_test_databases_stops_their_servers_first`
in a pytest of their own under ``POSTROOM_TEST_DB=postgresql``; other runs do not collect them.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import pg
from tests.helpers import RunningServer

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent.parent
PROBING = os.environ.get("POSTROOM_TEARDOWN_PROBE") == "1"
# Seconds the probes leave a server's indexer (it looks every 0.5 s) after its schema or
# database went away: long enough for it to notice if it still runs.
LINGER = 1.5

# Runs after the session's fixtures are gone (the database dropped), before the exit.
LINGER_PLUGIN = f"""
import time
def pytest_unconfigure(config):
    time.sleep({LINGER})
"""

NOISE = ("indexing failed", "lost its database connection", "error connecting", "Traceback")


def _deliver(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as s:
        s.sendmail("a@example.com", ["b@example.com"], b"Subject: probe\r\n\r\nbody\r\n")


if PROBING:  # only in the run the test below starts

    def test_probe_a_server_with_mail(server: RunningServer) -> None:
        _deliver(server)

    def test_probe_b_no_server() -> None:
        time.sleep(LINGER)  # the previous test's schema is gone by now

    def test_probe_c_the_last_server(server: RunningServer) -> None:
        _deliver(server)


def test_dropping_the_test_databases_stops_their_servers_first(tmp_path: Path) -> None:
    if PROBING:
        pytest.skip("the probe run itself")
    pg.server_url()  # skips without PostgreSQL
    (tmp_path / "linger_after_session.py").write_text(LINGER_PLUGIN)
    env = {
        **os.environ,
        "POSTROOM_TEST_DB": "postgresql",
        "POSTROOM_TEARDOWN_PROBE": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p),
    }
    # no:logging and -s: what the servers log goes to stderr, even during a test that passes
    plugins = ["-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:logging", "-p", "linger_after_session"]
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", *plugins, "-k", "probe", __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "3 passed" in out, out
    assert not [line for line in out.splitlines() if any(n in line for n in NOISE)], out
