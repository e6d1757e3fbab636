"""The ingest-path header scan: fast address parsing agrees with the stdlib parser."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.charsets import _fast_addresses
from postroom.store.headers import scan_headers, split_headers

CASES = [
    "a@b.c",
    "Alice <alice@example.org>",
    '"Smith, J" <j@x.org>',
    '"Bob" <bob@x.org>, carol@y.org',
    "undisclosed-recipients:;",
    "a@b.c (Comment)",
    "  <x@y.z>  ",
    "O'Brien <o@x.org>",
    "bad",
    "a@b.c,,d@e.f",
]


def _stdlib(value: str) -> list[tuple[str, str]]:
    return [(n, a) for n, a in getaddresses([value]) if n or a]


@pytest.mark.parametrize("value", CASES)
def test_fast_path_agrees_or_declines(value: str) -> None:
    fast = _fast_addresses(value)
    assert fast is None or fast == _stdlib(value)


@given(st.text(alphabet="ab@.<>\", ():;\\'-_ x", max_size=40))
def test_fast_path_never_disagrees(value: str) -> None:
    fast = _fast_addresses(value)
    assert fast is None or fast == _stdlib(value)


def test_scan_reads_summary_fields_and_folded_lines() -> None:
    raw = (
        b"Subject: a long\r\n subject\r\nFrom: =?utf-8?q?Caf=C3=A9?= <c@x.org>\r\nTo: a@x.org,\r\n\tb@x.org\r\n"
        b"Message-ID: <id1@x>\r\nIn-Reply-To: <p@x>\r\nReferences: <r1@x> <r2@x>\r\n"
        b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nX-Tags: a, b\r\n\r\nbody\r\n"
    )
    h = scan_headers(raw)
    assert h.subject == "a long subject"
    assert h.from_ == ("Café", "c@x.org")
    assert h.to == [("", "a@x.org"), ("", "b@x.org")]
    assert (h.message_id, h.in_reply_to, h.references) == ("id1@x", "p@x", ["r1@x", "r2@x"])
    assert h.date == 1795255200.0  # 2026-11-21T10:00:00Z
    assert h.tags == ["a", "b"]


def test_split_headers_handles_bare_lf_and_no_body() -> None:
    assert split_headers(b"A: 1\nB: 2\n\nbody") == (b"A: 1\nB: 2", 11)
    assert split_headers(b"A: 1") == (b"A: 1", 4)


def test_garbage_never_raises() -> None:
    h = scan_headers(b"\xff\xfe: \x00\r\nFrom: <<<>>>\r\nDate: yesterday\r\n\r\n")
    assert h.date is None


def test_summary_scan_of_hostile_headers_is_linear_and_capped() -> None:
    """The ingest scan runs before the 250 (in an SMTP worker's event loop): a subject of
    50,000 encoded words took 17 s and held every session of that worker (issue 14 item 6);
    100,000 folded lines were concatenated quadratically. The bound is the issue's."""
    import time

    from postroom.store.headers import MAX_DECODED_SUBJECT, scan_headers

    words = b" ".join(b"=?utf-8?q?w=C3=A9?=" for _ in range(50_000))
    folded = b"\r\n".join(b" folded line %d" % i for i in range(100_000))
    for raw in (
        b"Subject: " + words + b"\r\nMessage-ID: <w@x>\r\n\r\nbody\r\n",
        b"Subject: x\r\n" + folded + b"\r\nMessage-ID: <w@x>\r\n\r\nbody\r\n",
    ):
        start = time.monotonic()
        h = scan_headers(raw)
        assert time.monotonic() - start < 2
        assert h.message_id == "w@x" and 0 < len(h.subject) <= MAX_DECODED_SUBJECT
