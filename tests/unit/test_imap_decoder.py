"""Byte-exact tests of IMAP command framing and tokenizing (protocols/imap/decoder.py)."""

from __future__ import annotations

import pytest

from postroom.protocols.imap.decoder import (
    MAX_DEPTH,
    NEED_DATA,
    Atom,
    Command,
    Continue,
    Decoder,
    Group,
    Rejected,
    String,
    tokenize,
)
from postroom.protocols.imap.errors import LimitError, ParseError
from postroom.protocols.imap.fetch import parse_items


def events(data: bytes, decoder: Decoder | None = None) -> list[object]:
    d = decoder or Decoder()
    d.receive_data(data)
    out = []
    while (ev := d.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def test_simple_command() -> None:
    assert events(b"a1 NOOP\r\n") == [Command("a1", "NOOP", ())]


def test_command_name_is_upper_cased_and_args_tokenized() -> None:
    [cmd] = events(b'x login "bob@example.org" {3+}\r\nabc\r\n')
    assert cmd == Command("x", "LOGIN", (String(b"bob@example.org"), String(b"abc", literal=True)))


def test_synchronizing_literal_asks_for_continuation_first() -> None:
    d = Decoder()
    assert events(b"a APPEND INBOX {5}\r\n", d) == [Continue("a", 5)]
    assert events(b"hel", d) == []
    assert events(b"lo\r\n", d) == [Command("a", "APPEND", (Atom("INBOX"), String(b"hello", literal=True)))]


def test_literal_may_contain_crlf_and_parens() -> None:
    [cmd] = events(b'a APPEND INBOX (\\Seen) {8+}\r\n(\r\n) {}"\r\n')
    assert isinstance(cmd, Command)
    assert cmd.args == (Atom("INBOX"), Group((Atom("\\Seen"),)), String(b'(\r\n) {}"', literal=True))


def test_zero_length_literal() -> None:
    [cmd] = events(b"a LOGIN {0+}\r\n {1+}\r\nx\r\n")
    assert cmd == Command("a", "LOGIN", (String(b"", literal=True), String(b"x", literal=True)))


def test_binary_literal() -> None:
    [cmd] = events(b"a APPEND INBOX ~{3+}\r\n\x00\x01\x02\r\n")
    assert isinstance(cmd, Command)
    assert cmd.args[1] == String(b"\x00\x01\x02", literal=True, binary=True)


def test_quoted_string_escapes() -> None:
    [cmd] = events(b'a LOGIN "a\\"b" "c\\\\d"\r\n')
    assert cmd == Command("a", "LOGIN", (String(b'a"b'), String(b"c\\d")))


def test_fetch_section_atom_spans_spaces_and_parens() -> None:
    [cmd] = events(b"a FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)\r\n")
    assert cmd == Command(
        "a", "FETCH", (Atom("1:*"), Group((Atom("UID"), Atom("BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>"))))
    )


def test_bare_lf_and_empty_lines_are_accepted() -> None:
    assert events(b"\r\na NOOP\nb NOOP\r\n") == [Command("a", "NOOP", ()), Command("b", "NOOP", ())]


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        (b"a1 FETCH (1\r\n", "a1"),
        (b"a1 FETCH 1)\r\n", "a1"),
        (b'a1 LOGIN "unterminated\r\n', "a1"),
        (b"a1 LOGIN a  b\r\n", "a1"),
        (b"a1 LOGIN a \r\n", "a1"),
        (b"+tag NOOP\r\n", "*"),
        (b"NOOP\r\n", "*"),
        (b"a1 9NOOP\r\n", "a1"),
        (b'a1 LOGIN "bad\\escape"\r\n', "a1"),
    ],
)
def test_malformed_commands_are_rejected_with_their_tag(line: bytes, tag: str) -> None:
    [ev] = events(line)
    assert isinstance(ev, Rejected)
    assert ev.tag == tag


def test_overlong_line_is_rejected_and_the_stream_recovers() -> None:
    d = Decoder(max_line=100)
    assert events(b"a1 NOOP " + b"x" * 300, d) == []  # bytes are dropped, not buffered
    assert d.buffered == 0
    assert events(b"yyy\r\nb NOOP\r\n", d) == [
        Rejected("a1", "line too long (limit 100 octets)"),
        Command("b", "NOOP", ()),
    ]


def test_too_large_synchronizing_literal_is_refused_before_it_is_sent() -> None:
    d = Decoder(max_command=1000, max_literal=2000)
    [ev] = events(b"a LOGIN {5000}\r\n", d)
    assert isinstance(ev, Rejected) and ev.text.startswith("[TOOBIG]")
    assert events(b"b NOOP\r\n", d) == [Command("b", "NOOP", ())]


def test_append_may_carry_a_larger_literal_than_other_commands() -> None:
    d = Decoder(max_command=1000, max_literal=5000)
    assert events(b"a APPEND INBOX {3000}\r\n", d) == [Continue("a", 3000)]
    assert events(b"x" * 3000 + b"\r\n", d)[0] == Command(
        "a", "APPEND", (Atom("INBOX"), String(b"x" * 3000, True))
    )


def test_too_large_non_synchronizing_literal_is_consumed_then_rejected() -> None:
    d = Decoder(max_command=1000, max_literal=2000)
    evs = events(b"a APPEND INBOX {3000+}\r\n" + b"x" * 3000 + b"\r\nb NOOP\r\n", d)
    assert isinstance(evs[0], Rejected) and evs[0].tag == "a"
    assert evs[1:] == [Command("b", "NOOP", ())]


def test_literal_minus_limits_non_synchronizing_literals() -> None:
    d = Decoder(literal_minus=True)
    evs = events(b"a LOGIN {5000+}\r\n" + b"x" * 5000 + b" y\r\n", d)
    assert isinstance(evs[0], Rejected)
    assert events(b"a LOGIN {4096+}\r\n" + b"x" * 4096 + b" y\r\n", Decoder(literal_minus=True))[
        0
    ] == Command("a", "LOGIN", (String(b"x" * 4096, True), Atom("y")))


def test_nesting_limit() -> None:
    with pytest.raises(LimitError):
        tokenize([b"(" * (MAX_DEPTH + 2) + b")" * (MAX_DEPTH + 2)])
    assert tokenize([b"(" * MAX_DEPTH + b")" * MAX_DEPTH])


def test_unbalanced_brackets_are_an_atom_that_fetch_rejects() -> None:
    # "[" is an atom character (RFC 3501 section 9); only a FETCH item must close it
    assert tokenize([b"BODY[HEADER"]) == (Atom("BODY[HEADER"),)
    with pytest.raises(ParseError):
        parse_items(Atom("BODY[HEADER"))


def test_next_line_reads_raw_lines_for_idle_and_authenticate() -> None:
    d = Decoder()
    d.receive_data(b"DONE\r\nb NOOP\r\n")
    assert d.next_line() == b"DONE"
    assert d.next_event() == Command("b", "NOOP", ())
    assert d.next_line() is None


def test_thousand_pipelined_commands() -> None:
    data = b"".join(b"t%d NOOP\r\n" % i for i in range(1000))
    evs = events(data)
    assert len(evs) == 1000
    assert evs[-1] == Command("t999", "NOOP", ())
