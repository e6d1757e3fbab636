"""HEADER.FIELDS from a part's field blocks, computed once per part (issue 19), gives what a
scan of the header line by line gives, octet for octet."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from postroom.protocols.imap import mime
from postroom.protocols.imap.fetch import parse_section, section_content

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def scanned(header: bytes, names: list[str], exclude: bool) -> bytes:
    """The line-by-line scan HEADER.FIELDS used before (the reference)."""
    wanted = {n.lower() for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        m = _NAME.match(line)
        if m is None:
            keep = False
            continue
        keep = (m.group(1).decode("ascii").lower() in wanted) != exclude
        if keep:
            out.append(line)
    out.append(b"\r\n")
    return b"".join(out)


LINES = st.lists(
    st.sampled_from(
        [b"From: a@b\r\n", b"from : c\r\n", b"To: x\r\n", b" folded\r\n", b"\tfolded\r\n", b"Subject:\r\n",
         b"no colon here\r\n", b"X-A: 1\n", b"\r\n", b"\n", b"To:y", b" ", b"Received: r\r\n", b"SUBJECT: s\r"]
    ),
    max_size=12,
).map(b"".join)  # fmt: skip


@FAST
@given(LINES, st.lists(st.sampled_from(["From", "TO", "subject", "x-a", "Received", "none"]), max_size=3),
       st.booleans())  # fmt: skip
@example(b" lead\r\nFrom: a\r\n folded\r\nbad\r\n cont\r\nTo: b\r\n\r\nFrom: body\r\n", ["from", "to"], False)
def test_header_fields_are_the_line_scans(header: bytes, names: list[str], exclude: bool) -> None:
    assert mime.header_fields(header, names, exclude) == scanned(header, names, exclude)


def test_a_parts_fields_are_split_once_and_nested_messages_have_their_own() -> None:
    raw = (b"From: a@example.org\r\nSubject: outer\r\n folded\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: c@example.org\r\n\r\nhi\r\n--b--\r\n")  # fmt: skip
    top = mime.parse(raw)
    assert top.blocks is None
    outer = section_content(top, parse_section("HEADER.FIELDS (SUBJECT)"))
    assert outer == b"Subject: outer\r\n folded\r\n\r\n"
    first = top.blocks
    assert first is not None
    assert section_content(top, parse_section("HEADER.FIELDS.NOT (SUBJECT CONTENT-TYPE)")) == (
        b"From: a@example.org\r\n\r\n"
    )
    assert top.blocks is first  # not split again
    assert section_content(top, parse_section("1.HEADER.FIELDS (Subject From)")) == (
        b"Subject: inner\r\nFrom: c@example.org\r\n\r\n"
    )


@FAST
@given(LINES, st.lists(st.sampled_from(["From", "TO", "subject", "x-a", "Received", "none"]), max_size=3),
       st.booleans())  # fmt: skip
def test_a_sections_field_list_is_lowered_once_and_selects_as_the_scan(
    header: bytes, names: list[str], exclude: bool
) -> None:
    """A parsed section's names (a tuple) are lowered once per list, kept for the next
    message of the FETCH: the same fields as the line scan, the first time and after."""
    blocks = mime.field_blocks(header)
    for _ in range(2):
        assert mime.select_fields(blocks, tuple(names), exclude) == scanned(header, names, exclude)
        assert mime._WANTED.get(tuple(names)) == {n.lower() for n in names}
    assert len(mime._WANTED) <= mime._WANTED_MAX
