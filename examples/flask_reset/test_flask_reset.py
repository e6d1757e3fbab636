"""The password-reset flow, end to end through a real SMTP server (postroom's `mail` fixture)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from reset_app import create_app


@pytest.fixture
def client(mail):  # type: ignore[no-untyped-def]
    app = create_app("127.0.0.1", mail.smtp_port)
    return app.test_client()


def test_reset_link_and_code(client, mail) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/forgot", data={"email": "Alice@Example.com"}).status_code == 202

    msg = mail.wait_for(to="alice@example.com", subject="Reset your password")
    assert msg.from_.address == "no-reply@app.example"
    path = urlsplit(msg.link("/reset/")).path
    code = msg.code(r"code: (\d{6})")

    assert client.get(path).status_code == 200
    wrong = "111111" if code != "111111" else "222222"
    assert client.post(path, data={"code": wrong, "password": "x"}).status_code == 400
    assert client.post(path, data={"code": code, "password": "new-password"}).status_code == 200
    assert client.application.config["PASSWORDS"]["alice@example.com"] == "new-password"
    assert client.get(path).status_code == 404  # the link works once


def test_unknown_address_gets_no_mail(client, mail) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/forgot", data={"email": "nobody@example.com"}).status_code == 202
    mail.assert_not_received()


@pytest.mark.postroom(chaos="rcpt:451 4.3.0 mailbox busy, try later")
def test_mail_server_refusal_is_shown_to_the_user(client, mail) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/forgot", data={"email": "alice@example.com"})
    assert resp.status_code == 503 and b"could not send" in resp.data
    mail.assert_not_received()
