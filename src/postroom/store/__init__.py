"""Storage backends behind one seam (:mod:`postroom.store.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Store, StoreError

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import Bus

__all__ = ["Store", "open_store"]


def open_store(settings: Settings, bus: Bus) -> Store:
    """Open the backend ``settings.db`` names: ``postgresql://...`` (many nodes may share
    one database), or a SQLite file path or ':memory:'.

    Raises:
        StoreError: ``settings.db`` is a URL of another kind.
    """
    target = settings.db_target
    if target.startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresStore
        except ImportError as e:  # psycopg is the optional extra "postgres"
            raise StoreError(
                f"PostgreSQL needs: pip install 'postroom[postgres]' ({e.name} is missing)"
            ) from None
        return PostgresStore(target, settings, bus)
    if "://" in target:
        scheme = target.split("://")[0]
        raise StoreError(f"--db takes postgresql://..., a SQLite file path or ':memory:', not {scheme}://...")
    from .sqlite import SQLiteStore

    return SQLiteStore(target, settings, bus)
