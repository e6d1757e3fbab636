"""`postroom send` and `postroom sendmail` as a user runs them: real processes, a real
postroom listening on loopback (STARTTLS, implicit TLS, AUTH), errors as one line."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from postroom.servers.tls import generate_self_signed
from tests.helpers import RunningServer, smtp_server

POSTROOM = str(Path(sys.executable).with_name("postroom"))


def run(
    args: list[str], *, stdin: bytes = b"", env: dict[str, str] | None = None, exe: str = POSTROOM
) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "MP_"))}
    full_env.update(env or {})
    return subprocess.run([exe, *args], input=stdin, capture_output=True, env=full_env, timeout=60)


def stored(s: RunningServer, mailbox: str) -> list[EmailMessage]:
    out = []
    for summary in s.app.store.list_messages(mailbox=mailbox).messages:
        raw = s.app.store.get_raw(summary.id)
        assert raw is not None
        out.append(email.message_from_bytes(raw, policy=policy.default))
    return out  # type: ignore[return-value]


def sent_fields(msg: EmailMessage) -> list[str]:
    """The header field names the sender wrote: without the lines the receiving server adds
    on top (Return-Path, Received, then a Message-ID and Bcc it may add, as Mailpit does)."""
    names = list(msg.keys())
    assert names[:2] == ["Return-Path", "Received"], names
    rest = names[2:]
    for added in ("Message-ID", "Bcc"):
        if rest and rest[0] == added:
            rest = rest[1:]
    return rest


@pytest.fixture
def cert(tmp_path: Path) -> tuple[str, str]:
    cert_pem, key_pem = generate_self_signed("localhost")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def test_send_composes_a_whole_message_through_starttls_and_auth(
    tmp_path: Path, cert: tuple[str, str]
) -> None:
    creds = tmp_path / "users"
    creds.write_text("sender@example.org:pa ss\n")
    (tmp_path / "rapport été.pdf").write_bytes(b"%PDF-1.4 test")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n fake")
    with smtp_server(
        tls_cert=cert[0],
        tls_key=cert[1],
        smtp_auth_file=str(creds),
        smtp_require_auth=True,
        smtp_require_tls=True,
    ) as s:
        r = run(
            [
                "send",
                "--server",
                f"127.0.0.1:{s.smtp_port}",
                "--tls",
                "starttls",
                "--cafile",
                cert[0],
                "--user",
                "sender@example.org",
                "--from",
                "Jörg Sender <sender@example.org>",
                "--to",
                "alice@example.org, Bob <bob@example.org>",
                "--bcc",
                "hidden@example.org",
                "--subject",
                "Grüße: your report",
                "--text",
                "Hello in text",
                "--html",
                '<p>Hi <img src="cid:logo1"></p>',
                "--attach",
                str(tmp_path / "rapport été.pdf"),
                "--inline",
                f"logo1={tmp_path / 'logo.png'}",
                "--list-unsubscribe",
                "https://example.org/u/1",
                "--list-unsubscribe",
                "mailto:u@example.org",
                "--one-click",
                "--header",
                "X-Campaign: winter",
            ],
            env={"POSTROOM_SMTP_PASSWORD": "pa ss"},
        )
        assert r.returncode == 0, r.stderr
        assert b"sent to 3 of 3 recipients" in r.stdout
        for box in ("alice@example.org", "bob@example.org", "hidden@example.org"):
            [msg] = stored(s, box)
        assert "Bcc" not in sent_fields(msg) and msg["Bcc"] == "hidden@example.org"  # the server's
        assert msg["Subject"] == "Grüße: your report"
        assert msg["From"].addresses[0].display_name == "Jörg Sender"
        assert msg["List-Unsubscribe"] == "<https://example.org/u/1>, <mailto:u@example.org>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["X-Campaign"] == "winter" and msg["Message-ID"] and msg["Date"]
        assert msg.get_content_type() == "multipart/mixed"
        alt = msg.get_payload()[0]
        assert alt.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in alt.get_payload()] == ["text/plain", "multipart/related"]
        related = alt.get_payload()[1]
        html, image = related.get_payload()
        assert html.get_content().strip() == '<p>Hi <img src="cid:logo1"></p>'
        assert image["Content-ID"] == "<logo1>" and image.get_content_disposition() == "inline"
        pdf = msg.get_payload()[1]
        assert pdf.get_filename() == "rapport été.pdf" and pdf.get_content() == b"%PDF-1.4 test"
        msg_id = s.app.store.list_messages(mailbox="bob@example.org").messages[0].id
        raw = s.app.store.get_raw(msg_id)
        assert raw is not None and b"filename*=utf-8''rapport%20%C3%A9t%C3%A9.pdf" in raw  # RFC 2231
        assert b"Subject: =?utf-8?" in raw  # RFC 2047
        env = s.app.store.get_envelope(msg_id)
        assert env is not None and env.tls and env.auth_user == "sender@example.org"


def test_send_over_implicit_tls_and_password_file(tmp_path: Path, cert: tuple[str, str]) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    with smtp_server(tls_cert=cert[0], tls_key=cert[1], smtps="127.0.0.1:0") as s:
        port = s.addr("smtps")[1]
        r = run(
            [
                "send",
                "--server",
                f"localhost:{port}",
                "--tls",
                "tls",
                "--cafile",
                cert[0],
                "--user",
                "u",
                "--password-file",
                str(pw),
                "--from",
                "a@example.org",
                "--to",
                "tls@example.org",
                "--text",
                "x",
            ]
        )
        assert r.returncode == 0, r.stderr
        env = s.app.store.get_envelope(s.app.store.list_messages(mailbox="tls@example.org").messages[0].id)
        assert env is not None and env.tls and env.auth_user == "u"


def one_line_error(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode != 0
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_send_errors_are_one_line_naming_the_cause(tmp_path: Path, cert: tuple[str, str]) -> None:
    creds = tmp_path / "users"
    creds.write_text("u@example.org:right\n")
    base = ["--from", "a@example.org", "--to", "b@example.org", "--text", "x"]
    with smtp_server(tls_cert=cert[0], tls_key=cert[1], smtps="127.0.0.1:0", smtp_auth_file=str(creds)) as s:
        plain, implicit = s.smtp_port, s.addr("smtps")[1]
        # implicit TLS against the STARTTLS port
        err = one_line_error(run(["send", "--server", f"127.0.0.1:{plain}", "--tls", "tls", *base]))
        assert "plain SMTP" in err and "--tls starttls" in err
        # untrusted self-signed certificate
        err = one_line_error(run(["send", "--server", f"127.0.0.1:{plain}", "--tls", "starttls", *base]))
        assert "not trusted" in err and "--cafile" in err
        # wrong password, with the provider's hint when a preset names the provider
        err = one_line_error(
            run(
                [
                    "send",
                    "--server",
                    f"127.0.0.1:{implicit}",
                    "--tls",
                    "tls",
                    "--cafile",
                    cert[0],
                    "--preset",
                    "gmail",
                    "--user",
                    "u@example.org",
                    *base,
                ],
                env={"POSTROOM_SMTP_PASSWORD": "wrong"},
            )
        )
        assert "535" in err and "app password" in err
        # --user without any password source
        err = one_line_error(run(["send", "--server", f"127.0.0.1:{plain}", "--user", "u", *base]))
        assert "POSTROOM_SMTP_PASSWORD" in err
    err = one_line_error(run(["send", "--server", "127.0.0.1:1", *base]))
    assert "connection refused" in err


def test_send_dry_run_prints_and_sends_nothing() -> None:
    r = run(
        [
            "send",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--bcc",
            "c@example.org",
            "--subject",
            "Dry",
            "--text",
            "body",
            "--server",
            "127.0.0.1:1",
            "--dry-run",
        ]
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.org>\nRCPT TO:<c@example.org>\n")
    assert "Subject: Dry" in out and "Bcc" not in out


def test_presets_resolve_to_the_providers_servers() -> None:
    from postroom import providers

    gmail = providers.get("Gmail")
    assert gmail.smtp is not None and (gmail.smtp.host, gmail.smtp.port, gmail.smtp.tls) == (
        "smtp.gmail.com",
        587,
        "starttls",
    )
    assert gmail.imap is not None and gmail.imap.port == 993 and gmail.app_password
    assert {"gmail", "outlook", "163", "qq"} <= set(providers.names())
    qq = providers.get("qq")
    assert qq.smtp is not None and qq.smtp.tls == "tls" and "授权码" in qq.hint
    # --dry-run --preset shows where it would go without connecting
    r = run(
        [
            "send",
            "--preset",
            "163",
            "--from",
            "a@163.com",
            "--to",
            "b@example.org",
            "--text",
            "x",
            "--dry-run",
        ]
    )
    assert r.returncode == 0


MAIL = b"From: App <app@example.org>\nTo: Alice <alice@example.org>\nCc: carol@example.org\nBcc: secret@example.org\nSubject: from sendmail\n\nline one\n.\nafter a lone dot\n"


def test_sendmail_t_i_reads_recipients_from_headers_and_strips_bcc() -> None:
    with smtp_server() as s:
        r = run(["sendmail", "-S", f"127.0.0.1:{s.smtp_port}", "-t", "-i"], stdin=MAIL)
        assert r.returncode == 0, r.stderr
        for box in ("alice@example.org", "carol@example.org", "secret@example.org"):
            [msg] = stored(s, box)
        assert "Bcc" not in sent_fields(msg) and msg["Message-ID"] and msg["Date"]
        assert "after a lone dot" in msg.get_content()
        env = s.app.store.get_envelope(s.app.store.list_messages(mailbox="alice@example.org").messages[0].id)
        assert env is not None and env.mail_from == "app@example.org"


def test_sendmail_arguments_dot_ends_input_and_envelope_sender() -> None:
    with smtp_server() as s:
        r = run(
            ["sendmail", "-oem", "-fbounce@example.org", "-Fignored", "bob@example.org"],
            stdin=MAIL,
            env={"POSTROOM_SMTP": f"127.0.0.1:{s.smtp_port}"},
        )
        assert r.returncode == 0, r.stderr
        [msg] = stored(s, "bob@example.org")
        assert stored(s, "alice@example.org") == []  # no -t: headers are not recipients
        assert "Bcc" in msg  # kept without -t, as sendmail does
        body = msg.get_content()
        assert "line one" in body and "after a lone dot" not in body  # "." ended the input
        env = s.app.store.get_envelope(s.app.store.list_messages(mailbox="bob@example.org").messages[0].id)
        assert env is not None and env.mail_from == "bounce@example.org"


def test_sendmail_bs_speaks_smtp_on_stdio() -> None:
    with smtp_server() as s:
        dialogue = (
            b"EHLO cron\r\nMAIL FROM:<cron@example.org>\r\nRCPT TO:<ops@example.org>\r\nDATA\r\n"
            b"Subject: nightly\r\n\r\nok\r\n.\r\nQUIT\r\n"
        )
        r = run(["sendmail", "-bs", "-S", f"127.0.0.1:{s.smtp_port}"], stdin=dialogue)
        assert r.returncode == 0, r.stderr
        replies = r.stdout.decode()
        assert (
            replies.startswith("220 ")
            and "\r\n354 " in replies
            and replies.rstrip().splitlines()[-1].startswith("221")
        )
        [msg] = stored(s, "ops@example.org")
        assert msg["Subject"] == "nightly"


def test_sendmail_errors_use_sysexits() -> None:
    r = run(["sendmail", "-S", "127.0.0.1:1", "x@example.org"], stdin=MAIL)
    assert r.returncode == 75 and r.stderr.decode().count("\n") == 1  # EX_TEMPFAIL
    r = run(["sendmail", "-S", "127.0.0.1:1"], stdin=MAIL)
    assert r.returncode == 64 and b"no recipients" in r.stderr  # EX_USAGE
    r = run(["sendmail", "-bp"])
    assert r.returncode == 64 and b"not supported" in r.stderr


def test_invoked_as_sendmail_through_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "sendmail"
    link.symlink_to(POSTROOM)
    with smtp_server() as s:
        r = run(["-t", "-oi", "-S", f"127.0.0.1:{s.smtp_port}"], stdin=MAIL, exe=str(link))
        assert r.returncode == 0, r.stderr
        assert len(stored(s, "alice@example.org")) == 1


def test_send_a_ready_made_eml_file(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(MAIL)
    with smtp_server() as s:
        # recipients from the file's headers (Bcc removed), sender from From
        r = run(["send", "--eml", str(eml), "--server", f"127.0.0.1:{s.smtp_port}"])
        assert r.returncode == 0, r.stderr
        [msg] = stored(s, "secret@example.org")
        assert "Bcc" not in sent_fields(msg) and msg["Subject"] == "from sendmail"
        # explicit recipients replace the headers' ones
        r = run(
            ["send", "--eml", str(eml), "--to", "only@example.org", "--server", f"127.0.0.1:{s.smtp_port}"]
        )
        assert r.returncode == 0, r.stderr
        assert len(stored(s, "only@example.org")) == 1 and len(stored(s, "alice@example.org")) == 1


def test_send_with_an_oauth2_token_xoauth2(tmp_path: Path) -> None:
    creds = tmp_path / "users"
    creds.write_text("dev@example.org:ya29.token-value\n")
    with smtp_server(smtp_auth_file=str(creds), smtp_require_auth=True) as s:
        base = [
            "send",
            "--server",
            f"127.0.0.1:{s.smtp_port}",
            "--user",
            "dev@example.org",
            "--from",
            "dev@example.org",
            "--to",
            "x@example.org",
            "--text",
            "t",
        ]
        r = run(base, env={"POSTROOM_SMTP_OAUTH2_TOKEN": "ya29.token-value"})
        assert r.returncode == 0, r.stderr
        env = s.app.store.get_envelope(s.app.store.list_messages(mailbox="x@example.org").messages[0].id)
        assert env is not None and env.auth_user == "dev@example.org"
        r = run(base, env={"POSTROOM_SMTP_OAUTH2_TOKEN": "expired"})
        assert r.returncode == 1 and b"535" in r.stderr
