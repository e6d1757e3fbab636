"""Message IDs (store/ids.py): shape, uniqueness, given entropy and forked children."""

from __future__ import annotations

import os
import re

import pytest

from postroom.store.ids import ID_LENGTH, new_id

SHAPE = re.compile(r"[0-9A-Za-z]{22}")


def test_ids_are_22_base62_characters_and_do_not_repeat() -> None:
    ids = [new_id() for _ in range(50_000)]
    assert all(SHAPE.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    # every symbol turns up: the byte-to-symbol table covers all 62
    assert set("".join(ids)) == set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def test_given_entropy_is_used_and_must_be_long_enough() -> None:
    assert new_id(bytes(range(ID_LENGTH))) == "0123456789ABCDEFGHIJKL"
    assert new_id(bytes([61, 62, 255] + [0] * 19)).startswith("z07")  # 62 -> 0, 255 % 62 = 7
    with pytest.raises(ValueError):
        new_id(b"short")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_reuse_the_parents_pool() -> None:
    new_id()  # the parent's pool now holds unused bytes
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next IDs and leave at once
        os.close(r)
        os.write(w, " ".join(new_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(w)
    child = b""
    while chunk := os.read(r, 4096):
        child += chunk
    os.close(r)
    os.waitpid(pid, 0)
    parent = [new_id() for _ in range(5)]
    assert set(child.decode().split()).isdisjoint(parent)
