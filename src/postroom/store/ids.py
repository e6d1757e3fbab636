"""Message IDs: 22 random base62 characters (like Mailpit's), unique across processes and nodes.

Its own module so that an SMTP worker process can make IDs without importing the store.
"""

from __future__ import annotations

import secrets

__all__ = ["new_id"]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(entropy: bytes | None = None) -> str:
    """A 22-character random base62 ID (like Mailpit's), unique across nodes.

    ``entropy``: 16 random bytes (the writer draws them for a whole batch in one call).
    """
    n = int.from_bytes(entropy if entropy is not None else secrets.token_bytes(16), "big")
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(out)
