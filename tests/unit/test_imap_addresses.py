"""ENVELOPE addresses: the regular-expression fast path for common shapes reads every
value it accepts exactly as the RFC 5322 tokenizer does (bodystructure.parse_addresses)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.protocols.imap.bodystructure import _parse_tokens, _simple, parse_addresses

COMMON = [
    "alice@example.org",
    "Alice <alice@example.org>",
    "Alice Q Smith <alice@example.org>",
    '"Smith, Alice" <alice@example.org>',
    '"" <alice@example.org>',
    "  Alice   Smith   <alice@example.org>  ",
    "a@x, Bob <b@y>,c@z",
    "first.last+tag@sub.example.org",
    "Ren\xc3\xa9 <rene@example.org>",  # UTF-8 read as latin-1, as header bytes are
]
TRICKY = [
    "Alice Q. Smith <a@x>",  # a dot in a phrase
    "a@x (comment)",
    "undisclosed-recipients:;",
    "Group: a@x, b@y;",
    '"a\\"b" <a@x>',
    "<a@x>",
    "a@[127.0.0.1]",
    "@route:a@x",
    "",
    ",",
    "a@x,,b@y",
    "no at sign",
    "a\x85b <a@x>",  # NEL is not white space in mail
]


@pytest.mark.parametrize("value", COMMON)
def test_common_shapes_take_the_fast_path(value: str) -> None:
    assert _simple(value) is not None
    assert parse_addresses(value) == _parse_tokens(value)


@pytest.mark.parametrize("value", TRICKY)
def test_other_shapes_read_as_the_tokenizer_reads_them(value: str) -> None:
    assert parse_addresses(value) == _parse_tokens(value)


def test_fast_path_results() -> None:
    # quoted names in a list go to the tokenizer
    assert _simple('"Smith, Alice" <alice@example.org>, bob@x') is None
    assert parse_addresses('"Smith, Alice" <alice@example.org>, bob@x') == [
        ("Smith, Alice", None, "alice", "example.org"),
        (None, None, "bob", "x"),
    ]
    assert _simple("  Alice   Smith <a@x> ") == [("Alice Smith", None, "a", "x")]


ALPHABET = 'aZ09 \t.@<>,"():;\\[]!#{}\x85\xe9'


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=24))
def test_fast_path_agrees_with_the_tokenizer(value: str) -> None:
    fast = _simple(value)
    if fast is not None:
        assert fast == _parse_tokens(value)
