"""Independent SMTP clients deliver to postroom: aiosmtplib, swaks, Postfix smtp-source, smtplib.

Each test checks that the messages are in the store, in the right per-recipient mailboxes.
"""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from tests.helpers import RunningServer, require_tool, smtp_server, unverified

pytestmark = pytest.mark.interop


def subjects(server: RunningServer, mailbox: str) -> list[str]:
    return sorted(m.subject for m in server.app.store.list_messages(mailbox=mailbox, limit=500).messages)


def run_tool(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


# -- aiosmtplib -----------------------------------------------------------------------------


def test_aiosmtplib_starttls_auth_and_several_messages_per_connection() -> None:
    with smtp_server(tls_self_signed=True) as s:

        async def send() -> list[str]:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=s.smtp_port, tls_context=unverified())
            await client.connect(start_tls=False)
            await client.starttls()
            await client.login("carol@example.org", "whatever")
            assert client.supports_extension("pipelining")
            replies = []
            for n in range(3):
                msg = EmailMessage()
                msg["From"] = "carol@example.org"
                msg["To"] = "dave@example.org"
                msg["Subject"] = f"aiosmtplib {n}"
                msg.set_content("héllo\n.\n..\n")  # non-ASCII body and dot lines
                _, text = await client.send_message(msg, recipients=["dave@example.org", "eve@example.org"])
                replies.append(text)
            await client.quit()
            return replies

        replies = asyncio.run(send())
        assert all(r.startswith("2.0.0 Ok: queued as ") for r in replies)
        for mailbox in ("dave@example.org", "eve@example.org"):
            assert subjects(s, mailbox) == ["aiosmtplib 0", "aiosmtplib 1", "aiosmtplib 2"]
        msg_id = replies[0].rsplit(" ", 1)[1]
        env = s.app.store.get_envelope(msg_id)
        assert env is not None and env.tls and env.auth_user == "carol@example.org"
        raw = s.app.store.get_raw(msg_id)
        assert raw is not None and b"\r\n.\r\n..\r\n" in raw


def test_aiosmtplib_implicit_tls_smtputf8() -> None:
    with smtp_server(tls_self_signed=True, smtps="127.0.0.1:0") as s:
        port = s.addr("smtps")[1]

        async def send() -> None:
            async with aiosmtplib.SMTP(
                hostname="127.0.0.1", port=port, use_tls=True, tls_context=unverified()
            ) as client:
                msg = EmailMessage()
                msg["From"] = "jörg@exämple.org"
                msg["To"] = "zoë@example.org"
                msg["Subject"] = "utf8"
                msg.set_content("x")
                await client.send_message(msg)

        asyncio.run(send())
        page = s.app.store.list_messages(mailbox="zoë@example.org")
        assert [m.subject for m in page.messages] == ["utf8"]
        env = s.app.store.get_envelope(page.messages[0].id)
        assert env is not None and env.smtputf8 and env.tls and env.mail_from == "jörg@exämple.org"


# -- smtplib ----------------------------------------------------------------------------------


def test_smtplib_send_message_delivers_to_the_bcc_recipient() -> None:
    with smtp_server() as s, smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as client:
        msg = EmailMessage()
        msg["From"] = "a@example.org"
        msg["To"] = "to@example.org"
        msg["Cc"] = "cc@example.org"
        msg["Bcc"] = "secret@example.org"
        msg["Subject"] = "with bcc"
        msg.set_content("hi")
        client.send_message(msg)  # strips Bcc from the headers, keeps it in RCPT TO
        for mailbox in ("to@example.org", "cc@example.org", "secret@example.org"):
            assert subjects(s, mailbox) == ["with bcc"]
        raw = s.app.store.get_raw(s.app.store.list_messages().messages[0].id)
        # as Mailpit's store: the recipient the headers no longer name is listed in a Bcc header
        assert raw is not None and b"\r\nBcc: secret@example.org\r\n" in raw


# -- swaks --------------------------------------------------------------------------------------


