"""Message IDs: 22 random base62 characters (like Mailpit's), unique across processes and nodes.

Its own module so that an SMTP worker process can make IDs without importing the store.

Each character comes from one random byte mapped onto the 62 symbols (``bytes.translate``):
the first 8 symbols are a little more likely than the rest (5/256 against 4/256), which
still leaves ~5.95 bits per character, ~131 bits per ID. Random bytes are drawn from the
operating system a few kilobytes at a time rather than with one ``getrandom`` call per
message; a forked child starts with an empty pool, so parent and child never share bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["ID_LENGTH", "new_id"]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 22
_TABLE = bytes(ord(_B62[b % 62]) for b in range(256))
_POOL_IDS = 128  # IDs' worth of random bytes drawn at once

_lock = threading.Lock()  # threads (writer, event loop) draw from one pool
_pool = b""
_pos = 0


def _reset_pool() -> None:
    global _pool, _pos
    _pool, _pos = b"", 0


os.register_at_fork(after_in_child=_reset_pool)


def new_id(entropy: bytes | None = None) -> str:
    """A 22-character random base62 ID (like Mailpit's), unique across nodes.

    ``entropy``: 22 random bytes to use instead of the module's pool.
    """
    global _pool, _pos
    if entropy is None:
        with _lock:
            if _pos + ID_LENGTH > len(_pool):
                _pool, _pos = os.urandom(ID_LENGTH * _POOL_IDS), 0
            entropy = _pool[_pos : _pos + ID_LENGTH]
            _pos += ID_LENGTH
    elif len(entropy) < ID_LENGTH:
        raise ValueError(f"new_id needs {ID_LENGTH} random bytes, got {len(entropy)}")
    return entropy[:ID_LENGTH].translate(_TABLE).decode("ascii")
