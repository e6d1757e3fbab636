"""Byte-exact tests of the sans-IO POP3 core (postroom.protocols.pop3)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.protocols.pop3 import (
    COMMANDS,
    MAX_BAD_COMMANDS,
    MAX_COMMAND_LINE,
    NEED_DATA,
    PAUSED,
    AuthAccepted,
    Authenticate,
    Close,
    Config,
    LocalProtocolError,
    MaildropItem,
    MessageContent,
    POP3Connection,
    Reject,
    Retrieve,
    StartTLS,
    State,
    TLSStarted,
    Update,
    UpdateDone,
    apop_digest,
    apop_matches,
    dot_stuff,
    top_of,
)

GREETING = b"+OK postroom POP3 server ready\r\n"

MSG1 = b"Subject: one\r\nFrom: a@example.org\r\n\r\nline 1\r\n.dotted\r\nline 3\r\n"
MSG2 = b"Subject: two\r\n\r\nbody\r\n"
MAILDROP = (
    MaildropItem(1, "7.1", len(MSG1), ref=MSG1),
    MaildropItem(2, "7.2", len(MSG2), ref=MSG2),
)


def connect(config: Config | None = None) -> POP3Connection:
    conn = POP3Connection(config)
    conn.data_to_send()
    return conn


def feed(conn: POP3Connection, data: bytes) -> tuple[bytes, list[object]]:
    """Feed ``data`` and answer events like a friendly server; return output and events."""
    conn.receive_data(data)
    events: list[object] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA or ev is PAUSED:
            break
        events.append(ev)
        if isinstance(ev, Authenticate):
            if ev.secret == "wrong":
                conn.send(Reject("invalid credentials", "AUTH"))
            else:
                conn.send(AuthAccepted(ev.username, MAILDROP))
        elif isinstance(ev, Retrieve):
            conn.send(MessageContent(ev.item.ref))  # type: ignore[arg-type]
        elif isinstance(ev, StartTLS):
            conn.send(TLSStarted())
        elif isinstance(ev, Update):
            conn.send(UpdateDone(len(MAILDROP) - len(ev.deleted)))
        elif isinstance(ev, Close):
            break
    return conn.data_to_send(), events


def logged_in() -> POP3Connection:
    conn = connect()
    out, _ = feed(conn, b"USER alice@example.org\r\nPASS pw\r\n")
    assert conn.state is State.TRANSACTION, out
    return conn


# -- greeting, CAPA, AUTHORIZATION -----------------------------------------------------------


def test_greeting_plain_and_with_apop_timestamp() -> None:
    assert POP3Connection().data_to_send() == GREETING
    conn = POP3Connection(Config(apop_timestamp="<1.2@postroom>"))
    assert conn.data_to_send() == b"+OK postroom POP3 server ready <1.2@postroom>\r\n"


def test_capa_before_login() -> None:
    out, _ = feed(connect(Config(stls_available=True)), b"CAPA\r\n")
    assert out == (
        b"+OK capability list follows\r\n"
        b"TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUSER\r\nSASL PLAIN\r\n"
        b"STLS\r\nIMPLEMENTATION postroom\r\n.\r\n"
    )


def test_capa_after_login_drops_login_capabilities() -> None:
    out, _ = feed(logged_in(), b"capa\r\n")
    assert out == (
        b"+OK capability list follows\r\n"
        b"TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION postroom\r\n.\r\n"
    )


def test_user_pass_login() -> None:
    conn = connect()
    out, events = feed(conn, b"USER alice@example.org\r\nPASS my secret pw\r\n")
    assert out == (
        b"+OK send PASS for alice@example.org\r\n"
        b"+OK alice@example.org has 2 messages (" + str(len(MSG1) + len(MSG2)).encode() + b" octets)\r\n"
    )
    (ev,) = events
    assert ev == Authenticate("alice@example.org", "my secret pw", "USER")
    assert "my secret pw" not in repr(ev)  # passwords never reach logs through repr
    assert conn.mailbox == "alice@example.org"


def test_pass_without_user_and_user_forgotten_after_other_command() -> None:
    out, events = feed(connect(), b"PASS x\r\nUSER bob\r\nCAPA\r\nPASS x\r\n")
    assert out.startswith(b"-ERR PASS must follow USER\r\n+OK send PASS for bob\r\n+OK capability")
    assert out.endswith(b".\r\n-ERR PASS must follow USER\r\n")
    assert events == []


def test_failed_login_then_retry_then_too_many_failures_close() -> None:
    conn = connect()
    out, _ = feed(conn, b"USER a\r\nPASS wrong\r\n")
    assert out == b"+OK send PASS for a\r\n-ERR [AUTH] invalid credentials\r\n"
    assert conn.state is State.AUTHORIZATION
    out, events = feed(conn, b"USER a\r\nPASS wrong\r\nUSER a\r\nPASS wrong\r\nUSER a\r\n")
    assert out.endswith(b"-ERR [AUTH] invalid credentials\r\n-ERR too many failed logins, closing\r\n")
    assert isinstance(events[-1], Close)
    assert conn.state is State.CLOSED


def test_transaction_commands_refused_before_login() -> None:
    out, _ = feed(connect(), b"STAT\r\nRETR 1\r\nNOOP\r\n")
    assert out == (
        b"-ERR STAT is not valid in the AUTHORIZATION state\r\n"
        b"-ERR RETR is not valid in the AUTHORIZATION state\r\n"
        b"-ERR NOOP is not valid in the AUTHORIZATION state\r\n"
    )


def test_login_commands_refused_after_login() -> None:
    out, _ = feed(logged_in(), b"USER x\r\nAUTH PLAIN\r\nSTLS\r\n")
    assert out == (
        b"-ERR USER is not valid in the TRANSACTION state\r\n"
        b"-ERR AUTH is not valid in the TRANSACTION state\r\n"
        b"-ERR STLS is not valid in the TRANSACTION state\r\n"
    )


def test_quit_in_authorization_closes_without_update() -> None:
    conn = connect()
    out, events = feed(conn, b"QUIT\r\n")
    assert out == b"+OK postroom POP3 server signing off\r\n"
    assert events == [Close("session over")]
    assert conn.next_event() is NEED_DATA  # Close is reported once


# -- AUTH PLAIN (RFC 5034) -------------------------------------------------------------------


def b64(s: bytes) -> bytes:
    return base64.b64encode(s)


def test_auth_plain_initial_response() -> None:
    conn = connect()
    out, events = feed(conn, b"AUTH PLAIN " + b64(b"\x00alice@example.org\x00pw") + b"\r\n")
    assert events == [Authenticate("alice@example.org", "pw", "PLAIN")]
    assert out.startswith(b"+OK alice@example.org has 2 messages")


def test_auth_plain_with_continuation_and_authzid() -> None:
    conn = connect()
    out, events = feed(conn, b"auth plain\r\n")
    assert out == b"+ \r\n"
    assert events == []
    out, events = feed(conn, b64(b"admin\x00alice\x00pw") + b"\r\n")
    assert events == [Authenticate("alice", "pw", "PLAIN", authzid="admin")]


def test_auth_plain_cancel_and_garbage() -> None:
    conn = connect()
    out, _ = feed(
        conn, b"AUTH PLAIN\r\n*\r\nAUTH PLAIN !!!notbase64\r\nAUTH PLAIN " + b64(b"nonul") + b"\r\n"
    )
    assert out == (
        b"+ \r\n-ERR authentication cancelled\r\n"
        b"-ERR [AUTH] malformed PLAIN response (RFC 4616)\r\n"
        b"-ERR [AUTH] malformed PLAIN response (RFC 4616)\r\n"
    )
    out, _ = feed(conn, b"AUTH PLAIN " + b64(b"\x00alice\x00") + b"\r\nAUTH CRAM-MD5\r\nAUTH PLAIN a b\r\n")
    assert out == (
        b"-ERR [AUTH] malformed PLAIN response (RFC 4616)\r\n"
        b"-ERR unsupported SASL mechanism CRAM-MD5\r\n"
        b"-ERR usage: AUTH mechanism [initial-response]\r\n"
    )


def test_bare_auth_lists_mechanisms() -> None:
    out, _ = feed(connect(), b"AUTH\r\n")
    assert out == b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"


def test_require_tls_login_refuses_plaintext_login() -> None:
    conn = connect(Config(require_tls_login=True, stls_available=True))
    out, events = feed(conn, b"USER a\r\nAUTH PLAIN " + b64(b"\x00a\x00b") + b"\r\nCAPA\r\n")
    refusal = b"-ERR [AUTH] plaintext authentication is disabled without TLS: use STLS first\r\n"
    assert out.startswith(refusal + refusal + b"+OK capability list follows\r\n")
    assert b"SASL\r\n" in out  # no mechanism is offered in the clear
    assert events == []
    out, events = feed(conn, b"STLS\r\n")
    assert out == b"+OK begin TLS negotiation\r\n"
    out, events = feed(conn, b"USER a\r\nPASS b\r\n")
    assert out.startswith(b"+OK send PASS for a\r\n+OK a has 2 messages")
    assert conn.tls_active


def test_apop() -> None:
    ts = "<42.1@postroom>"
    conn = connect(Config(apop_timestamp=ts))
    digest = apop_digest(ts, "tanstaaf")
    out, events = feed(conn, f"APOP mrose {digest}\r\n".encode())
    (ev,) = events
    assert isinstance(ev, Authenticate) and ev.mechanism == "APOP" and ev.apop_timestamp == ts
    assert apop_matches(ev, "tanstaaf") and not apop_matches(ev, "other")
    assert out.startswith(b"+OK mrose has 2 messages")


def test_apop_rfc1939_example_digest_and_refusals() -> None:
    # RFC 1939 §7 example
    assert apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb"
    out, _ = feed(connect(), b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n")
    assert out == b"-ERR APOP is not available\r\n"
    out, _ = feed(connect(Config(apop_timestamp="<1@h>")), b"APOP mrose nothex\r\n")
    assert out == b"-ERR usage: APOP name digest (32 hex digits)\r\n"


# -- STLS ----------------------------------------------------------------------------------


def test_stls_discards_pipelined_plaintext() -> None:
    conn = connect(Config(stls_available=True))
    conn.receive_data(b"STLS\r\nUSER injected\r\n")
    ev = conn.next_event()
    assert isinstance(ev, StartTLS)
    assert conn.next_event() is PAUSED
    assert conn.data_to_send() == b"+OK begin TLS negotiation\r\n"
    conn.send(TLSStarted())
    assert conn.next_event() is NEED_DATA  # the injected USER was dropped
    assert conn.data_to_send() == b""
    out, _ = feed(conn, b"STLS\r\n")
    assert out == b"-ERR TLS is already active\r\n"


def test_stls_unavailable_without_certificate() -> None:
    out, _ = feed(connect(), b"STLS\r\n")
    assert out == b"-ERR STLS is not available (no certificate configured)\r\n"


# -- TRANSACTION -----------------------------------------------------------------------------


def test_stat_list_uidl() -> None:
    out, _ = feed(logged_in(), b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\n")
    n1, n2 = len(MSG1), len(MSG2)
    assert (
        out
        == (
            f"+OK 2 {n1 + n2}\r\n"
            f"+OK 2 messages ({n1 + n2} octets)\r\n1 {n1}\r\n2 {n2}\r\n.\r\n"
            f"+OK 2 {n2}\r\n"
            "+OK unique-id listing follows\r\n1 7.1\r\n2 7.2\r\n.\r\n"
            "+OK 1 7.1\r\n"
        ).encode()
    )


def test_message_number_errors() -> None:
    out, _ = feed(
        logged_in(), b"LIST 3\r\nLIST 0\r\nLIST -1\r\nLIST x\r\nRETR\r\nTOP 1\r\nTOP 1 -2\r\nLIST 1 2\r\n"
    )
    assert out == (
        b"-ERR no such message\r\n"
        b"-ERR no such message\r\n"
        b"-ERR message number must be a positive integer\r\n"
        b"-ERR message number must be a positive integer\r\n"
        b"-ERR usage: RETR msg\r\n"
        b"-ERR usage: TOP msg n\r\n"
        b"-ERR line count must be a non-negative integer\r\n"
        b"-ERR usage: LIST [msg]\r\n"
    )


def test_retr_byte_stuffs_and_terminates() -> None:
    conn = logged_in()
    out, events = feed(conn, b"RETR 1\r\n")
    assert events == [Retrieve(MAILDROP[0])]
    assert out == (
        f"+OK {len(MSG1)} octets\r\n".encode()
        + b"Subject: one\r\nFrom: a@example.org\r\n\r\nline 1\r\n..dotted\r\nline 3\r\n.\r\n"
    )


def test_top_counts_body_lines() -> None:
    conn = logged_in()
    out, _ = feed(conn, b"TOP 1 0\r\nTOP 1 2\r\nTOP 1 99\r\n")
    head = b"Subject: one\r\nFrom: a@example.org\r\n\r\n"
    assert out == (
        b"+OK top of message follows\r\n" + head + b".\r\n"
        b"+OK top of message follows\r\n" + head + b"line 1\r\n..dotted\r\n.\r\n"
        b"+OK top of message follows\r\n" + head + b"line 1\r\n..dotted\r\nline 3\r\n.\r\n"
    )


def test_dele_rset_and_deleted_messages_are_invisible() -> None:
    conn = logged_in()
    out, _ = feed(conn, b"DELE 1\r\nDELE 1\r\nRETR 1\r\nSTAT\r\nLIST\r\nUIDL\r\n")
    n2 = len(MSG2)
    assert out == (
        b"+OK message 1 deleted\r\n"
        b"-ERR message 1 already deleted\r\n"
        b"-ERR message 1 already deleted\r\n"
        + f"+OK 1 {n2}\r\n+OK 1 message ({n2} octets)\r\n2 {n2}\r\n.\r\n".encode()
        + b"+OK unique-id listing follows\r\n2 7.2\r\n.\r\n"
    )
    out, _ = feed(conn, b"RSET\r\nSTAT\r\n")
    assert (
        out == f"+OK maildrop has 2 messages ({len(MSG1) + n2} octets)\r\n+OK 2 {len(MSG1) + n2}\r\n".encode()
    )


def test_quit_enters_update_with_deletions_and_retrieved() -> None:
    conn = logged_in()
    out, events = feed(conn, b"RETR 2\r\nDELE 1\r\nNOOP\r\nQUIT\r\n")
    update = events[1]
    assert update == Update(deleted=(MAILDROP[0],), retrieved=(MAILDROP[1],))
    assert out.endswith(
        b"+OK message 1 deleted\r\n+OK\r\n+OK postroom POP3 server signing off (1 message)\r\n"
    )
    assert isinstance(events[-1], Close)
    assert conn.state is State.CLOSED


def test_update_failure_reports_err() -> None:
    conn = logged_in()
    conn.receive_data(b"DELE 1\r\nQUIT\r\n")
    ev = conn.next_event()
    assert isinstance(ev, Update)
    conn.send(Reject("some deleted messages not removed", "SYS/TEMP"))
    assert (
        conn.data_to_send()
        == b"+OK message 1 deleted\r\n-ERR [SYS/TEMP] some deleted messages not removed\r\n"
    )
    assert isinstance(conn.next_event(), Close)


def test_rset_after_dele_keeps_everything_at_quit() -> None:
    out, events = feed(logged_in(), b"DELE 1\r\nDELE 2\r\nRSET\r\nQUIT\r\n")
    assert Update(deleted=(), retrieved=()) in events
    assert out.endswith(b"signing off (2 messages)\r\n")


def test_empty_maildrop() -> None:
    conn = connect()
    conn.receive_data(b"USER nobody@example.org\r\nPASS x\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nQUIT\r\n")
    ev = conn.next_event()
    assert isinstance(ev, Authenticate)
    conn.send(AuthAccepted("nobody@example.org", ()))
    ev = conn.next_event()
    assert ev == Update((), ())
    conn.send(UpdateDone(0))
    assert conn.data_to_send() == (
        b"+OK send PASS for nobody@example.org\r\n"
        b"+OK nobody@example.org has 0 messages (0 octets)\r\n"
        b"+OK 0 0\r\n+OK 0 messages (0 octets)\r\n.\r\n"
        b"+OK unique-id listing follows\r\n.\r\n"
        b"-ERR no such message\r\n"
        b"+OK postroom POP3 server signing off (maildrop empty)\r\n"
    )


# -- framing, pipelining, limits -------------------------------------------------------------


def test_pipelined_commands_in_one_chunk_answer_in_order() -> None:
    conn = connect()
    out, _ = feed(conn, b"USER a\r\nPASS b\r\nSTAT\r\nRETR 2\r\nLIST 1\r\nQUIT\r\n")
    n1, n2 = len(MSG1), len(MSG2)
    assert out == (
        b"+OK send PASS for a\r\n"
        + f"+OK a has 2 messages ({n1 + n2} octets)\r\n+OK 2 {n1 + n2}\r\n".encode()
        + f"+OK {n2} octets\r\n".encode()
        + MSG2
        + f".\r\n+OK 1 {n1}\r\n".encode()
        + b"+OK postroom POP3 server signing off (2 messages)\r\n"
    )


def test_byte_at_a_time_and_bare_lf() -> None:
    conn = logged_in()
    out = b""
    for byte in b"STAT\nNOOP\r\n":
        chunk, _ = feed(conn, bytes([byte]))
        out += chunk
    assert out == f"+OK 2 {len(MSG1) + len(MSG2)}\r\n+OK\r\n".encode()


def test_paused_until_answered_and_api_misuse() -> None:
    conn = logged_in()
    conn.receive_data(b"RETR 1\r\nNOOP\r\n")
    assert isinstance(conn.next_event(), Retrieve)
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.send(TLSStarted())
    conn.send(Reject("message vanished", "SYS/TEMP"))
    assert conn.next_event() is NEED_DATA
    assert conn.data_to_send() == b"-ERR [SYS/TEMP] message vanished\r\n+OK\r\n"
    with pytest.raises(LocalProtocolError):
        conn.send(UpdateDone(0))


def test_abort_refuses_pending_event() -> None:
    conn = logged_in()
    conn.receive_data(b"RETR 1\r\n")
    assert isinstance(conn.next_event(), Retrieve)
    conn.abort("internal error")
    assert conn.data_to_send() == b"-ERR [SYS/TEMP] internal error\r\n"


def test_long_line_rejected_and_stream_resyncs() -> None:
    conn = logged_in()
    # Exactly the limit is fine (255 octets with CRLF): "NOOP" plus padding is a usage error.
    at_limit = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(at_limit) == MAX_COMMAND_LINE
    out, _ = feed(conn, at_limit)
    assert out == b"-ERR usage: NOOP\r\n"
    over = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 6) + b"\r\n"
    out, _ = feed(conn, over + b"STAT\r\n")
    assert (
        out
        == b"-ERR line too long (max 255 octets with CRLF)\r\n"
        + f"+OK 2 {len(MSG1) + len(MSG2)}\r\n".encode()
    )
    # A huge line without LF, delivered in pieces, gets one -ERR and the stream recovers.
    out1, _ = feed(conn, b"A" * 10_000)
    out2, _ = feed(conn, b"B" * 10_000)
    out3, _ = feed(conn, b"C\r\nNOOP\r\n")
    assert out1 + out2 + out3 == b"-ERR line too long (max 255 octets with CRLF)\r\n+OK\r\n"
    assert conn.buffered == 0


def test_malformed_bytes_get_err() -> None:
    out, _ = feed(logged_in(), b"\xff\xfe\r\nST\x00AT\r\n\r\n  \r\nXYZZY\r\n\xef\xac\x86at\r\n")
    assert out == (
        b"-ERR commands must be ASCII or UTF-8\r\n"
        b"-ERR control characters in command\r\n"
        b"-ERR empty command\r\n"
        b"-ERR empty command\r\n"
        b"-ERR unknown command\r\n"
        b"-ERR unknown command\r\n"  # U+FB06 upper-cases to "ST", but verbs are ASCII
    )


def test_too_many_bad_commands_closes() -> None:
    conn = connect()
    out, events = feed(conn, b"BOGUS\r\n" * MAX_BAD_COMMANDS + b"CAPA\r\n")
    assert out.count(b"-ERR unknown command\r\n") == MAX_BAD_COMMANDS
    assert out.endswith(b"-ERR too many bad commands, closing\r\n")
    assert events == [Close("session over")]


def test_eof_closes_and_pending_partial_line_is_dropped() -> None:
    conn = logged_in()
    conn.receive_data(b"DELE 1\r\nQUI")
    conn.receive_data(b"")
    assert conn.next_event() == Close("session over")  # no UPDATE without QUIT (RFC 1939 §6)
    assert conn.data_to_send() == b"+OK message 1 deleted\r\n"


def test_every_command_in_table_is_answered_in_each_state() -> None:
    for verb in COMMANDS:
        for conn in (connect(), logged_in()):
            out, _ = feed(conn, verb.encode() + b"\r\n")
            assert out.startswith((b"+OK", b"-ERR", b"+ ")), (verb, out)


# -- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stuffed"),
    [
        (b"", b""),
        (b"a", b"a\r\n"),
        (b".", b"..\r\n"),
        (b"a\n.b\n..c\n", b"a\r\n..b\r\n...c\r\n"),
        (b".\r\n", b"..\r\n"),
        (b"x\r\n.\r\ny", b"x\r\n..\r\ny\r\n"),
        (b"no.dot\r\n", b"no.dot\r\n"),
    ],
)
def test_dot_stuff(raw: bytes, stuffed: bytes) -> None:
    assert dot_stuff(raw) == stuffed


@pytest.mark.parametrize(
    ("raw", "lines", "top"),
    [
        (b"H: 1\r\n\r\nb1\r\nb2\r\n", 1, b"H: 1\n\nb1\n"),
        (b"H: 1\n\nb1\nb2", 5, b"H: 1\n\nb1\nb2\n"),
        (b"H: 1\r\nH: 2\r\n", 3, b"H: 1\nH: 2\n"),
        (b"\r\nbody\r\n", 0, b"\n"),
        (b"H: 1\r\n\r\n\r\n\r\nx\r\n", 2, b"H: 1\n\n\n\n"),
    ],
)
def test_top_of(raw: bytes, lines: int, top: bytes) -> None:
    assert top_of(raw, lines) == top


def test_maildrop_item_validates_uidl() -> None:
    with pytest.raises(ValueError):
        MaildropItem(1, "has space", 1)
    with pytest.raises(ValueError):
        MaildropItem(1, "x" * 71, 1)
    with pytest.raises(ValueError):
        MaildropItem(0, "a", 1)


# -- property: any bytes -> replies, never an exception ---------------------------------------

_COMMAND_WORDS = [v.encode() for v in COMMANDS] + [b"AUTH PLAIN", b"TOP 1 1", b"RETR 2", b"DELE 1", b"*"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(_COMMAND_WORDS).map(lambda w: w + b"\r\n"),
            st.tuples(st.sampled_from(_COMMAND_WORDS), st.binary(max_size=20)).map(
                lambda t: t[0] + b" " + t[1]
            ),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_any_bytes_get_replies_never_exceptions(chunks: list[bytes], tls: bool) -> None:
    conn = POP3Connection(Config(stls_available=True, apop_timestamp="<1@h>", require_tls_login=tls))
    out = conn.data_to_send()
    for chunk in chunks:
        more, _ = feed(conn, chunk)
        out += more
    assert out.startswith(GREETING[:-2])
    for line in out.split(b"\r\n")[:-1]:
        assert len(line) + 2 <= 512 or not line.startswith((b"+OK", b"-ERR"))


def test_status_lines_stay_within_512_octets() -> None:
    conn = connect()
    name = "é" * 1000  # 2000 octets of UTF-8: the greeting after login must still fit
    out, _ = feed(conn, b"AUTH PLAIN\r\n" + b64(f"\x00{name}\x00pw".encode()) + b"\r\n")
    first, second = out.split(b"\r\n")[:2]
    assert first == b"+ "
    assert second.startswith(b"+OK \xc3\xa9") and len(second) + 2 <= 512
    second.decode("utf-8")  # cut at a character boundary