def swaks(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_tool(
        [
            require_tool("swaks"),
            "--server",
            "127.0.0.1",
            "--port",
            str(port),
            "--from",
            "swaks@example.org",
            "--helo",
            "swaks.example",
            *extra,
        ],
    )


def test_swaks_plain_and_pipelined() -> None:
    with smtp_server() as s:
        r = swaks(s.smtp_port, "--to", "one@example.org,two@example.org", "--header", "Subject: swaks plain")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "<-  250 2.0.0 Ok: queued as" in r.stdout
        r = swaks(
            s.smtp_port, "--to", "one@example.org", "--pipeline", "--header", "Subject: swaks pipelined"
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert subjects(s, "one@example.org") == ["swaks pipelined", "swaks plain"]
        assert subjects(s, "two@example.org") == ["swaks plain"]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_starttls_and_auth(tmp_path: Path, mechanism: str) -> None:
    creds = tmp_path / "users"
    creds.write_text("swaks@example.org:sekrit\n")
    with smtp_server(tls_self_signed=True, smtp_auth_file=str(creds), smtp_require_auth=True) as s:
        base = ["--to", "auth@example.org", "--tls", "--auth", mechanism, "--auth-user", "swaks@example.org"]
        bad = swaks(s.smtp_port, *base, "--auth-password", "wrong")
        assert bad.returncode != 0
        assert "535 5.7.8" in bad.stdout
        r = swaks(s.smtp_port, *base, "--auth-password", "sekrit", "--header", f"Subject: swaks {mechanism}")
        assert r.returncode == 0, r.stdout + r.stderr
        assert (
            "<~  220 2.0.0 Ready to start TLS" in r.stdout or "<-  220 2.0.0 Ready to start TLS" in r.stdout
        )
        assert subjects(s, "auth@example.org") == [f"swaks {mechanism}"]
        msg_id = s.app.store.list_messages(mailbox="auth@example.org").messages[0].id
        env = s.app.store.get_envelope(msg_id)
        assert env is not None and env.tls and env.auth_user == "swaks@example.org"


def test_swaks_tls_on_connect() -> None:
    with smtp_server(tls_self_signed=True, smtps="127.0.0.1:0") as s:
        r = swaks(
            s.addr("smtps")[1], "--to", "tlsc@example.org", "--tls-on-connect", "--header", "Subject: smtps"
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert subjects(s, "tlsc@example.org") == ["smtps"]


def test_swaks_oversize_is_refused() -> None:
    with smtp_server(smtp_max_size=2000) as s:
        r = swaks(s.smtp_port, "--to", "big@example.org", "--body", "x" * 5000)
        assert r.returncode != 0
        assert "552 5.3.4" in r.stdout
        assert subjects(s, "big@example.org") == []


# -- Postfix smtp-source ------------------------------------------------------------------------


@pytest.mark.parametrize("keep_conn", [False, True], ids=["conn-per-message", "one-conn-many-messages"])
def test_smtp_source_burst(keep_conn: bool) -> None:
    tool = require_tool("smtp-source", "postfix")
    with smtp_server() as s:
        args = [tool, "-s", "5", "-m", "60", "-l", "3000", "-f", "src@example.org", "-t", "burst@example.org"]
        if keep_conn:
            args.insert(1, "-d")
        r = run_tool([*args, f"127.0.0.1:{s.smtp_port}"])
        assert r.returncode == 0, r.stderr
        page = s.app.store.list_messages(mailbox="burst@example.org", limit=1)
        assert page.total == 60
        raw = s.app.store.get_raw(page.messages[0].id)
        assert raw is not None and raw.startswith(b"Return-Path: <") and b"\r\nReceived: from " in raw


def test_smtp_source_many_recipients_one_message() -> None:
    tool = require_tool("smtp-source", "postfix")
    with smtp_server() as s:
        # -r 5: five recipients per message, named 1burst@, 2burst@, ... by smtp-source
        r = run_tool(
            [
                tool,
                "-m",
                "2",
                "-r",
                "5",
                "-f",
                "src@example.org",
                "-t",
                "burst@example.org",
                f"127.0.0.1:{s.smtp_port}",
            ]
        )
        assert r.returncode == 0, r.stderr
        assert s.app.store.list_messages().total == 2
        boxes = {b.name: b.total for b in s.app.store.mailboxes()}
        assert sum(boxes.values()) == 10 and len(boxes) == 5, boxes
