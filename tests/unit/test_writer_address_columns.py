"""The SQLite writer's address columns (to_json, cc_json, bcc_json, reply_to_json): the same
text as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` of the ``[name, addr]``
pairs, written without building a JSON encoder per message (issue 15: 4.6 -> 0.9 µs for one
address on the shared machine)."""

from __future__ import annotations

import json
import json.encoder
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from postroom.store.sqlite_writes import _jaddr

_TEXT = st.text(
    alphabet=st.sampled_from(["a", '"', "\\", "é", "\u2028", "\x00", "\x1f", "@", " ", "\ud800", "😀"]),
    max_size=6,
)


@given(st.lists(st.tuples(_TEXT, _TEXT), max_size=3))
def test_an_address_list_is_the_json_it_was(pairs: list[tuple[str, str]]) -> None:
    text = _jaddr(pairs)
    assert text == json.dumps([list(p) for p in pairs], ensure_ascii=False, separators=(",", ":"))
    assert [tuple(p) for p in json.loads(text)] == pairs


def test_no_encoder_is_built_per_message() -> None:
    """``json.JSONEncoder.encode`` builds its C encoder in ``iterencode`` at every call (a
    type's call is no profile event: the Python functions that build it are watched)."""
    made: list[Any] = []
    building = {json.JSONEncoder.encode.__code__, json.JSONEncoder.iterencode.__code__}

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in building:
            made.append(frame.f_code.co_name)

    sys.setprofile(watch)
    try:
        for _ in range(3):
            _jaddr([("Alice", "alice@example.org"), ("", "bob@example.org")])
    finally:
        sys.setprofile(None)
    assert not made
