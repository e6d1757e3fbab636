"""`postroom import` and `postroom export` as a user runs them, against a running postroom:
Maildir (with flags and sub-folders), mbox (mboxrd escaping), .eml directories and .zip."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from postroom.fetch.archive import iter_path
from tests.helpers import RunningServer, running_server

POSTROOM = str(Path(sys.executable).with_name("postroom"))


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "MP_"))}
    return subprocess.run([POSTROOM, *args], capture_output=True, env=env, timeout=120)


def msg(n: int, to: str = "alice@example.org", body: str = "hello") -> bytes:
    return (f"From: Sender <s{n}@example.net>\nTo: {to}\nSubject: message {n}\n"
            f"Message-ID: <m{n}@example.net>\n\n{body}\n").encode()  # fmt: skip


def make_maildir(root: Path) -> None:
    md = mailbox.Maildir(str(root), create=True)
    m = mailbox.MaildirMessage(msg(1))
    m.set_flags("SF")
    md.add(m)
    md.add(mailbox.MaildirMessage(msg(2)))
    sub = md.add_folder("Archive")
    sub.add(mailbox.MaildirMessage(msg(3, to="bob@example.org")))


def subjects(s: RunningServer, box: str) -> list[str]:
    return sorted(m.subject for m in s.app.store.list_messages(mailbox=box).messages)


def test_import_reads_every_format_and_files_by_recipient(tmp_path: Path) -> None:
    make_maildir(tmp_path / "Maildir")
    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(
        b"From a@b Sat Jan  3 01:05:34 1996\n" + msg(4, body=">From the start\n>>From quoted") + b"\n"
        b"From a@b Sat Jan  3 01:05:35 1996\nX-Original-To: carol@example.org\n"
        + msg(5, to="nobody@example.org")
        + b"\n"
    )
    emls = tmp_path / "emls"
    (emls / "sub").mkdir(parents=True)
    (emls / "sub" / "six.eml").write_bytes(msg(6, to="dave@example.org"))
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as zf:
        zf.writestr("seven.eml", msg(7, to="erin@example.org"))
    (tmp_path / "norcpt.eml").write_bytes(b"Subject: nobody\n\nx\n")
    with running_server(pop3="off", imap="off") as s:
        r = run("import", "--smtp", f"127.0.0.1:{s.smtp_port}", str(tmp_path / "Maildir"), str(mbox), str(emls),
                str(tmp_path / "bundle.zip"), str(tmp_path / "norcpt.eml"))  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert b"imported 7 messages, skipped 1" in r.stdout
        assert b"norcpt.eml: no recipient in its headers (use --to)" in r.stderr
        assert subjects(s, "alice@example.org") == ["message 1", "message 2", "message 4"]
        assert subjects(s, "bob@example.org") == ["message 3"]
        assert subjects(s, "carol@example.org") == ["message 5"]  # X-Original-To wins over To
        assert subjects(s, "dave@example.org") == ["message 6"]
        assert subjects(s, "erin@example.org") == ["message 7"]
        four = next(
            m
            for m in s.app.store.list_messages(mailbox="alice@example.org").messages
            if m.subject == "message 4"
        )
        raw = s.app.store.get_raw(four.id)
        assert raw is not None and b"\r\nFrom the start\r\n>From quoted\r\n" in raw  # mboxrd unescaped
        r = run(
            "import",
            "--smtp",
            f"127.0.0.1:{s.smtp_port}",
            "--to",
            "qa@example.org",
            str(tmp_path / "norcpt.eml"),
        )
        assert r.returncode == 0 and subjects(s, "qa@example.org") == ["nobody"]


def test_import_errors_are_one_line(tmp_path: Path) -> None:
    r = run("import", "--smtp", "127.0.0.1:1", str(tmp_path / "missing"))
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and b"no such file" in r.stderr
    (tmp_path / "a.eml").write_bytes(msg(1))
    r = run("import", "--smtp", "127.0.0.1:1", str(tmp_path / "a.eml"))
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and b"failed after 0 messages" in r.stderr


@pytest.mark.parametrize(
    "fmt,name", [("maildir", "out"), ("mbox", "out.mbox"), ("eml", "emls"), ("zip", "out.zip")]
)
def test_export_round_trips_through_each_format(tmp_path: Path, fmt: str, name: str) -> None:
    with running_server(pop3="off", imap="off") as s:
        import smtplib

        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
            c.sendmail(
                "s@example.net",
                ["alice@example.org"],
                msg(1, body="From here on\n>From there").replace(b"\n", b"\r\n"),
            )
            c.sendmail(
                "s@example.net", ["bob@example.org"], msg(2, to="bob@example.org").replace(b"\n", b"\r\n")
            )
        first = s.app.store.list_messages(mailbox="alice@example.org").messages[0]
        s.app.store.set_read([first.id], True)
        dest = tmp_path / name
        r = run("export", str(dest), "--url", s.http_url, "--format", fmt)
        assert r.returncode == 0, r.stderr
        assert b"exported 2 messages" in r.stdout
        items = list(iter_path(dest))
        assert len(items) == 2
        stored = {m.id: s.app.store.get_raw(m.id) for m in s.app.store.list_messages().messages}
        norm = {v.replace(b"\r\n", b"\n").rstrip(b"\n") for v in stored.values() if v}
        assert {i.data.replace(b"\r\n", b"\n").rstrip(b"\n") for i in items} == norm
        if fmt == "maildir":
            assert sorted(len(i.flags) for i in items) == [0, 1]  # the read one is S
        r = run(
            "export",
            str(tmp_path / f"bob-{name}"),
            "--url",
            s.http_url,
            "--format",
            fmt,
            "--mailbox",
            "bob@example.org",
        )
        assert r.returncode == 0 and b"exported 1 messages" in r.stdout, r.stderr
