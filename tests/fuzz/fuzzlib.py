"""Shared pieces of the fuzz targets: the profiles, the time budget, inputs that grow.

The invariant of every target (docs/security.md, "Fuzzing"): any input gets an answer or
the protocol's own error within :data:`BUDGET` seconds; never another exception, never a
hang. In CI and a plain ``pytest`` run the targets use the ``postroom-fuzz-ci`` profile: derandomized (the
same examples every run, so CI is stable), a few hundred examples per target. ``make
fuzz`` sets ``POSTROOM_FUZZ=campaign``: random seeds and ``POSTROOM_FUZZ_EXAMPLES``
examples per target (default 20,000), for a longer hunt; a failure prints the seed and
the shrunk input, to be added as an ``@example`` (or a regression test) with the fix.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "postroom-fuzz-ci",
    max_examples=100,
    derandomize=True,
    deadline=None,  # the time budget is asserted by the tests themselves (fuzzlib.bounded)
    suppress_health_check=_SLOW_OK,
    print_blob=True,
)
settings.register_profile(
    "postroom-fuzz-campaign",
    max_examples=int(os.environ.get("POSTROOM_FUZZ_EXAMPLES", "20000")),
    derandomize=False,
    deadline=None,
    suppress_health_check=_SLOW_OK,
    print_blob=True,
)

PROFILE = "postroom-fuzz-campaign" if os.environ.get("POSTROOM_FUZZ") == "campaign" else "postroom-fuzz-ci"

# Seconds one fuzz input may take through one target. Every input here is at most a few
# hundred KB, which linear parsers read in milliseconds; a super-linear one (a regular
# expression that backtracks, a quadratic loop) needs seconds to hours for the amplified
# inputs below. Generous, for a loaded 2-core CI machine.
BUDGET = 5.0

fuzz = settings.get_profile(PROFILE)


def bounded(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, failing the test when it takes more than :data:`BUDGET` seconds."""
    t0 = time.perf_counter()
    out = fn(*args)
    took = time.perf_counter() - t0
    assert took < BUDGET, (
        f"{getattr(fn, '__name__', fn)} took {took:.2f} s on {len(repr(args))} chars of input"
    )
    return out


def amplified(pieces: st.SearchStrategy[bytes], max_repeat: int = 5000) -> st.SearchStrategy[bytes]:
    """Inputs that grow: a prefix, a fragment repeated up to ``max_repeat`` times, a suffix.
    What makes a parser super-linear is nearly always one shape repeated many times."""
    return st.tuples(pieces, pieces, st.integers(1, max_repeat), pieces).map(
        lambda t: t[0] + t[1] * t[2] + t[3]
    )


def joined(fragments: list[bytes], max_size: int = 40) -> st.SearchStrategy[bytes]:
    """Concatenations of syntax fragments and a little noise."""
    return st.lists(st.sampled_from(fragments) | st.binary(max_size=6), max_size=max_size).map(b"".join)
