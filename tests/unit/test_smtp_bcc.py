"""Which envelope recipients the To/Cc/Bcc headers do not name (they get a Bcc header)."""

from __future__ import annotations

from postroom.servers.smtp_trace import unnamed_recipients


def test_whole_addresses_in_to_cc_bcc_only() -> None:
    head = (
        b"\r\nTo: jimbob@example.org, X <Y@E.org>,\r\n z@e.org.uk\r\nCc: q@w.e\r\nReply-To: r@x.y\r\n".lower()
    )
    rcpts = ("bob@example.org", "y@e.org", "jimbob@example.org", "z@e.org", "q@w.e", "r@x.y", "Q@W.E")
    # bob is only the tail of jimbob, z@e.org a prefix of z@e.org.uk, r@x.y only in Reply-To
    assert unnamed_recipients(head, rcpts) == ["bob@example.org", "z@e.org", "r@x.y"]
    assert unnamed_recipients(b"\r\nsubject: x\r\n", ("a@b.c", "a@b.c")) == ["a@b.c"]  # once each
    assert unnamed_recipients(b"\r\nto: undisclosed-recipients:;\r\n", ("a@b.c",)) == ["a@b.c"]
