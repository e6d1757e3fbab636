"""`postroom import` and `postroom export` as a user runs them, against a running postroom:
Maildir (with flags and sub-folders), mbox (mboxrd escaping), .eml directories and .zip."""

from __future__ import annotations

import hashlib
import json
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


def test_a_file_that_is_not_an_mbox_is_named_so_and_a_directory_import_goes_on(tmp_path: Path) -> None:
    """A plain-text ``*.mbox``: the same line whether given directly or found in a
    directory; the directory's other files are imported (each once), the exit status is 1."""
    notes = tmp_path / "dir"
    notes.mkdir()
    (notes / "a.eml").write_bytes(msg(1))
    (notes / "b-notes.mbox").write_bytes(b"To: someone@example.org\nSubject: notes\n\nnot mail\n")
    (notes / "c.mbox").write_bytes(b"From a@b Sat Jan  3 01:05:34 1996\n" + msg(2) + b"\n")
    (notes / "d.eml").write_bytes(msg(3))
    line = "b-notes.mbox: not an mbox (no 'From ' line at the start)"
    with running_server(pop3="off", imap="off") as s:
        smtp = f"127.0.0.1:{s.smtp_port}"
        r = run("import", "--smtp", smtp, str(notes / "b-notes.mbox"))
        assert r.returncode == 1 and r.stderr.decode().strip().endswith(line), r.stderr
        assert b"no recipient" not in r.stderr
        r = run("import", "--smtp", smtp, str(notes))
        assert r.returncode == 1, r.stderr
        assert r.stderr.decode().strip().endswith(line), r.stderr
        assert b"imported 3 messages, 1 file not read (see above)" in r.stdout, r.stdout
        assert subjects(s, "alice@example.org") == ["message 1", "message 2", "message 3"]
        assert subjects(s, "someone@example.org") == []


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


def _fill_store(s: RunningServer) -> None:
    import smtplib

    bodies = [
        msg(1, body="From here on\n>From there\n>>From far"),
        "From: s@example.net\nTo: bob@example.org\nSubject: =?utf-8?q?caf=C3=A9?=\n\ncafé ünïcode\n".encode(),
        msg(3, to="alice@example.org, bob@example.org", body="two recipients"),
    ]
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        for b in bodies:
            c.sendmail("s@example.net", [a.strip() for a in b.split(b"\nTo: ")[1].split(b"\n")[0].decode().split(",")],
                       b.replace(b"\n", b"\r\n"), mail_options=["BODY=8BITMIME"])  # fmt: skip
    first = next(m for m in s.app.store.list_messages().messages if m.subject == "message 1")
    s.app.store.set_read([first.id], True)


def _hashes(s: RunningServer) -> dict[str, str]:
    """ "SHA-256 of the raw bytes, mailbox" of each stored message in each of its mailboxes -> "read" or ""."""
    out = {}
    for m in s.app.store.list_messages().messages:
        raw = s.app.store.get_raw(m.id)
        assert raw is not None
        for box in m.mailboxes:
            out[f"{hashlib.sha256(raw).hexdigest()} {box}"] = "read" if m.read else ""
    return out


@pytest.mark.parametrize("fmt", ["maildir", "mbox", "eml"])
def test_export_then_import_by_imap_keeps_the_exact_bytes(tmp_path: Path, fmt: str) -> None:
    dest = tmp_path / "out"
    with running_server(pop3="off", imap="off") as a:
        _fill_store(a)
        before = _hashes(a)
        r = run("export", str(dest), "--url", a.http_url, "--format", fmt)
        assert r.returncode == 0 and b"exported 3 messages" in r.stdout, r.stderr
    with running_server(pop3="off") as b:
        r = run("import", "--imap", f"127.0.0.1:{b.addr('imap')[1]}", str(dest))
        assert r.returncode == 0, r.stderr
        after = _hashes(b)
    assert len(before) == 4
    assert set(after) == set(before)  # every message's bytes, SHA-256-equal, in the same mailboxes
    if fmt == "maildir":  # the read state travels as the S flag
        assert after == before and sorted(before.values()) == ["", "", "", "read"]


def test_import_by_imap_applies_flags_and_folders(tmp_path: Path) -> None:
    import imaplib

    make_maildir(tmp_path / "Maildir")  # message 1 is S and F; message 3 in .Archive
    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(b"From a@b Sat Jan  3 01:05:34 1996\nStatus: RO\nX-Status: A\n" + msg(4) + b"\n")
    with running_server(pop3="off") as s:
        port = s.addr("imap")[1]
        r = run("import", "--imap", f"127.0.0.1:{port}", str(tmp_path / "Maildir"), str(mbox))
        assert r.returncode == 0 and b"imported 4 messages" in r.stdout, r.stderr

        def flags(mailbox: str, folder: str) -> dict[str, str]:
            c = imaplib.IMAP4("127.0.0.1", port, timeout=20)
            c.login(mailbox, "x")
            c.select(folder, readonly=True)
            _, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            c.logout()
            return {
                p[1].decode().strip().removeprefix("Subject: "): " ".join(
                    f for f in p[0].decode().split("FLAGS (")[1].split(")")[0].split() if f != "\\Recent"
                )
                for p in data
                if isinstance(p, tuple)
            }

        assert flags("alice@example.org", "INBOX") == {
            "message 1": "\\Flagged \\Seen", "message 2": "", "message 4": "\\Answered \\Seen",
        }  # fmt: skip
        assert flags("bob@example.org", "Archive") == {"message 3": ""}


