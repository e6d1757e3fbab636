"""Mailpit behaviours a migrating client or script relies on (issue 22): the send API's own
credentials, inline UI credentials, form-body deletes, Mailpit's view and API-doc addresses,
its version string, chaos defaults and the server label."""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import RunningServer, running_server
from tests.integration._api_client import Api, q, smtp_send


def _call(
    server: RunningServer, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.addr("http")
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


SEND = b'{"From": {"Email": "a@example.org"}, "To": [{"Email": "b@example.org"}], "Subject": "s"}'
JSON = {"Content-Type": "application/json"}


def test_send_api_has_its_own_credentials(tmp_path: Path) -> None:
    """--send-api-auth-file: only those credentials send (the UI's do not); the rest of the
    API keeps the UI's (inline, as MP_UI_AUTH gives them)."""
    sender = tmp_path / "send-users"
    sender.write_text("robot:" + bcrypt.hashpw(b"beep", bcrypt.gensalt(4)).decode() + "\n")
    with running_server(ui_auth="admin:pw other:pw2", send_api_auth_file=str(sender)) as s:
        assert _call(s, "GET", "/api/v1/messages")[0] == 401
        assert _call(s, "GET", "/api/v1/messages", headers=_basic("other", "pw2"))[0] == 200
        assert _call(s, "GET", "/api/v1/messages", headers=_basic("admin", "nope"))[0] == 401
        assert _call(s, "POST", "/api/v1/send", SEND, {**JSON, **_basic("admin", "pw")})[0] == 401
        assert _call(s, "POST", "/api/v1/send", SEND, JSON)[0] == 401
        status, _, body = _call(s, "POST", "/api/v1/send", SEND, {**JSON, **_basic("robot", "beep")})
        assert status == 200 and b'"ID"' in body
        assert _call(s, "GET", "/api/v1/messages", headers=_basic("robot", "beep"))[0] == 401


def test_send_api_accept_any_and_the_default() -> None:
    with running_server(ui_auth="admin:pw", send_api_auth_accept_any=True) as s:
        assert _call(s, "POST", "/api/v1/send", SEND, JSON)[0] == 200
        assert _call(s, "GET", "/api/v1/messages")[0] == 401
    with running_server(ui_auth="admin:pw") as s:  # neither: the UI's credentials
        assert _call(s, "POST", "/api/v1/send", SEND, JSON)[0] == 401
        assert _call(s, "POST", "/api/v1/send", SEND, {**JSON, **_basic("admin", "pw")})[0] == 200


def test_delete_with_a_form_body_deletes_only_the_ids_it_names(server: RunningServer) -> None:
    api = Api(server)
    ids = [api.send(To=[{"Email": "x@example.org"}], Subject=f"m{i}") for i in range(4)]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _call(server, "DELETE", "/api/v1/messages", f"ids={ids[0]}".encode(), form)[0] == 200
    assert _call(server, "DELETE", "/api/v1/messages", f"IDs={ids[1]},{ids[2]}".encode(), form)[0] == 200
    left = [m["ID"] for m in api.get("/api/v1/messages").json()["messages"]]
    assert left == [ids[3]]
    # a form naming no ids, or other fields, is refused: never "delete everything"
    for body in (b"", b"ids=", b"id=" + ids[3].encode(), b"query=x"):
        status, _, _ = _call(
            server, "DELETE", "/api/v1/messages", body, {**form, "Content-Length": str(len(body))}
        )
        assert status == 400
        assert [m["ID"] for m in api.get("/api/v1/messages").json()["messages"]] == [ids[3]]


def test_mailpit_addresses_version_chaos_and_label() -> None:
    with running_server(enable_chaos=True, label="staging mail", hide_delete_all_button=True) as s:
        api = Api(s)
        first = api.send(To=[{"Email": "x@example.org"}], Subject="first")
        newest = api.send(To=[{"Email": "x@example.org"}], Subject="second")
        status, headers, _ = _call(s, "GET", "/view/latest")
        assert status == 302 and headers["location"] == f"/#id={newest}"
        status, headers, _ = _call(s, "GET", "/view/latest?query=subject:first")
        assert status == 302 and headers["location"] == f"/#id={first}"
        status, headers, _ = _call(s, "GET", f"/view/{first}")
        assert status == 302 and headers["location"] == f"/#id={first}"
        status, headers, _ = _call(s, "GET", "/view/latest?query=subject:nothing-matches")
        assert status == 302 and headers["location"] == "/"
        swagger = api.get("/api/v1/swagger.json").json()
        assert "/api/v1/messages" in swagger["paths"]
        status, headers, _ = _call(s, "GET", "/api/v1/")
        assert status == 302 and urlsplit(headers["location"]).path == "/api/docs"
        info = api.get("/api/v1/info").json()
        assert info["Version"].startswith("v") and info["Version"][1:2].isdigit()
        chaos = api.get("/api/v1/chaos").json()
        assert chaos["Authentication"]["ErrorCode"] == 535 and chaos["Sender"]["ErrorCode"] == 451
        webui = api.get("/api/v1/webui").json()
        assert webui["Label"] == "staging mail" and webui["HideDeleteAllButton"] is True


def test_max_age_prunes_an_idle_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-age: expired mail goes although no new mail arrives (Mailpit sweeps each minute;
    postroom every AGE_SWEEP_INTERVAL, shortened here)."""
    from postroom.runtime import install
    from postroom.store import sqlite_writes

    monkeypatch.setattr(install, "AGE_SWEEP_INTERVAL", 0.2)
    monkeypatch.setattr(sqlite_writes, "PRUNE_INTERVAL", 0.1)
    with running_server(max_age="1s") as s:
        api = Api(s)
        smtp_send(s, b"Subject: old\r\n\r\nx\r\n", ["a@example.org"])
        assert api.get("/api/v1/messages").json()["total"] == 1
        deadline = time.monotonic() + 15  # a bound that proves it happens, not a timing
        while api.get("/api/v1/messages").json()["total"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert api.get("/api/v1/messages").json()["total"] == 0


# Keys a client might send for the IDs of a bulk call, right or wrong, and values of every shape.
_KEYS = st.sampled_from(
    ["IDs", "ids", "Ids", "iDs", "ID", "id", "Id", "IDS ", "Read", "read", "Search", "x", ""]
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["A", "B", "zzz", "", "A,B"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["IDs", "a"]), inner, max_size=2)
    ),
    max_leaves=6,
)


def _given_ids(body: dict[str, Any], real: dict[str, str]) -> list[str] | None:
    """The IDs a body names under an IDs key in any letter case (placeholders resolved)."""
    values = [v for k, v in body.items() if k.lower() == "ids"]
    if len(values) != 1 or not isinstance(values[0], list):
        return None
    return [real.get(v, v) if isinstance(v, str) else v for v in values[0]]


@settings(
    max_examples=80, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(body=st.dictionaries(_KEYS, _VALUES, max_size=3), method=st.sampled_from(["DELETE", "PUT"]))
def test_no_body_shape_widens_a_bulk_call(
    shared_server: RunningServer, body: dict[str, Any], method: str
) -> None:
    """A bulk call changes at most the messages whose IDs it names; only a body naming no
    IDs and nothing else ({} , {"IDs": []} or null; for PUT also Read) means "all"."""
    api = Api(shared_server)
    api.request("DELETE", "/api/v1/messages")
    ids = [api.send(To=[{"Email": "x@example.org"}], Subject=f"m{i}") for i in range(3)]
    real = {"A": ids[0], "B": ids[1]}
    wire = {k: ([real.get(x, x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v)
            for k, v in body.items()}  # fmt: skip
    r = api.request(method, "/api/v1/messages", wire)
    after = {m["ID"]: m["Read"] for m in api.get("/api/v1/messages").json()["messages"]}
    touched = set(ids) - set(after) if method == "DELETE" else {i for i in ids if after.get(i)}
    if r.status != 200 or not touched:
        return
    named = _given_ids(wire, real)
    if named:
        assert touched <= set(named), (body, touched)
    else:  # everything: only when the body names no IDs and nothing but Read (PUT)
        allowed = {"ids"} | ({"read"} if method == "PUT" else set())
        assert all(k.lower() in allowed for k in wire), (body, touched)
        assert all(v in (None, []) for k, v in wire.items() if k.lower() == "ids"), (body, touched)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RunningServer]:
    with running_server() as s:
        yield s


def test_smtp_allowed_recipients_refuses_the_others() -> None:
    """--smtp-allowed-recipients (MP_SMTP_ALLOWED_RECIPIENTS): a recipient not matching is
    refused with Mailpit's 550; the message goes to the ones that match."""
    import smtplib

    with running_server(smtp_allowed_recipients=r"@example\.org$") as s:
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
            refused = c.sendmail(
                "a@example.net", ["ok@example.org", "no@example.com"], b"Subject: x\r\n\r\nx\r\n"
            )
        assert refused == {"no@example.com": (550, b"5.1.0 Requested action not taken: mailbox unavailable")}
        [m] = Api(s).get("/api/v1/messages").json()["messages"]
        assert m["Subject"] == "x"
        envelope = Api(s).get(f"/api/v2/message/{m['ID']}/envelope").json()
        assert envelope["RcptTo"] == ["ok@example.org"]


def test_smtp_ignore_rejected_recipients_answers_250_and_drops_them() -> None:
    """--smtp-ignore-rejected-recipients (MP_SMTP_IGNORE_REJECTED_RECIPIENTS): a recipient
    --smtp-allowed-recipients refuses gets 250 and is left out; a message for refused
    recipients only is accepted and not stored."""
    import smtplib

    from postroom import mailpit_env

    values, notes = mailpit_env.read(
        {"MP_SMTP_ALLOWED_RECIPIENTS": r"@example\.org$", "MP_SMTP_IGNORE_REJECTED_RECIPIENTS": "true"},
        frozenset({"smtp_allowed_recipients", "smtp_ignore_rejected_recipients"}),
    )
    assert notes == [] and values["smtp_ignore_rejected_recipients"] is True
    with running_server(**values) as s:
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
            refused = c.sendmail(
                "a@example.net", ["no@example.com", "ok@example.org"], b"Subject: one\r\n\r\nx\r\n"
            )
            assert refused == {}
            c.ehlo()
            c.mail("a@example.net")
            assert c.rcpt("nobody@example.com")[0] == 250
            code, text = c.data(b"Subject: two\r\n\r\nx\r\n")
            assert code == 250 and b"ignored" in text
        [m] = Api(s).get("/api/v1/messages").json()["messages"]
        assert m["Subject"] == "one"
        envelope = Api(s).get(f"/api/v2/message/{m['ID']}/envelope").json()
        assert envelope["RcptTo"] == ["ok@example.org"]


def test_use_message_dates_makes_created_the_date_header() -> None:
    """--use-message-dates (MP_USE_MESSAGE_DATES): Created is the Date header's time, for
    SMTP and the send API; without a readable Date, the arrival time; without the option,
    always the arrival time."""
    import smtplib

    from postroom import mailpit_env

    values, notes = mailpit_env.read({"MP_USE_MESSAGE_DATES": "1"}, frozenset({"use_message_dates"}))
    assert notes == [] and values == {"use_message_dates": True}
    dated = b"Date: Tue, 01 Mar 2022 10:20:30 +0100\r\nSubject: %s\r\n\r\nx\r\n"
    for on in (True, False):
        with running_server(use_message_dates=on) as s:
            with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
                c.sendmail("a@example.org", ["b@example.org"], dated % b"dated")
                c.sendmail(
                    "a@example.org", ["b@example.org"], b"Date: not a date\r\nSubject: bad\r\n\r\nx\r\n"
                )
            Api(s).send(
                From={"Email": "a@example.org"},
                To=[{"Email": "b@example.org"}],
                Subject="api",
                Headers={"Date": "Tue, 01 Mar 2022 10:20:30 +0100"},
            )
            created = {m["Subject"]: m["Created"] for m in Api(s).get("/api/v1/messages").json()["messages"]}
            assert set(created) == {"dated", "bad", "api"}
            assert created["dated"].startswith("2022-03-01T09:20:30") is on, created
            assert created["api"].startswith("2022-03-01T09:20:30") is on, created
            assert not created["bad"].startswith("2022"), created


def _raw_smtp(port: int, data: bytes) -> bytes:
    """One message sent byte for byte (smtplib would rewrite its line breaks); the reply to
    the end of data."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
        f = c.makefile("rb")
        f.readline()
        c.sendall(b"HELO t\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        assert [f.readline()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        c.sendall(data + b"\r\n.\r\n")
        reply = f.readline()
        c.sendall(b"QUIT\r\n")
        return reply


def test_smtp_strict_rfc_headers_refuses_other_line_breaks_in_the_header() -> None:
    """--smtp-strict-rfc-headers (MP_SMTP_STRICT_RFC_HEADERS): CR CR LF or a bare CR in the
    header block is refused with a 550; in the body it is not, nor are bare LFs (stored as
    CRLF); without the option such a message is stored."""
    from postroom import mailpit_env

    values, notes = mailpit_env.read(
        {"MP_SMTP_STRICT_RFC_HEADERS": "true"}, frozenset({"smtp_strict_rfc_headers"})
    )
    assert notes == [] and values == {"smtp_strict_rfc_headers": True}
    bad = [
        b"Subject: crcrlf\r\r\nFrom: a@example.org\r\n\r\nx",
        b"Subject: crcrlf\r\r\nFrom: a@example.org\r\r\n\r\r\nx",
        b"Subject: cr\rFrom: a@example.org\r\n\r\nx",
    ]
    fine = b"Subject: fine\r\nFrom: a@example.org\r\n\r\nbody line\nwith a bare LF\r\r\n"
    lf = b"Subject: lf\nFrom: a@example.org\n\nx"
    with running_server(**values) as s:
        for data in bad:
            assert _raw_smtp(s.smtp_port, data).startswith(b"550 5.6.0 "), data
        assert _raw_smtp(s.smtp_port, fine).startswith(b"250 "), fine
        assert _raw_smtp(s.smtp_port, lf).startswith(b"250 "), lf
        subjects = [m["Subject"] for m in Api(s).get("/api/v1/messages").json()["messages"]]
        assert sorted(subjects) == ["fine", "lf"]
    with running_server() as s:
        assert _raw_smtp(s.smtp_port, bad[0]).startswith(b"250 ")


def test_per_key_mp_smtp_relay_variables_make_a_relay() -> None:
    """MP_SMTP_RELAY_HOST, _PORT, ... (no config file): a relay as the YAML file would give;
    with MP_SMTP_RELAY_ALL each message goes to the upstream server, with the override-from
    and the blocked-recipients rule applied. Bad values stop the start with one line."""
    import smtplib
    import time

    from postroom.config import ConfigError, load

    with running_server(pop3="off", imap="off", http="off") as up:
        env = {
            "MP_SMTP_RELAY_HOST": "127.0.0.1",
            "MP_SMTP_RELAY_PORT": str(up.smtp_port),
            "MP_SMTP_RELAY_STARTTLS": "false",
            "MP_SMTP_RELAY_OVERRIDE_FROM": "relay@example.com",
            "MP_SMTP_RELAY_BLOCKED_RECIPIENTS": r"@blocked\.example$",
            "MP_SMTP_RELAY_PASSWORD": "pw-s3cret-42",  # no username: AUTH none, as in the file
            "MP_SMTP_RELAY_ALL": "true",
        }
        settings = load(None, env=env)
        assert settings.smtp_relay_all and not settings.smtp_relay_config
        assert "pw-s3cret-42" not in repr(settings)  # the relay's keys (a password) stay out of logs
        keys = {k: v for k, v in settings.smtp_relay_keys}
        with running_server(
            pop3="off", imap="off", smtp_relay_all=True, smtp_relay_keys=tuple(keys.items())
        ) as s:
            with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
                c.sendmail(
                    "app@example.org", ["a@example.net", "b@blocked.example"], b"Subject: r\r\n\r\nx\r\n"
                )
            deadline = time.monotonic() + 30
            while up.app.store.list_messages(mailbox="a@example.net").total == 0:
                assert time.monotonic() < deadline, "not relayed"
                time.sleep(0.05)
            [m] = up.app.store.list_messages(mailbox="a@example.net").messages
            assert up.app.store.list_messages(mailbox="b@blocked.example").total == 0
        assert m.from_.address == "relay@example.com", m.from_
    bad_port = (("host", "127.0.0.1"), ("port", "x"))
    with pytest.raises(ConfigError, match=r"^MP_SMTP_RELAY_\*: "), running_server(smtp_relay_keys=bad_port):
        pass
    with pytest.raises(ConfigError, match="not both"):
        load(None, env={"MP_SMTP_RELAY_HOST": "h", "MP_SMTP_RELAY_CONFIG": __file__})


def test_per_key_mp_smtp_forward_variables_forward_each_message() -> None:
    """MP_SMTP_FORWARD_HOST, _PORT, _TO, ... (no config file): each message is forwarded to
    the _TO addresses, as the forward YAML file would; no _TO stops the start."""
    import smtplib
    import time

    from postroom.config import ConfigError, load

    with running_server(pop3="off", imap="off", http="off") as up:
        env = {
            "MP_SMTP_FORWARD_HOST": "127.0.0.1",
            "MP_SMTP_FORWARD_PORT": str(up.smtp_port),
            "MP_SMTP_FORWARD_TO": "archive@example.com, audit@example.com",
            "MP_SMTP_FORWARD_PASSWORD": "pw-s3cret-43",
        }
        settings = load(None, env=env)
        assert not settings.smtp_forward_config and "pw-s3cret-43" not in repr(settings)
        with running_server(pop3="off", imap="off", smtp_forward_keys=settings.smtp_forward_keys) as s:
            with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
                c.sendmail("app@example.org", ["a@example.net"], b"Subject: f\r\n\r\nx\r\n")
            deadline = time.monotonic() + 30
            boxes = ("archive@example.com", "audit@example.com")
            while any(up.app.store.list_messages(mailbox=b).total == 0 for b in boxes):
                assert time.monotonic() < deadline, "not forwarded"
                time.sleep(0.05)
            assert up.app.store.list_messages(mailbox="a@example.net").total == 0
    with (
        pytest.raises(ConfigError, match=r"^MP_SMTP_FORWARD_\*: to "),
        running_server(smtp_forward_keys=(("host", "127.0.0.1"),)),
    ):
        pass
    with pytest.raises(ConfigError, match="not both"):
        load(None, env={"MP_SMTP_FORWARD_HOST": "h", "MP_SMTP_FORWARD_CONFIG": __file__})


def test_inline_smtp_credentials_as_mp_smtp_auth() -> None:
    """MP_SMTP_AUTH 'user:password ...': those logins only, and AUTH required (as Mailpit)."""
    import smtplib

    from postroom import mailpit_env

    values, _ = mailpit_env.read(
        {"MP_SMTP_AUTH": "app:s3cret other:pw"}, frozenset({"smtp_auth", "smtp_require_auth"})
    )
    assert values == {"smtp_auth": "app:s3cret other:pw", "smtp_require_auth": True}
    with running_server(**values) as s, smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        with pytest.raises(smtplib.SMTPSenderRefused):
            c.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("app", "wrong")
        c.login("app", "s3cret")
        c.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
        assert Api(s).get("/api/v1/messages").json()["messages"][0]["Username"] == "app"


def test_ignore_duplicate_ids_accepts_and_drops_a_repeat() -> None:
    """--ignore-duplicate-ids (MP_IGNORE_DUPLICATE_IDS): a message whose Message-ID is stored
    already is answered 250 and not stored again (Mailpit's SMTPIgnored counts it)."""
    with running_server(ignore_duplicate_ids=True) as s:
        api = Api(s)
        for subject in ("first", "again"):
            smtp_send(
                s,
                f"Message-ID: <same@example.org>\r\nSubject: {subject}\r\n\r\nx\r\n".encode(),
                ["a@example.org"],
            )
        smtp_send(s, b"Message-ID: <other@example.org>\r\nSubject: other\r\n\r\nx\r\n", ["a@example.org"])
        assert [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]] == ["other", "first"]
        assert api.get("/api/v1/info").json()["RuntimeStats"]["SMTPIgnored"] == 1
        assert "\nmailpit_smtp_ignored_total 1\n" in api.get("/metrics").text


def test_has_inline_search_and_the_message_views_inline_list(server: RunningServer) -> None:
    """has:inline through Mailpit's search route: the message whose picture is sent with a
    ContentID (inline, shown by cid:) against one attached plainly and one with neither."""
    api = Api(server)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    to = [{"Email": "x@example.org"}]
    inline = api.send(
        To=to,
        Subject="logo",
        HTML='<img src="cid:logo">',
        Attachments=[{"Content": png, "Filename": "logo.png", "ContentID": "logo"}],
    )
    attached = api.send(
        To=to, Subject="file", Text="see", Attachments=[{"Content": png, "Filename": "f.png"}]
    )
    plain = api.send(To=to, Subject="none", Text="nothing")
    api.wait_indexed()

    def found(query: str) -> set[str]:
        r = api.get("/api/v1/search?query=" + q(query))
        assert r.status == 200, r.text
        return {m["ID"] for m in r.json()["messages"]}

    assert found("has:inline") == {inline}
    assert found("has:attachment") == {attached}
    assert found("-has:inline") == {attached, plain}
    view = api.get(f"/api/v1/message/{inline}").json()
    assert [p["FileName"] for p in view["Inline"]] == ["logo.png"] and view["Attachments"] == []
