from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, settings

from postroom.testing import MailReader, Server

# Property tests run on shared 2-core machines (CI runs two pytest workers beside other work):
# generation speed is not what they test, so the too_slow/data_too_large health checks and the
# per-example deadline are off, and CI draws a fixed sequence so a run is reproducible.
settings.register_profile(
    "postroom",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "postroom-ci",
    parent=settings.get_profile("postroom"),
    derandomize=True,
    print_blob=True,
)
settings.load_profile("postroom-ci" if os.environ.get("CI") == "true" else "postroom")


@pytest.fixture
def server(mail: MailReader) -> Server:
    """A fresh postroom (every listener on a free loopback port, a throwaway store).

    Built on the postroom pytest plugin's ``mail`` fixture, so ``@pytest.mark.postroom(...)``
    configures it (any setting by name) and a failing test's report lists the mail it caught.
    """
    if not isinstance(mail, Server):
        pytest.skip("needs an in-process server (not --postroom-url or a shared server)")
    return mail


# -- the store backend of the in-process test servers --------------------------------------
# POSTROOM_TEST_DB=postgresql runs every test server that does not choose its own database on
# PostgreSQL (the server at 127.0.0.1:5432), each in a schema of its own in one database per
# run; `make pytest-postgres` runs the integration suites that way (CI runs both).


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under POSTROOM_TEST_DB=postgresql, tests of SQLite's throwaway store are deselected
    (they do not apply), not skipped."""
    if os.environ.get("POSTROOM_TEST_DB", "sqlite") != "postgresql":
        return
    keep = [item for item in items if item.get_closest_marker("sqlite_only") is None]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


@pytest.fixture(scope="session")
def pg_test_database() -> Iterator[str]:
    from . import pg

    name, url = pg.fresh_database("postroom_it")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # visible from every test schema
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    try:
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture(autouse=True)
def _store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if os.environ.get("POSTROOM_TEST_DB", "sqlite") != "postgresql":
        yield
        return
    import psycopg

    from postroom.testing import server as server_module

    url = request.getfixturevalue("pg_test_database")
    original = server_module.build_settings
    schemas: list[str] = []

    def on_postgres(base: object, options: dict[str, object]) -> object:
        if base is None and "db" not in options:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            schemas.append(schema)
            options = {**options, "db": f"{url}?options={quote(f'-c search_path={schema},public')}"}
        return original(base, options)  # type: ignore[arg-type]

    monkeypatch.setattr(server_module, "build_settings", on_postgres)
    yield
    # The mail fixture leaves its server's stop to the next start (or the exit): stop it now,
    # before its schema (or, after the last test, the run's database) is dropped under its
    # indexer, which would log "indexing failed; retrying" for the missing tables.
    server_module._stop_deferred()
    if schemas:
        with psycopg.connect(url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
