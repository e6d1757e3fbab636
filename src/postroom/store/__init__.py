"""Storage backends behind one seam (:mod:`postroom.store.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Store, StoreError

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import Bus

__all__ = ["Store", "open_store"]


def open_store(settings: Settings, bus: Bus) -> Store:
    """Pick the backend from ``settings.db``: postgresql://... or a SQLite path/':memory:'."""
    target = settings.db_target
    if target.startswith(("postgresql://", "postgres://")):
        raise StoreError("PostgreSQL storage is not available in this build yet; use a SQLite path")
    from .sqlite import SQLiteStore

    return SQLiteStore(target, settings, bus)
