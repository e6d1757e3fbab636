"""Storage backends behind one seam (:mod:`postroom.store.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Store, StoreError

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import Bus

__all__ = ["Store", "open_store"]


def open_store(settings: Settings, bus: Bus) -> Store:
    """Open the backend ``settings.db`` names: a SQLite path or ':memory:'.

    Raises:
        StoreError: ``settings.db`` is a URL (no networked backend is built in).
    """
    target = settings.db_target
    if "://" in target:
        raise StoreError(
            f"--db takes a SQLite file path or ':memory:', not a URL ({target.split('://')[0]}://...)"
        )
    from .sqlite import SQLiteStore

    return SQLiteStore(target, settings, bus)
