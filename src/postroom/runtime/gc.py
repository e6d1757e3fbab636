"""Process-wide tuning of the long-running server processes (``postroom serve``, SMTP workers).

Python's cyclic garbage collector runs a young-generation pass every 700 container
allocations and, now and then, a full pass over every object in the process. A server that
has imported aiohttp, the email package and its own modules holds a few hundred thousand
objects that will never be garbage, and each full pass walks them all (tens of
milliseconds, during which no SMTP reply is sent). :func:`tune_gc` moves what exists once
the server has started into the collector's permanent generation (``gc.freeze``) and makes
young passes less frequent; reference counting still frees everything acyclic at once.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLD", "tune_gc"]

GC_THRESHOLD = (10_000, 20, 20)  # Python's default: (700, 10, 10)


def tune_gc() -> None:
    """Call once the process has finished starting (modules imported, listeners open)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
