"""BODYSTRUCTURE, ENVELOPE, FETCH sections, SEARCH and SORT against data files.

``tests/vectors/imap/structure.json`` holds what a real Dovecot answered for each
``.eml`` beside it (FETCH ENVELOPE / BODYSTRUCTURE / BODY), so these byte-exact tests
pin our answers to an independent implementation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from postroom.protocols.imap import mime
from postroom.protocols.imap.args import Args
from postroom.protocols.imap.bodystructure import body_structure, envelope, parse_addresses
from postroom.protocols.imap.decoder import tokenize
from postroom.protocols.imap.encoder import encode
from postroom.protocols.imap.errors import ParseError
from postroom.protocols.imap.fetch import Item, Section, decode_part, parse_items, section_content
from postroom.protocols.imap.search import BadCharset, Context, matches, parse_criteria
from postroom.protocols.imap.sort import base_subject, parse_sort, sort_key

VECTORS = Path(__file__).parent.parent / "vectors" / "imap"
EXPECTED = json.loads((VECTORS / "structure.json").read_text())


def load(name: str) -> mime.Part:
    return mime.parse((VECTORS / name).read_bytes())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_envelope_matches_dovecot(name: str) -> None:
    assert encode(envelope(load(name))) == EXPECTED[name]["envelope"].encode("latin-1")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bodystructure_matches_dovecot(name: str) -> None:
    assert encode(body_structure(load(name), True)) == EXPECTED[name]["bodystructure"].encode("latin-1")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_body_matches_dovecot(name: str) -> None:
    assert encode(body_structure(load(name), False)) == EXPECTED[name]["body"].encode("latin-1")


def sec(spec: str) -> Section:
    [item] = parse_items(tokenize([f"BODY[{spec}]".encode()])[0])
    assert item.section is not None
    return item.section


def test_sections_of_a_forwarded_message() -> None:
    top = load("rfc822.eml")
    assert section_content(top, sec("1")) == b"Forwarding this."
    assert section_content(top, sec("1.MIME")) == b"Content-Type: text/plain\r\n\r\n"
    assert section_content(top, sec("2.HEADER")).startswith(b"From: Alice Example")
    assert section_content(top, sec("2.1")) == b"inner text"
    assert section_content(top, sec("2.2.MIME")) == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    assert section_content(top, sec("HEADER.FIELDS (SUBJECT to)")) == (
        b"To: alice@example.org\r\nSubject: Fwd: Plain text message\r\n\r\n"
    )
    not_fields = section_content(top, sec("HEADER.FIELDS.NOT (From To Date Subject Message-ID)"))
    assert not_fields == b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    assert section_content(top, sec("")) == (VECTORS / "rfc822.eml").read_bytes()
    with pytest.raises(mime.SectionError):
        section_content(top, sec("3"))


def test_binary_decodes_transfer_encodings() -> None:
    att = load("attachment.eml")
    assert decode_part(att, Section((2,))) == bytes(range(256)) * 3
    assert (
        decode_part(load("alternative.eml"), Section((1,))) == "Café au lait costs 3 euros. Giraffe.".encode()
    )
    assert decode_part(load("upper.eml"), Section((1,))) == b"Hello world, upper case body\n"


def test_fetch_items() -> None:
    items = parse_items(
        tokenize([b"(UID BODY.PEEK[1.2.HEADER.FIELDS (A b)]<10.20> BINARY.SIZE[1] RFC822)"])[0]
    )
    assert items[0] == Item("UID")
    assert items[1].response_name() == "BODY[1.2.HEADER.FIELDS (A B)]<10>"
    assert items[1].peek and items[1].partial == (10, 20) and not items[1].sets_seen
    assert items[2].name == "BINARY.SIZE"
    assert items[3].sets_seen
    assert [i.name for i in parse_items(tokenize([b"ALL"])[0])] == [
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
    ]
    for bad in (b"BODY[0]", b"BODY[TEXT.FOO]", b"BODY[1]<0.0>", b"FOO", b"BINARY[HEADER]", b"BODY[MIME]"):
        with pytest.raises(ParseError):
            parse_items(tokenize([bad])[0])


def test_address_parsing_never_fails() -> None:
    assert parse_addresses("") == []
    assert parse_addresses("a@b, , <c@d>") == [(None, None, "a", "b"), (None, None, "c", "d")]
    assert parse_addresses('"unterminated <x@y>') != []
    assert parse_addresses("Group:;") == [(None, None, "Group", None), (None, None, None, None)]


class Msg:
    """A search target built from a vector file."""

    def __init__(self, seq: int, name: str, flags: frozenset[str] = frozenset()) -> None:
        self.seq = self.uid = seq
        self.flags = flags
        self.raw = (VECTORS / name).read_bytes()
        self.size = len(self.raw)
        self.internaldate = time.mktime((2024, 2, 1, 12, 0, 0, 0, 0, -1))
        self.modseq = seq
        self.part = mime.parse(self.raw)

    def header(self, name: str) -> list[str]:
        return [mime.unfold(v).decode("utf-8", "replace") for n, v in self.part.fields if n == name]

    def sent_date(self) -> tuple[int, int, int] | None:
        return (2024, 1, self.seq)

    def body_text(self) -> str:
        return self.part.body.decode("utf-8", "replace").casefold()

    def full_text(self) -> str:
        return self.raw.decode("utf-8", "replace").casefold()

    def raw_header(self, name: str) -> str | None:
        vals = self.header(name)
        return vals[0] if vals else None


MSGS = [
    Msg(1, "plain.eml", frozenset({"\\Seen"})),
    Msg(2, "alternative.eml", frozenset({"\\Flagged", "$work"})),
    Msg(3, "attachment.eml", frozenset({"\\Answered", "\\Seen"})),
    Msg(4, "addresses.eml"),
]


def search(criteria: bytes, charset: str = "UTF-8") -> list[int]:
    key = parse_criteria(Args(tokenize([criteria])), charset)
    ctx = Context(len(MSGS), len(MSGS), frozenset({2}))
    return [m.seq for m in MSGS if matches(key, m, ctx)]


@pytest.mark.parametrize(
    ("criteria", "found"),
    [
        (b"ALL", [1, 2, 3, 4]),
        (b"SEEN", [1, 3]),
        (b"UNSEEN FLAGGED", [2]),
        (b"KEYWORD $work", [2]),
        (b"NOT ANSWERED", [1, 2, 4]),
        (b"OR ANSWERED FLAGGED", [2, 3]),
        (b"FROM alice", [1]),
        (b'FROM "SMITH, JOHN"', [4]),
        (b"TO team", [4]),  # a group's name is part of the To: field's text
        (b"SUBJECT report", [3]),
        (b"HEADER In-Reply-To plain-1", [3, 4]),
        (b'HEADER References ""', [3]),
        (b"BODY zebra", [1]),
        (b"TEXT zebra", [1]),
        (b"TEXT dave@example.org", [2, 3]),
        (b"LARGER 1000", [3]),
        (b"SMALLER 300", [1]),
        (b"2:3", [2, 3]),
        (b"UID 3:*", [3, 4]),
        (b"$", [2]),
        (b"SENTBEFORE 3-Jan-2024", [1, 2]),
        (b"SENTON 3-Jan-2024", [3]),
        (b"SENTSINCE 3-Jan-2024", [3, 4]),
        (b"ON 1-Feb-2024", [1, 2, 3, 4]),
        (b"BEFORE 1-Feb-2024", []),
        (b"(SEEN) (NOT FROM carol)", [1, 3]),
        (b"NEW", []),
        (b"OLD", [1, 2, 3, 4]),
    ],
)
def test_search(criteria: bytes, found: list[int]) -> None:
    assert search(criteria) == found


def test_search_errors() -> None:
    for bad in (b"FROB", b"FROM", b"OR SEEN", b"LARGER x", b"BEFORE 2024-01-01", b"()"):
        with pytest.raises(ParseError):
            search(bad)
    assert BadCharset("KOI8-R").code == "BADCHARSET (UTF-8 US-ASCII)"
    with pytest.raises(ParseError):
        search('SUBJECT "caf\u00e9"'.encode(), charset="US-ASCII")


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("Re: hello", "HELLO"),
        ("RE: Re: re: Hello", "HELLO"),
        ("Fwd: [list] Re: topic (fwd)", "TOPIC"),
        ("[fwd: Re: wrapped]", "WRAPPED"),
        ("[list]", "[LIST]"),
        ("  many   spaces  ", "MANY SPACES"),
        ("=?UTF-8?Q?Re=3A_caf=C3=A9?=", "CAFé"),  # i;ascii-casemap maps ASCII letters only
        ("Re[2]: counted", "COUNTED"),
    ],
)
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


def test_sort_keys() -> None:
    assert parse_sort(Args(tokenize([b"(REVERSE DATE SUBJECT)"]))) == [("DATE", True), ("SUBJECT", False)]
    with pytest.raises(ParseError):
        parse_sort(Args(tokenize([b"(REVERSE)"])))
    m = MSGS[3]
    assert sort_key("FROM", m.raw_header, m.size, 0) == "JOHN.SMITH"
    assert sort_key("TO", m.raw_header, m.size, 0) == "TEAM"
    assert sort_key("DISPLAYFROM", m.raw_header, m.size, 0) == "SMITH, JOHN (SALES)"
    assert sort_key("DATE", m.raw_header, m.size, 5.0) == 1704448800.0
    assert sort_key("DATE", lambda n: None, 0, 5.0) == 5.0


def test_header_values_are_folded_once_and_only_short_ones_are_kept() -> None:
    """SEARCH FROM/TO/CC remember the comparison forms of the header values they saw (a
    folder's correspondents repeat), within MEMO_VALUES, and only of values of at most
    MEMO_VALUE characters; the answers are those of folding every value afresh."""
    from postroom.protocols.imap import search as s

    s._folded_memo.cache_clear()
    s._folded_addresses_memo.cache_clear()

    class Repeated(Msg):
        def __init__(self, seq: int, sender: str) -> None:
            self.seq = self.uid = seq
            self.sender = sender

        def header(self, name: str) -> list[str]:
            return [self.sender] if name == "from" else []

    long_name = "x" * s.MEMO_VALUE + " <long@example.org>"
    senders = ['"Smith, John" <john@example.org>', "Zoë <zoe@example.org>", "<user (c)@ (c) example.org>"]
    msgs = [Repeated(i, senders[i % 3] if i % 10 else long_name) for i in range(1, 301)]
    key = parse_criteria(Args(tokenize([b'FROM "user@example"'])))
    ctx = Context(len(msgs), len(msgs))
    assert [m.seq for m in msgs if matches(key, m, ctx)] == [
        i for i in range(1, 301) if i % 3 == 2 and i % 10
    ]
    # three values folded and parsed once each (the long one every time, never kept)
    assert s._folded_memo.cache_info().currsize == 3
    assert s._folded_addresses_memo.cache_info().currsize == 3
    assert s._folded_addresses_memo.cache_info().misses == 3
