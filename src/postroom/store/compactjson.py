"""Compact JSON text from one encoder made once: what ``json.dumps(value, separators=(",",
":"))`` writes, byte for byte (ASCII, ``NaN`` allowed).

``json.JSONEncoder.encode`` builds a new C encoder (and a closure) at every call. The SMTP
worker encodes each message's envelope (store/base.py) and journal record (store/journal.py)
before its 250, so the C encoder is built once here; without the ``_json`` accelerator (not
in CPython), the pure-Python encoder does the same work.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["compact"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_make: Callable[..., Callable[[Any, int], tuple[str, ...]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_encode = (
    _make(None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)  # type: ignore[attr-defined]
    if _make is not None
    else None
)


def compact(value: Any) -> str:
    """``value`` (plain JSON values: no cycles) as compact JSON text."""
    if _encode is None:  # pragma: no cover - CPython has the accelerator
        return _ENCODER.encode(value)
    return "".join(_encode(value, 0))
