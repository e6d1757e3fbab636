"""The decoder's fast paths give what its full tokenizer gives (issue 19: the command memo
for repeated lines, the one-regex scan of ``BODY.PEEK[...]``-like atoms)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from postroom.protocols.imap import decoder
from postroom.protocols.imap.decoder import (
    MEMO_SIZE,
    NEED_DATA,
    Atom,
    Command,
    Decoder,
    Rejected,
    parse_command,
    parse_line,
    tokenize,
)
from postroom.protocols.imap.errors import ImapError, ParseError
from postroom.protocols.imap.numset import NumSet

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# octets around brackets: what makes the regex and the octet-by-octet scan disagree if anything
PIECES = st.lists(
    st.sampled_from(
        [b"BODY", b".PEEK", b"[", b"]", b"HEADER", b".FIELDS", b" ", b"(", b")", b"<0.10>", b"1.2",
         b"{", b'"', b"\r", b"\x01", b"\x7f", b"\xc3\xa9", b"\xff", b"a", b"*", b"%", b"\\"]
    ),
    max_size=14,
).map(b"".join)  # fmt: skip


@pytest.fixture
def empty_memo() -> Iterator[None]:
    decoder._memo.clear()
    yield
    decoder._memo.clear()


def _outcome(text: bytes) -> object:
    try:
        return tokenize([text])
    except ImapError as e:
        return (type(e), str(e))


EDGES = [b"BODY[]\x7f", b"BODY[\r]", b"BODY[]\r", b"BODY[]x[y]", b"BODY[a]]", b"[]", b"BODY[ ( ]<1>",
         b"BODY[]\xff", b"BODY[\x01]", b"BODY[]{", b"x BODY[]) y", b"BODY[\xc3\xa9] a", b"BODY[]\\"]  # fmt: skip


@FAST
@given(PIECES)
@example(b"")
def test_bracketed_atoms_tokenize_as_the_octet_scan_does(text: bytes) -> None:
    _same_both_ways(text)


@pytest.mark.parametrize("text", EDGES)
def test_bracket_edges_tokenize_as_the_octet_scan_does(text: bytes) -> None:
    _same_both_ways(text)


def _same_both_ways(text: bytes) -> None:
    fast = _outcome(text)
    orig = decoder._BRACKET_RUN
    decoder._BRACKET_RUN = decoder.re.compile(rb"(?!)")  # never matches: the scan alone
    try:
        slow = _outcome(text)
    finally:
        decoder._BRACKET_RUN = orig
    assert fast == slow


def test_common_section_atoms() -> None:
    assert tokenize([b"1:3 (UID BODY.PEEK[HEADER.FIELDS (From To)]<0.100> FLAGS)"]) == tokenize(
        [b"1:3 (UID BODY.PEEK[HEADER.FIELDS (From To)]<0.100> FLAGS)"]
    )
    toks = tokenize([b"1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BODY[]) x[y"])
    assert toks[1].items == (  # type: ignore[union-attr]
        Atom("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>"),
        Atom("BODY[]"),
    )
    assert toks[2] == Atom("x[y")


@pytest.mark.usefixtures("empty_memo")
def test_a_repeated_line_is_the_same_command_with_its_own_tag() -> None:
    lines = [
        b"a1 FETCH 3 (UID BODY.PEEK[])",
        b"b.2 FETCH 3 (UID BODY.PEEK[])",
        b"c3 fetch 3 (UID BODY.PEEK[])",
    ]
    for line in lines * 2:
        assert parse_line(line) == parse_command([line])
    assert parse_line(lines[1]).tag == "b.2"
    assert len(decoder._memo) == 2  # FETCH and fetch are different lines


@pytest.mark.usefixtures("empty_memo")
@pytest.mark.parametrize(
    "line",
    [b"a FETCH 1 (UID", b"a FETCH 1 (UID))", b"a STATUS INBOX (MESSAGES", b"*bad FETCH 1 UID", b"a  NOOP",
     b"a NOOP x ", b"a 1FETCH"],
)  # fmt: skip
def test_a_malformed_line_is_refused_every_time(line: bytes) -> None:
    for _ in range(3):
        with pytest.raises(ImapError):
            parse_line(line)
    assert not decoder._memo


@pytest.mark.usefixtures("empty_memo")
def test_secrets_and_search_text_are_not_kept() -> None:
    for line in [b"a LOGIN alice s3cret", b"b SEARCH TEXT private", b"c UID SEARCH BODY private",
                 b'd AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==', b"e APPEND INBOX private"]:  # fmt: skip
        for _ in range(2):
            try:
                parse_line(line)
            except ImapError:
                pass
    assert not decoder._memo
    parse_line(b"f UID FETCH 1:* FLAGS")
    parse_line(b"g STATUS INBOX (MESSAGES)")
    assert set(decoder._memo) == {b"UID FETCH 1:* FLAGS", b"STATUS INBOX (MESSAGES)"}


@pytest.mark.usefixtures("empty_memo")
def test_the_memo_is_bounded() -> None:
    for i in range(MEMO_SIZE * 2 + 5):
        assert parse_line(b"t FETCH %d FLAGS" % i).args[0] == Atom(str(i))
    assert 0 < len(decoder._memo) <= MEMO_SIZE
    assert parse_line(b"t " + b"FETCH 1 (" + b"FLAGS " * 40 + b"UID)").name == "FETCH"
    assert all(len(k) <= decoder.MEMO_LINE for k in decoder._memo)


@pytest.mark.usefixtures("empty_memo")
def test_pipelined_repeats_through_the_decoder() -> None:
    d = Decoder()
    d.receive_data(b'a1 NOOP\r\na2 NOOP\r\na3 NOOP x\r\na4 NOOP\r\na5 LIST "" {1}\r\n')
    events = []
    while (ev := d.next_event()) is not NEED_DATA:
        events.append(ev)
    assert events[:4] == [Command("a1", "NOOP", ()), Command("a2", "NOOP", ()),
                          Command("a3", "NOOP", (Atom("x"),)), Command("a4", "NOOP", ())]  # fmt: skip
    d.receive_data(b"*\r\n")
    ev = d.next_event()
    assert isinstance(ev, Command) and ev.tag == "a5" and ev.name == "LIST"
    d.receive_data(b"a6 FETCH 1 (UID\r\n")
    ev = d.next_event()
    assert isinstance(ev, Rejected) and ev.tag == "a6"


def test_short_sequence_sets_are_parsed_once_and_bad_ones_refused_every_time() -> None:
    first = NumSet.parse("1:3,5")
    assert NumSet.parse("1:3,5") is first and first.ranges == ((1, 3), (5, 5))
    for _ in range(2):
        with pytest.raises(ParseError):
            NumSet.parse("0:3")
    long = ",".join(str(i) for i in range(1, 200))
    assert NumSet.parse(long).ranges == tuple((i, i) for i in range(1, 200))
    assert NumSet.parse("$").saved


@FAST
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=6),
    st.integers(0, 35),
)
def test_expanded_sets_are_every_member_once_ascending(ranges: list[tuple[int, int]], largest: int) -> None:
    text = ",".join(
        ("*" if a == 0 else str(a)) + ("" if b == a else ":" + ("*" if b == 0 else str(b))) for a, b in ranges
    )
    ns = NumSet.parse(text)
    members = {n for lo, hi in ns.resolve(largest) for n in range(max(lo, 1), min(hi, largest) + 1)}
    assert list(ns.expand(largest)) == sorted(members)


@pytest.mark.usefixtures("empty_memo")
def test_one_line_commands_blank_lines_and_braces_without_a_literal() -> None:
    d = Decoder()
    d.receive_data(
        b"\r\n  \r\na1 NOOP\r\n\t\r\na2 SEARCH SUBJECT }\r\na3 SEARCH SUBJECT {x}\r\nb@d FETCH 1 (UID\r\n"
    )
    events = []
    while (ev := d.next_event()) is not NEED_DATA:
        events.append(ev)
    assert events == [
        Command("a1", "NOOP", ()),
        Command("a2", "SEARCH", (Atom("SUBJECT"), Atom("}"))),
        Rejected("a3", "malformed literal"),
        Rejected("b@d", "unbalanced '('"),
    ]
