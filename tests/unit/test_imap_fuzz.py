"""Property tests: every IMAP parser either parses or raises its protocol error, never anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.protocols.imap import mime, utf7
from postroom.protocols.imap.args import Args
from postroom.protocols.imap.bodystructure import body_structure, envelope, parse_addresses
from postroom.protocols.imap.decoder import NEED_DATA, Command, Decoder, Rejected, tokenize
from postroom.protocols.imap.encoder import encode
from postroom.protocols.imap.errors import ImapError
from postroom.protocols.imap.fetch import parse_items, section_content
from postroom.protocols.imap.numset import NumSet
from postroom.protocols.imap.search import parse_criteria
from postroom.protocols.imap.sort import base_subject, parse_sort

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# bytes biased towards IMAP syntax so that the parsers get past their first checks
SYNTAX = st.lists(
    st.sampled_from(
        [
            b"a1 ",
            b"FETCH ",
            b"SEARCH ",
            b"1:*",
            b"(",
            b")",
            b"[",
            b"]",
            b'"',
            b"\\",
            b"{3}\r\n",
            b"{2+}\r\n",
            b"~{1}\r\n",
            b"\r\n",
            b" ",
            b"BODY[",
            b"HEADER.FIELDS (",
            b"<0.5>",
            b"NOT ",
            b"OR ",
            b"UID ",
            b"*",
            b"x",
            b"\x00",
            b"\xff",
            b"NIL",
            b"$",
            b",",
            b":",
        ]
    )
    | st.binary(max_size=8),
    max_size=40,
).map(b"".join)


@FAST
@given(SYNTAX, st.integers(min_value=1, max_value=64))
def test_decoder_never_crashes(data: bytes, chunk: int) -> None:
    d = Decoder(max_line=200, max_command=400, max_literal=400)
    for i in range(0, len(data), chunk):
        d.receive_data(data[i : i + chunk])
        while (ev := d.next_event()) is not NEED_DATA:
            assert isinstance(ev, Command | Rejected) or ev.size >= 0  # type: ignore[union-attr]


def argument_parsers(tokens: list[Any]) -> tuple[Callable[[], object], ...]:
    """Each IMAP argument parser run over ``tokens`` (the deep fuzz, tests/fuzz, runs them too)."""
    return (
        lambda: parse_criteria(Args(tokens)),
        lambda: parse_items(tokens[0]) if tokens else None,
        lambda: parse_sort(Args(tokens)),
        lambda: Args(tokens).flags(),
        lambda: Args(tokens).mailbox(),
    )


@FAST
@given(SYNTAX)
def test_argument_parsers_raise_only_protocol_errors(data: bytes) -> None:
    try:
        tokens = tokenize([data])
    except ImapError:
        return
    for parse in argument_parsers(tokens):
        try:
            parse()
        except ImapError:
            pass


@FAST
@given(st.text(max_size=30))
def test_numset_and_utf7(text: str) -> None:
    for fn in (NumSet.parse, utf7.decode):
        try:
            fn(text)
        except ImapError:
            pass
    assert utf7.decode(utf7.encode(text)) == text


MIME_BITS = st.lists(
    st.sampled_from(
        [
            b"Content-Type: multipart/mixed; boundary=b\r\n",
            b"Content-Type: message/rfc822\r\n",
            b"\r\n",
            b"--b\r\n",
            b"--b--\r\n",
            b"From: a@b\r\n",
            b"To: G: x@y;\r\n",
            b"text\r\n",
            b" folded\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"Subject: =?x?q?y?=\r\n",
            b"\n",
            b"--b",
            b"\xff",
        ]
    ),
    max_size=30,
).map(b"".join)


@FAST
@given(MIME_BITS)
def test_mime_tree_and_structures_never_crash(raw: bytes) -> None:
    top = mime.parse(raw)
    encode(body_structure(top, True))
    encode(envelope(top))
    for spec in ([1], [1, 1], [2, 1]):
        try:
            top.find(spec)
        except ImapError:
            pass
    for items in (b"BODY[1.MIME]", b"BODY[TEXT]", b"BODY[2.HEADER]"):
        [item] = parse_items(tokenize([items])[0])
        assert item.section is not None
        try:
            section_content(top, item.section)
        except ImapError:
            pass


@FAST
@given(st.text(max_size=60))
def test_address_and_subject_parsers_total(text: str) -> None:
    parse_addresses(text)
    base_subject(text)
