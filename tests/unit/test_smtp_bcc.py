"""Which envelope recipients the To/Cc/Bcc headers do not name (they get a Bcc header)."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from postroom.servers.smtp_trace import _whole, unnamed_recipients


def test_whole_addresses_in_to_cc_bcc_only() -> None:
    head = (
        b"\r\nTo: jimbob@example.org, X <Y@E.org>,\r\n z@e.org.uk\r\nCc: q@w.e\r\nReply-To: r@x.y\r\n".lower()
    )
    rcpts = ("bob@example.org", "y@e.org", "jimbob@example.org", "z@e.org", "q@w.e", "r@x.y", "Q@W.E")
    # bob is only the tail of jimbob, z@e.org a prefix of z@e.org.uk, r@x.y only in Reply-To
    assert unnamed_recipients(head, rcpts) == ["bob@example.org", "z@e.org", "r@x.y"]
    assert unnamed_recipients(b"\r\nsubject: x\r\n", ("a@b.c", "a@b.c")) == ["a@b.c"]  # once each
    assert unnamed_recipients(b"\r\nto: undisclosed-recipients:;\r\n", ("a@b.c",)) == ["a@b.c"]


def _reference(head: bytes, rcpt_to: tuple[str, ...]) -> list[str]:
    """The check as first written: split into fields, join the To/Cc/Bcc values, search."""
    fields = b"\n".join(
        value
        for name, sep, value in (line.partition(b":") for line in re.split(rb"\r\n(?![ \t])", head))
        if sep and name.strip() in (b"to", b"cc", b"bcc")
    )
    unnamed = []
    for rcpt in dict.fromkeys(rcpt_to):
        addr = rcpt.lower().encode("utf-8", "replace")
        at = fields.find(addr)
        while at >= 0 and not _whole(fields, at, at + len(addr)):
            at = fields.find(addr, at + 1)
        if at < 0:
            unnamed.append(rcpt)
    return unnamed


_PIECES = st.sampled_from(
    [b"\r\n", b"\r\n ", b"\r\n\t", b"to:", b"To :", b"cc:", b"bcc:", b"x-to:", b"from:", b"reply-to:", b":",
     b" ", b",", b"<", b">", b";", b"\"", b"(", b")", b"a@b.c", b"xa@b.c", b"a@b.cx", b"A@B.C", b"q@w.e", b"n"]
)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@example([b"bcc:", b"a@b.c", b"\r\n", b"x-to:", b"q@w.e"], ["a@b.c", "q@w.e"])
@example([b"to:", b" ", b"\r\n\t", b"a@b.c", b"\r\n", b"from:", b"q@w.e"], ["a@b.c", "q@w.e"])
@example([b"cc", b"a@b.c", b":", b"x"], ["a@b.c"])
@given(
    st.lists(_PIECES, max_size=30), st.lists(st.sampled_from(["a@b.c", "q@w.e", "A@b.C", "z@z"]), min_size=1)
)
def test_the_search_agrees_with_the_field_split(pieces: list[bytes], rcpts: list[str]) -> None:
    head = (b"\r\n" + b"".join(pieces)).lower()
    assert unnamed_recipients(head, tuple(rcpts)) == _reference(head, tuple(rcpts))
