"""`postroom fetch` copying real inboxes from a real Dovecot (IMAP and POP3) into postroom:
incremental, idempotent, flags mirrored, one-line errors."""

from __future__ import annotations

import imaplib
import json
import os
import subprocess
import sys
from email.utils import make_msgid
from pathlib import Path

import pytest
from tests.helpers import running_dovecot, running_server

pytestmark = pytest.mark.interop
POSTROOM = str(Path(sys.executable).with_name("postroom"))


def account(name: str, port: int, user: str, password_env: str, **extra: object) -> str:
    """A ``[fetch.accounts.NAME]`` table for the test Dovecot on ``port`` (plain text);
    ``extra`` adds or replaces keys (``protocol="pop3"``, ``delete=True``, ``tls="tls"``...)."""
    keys: dict[str, object] = {"host": "127.0.0.1", "port": port, "tls": "none", "user": user,
                               "password_env": password_env, **extra}  # fmt: skip
    return f"[fetch.accounts.{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()) + "\n"


def remote(port: int, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login(user, "secret")
    return c


def put(c: imaplib.IMAP4, folder: str, subject: str, flags: str = "") -> None:
    msg = (f"From: x@example.net\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
           f"Message-ID: {make_msgid()}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nbody of {subject}\r\n")  # fmt: skip
    typ, _ = c.append(folder, flags or None, None, msg.encode())
    assert typ == "OK"


def local_folder(port: int, mailbox: str, folder: str) -> dict[str, str]:
    """subject -> flags of each message in a postroom folder, read over IMAP."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login(mailbox, "x")
    typ, _ = c.select(f'"{folder}"', readonly=True)
    if typ != "OK":
        return {}
    typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out: dict[str, str] = {}
    for part in data:
        if isinstance(part, tuple):
            flags = part[0].decode().split("FLAGS (")[1].split(")")[0]
            subject = part[1].decode().strip().removeprefix("Subject: ")
            out[subject] = " ".join(sorted(f for f in flags.split() if f != "\\Recent"))
    c.logout()
    return out


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "MP_"))}
    full.update(env or {})
    return subprocess.run([POSTROOM, *args], capture_output=True, text=True, env=full, timeout=120)


def test_fetch_imap_and_pop3_from_dovecot(tmp_path: Path) -> None:
    with running_dovecot() as (imap_port, pop3_port), running_server(pop3="off") as s:
        local = s.addr("imap")[1]
        a = remote(imap_port, "alice@example.org")
        a.create("Sent")
        put(a, "INBOX", "first", "\\Seen")
        put(a, "INBOX", "second")
        put(a, "Sent", "my reply", "\\Seen")
        b = remote(imap_port, "bob@example.org")
        put(b, "INBOX", "pop one")
        put(b, "INBOX", "pop two")
        b.logout()
        config = tmp_path / "postroom.toml"
        config.write_text(
            account("alice", imap_port, "alice@example.org", "ALICE_PW", folders=["INBOX", "\\Sent"])
            + account("bob", pop3_port, "bob@example.org", "", protocol="pop3",
                      password_file=str(tmp_path / "bob-pw"), mailbox="bob-copy@example.org", delete=True)
        )  # fmt: skip
        (tmp_path / "bob-pw").write_text("secret\n")
        args = [
            "fetch",
            "--config",
            str(config),
            "--into",
            f"127.0.0.1:{local}",
            "--state",
            str(tmp_path / "state.sqlite"),
        ]
        env = {"ALICE_PW": "secret"}
        r = run(*args, "--all", env=env)
        assert r.returncode == 0, r.stderr
        assert "alice: 3 new messages in INBOX, Sent" in r.stdout
        assert "bob: 2 new messages in INBOX" in r.stdout
        assert local_folder(local, "alice@example.org", "INBOX") == {"first": "\\Seen", "second": ""}
        assert local_folder(local, "alice@example.org", "Sent") == {"my reply": "\\Seen"}
        assert set(local_folder(local, "bob-copy@example.org", "INBOX")) == {"pop one", "pop two"}
        # the remote read state was not changed by fetching (EXAMINE, BODY.PEEK)
        a.select("INBOX", readonly=True)
        _, data = a.fetch("2", "(FLAGS)")
        assert b"\\Seen" not in data[0]
        # POP3 with delete = true: the copies are committed, so the server's are gone
        b = remote(imap_port, "bob@example.org")
        _, data = b.select("INBOX")
        assert data[0] == b"0"
        b.logout()

        # a re-run adds nothing
        r = run(*args, "--all", env=env)
        assert r.returncode == 0, r.stderr
        assert "alice: 0 new messages" in r.stdout and "bob: 0 new messages" in r.stdout
        assert len(local_folder(local, "alice@example.org", "INBOX")) == 2

        # new mail and a flag change on the server: one new message, one mirrored change
        put(a, "INBOX", "third")
        a.select("INBOX")
        a.store("2", "+FLAGS", "(\\Flagged \\Seen)")
        r = run(*args, "alice", env=env)
        assert r.returncode == 0, r.stderr
        assert "alice: 1 new messages in INBOX, Sent, 1 flag changes" in r.stdout
        assert local_folder(local, "alice@example.org", "INBOX") == {
            "first": "\\Seen", "second": "\\Flagged \\Seen", "third": "",
        }  # fmt: skip
        a.logout()

        # a wrong password is one line naming the server
        r = run(*args, "alice", env={"ALICE_PW": "wrong"})
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and "login as 'alice@example.org' refused" in r.stderr


def test_fetch_configuration_errors_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[fetch.accounts.x]\npreset = "gmail"\nuser = "me@gmail.com"\npassword = "inline"\n')
    r = run("fetch", "x", "--config", str(config))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "password_env or password_file" in r.stderr
    config.write_text('[fetch.accounts.x]\npreset = "gmial"\nuser = "u"\npassword_env = "HOME"\n')
    r = run("fetch", "x", "--config", str(config))
    assert r.returncode == 2 and "unknown preset 'gmial'" in r.stderr
    config.write_text('[fetch.accounts.x]\npreset = "qq"\nuser = "u@qq.com"\npassword_env = "HOME"\n')
    r = run("fetch", "y", "--config", str(config))
    assert r.returncode == 2 and "no fetch account 'y' (known: x)" in r.stderr


def test_flags_both_ways(tmp_path: Path) -> None:
    with running_dovecot() as (imap_port, _), running_server(pop3="off") as s:
        local = s.addr("imap")[1]
        a = remote(imap_port, "alice@example.org")
        for subject in ("one", "two", "three"):
            put(a, "INBOX", subject)
        config = tmp_path / "postroom.toml"
        config.write_text(account("alice", imap_port, "alice@example.org", "ALICE_PW", flags="both"))
        args = ["fetch", "alice", "--config", str(config), "--into", f"127.0.0.1:{local}",
                "--state", str(tmp_path / "state.sqlite")]  # fmt: skip
        env = {"ALICE_PW": "secret"}
        assert run(*args, env=env).returncode == 0
        # read and flagged here, answered there, and both sides on "three" (the server wins)
        c = imaplib.IMAP4("127.0.0.1", local, timeout=30)
        c.login("alice@example.org", "x")
        c.select("INBOX")
        c.store("1", "+FLAGS", "(\\Seen \\Flagged)")
        c.store("3", "+FLAGS", "(\\Draft)")
        c.logout()
        a.select("INBOX")
        a.store("2", "+FLAGS", "(\\Answered)")
        a.store("3", "+FLAGS", "(\\Deleted)")
        r = run(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert "2 flag changes, 1 flag changes sent to the server" in r.stdout
        expected = {"one": "\\Flagged \\Seen", "two": "\\Answered", "three": "\\Deleted"}
        assert local_folder(local, "alice@example.org", "INBOX") == expected
        a.select("INBOX", readonly=True)  # drops the FETCH updates queued while it was selected
        _, data = a.fetch("1:3", "(FLAGS)")
        remote_flags = [" ".join(sorted(f for f in d.decode().split("FLAGS (")[1].split(")")[0].split()
                                        if f != "\\Recent")) for d in data]  # fmt: skip
        assert remote_flags == ["\\Flagged \\Seen", "\\Answered", "\\Deleted"]
        # in step now: nothing moves either way
        r = run(*args, env=env)
        assert "alice: 0 new messages in INBOX" in r.stdout and "flag" not in r.stdout
        a.logout()


def test_xoauth2_login(tmp_path: Path) -> None:
    """An OAuth2 access token (XOAUTH2) against Dovecot, which checks it at a local RFC 7662
    introspection endpoint: the right token fetches, a revoked one is one line."""
    import http.server
    import threading
    import urllib.parse

    seen: list[str] = []

    class Introspect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            token = urllib.parse.parse_qs(body).get("token", [""])[0] or self.headers.get("Authorization", "")
            seen.append(token)
            active = token.endswith("good-token")
            answer = {"active": active, "username": "alice@example.org"} if active else {"active": False}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Introspect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/introspect"
        with running_dovecot(oauth2_url=url) as (imap_port, _), running_server(pop3="off") as s:
            a = remote(imap_port, "alice@example.org")
            put(a, "INBOX", "by token")
            a.logout()
            config = tmp_path / "postroom.toml"
            config.write_text(account("alice", imap_port, "alice@example.org", "", oauth2_token_env="TOKEN"))
            args = ["fetch", "alice", "--config", str(config), "--into", f"127.0.0.1:{s.addr('imap')[1]}",
                    "--state", str(tmp_path / "state.sqlite")]  # fmt: skip
            r = run(*args, env={"TOKEN": "good-token"})
            assert r.returncode == 0, r.stderr
            assert "alice: 1 new messages" in r.stdout
            assert any(t.endswith("good-token") for t in seen)  # Dovecot really asked about it
            r = run(*args, env={"TOKEN": "revoked-token"})
            assert r.returncode == 1 and r.stderr.count("\n") == 1 and "refused" in r.stderr, r.stderr
            assert "revoked-token" not in r.stderr
    finally:
        server.shutdown()


def test_connection_errors_name_the_likely_cause(tmp_path: Path) -> None:
    from tests.helpers import free_port

    with running_dovecot() as (imap_port, pop3_port):
        config = tmp_path / "postroom.toml"
        config.write_text(
            account("implicit", imap_port, "alice@example.org", "PW", tls="tls")  # a plain-text port
            + account("pop", pop3_port, "alice@example.org", "PW", tls="tls", protocol="pop3")
            + account("nobody", free_port(), "alice@example.org", "PW")
            + account("nohost", imap_port, "alice@example.org", "PW").replace(
                "127.0.0.1", "no-such-host.invalid"
            )
        )
        for name, expected in [
            ("implicit", 'it speaks plain text there; use tls = "starttls"'),
            ("pop", 'it speaks plain text there; use tls = "starttls"'),
            ("nobody", "connection refused by 127.0.0.1:"),
            ("nohost", "cannot resolve host 'no-such-host.invalid'"),
        ]:
            r = run("fetch", name, "--config", str(config), "--into", "127.0.0.1:1", "--state",
                    str(tmp_path / "s.sqlite"), env={"PW": "secret"})  # fmt: skip
            assert r.returncode == 1 and r.stderr.count("\n") == 1, (name, r.stderr)
            assert expected in r.stderr, (name, r.stderr)


def test_tls_modes(tmp_path: Path) -> None:
    """Implicit TLS (IMAPS, POP3S) and STARTTLS/STLS against Dovecot with a certificate
    for 127.0.0.1 that the account trusts through cafile; an untrusted one is one line."""
    from tests.helpers import free_port

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)  # fmt: skip
    imaps, pop3s = free_port(), free_port()
    extra = f"""ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
service imap-login {{
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
service pop3-login {{
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
  }}
}}
"""
    with running_dovecot(extra_conf=extra) as (imap_port, pop3_port), running_server(pop3="off") as s:
        a = remote(imap_port, "alice@example.org")
        put(a, "INBOX", "over tls")
        a.logout()
        config = tmp_path / "postroom.toml"
        ca = str(cert)
        config.write_text(
            account("imaps", imaps, "alice@example.org", "PW", tls="tls", cafile=ca, mailbox="a1@example.org")
            + account("starttls", imap_port, "alice@example.org", "PW", tls="starttls", cafile=ca,
                      mailbox="a2@example.org")
            + account("pop3s", pop3s, "alice@example.org", "PW", tls="tls", cafile=ca, protocol="pop3",
                      mailbox="a3@example.org")
            + account("stls", pop3_port, "alice@example.org", "PW", tls="starttls", cafile=ca, protocol="pop3",
                      mailbox="a4@example.org")
            + account("untrusted", imaps, "alice@example.org", "PW", tls="tls")
        )  # fmt: skip
        local = s.addr("imap")[1]
        args = [
            "--config",
            str(config),
            "--into",
            f"127.0.0.1:{local}",
            "--state",
            str(tmp_path / "s.sqlite"),
        ]
        for n, name in enumerate(("imaps", "starttls", "pop3s", "stls"), 1):
            r = run("fetch", name, *args, env={"PW": "secret"})
            assert r.returncode == 0 and f"{name}: 1 new messages" in r.stdout, (name, r.stderr)
            assert list(local_folder(local, f"a{n}@example.org", "INBOX")) == ["over tls"]
        r = run("fetch", "untrusted", *args, env={"PW": "secret"})
        assert r.returncode == 1 and r.stderr.count("\n") == 1
        assert "is not trusted" in r.stderr and "set cafile" in r.stderr


def test_special_use_folders_are_found_by_attribute(tmp_path: Path) -> None:
    """``\\Sent`` and ``\\Junk`` pick the folders Dovecot marks so (RFC 6154), whatever their names."""
    extra = """namespace inbox {
  inbox = yes
  mailbox "Sent Items" {
    special_use = \\Sent
    auto = create
  }
  mailbox "Spam" {
    special_use = \\Junk
    auto = create
  }
  mailbox "Sent" {
    auto = create
  }
}
"""
    with running_dovecot(extra_conf=extra) as (imap_port, _), running_server(pop3="off") as s:
        a = remote(imap_port, "alice@example.org")
        put(a, '"Sent Items"', "really sent")
        put(a, "Sent", "a folder merely called Sent")
        put(a, "Spam", "junk")
        a.logout()
        config = tmp_path / "postroom.toml"
        config.write_text(
            account("alice", imap_port, "alice@example.org", "PW", folders=["\\Sent", "\\Junk"])
        )
        local = s.addr("imap")[1]
        r = run("fetch", "alice", "--config", str(config), "--into", f"127.0.0.1:{local}", "--state",
                str(tmp_path / "s.sqlite"), env={"PW": "secret"})  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "alice: 2 new messages in Sent Items, Spam" in r.stdout
        assert list(local_folder(local, "alice@example.org", "Sent Items")) == ["really sent"]
        assert list(local_folder(local, "alice@example.org", "Spam")) == ["junk"]


def test_expunges_mirrored_when_asked(tmp_path: Path) -> None:
    """``expunge = true``: messages expunged on the server are expunged from the local copy
    at the next run, by QRESYNC's VANISHED against Dovecot (RFC 7162) and by UID SEARCH
    against a server without QRESYNC (a second postroom); without it the copies stay."""
    with (
        running_dovecot() as (imap_port, _),
        running_server(pop3="off") as s,
        running_server(pop3="off") as far,
    ):
        local = s.addr("imap")[1]
        far_port = far.addr("imap")[1]
        a = remote(imap_port, "alice@example.org")
        assert b"QRESYNC" in a.capability()[1][-1]
        c = imaplib.IMAP4("127.0.0.1", far_port, timeout=30)
        c.login("carol@example.org", "x")
        assert b"QRESYNC" not in c.capability()[1][-1]
        for subject in ("one", "two", "three", "four"):
            put(a, "INBOX", subject)
            put(c, "INBOX", f"carol {subject}")
        config = tmp_path / "postroom.toml"
        config.write_text(
            account("alice", imap_port, "alice@example.org", "ALICE_PW", expunge=True)
            + account("kept", imap_port, "alice@example.org", "ALICE_PW", mailbox="kept@example.org")
            + account("carol", far_port, "carol@example.org", "ALICE_PW", expunge=True)
        )
        args = ["fetch", "--all", "--config", str(config), "--into", f"127.0.0.1:{local}",
                "--state", str(tmp_path / "state.sqlite")]  # fmt: skip
        env = {"ALICE_PW": "secret"}
        r = run(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count(": 4 new messages in INBOX\n") == 3, r.stdout
        # two go on each server, and one more message arrives
        for conn, prefix in ((a, ""), (c, "carol ")):
            conn.select("INBOX")
            conn.store("2:3", "+FLAGS.SILENT", "(\\Deleted)")
            assert conn.expunge()[0] == "OK"
            put(conn, "INBOX", f"{prefix}five")
        r = run(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert "alice: 1 new messages in INBOX, 2 expunged\n" in r.stdout, r.stdout
        assert "carol: 1 new messages in INBOX, 2 expunged\n" in r.stdout, r.stdout
        assert "kept: 1 new messages in INBOX\n" in r.stdout, r.stdout
        assert set(local_folder(local, "alice@example.org", "INBOX")) == {"one", "four", "five"}
        assert set(local_folder(local, "carol@example.org", "INBOX")) == {
            "carol one",
            "carol four",
            "carol five",
        }
        assert len(local_folder(local, "kept@example.org", "INBOX")) == 5  # expunge = false: kept
        # in step: nothing more goes; a flag change after the expunges is still mirrored
        a.store("1", "+FLAGS", "(\\Flagged)")
        r = run(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert "expunged" not in r.stdout, r.stdout
        assert "alice: 0 new messages in INBOX, 1 flag changes\n" in r.stdout, r.stdout
        assert local_folder(local, "alice@example.org", "INBOX")["one"] == "\\Flagged"
        a.logout()
        c.logout()
