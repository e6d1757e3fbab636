"""X-GM-LABELS on the wire (protocols/imap/labels.py): labels read from STORE and SEARCH
arguments and written in FETCH answers, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.protocols.imap.decoder import Atom, Group, String
from postroom.protocols.imap.errors import ParseError
from postroom.protocols.imap.labels import MAX_LABELS, format_labels, parse_label, parse_labels


def test_format_quotes_only_what_an_atom_cannot_carry() -> None:
    assert format_labels([]) == b"()"
    assert format_labels(["work", "\\Important", "2026 plans", 'say "hi"', "Älter", "NIL", "a(b"]) == (
        b'(work \\Important "2026 plans" "say \\"hi\\"" &AMQ-lter "NIL" "a(b")'
    )


def test_parse_reads_atoms_strings_utf8_and_modified_utf7() -> None:
    assert parse_label(Atom("work")) == "work"
    assert parse_label(String(b"2026 plans")) == "2026 plans"
    assert parse_label(Atom("&AMQ-lter")) == "Älter"
    assert parse_label(String("Älter".encode())) == "Älter"  # 8-bit: UTF-8 (RFC 9051)
    assert parse_label(String(b"AT&T")) == "AT&T"  # not modified UTF-7: as written
    assert parse_label(Atom("&Jjo")) == "&Jjo"
    assert parse_label(Atom("AT&-T")) == "AT&T"
    assert parse_labels(Group((Atom("a"), Atom("A"), String(b"b")))) == ["a", "b"]
    assert parse_labels(Atom("single")) == ["single"]


@pytest.mark.parametrize(
    "token",
    [
        String(b""),
        String(b"   "),
        Group((Group((Atom("x"),)),)),
        String(b"\xff\xfe"),
        Group(tuple(Atom(f"l{n}") for n in range(MAX_LABELS + 1))),
    ],
)
def test_bad_labels_are_parse_errors(token: Atom | String | Group) -> None:
    with pytest.raises(ParseError):
        parse_labels(token)


@given(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s.strip()))
def test_format_then_parse_gives_the_label_back(label: str) -> None:
    wire = format_labels([label])[1:-1]
    token = (
        String(wire[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\"))
        if wire.startswith(b'"')
        else Atom(wire.decode())
    )
    assert parse_label(token) == label