def test_mailpit_ingest_and_dump_names(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.eml").write_bytes(msg(1))
    old = tmp_path / "in" / "old.eml"
    old.write_bytes(msg(2))
    os.utime(old, (0, 0))  # 1970: outside --recent
    with running_server(pop3="off", imap="off") as s:
        r = run("ingest", "-S", f"127.0.0.1:{s.smtp_port}", "--recent", "1", str(tmp_path / "in"))
        assert r.returncode == 0 and b"imported 1 messages" in r.stdout, r.stderr
        assert subjects(s, "alice@example.org") == ["message 1"]
        out = tmp_path / "dump"
        r = run("dump", str(out), "--http", s.http_url)
        assert r.returncode == 0 and b"dumped 1 messages" in r.stdout, r.stderr
        (only,) = s.app.store.list_messages().messages
        assert (out / f"{only.id}.eml").read_bytes() == s.app.store.get_raw(only.id)
        r = run("dump", str(out), "--http", s.http_url)  # files already there are skipped
        assert r.returncode == 0 and b"dumped 0 messages" in r.stdout
        r = run("dump", str(out), "--database", "x.db")
        assert r.returncode == 2 and r.stderr.decode().count("\n") == 1 and b"give --http" in r.stderr


def test_api_mbox_download_and_upload(tmp_path: Path) -> None:
    import io
    import urllib.error
    import urllib.request

    from postroom.fetch.archive import iter_mbox

    with running_server(pop3="off", imap="off") as a:
        _fill_store(a)
        before = _hashes(a)
        url = f"{a.http_url}/api/v2/export/mbox?mailbox=bob@example.org"
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.headers["Content-Type"] == "application/mbox"
            assert 'filename="bob@example.org.mbox"' in r.headers["Content-Disposition"]
            mbox = r.read()
        with urllib.request.urlopen(f"{a.http_url}/api/v2/export/mbox", timeout=30) as r:
            everything = r.read()
    assert len(list(iter_mbox(io.BytesIO(mbox), "x", ""))) == 2  # bob's two of the three
    assert len(list(iter_mbox(io.BytesIO(everything), "x", ""))) == 3
    with running_server(pop3="off", imap="off") as b:
        post = f"{b.http_url}/api/v2/import"
        # a form-like POST (another site could send it) is refused: the cross-site contract
        req = urllib.request.Request(
            post, data=everything, method="POST", headers={"Content-Type": "text/plain"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=30)
        assert refused.value.code == 415
        req.add_header("X-Postroom-Request", "1")
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
        assert answer["Imported"] == 3 and answer["Skipped"] == []
        assert {k.split()[0] for k in _hashes(b)} == {k.split()[0] for k in before}  # the same bytes
        assert set(_hashes(b)) == set(before)  # in the same mailboxes
        one = urllib.request.Request(f"{post}?to=qa@example.org", data=msg(9), method="POST",
                                     headers={"X-Postroom-Request": "1"})  # fmt: skip
        with urllib.request.urlopen(one, timeout=30) as r:
            assert json.loads(r.read())["Imported"] == 1
        assert subjects(b, "qa@example.org") == ["message 9"]


def test_a_damaged_zip_member_is_named_and_the_directory_import_goes_on(tmp_path: Path) -> None:
    """A zip whose directory reads but whose member's bytes are damaged (bad CRC): one line
    naming the member, not a traceback, and the other files of the directory are read."""
    import zipfile

    d = tmp_path / "dir"
    d.mkdir()
    with zipfile.ZipFile(d / "a.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("m.eml", msg(1))
    data = bytearray((d / "a.zip").read_bytes())
    at = data.index(b"Subject: message 1")
    data[at] ^= 0x20  # the member's bytes no longer match its CRC
    (d / "a.zip").write_bytes(bytes(data))
    (d / "b.eml").write_bytes(msg(2))
    r = run("import", "--dry-run", str(d))
    assert r.returncode == 1, r.stderr
    err = r.stderr.decode()
    assert "Traceback" not in err and "a.zip!m.eml: damaged" in err, err
    assert b"1 file not read" in r.stdout, r.stdout
