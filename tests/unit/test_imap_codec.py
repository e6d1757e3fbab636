"""Byte-exact tests of the encoder, sequence sets, modified UTF-7 and argument grammar."""

from __future__ import annotations

import pytest

from postroom.protocols.imap import utf7
from postroom.protocols.imap.args import Args, mailbox_name, parse_date, parse_datetime
from postroom.protocols.imap.commands import State, capabilities, check
from postroom.protocols.imap.decoder import tokenize
from postroom.protocols.imap.encoder import Binary, Literal, Raw, continuation, encode, tagged, untagged
from postroom.protocols.imap.errors import ParseError, StateError
from postroom.protocols.imap.numset import NumSet, format_numbers, format_pairs


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (None, b"NIL"),
        (42, b"42"),
        ("plain", b'"plain"'),
        (b'say "hi" \\o/', b'"say \\"hi\\" \\\\o/"'),
        ("Zo\u00eb", b"{4}\r\nZo\xc3\xab"),
        (b"two\r\nlines", b"{10}\r\ntwo\r\nlines"),
        (Raw(b"\\Seen"), b"\\Seen"),
        (Literal(b"x"), b"{1}\r\nx"),
        (Binary(b"a\x00b"), b"~{3}\r\na\x00b"),
        (Binary(b"abc"), b"{3}\r\nabc"),
        ([b"a", None, [1, 2], []], b'("a" NIL (1 2) ())'),
        (b"", b'""'),
    ],
)
def test_encode(value: object, wire: bytes) -> None:
    assert encode(value) == wire  # type: ignore[arg-type]


def test_long_strings_become_literals() -> None:
    assert encode(b"a" * 1001).startswith(b"{1001}\r\n")


def test_response_lines() -> None:
    assert tagged("a1", "NO", "no such mailbox", "NONEXISTENT") == b"a1 NO [NONEXISTENT] no such mailbox\r\n"
    assert tagged("a1", "OK", "multi\r\nline") == b"a1 OK multi  line\r\n"
    assert untagged(3, "EXISTS") == b"* 3 EXISTS\r\n"
    assert untagged("FLAGS", Raw(b"(\\Seen)")) == b"* FLAGS (\\Seen)\r\n"
    assert continuation("Ready") == b"+ Ready\r\n"


@pytest.mark.parametrize(
    ("text", "largest", "members"),
    [
        ("1:3,5", 10, [1, 2, 3, 5]),
        ("3:1", 10, [1, 2, 3]),
        ("8:*", 10, [8, 9, 10]),
        ("*", 10, [10]),
        ("*:4", 5, [4, 5]),
        ("2,2,1:2", 10, [1, 2]),
        ("12:15", 10, []),
    ],
)
def test_numset(text: str, largest: int, members: list[int]) -> None:
    assert list(NumSet.parse(text).expand(largest)) == members


@pytest.mark.parametrize("bad", ["", "0", "1:0", "a", "1,", ",1", "1::2", "4294967296", "-1"])
def test_numset_rejects(bad: str) -> None:
    with pytest.raises(ParseError):
        NumSet.parse(bad)


def test_numset_saved_and_select() -> None:
    assert NumSet.parse("$").saved
    assert NumSet.parse("2:*").select([1, 5, 9, 100], 100) == [5, 9, 100]
    assert NumSet.parse("4294967295").contains(4294967295, 1)


def test_format_numbers() -> None:
    assert format_numbers([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"
    assert format_numbers([]) == ""
    assert format_pairs([3, 1, 2]) == "3,1,2"
    assert format_pairs([1, 2, 3]) == "1:3"


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", "INBOX"),
        ("a&b", "a&-b"),
        ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Entw\u00fcrfe", "Entw&APw-rfe"),
        ("\U0001f600", "&2D3eAA-"),
        ("&&", "&-&-"),
    ],
)
def test_utf7_round_trip(text: str, wire: str) -> None:
    assert utf7.encode(text) == wire
    assert utf7.decode(wire) == text


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&Jjo!-", "&AGE-", "caf\u00e9", "&ZeVnLIqe"])
def test_utf7_rejects(bad: str) -> None:
    with pytest.raises(ParseError):
        utf7.decode(bad)


def test_mailbox_names() -> None:
    assert mailbox_name(b"inbox") == "INBOX"
    assert mailbox_name(b"Inbox/Sub") == "INBOX/Sub"
    assert mailbox_name(b"Entw&APw-rfe") == "Entw\u00fcrfe"
    assert mailbox_name("Entw\u00fcrfe".encode()) == "Entw\u00fcrfe"  # UTF-8 (IMAP4rev2)


def test_dates() -> None:
    assert parse_date("1-Feb-1994") == (1994, 2, 1)
    assert parse_datetime("17-Jul-1996 02:44:25 -0700") == 837596665.0
    assert parse_datetime(" 7-Jul-1996 02:44:25 +0000") == 836707465.0
    for bad in ("31-Feb-2020", "1-Foo-2020", "2020-01-01"):
        with pytest.raises(ParseError):
            parse_date(bad)


def test_args_cursor() -> None:
    a = Args(tokenize([b'INBOX "x y" 12 (\\Seen $Label) extra']))
    assert a.mailbox() == "INBOX"
    assert a.astring() == b"x y"
    assert a.number() == 12
    assert a.flags() == ["\\Seen", "$Label"]
    with pytest.raises(ParseError):
        a.end()


def test_flags_are_canonical_and_validated() -> None:
    assert Args(tokenize([b"(\\SEEN \\deleted kw)"])).flags() == ["\\Seen", "\\Deleted", "kw"]
    with pytest.raises(ParseError):
        Args(tokenize([b'("quoted")'])).flags()


def test_command_table() -> None:
    check("LOGIN", State.NOT_AUTHENTICATED)
    check("FETCH", State.SELECTED)
    check("SELECT", State.SELECTED)
    with pytest.raises(StateError):
        check("FETCH", State.AUTHENTICATED)
    with pytest.raises(StateError):
        check("LOGIN", State.AUTHENTICATED)
    with pytest.raises(ParseError):
        check("FROB", State.AUTHENTICATED)


def test_capabilities_follow_the_session() -> None:
    pre = capabilities(
        tls_available=True, tls_active=False, authenticated=False, login_disabled=True, append_limit=10
    )
    assert "STARTTLS" in pre and "LOGINDISABLED" in pre and "AUTH=PLAIN" not in pre
    assert "APPENDLIMIT=10" in pre
    post = capabilities(
        tls_available=True, tls_active=True, authenticated=True, login_disabled=False, append_limit=10
    )
    assert "STARTTLS" not in post and "AUTH=PLAIN" not in post and "IMAP4rev1" in post
