"""Fuzzing the sans-IO protocol cores: SMTP, POP3 and IMAP.

Each core gets byte streams built from its own syntax plus noise, cut into random
chunks, and grown by repetition (fuzzlib.amplified). The invariant: every input gets
well-formed replies (or the core's protocol error), within the time budget; no other
exception, no hang.
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from postroom.protocols.imap.decoder import NEED_DATA as IMAP_NEED_DATA
from postroom.protocols.imap.decoder import Decoder, tokenize
from postroom.protocols.imap.errors import ImapError
from postroom.protocols.imap.sort import base_subject
from postroom.protocols.pop3 import COMMANDS, Config, POP3Connection
from postroom.protocols.smtp import SMTPConfig
from tests.fuzz.fuzzlib import amplified, bounded, fuzz, joined
from tests.unit.test_imap_fuzz import argument_parsers
from tests.unit.test_pop3_protocol import feed as pop3_feed
from tests.unit.test_smtp_protocol import Harness

SMTP_WORDS = [
    b"EHLO x\r\n",
    b"HELO x\r\n",
    b"MAIL FROM:<a@b>\r\n",
    b"MAIL FROM:<a@b> SIZE=99999999999999999999 BODY=8BITMIME SMTPUTF8\r\n",
    b"RCPT TO:<c@d>\r\n",
    b'RCPT TO:<"q\\"x"@[127.0.0.1]>\r\n',
    b"DATA\r\n",
    b"BDAT 3\r\n",
    b"BDAT 99999999999999999999 LAST\r\n",
    b"\r\n.\r\n",
    b"..",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY x\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH CRAM-MD5\r\n",
    b"AUTH XOAUTH2 dXNlcj0=\r\n",
    b"*\r\n",
    b"AGEAYg==\r\n",
    b"STARTTLS\r\n",
    b"QUIT\r\n",
    b"\x00",
    b"\xff",
    b"<",
    b">",
    b" ",
    b"\n",
    b"\r",
]
SMTP_REPLY = re.compile(rb"\d{3}[ -][^\r\n]*\r\n")


@fuzz
@given(
    data=joined(SMTP_WORDS) | amplified(joined(SMTP_WORDS, 4), 3000),
    cut=st.integers(1, 4096),
    tls_available=st.booleans(),
)
def test_smtp_core(data: bytes, cut: int, tls_available: bool) -> None:
    h = Harness(SMTPConfig(max_size=4096, max_recipients=5, tls_available=tls_available))

    def run() -> None:
        for i in range(0, len(data), cut):
            h.feed(data[i : i + cut])

    bounded(run)
    out = bytes(h.out).replace(b"334 \r\n", b"")
    assert SMTP_REPLY.sub(b"", out) == b""  # only whole reply lines were written
    assert all(len(m.data) <= 4096 for m in h.messages)


POP3_WORDS = [w.encode() + b"\r\n" for w in COMMANDS] + [
    b"USER a\r\n",
    b"PASS b\r\n",
    b"APOP a 0123456789abcdef0123456789abcdef\r\n",
    b"AUTH PLAIN\r\n",
    b"AGEAYg==\r\n",
    b"TOP 1 99999999999999999999\r\n",
    b"RETR 1\r\n",
    b"LIST 0\r\n",
    b"DELE 1\r\n",
    b"UIDL\r\n",
    b"STLS\r\n",
    b"*\r\n",
    b"\x00",
    b"\xff",
    b" ",
    b"\n",
]


@fuzz
@given(
    data=joined(POP3_WORDS) | amplified(joined(POP3_WORDS, 4), 3000),
    cut=st.integers(1, 4096),
    tls=st.booleans(),
)
def test_pop3_core(data: bytes, cut: int, tls: bool) -> None:
    conn = POP3Connection(Config(stls_available=True, apop_timestamp="<1@h>", require_tls_login=tls))
    out = conn.data_to_send()

    def run() -> bytes:
        got = b""
        for i in range(0, len(data), cut):
            got += pop3_feed(conn, data[i : i + cut])[0]
        return got

    out += bounded(run)
    for line in out.split(b"\r\n")[:-1]:
        # status lines stay within RFC 1939's 512 octets
        assert len(line) + 2 <= 512 or not line.startswith((b"+OK", b"-ERR"))


IMAP_WORDS = [
    b"a1 ",
    b"LOGIN a b\r\n",
    b"SELECT INBOX\r\n",
    b"FETCH ",
    b"UID ",
    b"SEARCH ",
    b"SORT (SUBJECT) UTF-8 ",
    b"1:*",
    b"99999999999999999999",
    b"(",
    b")",
    b"[",
    b"]",
    b'"',
    b"\\",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"{99999999999}\r\n",
    b"~{1}\r\n",
    b"\r\n",
    b" ",
    b"BODY[",
    b"HEADER.FIELDS (",
    b"<0.5>",
    b"NOT ",
    b"OR ",
    b"TEXT ",
    b"LARGER ",
    b"SINCE 1-Jan-2024 ",
    b"*",
    b"%",
    b"NIL",
    b"$",
    b",",
    b":",
    b"\x00",
    b"\xff",
]


@fuzz
@given(data=joined(IMAP_WORDS) | amplified(joined(IMAP_WORDS, 4), 3000), cut=st.integers(1, 4096))
def test_imap_decoder(data: bytes, cut: int) -> None:
    d = Decoder(max_line=8192, max_command=65536, max_literal=65536)

    def run() -> int:
        n = 0
        for i in range(0, len(data), cut):
            d.receive_data(data[i : i + cut])
            while d.next_event() is not IMAP_NEED_DATA:
                n += 1
        return n

    bounded(run)


@fuzz
@given(data=joined(IMAP_WORDS) | amplified(joined(IMAP_WORDS, 3), 2000))
@example(b"9" * 4320)  # int() refused more than 4,300 digits: ValueError (found by make fuzz)
def test_imap_argument_parsers(data: bytes) -> None:
    try:
        tokens = bounded(tokenize, [data])
    except ImapError:
        return
    for parse in argument_parsers(tokens):
        try:
            bounded(parse)
        except ImapError:
            pass


SUBJECT_BITS = [
    "Re: ",
    "RE:",
    "Fwd: ",
    "fw:",
    "[fwd: ",
    "]",
    "(fwd)",
    " (fwd)",
    "[x] ",
    "[",
    " ",
    "\t",
    "a",
    "=?utf-8?q?a?=",
]


@fuzz
@given(st.lists(st.sampled_from(SUBJECT_BITS), max_size=30).map("".join), st.integers(1, 3000))
def test_imap_base_subject(subject: str, repeat: int) -> None:
    out = bounded(base_subject, subject * repeat)
    assert isinstance(out, str)
