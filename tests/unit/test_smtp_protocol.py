"""Byte-exact tests of the sans-IO SMTP core (postroom.protocols.smtp)."""

from __future__ import annotations

import ast
import codecs
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.protocols import smtp
from postroom.protocols.smtp import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    NEED_DATA,
    AuthAttempt,
    LocalProtocolError,
    MailFrom,
    MessageReceived,
    RcptTo,
    Reply,
    SMTPConfig,
    SMTPConnection,
    State,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "smtp"
REPLY_LINE = re.compile(rb"[2-5]\d\d[ -][^\r\n]*\r\n")


# -- a harness that answers events the way the asyncio server does by default ----------


@dataclass
class Harness:
    config: SMTPConfig = field(default_factory=SMTPConfig)
    users: dict[str, str] | None = None
    tls: bool = False
    out: bytearray = field(default_factory=bytearray)
    messages: list[MessageReceived] = field(default_factory=list)
    events: list[smtp.Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn = SMTPConnection(self.config, tls=self.tls, nonce=lambda: "1.2")
        self.out += self.conn.send(self.conn.greeting())

    def feed(self, data: bytes) -> bytes:
        start = len(self.out)
        self.conn.receive_data(data)
        while (ev := self.conn.next_event()) is not NEED_DATA:
            self.events.append(ev)
            self.out += self.conn.send(self.answer(ev))
        return bytes(self.out[start:])

    def answer(self, ev: smtp.Event) -> Reply:
        if isinstance(ev, MessageReceived):
            self.messages.append(ev)
            return Reply(250, "2.0.0", (f"Ok: queued as {len(self.messages)}",))
        if isinstance(ev, AuthAttempt) and self.users is not None:
            password = self.users.get(ev.username)
            if password is None:
                ok = False
            elif ev.mechanism == "CRAM-MD5":
                want = hmac.new(password.encode(), (ev.challenge or "").encode(), hashlib.md5).hexdigest()
                ok = want == ev.digest
            else:
                ok = password == ev.password
            return ev.reply if ok else Reply(535, "5.7.8", ("Error: authentication failed",))
        return ev.reply


# -- transcripts ------------------------------------------------------------------------


@dataclass
class Vector:
    name: str
    config: dict[str, object]
    users: dict[str, str] | None
    tls: bool
    chunks: list[bytes]
    expected: bytes
    messages: list[tuple[str, tuple[str, ...], bytes]]


def _unescape(text: str) -> bytes:
    return codecs.escape_decode(text.encode("utf-8"))[0]  # type: ignore[no-any-return]


def load_vector(path: Path) -> Vector:
    config: dict[str, object] = {}
    users: dict[str, str] | None = None
    tls = False
    chunks: list[bytes] = []
    pending = bytearray()
    expected = bytearray()
    messages: list[tuple[str, tuple[str, ...], bytes]] = []
    ehlo_plain: bytes | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#") or not raw.strip():
            continue
        tag, rest = raw[:2], raw[3:] if len(raw) > 2 else ""
        if tag == "@ ":
            for item in raw[2:].split():
                key, _, value = item.partition("=")
                if key == "users":
                    users = dict(pair.split(":", 1) for pair in value.split(","))
                elif key == "tls":
                    tls = value == "true"
                elif value in ("true", "false"):
                    config[key] = value == "true"
                else:
                    config[key] = int(value)
        elif tag == "C:":
            pending += rest.encode("utf-8") + b"\r\n"
        elif tag == "C|":
            pending += _unescape(rest)
        elif raw == "--":
            chunks.append(bytes(pending))
            pending.clear()
        elif tag == "S:":
            expected += rest.encode("utf-8") + b"\r\n"
        elif tag == "S|":
            expected += _unescape(rest)
        elif tag == "S=":
            cfg = SMTPConfig(**config)  # type: ignore[arg-type]
            ehlo_plain = cfg.ehlo_reply(rest.strip() == "EHLO-TLS" or tls).data
            expected += ehlo_plain
        elif tag == "E:":
            sender, *rcpts = rest.split()
            messages.append((sender if sender != "<>" else "", tuple(rcpts), b""))
        elif tag == "M|":
            sender, rcpts, data = messages[-1]
            messages[-1] = (sender, rcpts, data + _unescape(rest))
        else:
            raise AssertionError(f"{path.name}: bad line {raw!r}")
    if pending:
        chunks.append(bytes(pending))
    return Vector(path.stem, config, users, tls, chunks, bytes(expected), messages)


VECTOR_FILES = sorted(VECTORS.glob("*.txt"))


def run_vector(vector: Vector, chunks: list[bytes]) -> Harness:
    h = Harness(SMTPConfig(**vector.config), users=vector.users, tls=vector.tls)  # type: ignore[arg-type]
    for chunk in chunks:
        h.feed(chunk)
    return h


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_transcript(path: Path) -> None:
    vector = load_vector(path)
    h = run_vector(vector, vector.chunks)
    assert bytes(h.out).decode("latin-1") == vector.expected.decode("latin-1")
    got = [(m.mail_from, m.rcpt_to, m.data) for m in h.messages]
    assert got == vector.messages


@pytest.mark.parametrize(
    "path", [p for p in VECTOR_FILES if "STARTTLS" not in p.read_text()], ids=lambda p: p.stem
)
def test_transcript_is_the_same_one_byte_at_a_time(path: Path) -> None:
    # STARTTLS transcripts are excluded: what arrives with the command is dropped on purpose
    vector = load_vector(path)
    data = b"".join(vector.chunks)
    h = run_vector(vector, [data[i : i + 1] for i in range(len(data))])
    assert bytes(h.out) == vector.expected
    assert [(m.mail_from, m.rcpt_to, m.data) for m in h.messages] == vector.messages


def test_vectors_exist() -> None:
    assert len(VECTOR_FILES) >= 15


# -- lines and limits ---------------------------------------------------------------------


def test_command_line_too_long_is_refused_and_the_session_continues() -> None:
    h = Harness()
    long = b"NOOP " + b"x" * MAX_COMMAND_LINE + b"\r\n"
    assert h.feed(long + b"HELO c\r\n") == b"500 5.5.6 Error: line too long\r\n250 postroom\r\n"


def test_command_line_too_long_across_reads_gets_one_reply() -> None:
    h = Harness()
    out = h.feed(b"NOOP " + b"x" * (MAX_COMMAND_LINE + 10))
    assert out == b"500 5.5.6 Error: line too long\r\n"
    assert h.feed(b"y" * 10_000) == b""  # still the same line: discarded, no reply
    assert h.feed(b"zz\r\nNOOP\r\n") == b"250 2.0.0 Ok\r\n"
    assert len(h.conn._buf) < 100  # nothing of the long line was kept


def test_a_command_line_at_the_limit_is_accepted() -> None:
    h = Harness()
    line = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(line) == MAX_COMMAND_LINE
    assert h.feed(line) == b"250 2.0.0 Ok\r\n"


def test_auth_lines_may_be_longer_rfc4954() -> None:
    h = Harness()
    h.feed(b"EHLO c\r\n")
    long_plain = b"AUTH PLAIN " + b"A" * (MAX_AUTH_LINE - 100) + b"\r\n"
    assert h.feed(long_plain).startswith(b"501 5.5.2")  # not base64 of 3 fields, but not "too long"
    assert h.feed(b"AUTH PLAIN " + b"A" * MAX_AUTH_LINE + b"\r\n") == b"500 5.5.6 Error: line too long\r\n"


def test_oversized_data_is_discarded_while_it_streams() -> None:
    h = Harness(SMTPConfig(max_size=1000))
    h.feed(b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
    for _ in range(200):
        assert h.feed(b"y" * 998 + b"\r\n") == b""
        assert len(h.conn._buf) < 4096  # memory stays bounded
    assert h.feed(b".\r\nNOOP\r\n") == b"552 5.3.4 Error: message too big\r\n250 2.0.0 Ok\r\n"
    assert h.messages == []
    assert h.conn.state is State.READY


def test_data_at_exactly_max_size_is_accepted() -> None:
    h = Harness(SMTPConfig(max_size=12))
    h.feed(b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
    assert h.feed(b"0123456789\r\n.\r\n") == b"250 2.0.0 Ok: queued as 1\r\n"
    assert h.messages[0].data == b"0123456789\r\n"


def test_mail_parameters_reach_the_event() -> None:
    h = Harness()
    h.feed(b"EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@example.org> SIZE=42 BODY=8bitmime SMTPUTF8\r\n")
    mail = next(e for e in h.events if isinstance(e, MailFrom))
    assert (mail.address, mail.size, mail.body, mail.smtputf8) == ("jörg@example.org", 42, "8BITMIME", True)
    h.feed(b"RCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n")
    assert h.messages[0].smtputf8 is True
    assert h.messages[0].body == "8BITMIME"


def test_a_refused_recipient_is_not_added() -> None:
    conn = SMTPConnection(SMTPConfig())
    conn.send(conn.greeting())
    conn.receive_data(b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<no@x>\r\nDATA\r\n")
    out = b""
    while (ev := conn.next_event()) is not NEED_DATA:
        reply = Reply.parse("550 5.7.1 no") if isinstance(ev, RcptTo) else ev.reply
        out += conn.send(reply)
    assert out.endswith(b"550 5.7.1 no\r\n503 5.5.1 Error: need RCPT command\r\n")
    assert conn.rcpt_to == []


def test_a_failed_store_ends_the_transaction() -> None:
    conn = SMTPConnection(SMTPConfig())
    conn.send(conn.greeting())
    conn.receive_data(b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nx\r\n.\r\nRCPT TO:<c@x>\r\n")
    out = b""
    while (ev := conn.next_event()) is not NEED_DATA:
        reply = Reply(451, "4.3.0", ("try later",)) if isinstance(ev, MessageReceived) else ev.reply
        out += conn.send(reply)
    assert out.endswith(b"451 4.3.0 try later\r\n503 5.5.1 Error: need MAIL command\r\n")


def test_ehlo_and_rset_reset_the_transaction() -> None:
    h = Harness()
    h.feed(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
    assert h.conn.state is State.RCPT
    h.feed(b"EHLO again\r\n")
    assert (h.conn.state, h.conn.rcpt_to, h.conn.helo) == (State.READY, [], "again")
    h.feed(b"MAIL FROM:<a@x>\r\nRSET\r\n")
    assert (h.conn.state, h.conn.mail_from) == (State.READY, "")


def test_next_event_before_answering_is_a_local_error() -> None:
    conn = SMTPConnection(SMTPConfig())
    with pytest.raises(LocalProtocolError):
        conn.next_event()  # greeting not sent
    conn.send(conn.greeting())
    conn.receive_data(b"NOOP\r\nNOOP\r\n")
    assert conn.next_event() is not NEED_DATA
    with pytest.raises(LocalProtocolError):
        conn.next_event()


def test_timeout_reply_closes_and_input_is_ignored_after() -> None:
    h = Harness()
    h.feed(b"HELO c\r\nMAIL FROM:<a@x>\r\n")
    assert h.conn.send(h.conn.timeout_reply()) == b"421 4.4.2 postroom Error: timeout exceeded\r\n"
    assert h.conn.state is State.CLOSED
    assert h.feed(b"RCPT TO:<b@x>\r\n") == b""


def test_a_421_greeting_closes() -> None:
    conn = SMTPConnection(SMTPConfig())
    conn.send(Reply(421, "4.3.2", ("busy",)))
    conn.receive_data(b"HELO c\r\n")
    assert conn.next_event() is NEED_DATA


def test_implicit_tls_session_offers_no_starttls_and_auth_is_allowed() -> None:
    h = Harness(SMTPConfig(tls_available=True, require_tls=True), tls=True)
    out = h.feed(b"EHLO c\r\nSTARTTLS\r\nAUTH PLAIN AGEAYg==\r\n")
    assert b"STARTTLS" not in out.split(b"\r\n", 12)[-1] and b"250-STARTTLS" not in out
    assert b"250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n" in out
    assert out.endswith(b"503 5.5.1 Error: TLS already active\r\n235 2.7.0 Authentication successful\r\n")
    assert h.conn.auth_user == "a"


def test_starttls_not_configured() -> None:
    h = Harness()
    assert h.feed(b"EHLO c\r\nSTARTTLS\r\n").endswith(b"454 4.7.0 TLS not available\r\n")


def test_plain_auth_ignores_authzid_and_keeps_the_password_out_of_repr() -> None:
    h = Harness()
    h.feed(b"EHLO c\r\nAUTH PLAIN YWRtaW4AYm9iAHMzY3JldA==\r\n")  # admin\0bob\0s3cret
    attempt = next(e for e in h.events if isinstance(e, AuthAttempt))
    assert (attempt.username, attempt.password) == ("bob", "s3cret")
    assert "s3cret" not in repr(attempt)


# -- replies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "enhanced", "wire"),
    [
        ("550 5.7.1 no", 550, "5.7.1", b"550 5.7.1 no\r\n"),
        ("451 try later", 451, "", b"451 try later\r\n"),
        ("250", 250, "", b"250 \r\n"),
        ("421 4.3.2", 421, "4.3.2", b"421 4.3.2 \r\n"),
    ],
)
def test_reply_parse(text: str, code: int, enhanced: str, wire: bytes) -> None:
    reply = Reply.parse(text)
    assert (reply.code, reply.enhanced, reply.data) == (code, enhanced, wire)


@pytest.mark.parametrize("text", ["", "hello", "600 x", "55 x", "1234"])
def test_reply_parse_refuses_non_replies(text: str) -> None:
    with pytest.raises(ValueError):
        Reply.parse(text)


def test_multiline_reply() -> None:
    assert Reply.of(250, "2.0.0", "a", "b").data == b"250-2.0.0 a\r\n250 2.0.0 b\r\n"


# -- properties -----------------------------------------------------------------------------

_WORDS = [
    b"EHLO c\r\n",
    b"HELO c\n",
    b"MAIL FROM:<a@x>\r\n",
    b"MAIL FROM:<a@x> BODY=BINARYMIME\r\n",
    b"RCPT TO:<b@x>\r\n",
    b"DATA\r\n",
    b"BDAT 3\r\n",
    b"BDAT 2 LAST\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"..",
    b"RSET\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH CRAM-MD5\r\n",
    b"*\r\n",
    b"AGEAYg==\r\n",
    b"STARTTLS\r\n",
    b"QUIT\r\n",
    b"\x00\xff",
    b"x" * 5000,
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(st.sampled_from(_WORDS), st.binary(max_size=40)), max_size=40),
    cuts=st.lists(st.integers(min_value=1, max_value=64), max_size=20),
    tls_available=st.booleans(),
)
def test_any_input_gives_replies_never_an_exception(
    parts: list[bytes], cuts: list[int], tls_available: bool
) -> None:
    h = Harness(SMTPConfig(max_size=64, max_recipients=2, tls_available=tls_available))
    data = b"".join(parts)
    pos = 0
    for cut in [*cuts, len(data)]:
        h.feed(data[pos : pos + cut])
        pos += cut
    h.feed(data[pos:])
    out = bytes(h.out)
    # every byte written is part of a well-formed reply line (334 challenges included)
    assert REPLY_LINE.sub(b"", out.replace(b"334 \r\n", b"")) == b""
    for m in h.messages:
        assert len(m.data) <= 64


@pytest.mark.parametrize("path", sorted(Path(smtp.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_protocol_core_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add((node.module or "").split(".")[0])
    assert imported, "no imports found: is the test reading the right files?"
    assert not imported & {"asyncio", "socket", "ssl", "selectors", "postroom"}
