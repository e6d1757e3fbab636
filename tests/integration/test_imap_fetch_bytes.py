"""FETCH responses and the untagged updates around them, octet for octet (issue 19: the
section values, RFC822.HEADER/TEXT, EXISTS/RECENT and EXPUNGE are formatted without the
generic encoder on the hot path; what a client reads must not change). A real server and
a raw-socket client."""

from __future__ import annotations

from tests.helpers import running_server
from tests.integration.imap_wire import Wire

HEAD = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n folded\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
BODY = (
    b"--x\r\nContent-Type: text/plain\r\n\r\nplain text\r\n"
    b"--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--x--\r\n"
)
MSG = HEAD + BODY


def _lit(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def test_fetch_sections_octet_for_octet() -> None:
    with running_server() as s, Wire(*s.addr("imap")) as w:
        w.ok("LOGIN alice@example.org x")
        assert w.append("INBOX", MSG)[-1].split(b" ")[1] == b"OK"
        w.ok("SELECT INBOX")
        for seen in (b" FLAGS (\\Recent \\Seen)", b""):  # the second time from what the first one kept
            # (RFC822.TEXT sets \Seen: the first reply adds the new FLAGS)
            got = w.ok(
                "FETCH 1 (UID BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (Subject To)] BODY.PEEK[TEXT]<5.7> "
                "BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[9] BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[7] "
                "RFC822.HEADER RFC822.TEXT)"
            )
            fields = b"To: b@example.org\r\nSubject: hi\r\n folded\r\n\r\n"
            mime2 = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            assert got == [
                b"* 1 FETCH (UID 1 BODY[HEADER] " + _lit(HEAD)
                + b" BODY[HEADER.FIELDS (SUBJECT TO)] " + _lit(fields)
                + b" BODY[TEXT]<5> " + _lit(BODY[5:12])
                + b" BODY[1] " + _lit(b"plain text")
                + b" BODY[2.MIME] " + _lit(mime2)
                + b" BODY[9] {0}\r\n"
                + b" BINARY[2] ~{5}\r\nhello BINARY.SIZE[2] 5 BINARY.SIZE[7] 0"
                + b" RFC822.HEADER " + _lit(HEAD) + b" RFC822.TEXT " + _lit(BODY) + seen + b")\r\n"
            ]  # fmt: skip


def test_updates_from_another_session_come_before_the_tagged_reply_octet_for_octet() -> None:
    with running_server() as s, Wire(*s.addr("imap")) as a, Wire(*s.addr("imap")) as b:
        for w in (a, b):
            w.ok("LOGIN alice@example.org x")
        for i in range(3):
            a.append("INBOX", MSG.replace(b"hi", b"m%d" % i))
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        a.append("INBOX", MSG)
        got = b.cmd("CHECK")
        assert got[:2] == [b"* 4 EXISTS\r\n", b"* 0 RECENT\r\n"], got  # \Recent: a's (selected first)
        assert got[2].endswith(b" OK CHECK completed\r\n") and len(got) == 3
        assert b.ok("FETCH 4 (UID)") == [b"* 4 FETCH (UID 4)\r\n"]
        a.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
        assert a.ok("EXPUNGE") == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
        assert b.cmd("NOOP") == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n", b"t5 OK NOOP completed\r\n"]
        a.append("INBOX", MSG)
        # the FETCH's own response, then the new message, then the tagged reply
        assert b.cmd("FETCH 1 (UID)") == [
            b"* 1 FETCH (UID 2)\r\n",
            b"* 3 EXISTS\r\n",
            b"* 0 RECENT\r\n",
            b"t6 OK FETCH completed\r\n",
        ]
