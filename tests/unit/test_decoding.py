"""One decoding of header values for every reader (postroom.charsets): the ingest header
scan, the parsed view the API serves, IMAP SORT and threading read a message's names,
addresses and date alike."""

from __future__ import annotations

from postroom.charsets import address_list, date_fields, date_timestamp
from postroom.message import parse_message
from postroom.protocols.imap.sort import sort_key
from postroom.store.headers import scan_headers
from postroom.threads import ThreadMessage

RAW = (
    b"From: =?utf-8?q?Doe=2C_J=C3=B6rg?= <jd@example.org>\r\n"
    b'To: "Smith, Ann" <ann@example.org>, =?iso-8859-1?q?Ren=E9?= <rene@example.org>, x@example.org\r\n'
    b"Subject: =?utf-8?b?SMOkbGxv?=\r\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\nMessage-ID: <d@x>\r\n\r\nbody\r\n"
)
FROM = ("Doe, Jörg", "jd@example.org")
TO = [("Smith, Ann", "ann@example.org"), ("René", "rene@example.org"), ("", "x@example.org")]
WHEN = 1704186000.0  # 2024-01-02 09:00:00 UTC


def test_an_encoded_comma_in_a_name_never_splits_the_address() -> None:
    # RFC 2047 section 5: the encoded word is one word of the phrase; decoding the whole
    # value first (as the ingest scan did) cut "Doe" and "Jörg <jd@...>" apart
    assert address_list(RAW.split(b"\r\n")[0][6:].decode()) == [FROM]


def test_ingest_scan_and_parsed_view_read_the_same_names_addresses_and_date() -> None:
    scanned = scan_headers(RAW)
    parsed = parse_message(RAW)
    assert scanned.from_ == parsed.from_ == FROM
    assert scanned.to == parsed.to == TO
    assert scanned.subject == parsed.subject == "Hällo"
    assert scanned.date == parsed.date == WHEN


def test_sort_and_threading_read_the_same_date() -> None:
    date = "Tue, 02 Jan 2024 10:00:00 +0100"
    assert sort_key("DATE", {"date": date}.get, 0, 0.0) == WHEN
    msg = ThreadMessage.from_headers(uid=1, message_id="<d@x>", subject="s", date=date, internaldate=0.0)
    assert msg.date == WHEN
    assert date_fields(date) is not None and date_fields(date)[:3] == (2024, 1, 2)  # type: ignore[index]


def test_unusable_values_read_as_absent() -> None:
    for bad in ("", "yesterday", "Tue, 99 Foo 99999999999 99:99:99 +9999", "\x00"):
        assert date_timestamp(bad) is None
    assert address_list("") == []
    assert address_list(", ,") == []
